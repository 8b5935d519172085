//! Django's key layout and the rule for long or unsafe keys.
//!
//! The stored key is `{key_prefix}:{version}:{key}`, exactly as Django builds it, on
//! every backend and every entry point, so a key written by `#[cache_fn]` can be read or
//! deleted with the [`Cache`](crate::Cache) handle and the other way round.
//!
//! A key longer than [`MAX_KEY_LEN`] bytes, or holding whitespace or control
//! characters, is stored as a readable head plus a SHA-256 digest of the whole key:
//! `{head}#{32 hex digits}`. A key that already ends in that shape is digested too, so
//! a digested key can never collide with a key written literally.

use sha2::{Digest, Sha256};

/// Keys longer than this many bytes are stored under a digest (memcached's limit, as Django).
pub const MAX_KEY_LEN: usize = 250;

/// How many characters of an unsafe key are kept readable in front of its digest.
const HEAD_LEN: usize = 64;

/// The full stored key for `key` under `prefix` and `version`.
///
/// ```
/// use cached_core::key::make_key;
/// assert_eq!(make_key("", 1, "product:42"), ":1:product:42");
/// assert_eq!(make_key("shop", 3, "product:42"), "shop:3:product:42");
/// let long = "x".repeat(300);
/// assert!(make_key("", 1, &long).len() < 120);
/// ```
pub fn make_key(prefix: &str, version: u32, key: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + key.len().min(MAX_KEY_LEN) + 8);
    out.push_str(prefix);
    out.push(':');
    push_u32(&mut out, version);
    out.push(':');
    push_safe_key(&mut out, key);
    out
}

/// The part of the stored key that depends only on prefix and version: `{prefix}:{version}:`.
pub fn key_head(prefix: &str, version: u32) -> String {
    let mut out = String::with_capacity(prefix.len() + 8);
    out.push_str(prefix);
    out.push(':');
    push_u32(&mut out, version);
    out.push(':');
    out
}

/// Appends `key` to `out`, digested when it is long, unsafe or digest-shaped.
pub fn push_safe_key(out: &mut String, key: &str) {
    if is_safe(key) {
        out.push_str(key);
        return;
    }
    let head: String = key
        .chars()
        .take(HEAD_LEN)
        .map(|c| if is_unsafe_char(c) { '_' } else { c })
        .collect();
    out.push_str(&head);
    out.push('#');
    out.push_str(&hex_digest(key.as_bytes(), 16));
}

/// Whether `key` is stored as written.
pub fn is_safe(key: &str) -> bool {
    key.len() <= MAX_KEY_LEN && chars_are_safe(key) && !looks_digested(key)
}

/// No whitespace and no control character in `key`. Every call's key goes through
/// this, so printable ASCII (`!` to `~`, the usual case) is told apart with a branch-free
/// pass over the bytes, which the compiler vectorizes; anything else is decided
/// character by character.
fn chars_are_safe(key: &str) -> bool {
    let printable = key.bytes().fold(true, |all, b| {
        all & (b.wrapping_sub(b'!') < b'~' - b'!' + 1)
    });
    printable || !key.chars().any(is_unsafe_char)
}

fn is_unsafe_char(c: char) -> bool {
    c.is_control() || c.is_whitespace()
}

/// `…#` followed by exactly 32 lowercase hex digits at the end: the digested shape.
fn looks_digested(key: &str) -> bool {
    let bytes = key.as_bytes();
    bytes.len() >= 33
        && bytes[bytes.len() - 33] == b'#'
        && bytes[bytes.len() - 32..]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// The first `len` bytes of the SHA-256 of `data`, as lowercase hex.
pub fn hex_digest(data: &[u8], len: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(data);
    let mut out = String::with_capacity(len * 2);
    for b in digest.iter().take(len) {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xf)] as char);
    }
    out
}

pub(crate) fn push_u32(out: &mut String, n: u32) {
    push_u64(out, u64::from(n));
}

