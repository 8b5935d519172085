//! Parsers of the headers proxies write: `X-Forwarded-For` and RFC 7239 `Forwarded`.
//!
//! Both are total: any bytes in, a list of hops out, never a panic. Whatever is not an
//! IP address (`unknown`, an obfuscated identifier such as `_hidden`, garbage) is an
//! [`Hop::Opaque`], which the client-address rules never key a client by.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::HeaderMap;

/// One hop, as a proxy header names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hop {
    /// An IP address (its port, if any, dropped).
    Addr(IpAddr),
    /// Anything else.
    Opaque,
}

/// The hops of every `X-Forwarded-For` header, in order: the first header's first
/// entry first, so the last entry is the one the nearest proxy appended.
pub(crate) fn x_forwarded_for(headers: &HeaderMap) -> Vec<Hop> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        for entry in value.as_bytes().split(|&b| b == b',') {
            let entry = trim(entry);
            if !entry.is_empty() {
                hops.push(std::str::from_utf8(entry).map_or(Hop::Opaque, node));
            }
        }
    }
    hops
}

/// The `for=` node of every element of every `Forwarded` header, in order; an element
/// without exactly one `for=` is [`Hop::Opaque`].
///
/// ```text
/// Forwarded: for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711"
/// ```
pub(crate) fn forwarded(headers: &HeaderMap) -> Vec<Hop> {
    let mut hops = Vec::new();
    for value in headers.get_all("forwarded") {
        for element in split_unquoted(value.as_bytes(), b',') {
            if trim(element).is_empty() {
                continue;
            }
            let mut node_of_for = None;
            let mut fors = 0;
            for pair in split_unquoted(element, b';') {
                let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                    continue;
                };
                if !trim(&pair[..eq]).eq_ignore_ascii_case(b"for") {
                    continue;
                }
                fors += 1;
                node_of_for = Some(value_of(trim(&pair[eq + 1..])));
            }
            hops.push(match (fors, node_of_for) {
                (1, Some(hop)) => hop,
                _ => Hop::Opaque,
            });
        }
    }
    hops
}

/// A `token` or `quoted-string` value, unquoted, as a node.
fn value_of(raw: &[u8]) -> Hop {
    let unquoted;
    let bytes = match raw.strip_prefix(b"\"") {
        Some(rest) => match unquote(rest) {
            Some(v) => {
                unquoted = v;
                &unquoted[..]
            }
            None => return Hop::Opaque,
        },
        None => raw,
    };
    std::str::from_utf8(bytes).map_or(Hop::Opaque, node)
}

/// The content of a quoted string whose opening quote is already consumed: escapes
/// (`\x`) resolved; `None` unless it ends with the closing quote.
fn unquote(rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(rest.len());
    let mut bytes = rest.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => out.push(*bytes.next()?),
            b'"' => return bytes.as_slice().is_empty().then_some(out),
            _ => out.push(b),
        }
    }
    None
}

/// Splits at `sep` outside quoted strings (`\` escapes inside them).
fn split_unquoted(s: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    let mut done = false;
    let mut i = 0;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        while i < s.len() {
            let b = s[i];
            i += 1;
            if escaped {
                escaped = false;
            } else if quoted && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = !quoted;
            } else if b == sep && !quoted {
                let part = &s[start..i - 1];
                start = i;
                return Some(part);
            }
        }
        done = true;
        Some(&s[start..])
    })
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

/// A node: `192.0.2.60`, `192.0.2.60:8080`, `[2001:db8::17]`, `[2001:db8::17]:4711`,
/// or (as some proxies write `X-Forwarded-For`) a bare `2001:db8::17`. A port may be
/// obfuscated (`_port`). Anything else (`unknown`, `_hidden`) is opaque.
fn node(s: &str) -> Hop {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return Hop::Opaque;
        };
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(port)) {
            return Hop::Opaque;
        }
        return addr
            .parse::<Ipv6Addr>()
            .map_or(Hop::Opaque, |a| Hop::Addr(IpAddr::V6(a)));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Hop::Addr(ip);
    }
    match s.split_once(':') {
        Some((addr, p)) if port(p) => addr
            .parse::<Ipv4Addr>()
            .map_or(Hop::Opaque, |a| Hop::Addr(IpAddr::V4(a))),
        _ => Hop::Opaque,
    }
}

