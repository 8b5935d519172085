//! The request key of the HTTP cache.
//!
//! A URL's [`Base`] digests what names the resource: the method class (`HEAD` shares
//! `GET`), the target's scheme when it has one, the authority the handler sees (the
//! `Host` header, or the target's authority when there is no `Host`, as in HTTP/2;
//! ASCII case-insensitive), the path, the full query string, and the
//! `X-Forwarded-Host`, `X-Forwarded-Proto` and `Forwarded` headers (a handler behind a
//! proxy builds its links from them). Under it the cache keeps a *manifest*, the header
//! names the last stored response listed in `Vary` (Django's `learn_cache_key`), and the
//! responses themselves, each under a digest of the base plus the request's values of
//! every header it varies on: the manifest's, the configured ones and, unless the view is
//! shared, `Authorization` and `Cookie`.
//!
//! Every piece is length-prefixed before hashing, so no two different requests produce
//! the same input, and an absent header is encoded differently from an empty one. Header
//! values only enter the stored key as a SHA-256 digest (128 bits of it): credentials are
//! never written to the backend in clear. The digest is computed once per lookup, fed
//! piece by piece; the stored key is rendered in one allocation.

use http::header::HOST;
use http::{HeaderMap, HeaderName, Method, Uri};
use sha2::{Digest, Sha256};

use crate::key::{hex_digest, is_safe};
use crate::Cache;

/// Bytes of SHA-256 kept in a key digest (128 bits).
const DIGEST_BYTES: usize = 16;

/// The request headers that name the resource behind a proxy: part of every base.
const FORWARDED: [HeaderName; 3] = [
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
    http::header::FORWARDED,
];

/// The readable start of a view's keys, `view:{namespace}:`. A namespace that cannot be
/// stored as written (see [`crate::key`]) is replaced by its digest, so every key this
/// module renders is stored as written.
#[derive(Clone, Debug)]
pub(crate) struct Label(String);

impl Label {
    pub(crate) fn new(namespace: &str) -> Self {
        let text = format!("view:{namespace}:");
        // Room for the digest and the manifest suffix within the stored-key limit.
        let longest = format!("{text}{}:vary", "0".repeat(2 * DIGEST_BYTES));
        match is_safe(&longest) {
            true => Label(text),
            false => Label(format!(
                "view:{}:",
                hex_digest(namespace.as_bytes(), DIGEST_BYTES)
            )),
        }
    }
}

/// The digest state of a request's base (see the module docs).
#[derive(Clone)]
pub(crate) struct Base(Feed);

impl Base {
    pub(crate) fn new(method: &Method, target: &Uri, request: &HeaderMap) -> Self {
        let mut f = Feed::new();
        // HEAD is answered from the GET entry; other methods never reach the cache.
        let method = if method == Method::HEAD {
            "GET"
        } else {
            method.as_str()
        };
        f.field(method.as_bytes());
        f.optional(target.scheme_str().map(str::as_bytes));
        let host = request.get(HOST).map(|h| h.as_bytes());
        match host.or_else(|| target.authority().map(|a| a.as_str().as_bytes())) {
            Some(authority) => {
                f.put(b"P");
                f.lower_field(authority);
            }
            None => f.put(b"A"),
        }
        f.field(target.path().as_bytes());
        f.optional(target.query().map(str::as_bytes));
        for name in &FORWARDED {
            f.values(name, request);
        }
        Base(f)
    }

    /// The stored key of the manifest of this base.
    pub(crate) fn manifest(&self, cache: &Cache, label: &Label) -> String {
        let mut f = self.0.clone();
        f.put(b"M");
        render(cache, label, &f.finish(), ":vary")
    }

    /// The stored key of the response for `request`, varying on `names` (lowercase,
    /// sorted, without duplicates).
    pub(crate) fn entry(
        &self,
        cache: &Cache,
        label: &Label,
        names: &[HeaderName],
        request: &HeaderMap,
    ) -> String {
        let mut f = self.0.clone();
        f.put(b"E");
        f.len(names.len());
        for name in names {
            f.field(name.as_str().as_bytes());
            f.values(name, request);
        }
        render(cache, label, &f.finish(), "")
    }
}

/// SHA-256 input, fed piece by piece.
#[derive(Clone)]
struct Feed {
    hasher: Sha256,
}