/// Appends `n` in decimal, exactly as `Display` writes it, without the formatting
/// machinery (keys are rendered on every call).
#[inline]
pub(crate) fn push_u64(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Appends `n` in decimal, exactly as `Display` writes it.
#[inline]
pub(crate) fn push_i64(out: &mut String, n: i64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Whether a key known to hold only printable ASCII without spaces (digits, identifiers,
/// the punctuation of an encoding) is stored as written: the cheap part of [`is_safe`].
pub(crate) fn is_safe_plain(key: &str) -> bool {
    key.len() <= MAX_KEY_LEN && !looks_digested(key)
}

thread_local! {
    /// A buffer per thread where the stored key of a read is rendered, so that a hit
    /// allocates nothing for its key.
    static KEY_BUF: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Runs `f` with this thread's key buffer, empty. Re-entrant: a key rendered while the
/// buffer is in use (a `Display` that reads the cache itself) gets a fresh one.
#[inline]
pub(crate) fn with_key_buf<R>(f: impl FnOnce(&mut String) -> R) -> R {
    let mut f = Some(f);
    let done = KEY_BUF.try_with(|buf| {
        let mut buf = buf.try_borrow_mut().ok()?;
        buf.clear();
        let f = f.take()?;
        let result = f(&mut buf);
        // A buffer grown by a huge key is not kept.
        if buf.capacity() > 4 * MAX_KEY_LEN {
            *buf = String::new();
        }
        Some(result)
    });
    match (done, f) {
        (Ok(Some(result)), _) => result,
        (_, Some(f)) => f(&mut String::new()),
        // `f` ran, so its result was returned above.
        (_, None) => unreachable!("the key buffer's closure ran and returned"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn django_layout() {
        assert_eq!(make_key("", 1, "product:42"), ":1:product:42");
        assert_eq!(make_key("p", 12, "a"), "p:12:a");
        assert_eq!(key_head("p", 7), "p:7:");
        assert_eq!(make_key("", 0, "k"), ":0:k");
        assert_eq!(make_key("", u32::MAX, "k"), format!(":{}:k", u32::MAX));
    }

    #[test]
    fn long_keys_are_digested_with_a_readable_head() {
        let long = format!("report:{}", "y".repeat(300));
        let stored = make_key("", 1, &long);
        assert!(stored.starts_with(":1:report:yyy"), "{stored}");
        assert!(stored.len() <= 3 + HEAD_LEN + 33, "{stored}");
        assert_eq!(stored, make_key("", 1, &long), "digest is stable");
        let other = format!("report:{}z", "y".repeat(299));
        assert_ne!(
            stored,
            make_key("", 1, &other),
            "keys sharing a head differ"
        );
    }

    #[test]
    fn whitespace_and_control_characters_are_digested() {
        for key in ["a b", "a\tb", "a\nb", "a\u{7}b", "a\u{a0}b"] {
            let stored = make_key("", 1, key);
            assert!(
                !stored.chars().any(|c| c.is_whitespace() || c.is_control()),
                "{stored:?}"
            );
        }
        assert_ne!(make_key("", 1, "a b"), make_key("", 1, "a\tb"));
        assert_ne!(make_key("", 1, "a b"), make_key("", 1, "a_b"));
    }

    #[test]
    fn a_literal_digest_shaped_key_cannot_collide_with_a_digested_one() {
        let unsafe_key = "hello world";
        let digested = make_key("", 1, unsafe_key);
        let literal = digested.trim_start_matches(":1:");
        assert!(looks_digested(literal));
        assert_ne!(make_key("", 1, literal), digested);
    }

    #[test]
    fn the_fast_character_check_agrees_with_the_exact_one() {
        let exact = |k: &str| !k.chars().any(is_unsafe_char);
        for k in [
            "",
            "a",
            "product:42",
            "~!",
            "a b",
            "a\x7fb",
            "a\u{85}b",
            "é",
            "a\u{2028}b",
            "\u{a0}",
            "日本",
            "x\u{0}",
        ] {
            assert_eq!(chars_are_safe(k), exact(k), "{k:?}");
        }
        for b in 0u8..=0x7f {
            let k = format!("ab{}cd", char::from(b));
            assert_eq!(chars_are_safe(&k), exact(&k), "{b:#x}");
        }
    }

    #[test]
    fn integers_are_written_as_display_writes_them() {
        let mut samples = vec![0, 1, 9, 10, 99, 100, 101, 999, 1000, u64::MAX, u64::MAX - 1];
        samples.extend((0..64).map(|s| 1u64 << s));
        samples.extend((0..20).map(|e| 10u64.saturating_pow(e)));
        samples.extend((0..20).map(|e| 10u64.saturating_pow(e).wrapping_sub(1)));
        for n in samples {
            let mut out = String::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
        for n in [0, -1, 1, -10, i64::MIN, i64::MAX, i64::MIN + 1] {
            let mut out = String::new();
            push_i64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }

    #[test]
    fn the_key_buffer_is_reentrant() {
        let outer = with_key_buf(|a| {
            a.push_str("outer");
            let inner = with_key_buf(|b| {
                assert!(b.is_empty());
                b.push_str("inner");
                b.clone()
            });
            a.push_str(&inner);
            a.clone()
        });
        assert_eq!(outer, "outerinner");
        with_key_buf(|b| assert!(b.is_empty()));
    }

    #[test]
    fn the_250_byte_boundary() {
        assert!(is_safe(&"k".repeat(250)));
        assert!(!is_safe(&"k".repeat(251)));
    }

    proptest::proptest! {
        /// Any key is stored as something a memcached-style store accepts: no
        /// whitespace, no control character, bounded length.
        #[test]
        fn every_stored_key_is_safe_and_bounded(key in "\\PC{0,300}|[ \\t\\na-z#0-9]{0,300}") {
            let mut out = String::new();
            push_safe_key(&mut out, &key);
            proptest::prop_assert!(!out.chars().any(is_unsafe_char), "{:?}", out);
            proptest::prop_assert!(out.len() <= MAX_KEY_LEN.max(HEAD_LEN * 4 + 33));
        }

        /// Different keys are stored under different keys: a literal key never looks
        /// digested, so it cannot collide with a digested one.
        #[test]
        fn different_keys_are_stored_apart(
            a in "[a-f0-9# ]{0,40}|\\PC{0,260}",
            b in "[a-f0-9# ]{0,40}|\\PC{0,260}",
        ) {
            proptest::prop_assume!(a != b);
            let (mut sa, mut sb) = (String::new(), String::new());
            push_safe_key(&mut sa, &a);
            push_safe_key(&mut sb, &b);
            proptest::prop_assert_ne!(&sa, &sb);
            proptest::prop_assert_eq!(is_safe(&a), sa == a);
            proptest::prop_assert_eq!(looks_digested(&sa), !is_safe(&a));
        }

        /// Integers are written as `Display` writes them.
        #[test]
        fn integers_as_display(n in proptest::prelude::any::<i64>(), u in proptest::prelude::any::<u64>()) {
            let mut out = String::new();
            push_i64(&mut out, n);
            push_u64(&mut out, u);
            proptest::prop_assert_eq!(out, format!("{n}{u}"));
        }
    }
}