/// A node port: a number up to 65535, or an obfuscated one (`_` then token characters).
fn port(p: &str) -> bool {
    match p.strip_prefix('_') {
        Some(obf) => {
            !obf.is_empty()
                && obf
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
        None => !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use proptest::prelude::*;

    use super::*;

    fn addr(s: &str) -> Hop {
        Hop::Addr(s.parse().expect("test address"))
    }

    fn headers(name: &'static str, values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(name, HeaderValue::from_bytes(v).expect("header value"));
        }
        map
    }

    #[test]
    fn x_forwarded_for_entries_in_order_across_headers() {
        let h = headers(
            "x-forwarded-for",
            &[
                b"203.0.113.9, 10.0.0.1:8080",
                b" [2001:db8::1]:443 ,2001:db8::2,unknown,, _x",
            ],
        );
        assert_eq!(
            x_forwarded_for(&h),
            [
                addr("203.0.113.9"),
                addr("10.0.0.1"),
                addr("2001:db8::1"),
                addr("2001:db8::2"),
                Hop::Opaque,
                Hop::Opaque,
            ]
        );
        assert!(x_forwarded_for(&HeaderMap::new()).is_empty());
        // Not UTF-8: opaque, not dropped (dropping would shift the hop count).
        let h = headers("x-forwarded-for", &[b"1.2.3.4, \xff\xfe, 5.6.7.8"]);
        assert_eq!(
            x_forwarded_for(&h),
            [addr("1.2.3.4"), Hop::Opaque, addr("5.6.7.8")]
        );
    }

    #[test]
    fn forwarded_reads_for_with_quoted_ipv6_and_ports() {
        let h = headers(
            "forwarded",
            &[
                b"for=192.0.2.60;proto=http;by=203.0.113.43, For=\"[2001:db8:cafe::17]:4711\"",
                b"for=\"198.51.100.17:_port\";host=\"a,b;c\", for=unknown, for=_hidden, proto=https",
            ],
        );
        assert_eq!(
            forwarded(&h),
            [
                addr("192.0.2.60"),
                addr("2001:db8:cafe::17"),
                addr("198.51.100.17"),
                Hop::Opaque, // unknown
                Hop::Opaque, // obfuscated
                Hop::Opaque, // no for=
            ]
        );
    }

    #[test]
    fn forwarded_hostile_forms_are_opaque() {
        for value in [
            &b"for=\"[2001:db8::1]"[..],    // unterminated quote
            b"for=\"[2001:db8::1]\"x",      // text after the quote
            b"for=1.2.3.4;for=5.6.7.8",     // two for= in one element
            b"for=[2001:db8::1",            // no closing bracket
            b"for=\"[2001:db8::1]:99999\"", // port out of range
            b"for=\"[2001:db8::1]:\"",      // empty port
            b"for=\"1.2.3.4:_\"",           // empty obfuscated port
            b"for=\"[1.2.3.4]\"",           // IPv4 in brackets
            b"for=\"fe80::1%eth0\"",        // zone id
            b"for=\"\\",                    // lone escape
        ] {
            let h = headers("forwarded", &[value]);
            assert_eq!(
                forwarded(&h),
                [Hop::Opaque],
                "{}",
                String::from_utf8_lossy(value)
            );
        }
        // Escapes inside quotes are resolved.
        let h = headers("forwarded", &[b"for=\"1.2.3.\\4\""]);
        assert_eq!(forwarded(&h), [addr("1.2.3.4")]);
        // A quoted comma does not split elements.
        let h = headers("forwarded", &[b"for=\"x,y\", for=1.2.3.4"]);
        assert_eq!(forwarded(&h), [Hop::Opaque, addr("1.2.3.4")]);
    }

    /// Any bytes a header value may hold.
    fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
        let visible = prop_oneof![
            proptest::sample::select(b"\",;=[]:\\_ \t.0123456789abcdefforFOR".to_vec()),
            (0x20u8..=0x7e),
            (0x80u8..=0xff),
        ];
        proptest::collection::vec(visible, 0..400)
    }

    proptest! {
        #[test]
        fn arbitrary_header_values_never_panic(values in proptest::collection::vec(header_bytes(), 0..8)) {
            let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            let xff = x_forwarded_for(&headers("x-forwarded-for", &values));
            let fwd = forwarded(&headers("forwarded", &values));
            // One hop per non-empty entry at most: the output is bounded by the input.
            let total: usize = values.iter().map(|v| v.len() + 1).sum();
            prop_assert!(xff.len() <= total && fwd.len() <= total);
        }

        #[test]
        fn addresses_survive_every_spelling(v4: [u8; 4], v6: [u16; 8], port: u16) {
            let v4 = Ipv4Addr::from(v4);
            let v6 = Ipv6Addr::from(v6);
            let xff = format!("{v4}, {v4}:{port}, {v6}, [{v6}], [{v6}]:{port}");
            let h = headers("x-forwarded-for", &[xff.as_bytes()]);
            let want = [IpAddr::V4(v4), IpAddr::V4(v4), IpAddr::V6(v6), IpAddr::V6(v6), IpAddr::V6(v6)];
            prop_assert_eq!(x_forwarded_for(&h), want.map(Hop::Addr));
            let fwd = format!("for={v4}, for=\"{v4}:{port}\", for=\"[{v6}]\", for=\"[{v6}]:{port}\"");
            let h = headers("forwarded", &[fwd.as_bytes()]);
            let want = [IpAddr::V4(v4), IpAddr::V4(v4), IpAddr::V6(v6), IpAddr::V6(v6)];
            prop_assert_eq!(forwarded(&h), want.map(Hop::Addr));
        }
    }

    #[test]
    fn huge_and_many_values_are_linear_and_do_not_panic() {
        let many = "1.2.3.4,".repeat(50_000);
        let h = headers("x-forwarded-for", &[many.as_bytes()]);
        assert_eq!(x_forwarded_for(&h).len(), 50_000);
        let quotes = "\"".repeat(100_000);
        let h = headers("forwarded", &[quotes.as_bytes()]);
        assert_eq!(forwarded(&h), [Hop::Opaque]);
        let mut map = HeaderMap::new();
        for _ in 0..1_000 {
            map.append("forwarded", HeaderValue::from_static("for=1.2.3.4;by=x"));
        }
        assert_eq!(forwarded(&map).len(), 1_000);
    }
}