impl Feed {
    fn new() -> Self {
        Feed {
            hasher: Sha256::new(),
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
    }

    /// A length or count. Four bytes: no header value or URL reaches 4 GiB (a larger one
    /// would saturate, and still differ in its bytes).
    fn len(&mut self, n: usize) {
        self.put(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
    }

    /// `bytes` with its length in front.
    fn field(&mut self, bytes: &[u8]) {
        self.len(bytes.len());
        self.put(bytes);
    }

    /// [`field`](Self::field) of `bytes` lowercased, without allocating.
    fn lower_field(&mut self, bytes: &[u8]) {
        self.len(bytes.len());
        let mut chunk = [0u8; 64];
        for piece in bytes.chunks(chunk.len()) {
            let out = &mut chunk[..piece.len()];
            out.copy_from_slice(piece);
            out.make_ascii_lowercase();
            self.put(out);
        }
    }

    /// `A` for absent, or `P` and the field.
    fn optional(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            Some(bytes) => {
                self.put(b"P");
                self.field(bytes);
            }
            None => self.put(b"A"),
        }
    }

    /// Every value of header `name`, in order: `A` when absent, else `P`, the count and
    /// each value.
    fn values<K: http::header::AsHeaderName>(&mut self, name: K, request: &HeaderMap) {
        let all = request.get_all(name);
        let n = all.iter().count();
        if n == 0 {
            self.put(b"A");
            return;
        }
        self.put(b"P");
        self.len(n);
        for value in all {
            self.field(value.as_bytes());
        }
    }

    fn finish(self) -> [u8; 32] {
        self.hasher.finalize().into()
    }
}

/// `{head}{label}{digest}{suffix}`, in one allocation. The part after the cache's head
/// is a logical key that [`Cache::make_key`] stores as written.
fn render(cache: &Cache, label: &Label, digest: &[u8], suffix: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let head = cache.head();
    let mut out =
        String::with_capacity(head.len() + label.0.len() + 2 * DIGEST_BYTES + suffix.len());
    out.push_str(head);
    out.push_str(&label.0);
    for b in digest.iter().take(DIGEST_BYTES) {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out.push_str(suffix);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DummyBackend;
    use http::HeaderValue;

    fn cache() -> Cache {
        Cache::builder(DummyBackend::new()).build()
    }

    fn uri(s: &str) -> Uri {
        s.parse().expect("test uri")
    }

    fn base(u: &str, h: &HeaderMap) -> String {
        let label = Label::new("ns");
        Base::new(&Method::GET, &uri(u), h).entry(&cache(), &label, &[], h)
    }

    fn name(n: &'static str) -> HeaderName {
        HeaderName::from_static(n)
    }

    #[test]
    fn a_key_is_one_stored_string_with_a_readable_label() {
        let label = Label::new("list");
        let h = HeaderMap::new();
        let b = Base::new(&Method::GET, &uri("/products?page=2"), &h);
        let entry = b.entry(&cache(), &label, &[], &h);
        assert!(entry.starts_with(":1:view:list:"), "{entry}");
        assert_eq!(entry.len(), ":1:view:list:".len() + 32);
        let manifest = b.manifest(&cache(), &label);
        assert!(manifest.ends_with(":vary"));
        assert_ne!(&manifest[..entry.len()], entry.as_str());
        assert_eq!(
            entry,
            Base::new(&Method::HEAD, &uri("/products?page=2"), &h).entry(&cache(), &label, &[], &h),
            "HEAD shares the GET entry"
        );
        // What follows the head is stored as written by `Cache::make_key`, whatever the
        // namespace; one that cannot be is digested, never rejected.
        for ns in ["list", "has space\n", &"x".repeat(300)] {
            let k = b.entry(&cache(), &Label::new(ns), &[], &h);
            assert_eq!(cache().make_key(&k[":1:".len()..]), k, "{ns:?}");
            let m = b.manifest(&cache(), &Label::new(ns));
            assert_eq!(cache().make_key(&m[":1:".len()..]), m, "{ns:?}");
        }
        assert_ne!(
            b.entry(&cache(), &Label::new("has space\n"), &[], &h),
            b.entry(&cache(), &Label::new("has space"), &[], &h)
        );
    }

    #[test]
    fn host_path_full_query_and_forwarding_are_in_the_key() {
        let mut a = HeaderMap::new();
        a.insert(HOST, HeaderValue::from_static("a.example"));
        let mut b = HeaderMap::new();
        b.insert(HOST, HeaderValue::from_static("b.example"));
        let none = HeaderMap::new();
        assert_ne!(base("/p", &a), base("/p", &b));
        assert_ne!(base("/p", &a), base("/p", &none));
        assert_ne!(base("/p", &a), base("/q", &a));
        assert_ne!(base("/p?x=1", &a), base("/p?x=2", &a));
        assert_ne!(base("/p?x=1&y=2", &a), base("/p?y=2&x=1", &a));
        assert_ne!(base("/p?", &a), base("/p", &a));
        let mut upper = HeaderMap::new();
        upper.insert(HOST, HeaderValue::from_static("A.EXAMPLE"));
        assert_eq!(base("/p", &a), base("/p", &upper));
        // Without Host (HTTP/2), the target's authority; the scheme is in the key.
        assert_eq!(
            base("http://a.example/p", &none),
            base("http://a.example/p", &a)
        );
        assert_ne!(base("http://a.example/p", &a), base("/p", &a));
        assert_ne!(
            base("https://a.example/p", &a),
            base("http://a.example/p", &a)
        );
        for forwarded in FORWARDED {
            let mut f = a.clone();
            f.insert(forwarded.clone(), HeaderValue::from_static("evil.example"));
            assert_ne!(base("/p", &f), base("/p", &a), "{forwarded}");
            let mut empty = a.clone();
            empty.insert(forwarded.clone(), HeaderValue::from_static(""));
            assert_ne!(base("/p", &f), base("/p", &empty), "{forwarded}");
            assert_ne!(base("/p", &a), base("/p", &empty), "{forwarded}");
        }
        // A long host is lowercased in chunks, not truncated.
        let long = format!("{}.example", "x".repeat(200));
        let mut l1 = HeaderMap::new();
        l1.insert(HOST, HeaderValue::from_str(&long).expect("host"));
        let mut l2 = HeaderMap::new();
        l2.insert(
            HOST,
            HeaderValue::from_str(&format!("{long}x")).expect("host"),
        );
        assert_ne!(base("/p", &l1), base("/p", &l2));
    }

    #[test]
    fn the_feed_digests_exactly_its_input_however_it_is_cut() {
        let pieces: Vec<Vec<u8>> = vec![
            b"a".to_vec(),
            vec![7; 255],
            vec![1; 2],
            vec![9; 700],
            b"".to_vec(),
            vec![3; 256],
            vec![4; 1],
        ];
        let mut f = Feed::new();
        for p in &pieces {
            f.put(p);
        }
        let whole: Vec<u8> = pieces.concat();
        assert_eq!(f.finish(), <[u8; 32]>::from(Sha256::digest(&whole)));
    }

    #[test]
    fn absent_empty_and_repeated_headers_differ() {
        let label = Label::new("ns");
        let target = uri("/p");
        let key = |names: &[HeaderName], h: &HeaderMap| {
            Base::new(&Method::GET, &target, h).entry(&cache(), &label, names, h)
        };
        let absent = HeaderMap::new();
        let mut empty = HeaderMap::new();
        empty.insert("cookie", HeaderValue::from_static(""));
        let mut one = HeaderMap::new();
        one.insert("cookie", HeaderValue::from_static("a=1; b=2"));
        let mut two = HeaderMap::new();
        two.append("cookie", HeaderValue::from_static("a=1"));
        two.append("cookie", HeaderValue::from_static("b=2"));
        let cookie = [name("cookie")];
        let keys: Vec<String> = [&absent, &empty, &one, &two]
            .iter()
            .map(|h| key(&cookie, h))
            .collect();
        for i in 0..keys.len() {
            for j in 0..i {
                assert_ne!(keys[i], keys[j], "{i} vs {j}");
            }
        }
        assert_ne!(
            key(&cookie, &absent),
            key(&[name("accept"), name("cookie")], &absent),
            "the set of names is part of the key"
        );
        assert_ne!(
            key(&[], &absent),
            key(&cookie, &absent),
            "varying on an absent header is not varying on nothing"
        );
    }
}
