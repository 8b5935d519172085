//! [`ClientIp`]: which address a request comes from, and which addresses are one client.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use http::{Extensions, HeaderMap};

use super::forwarded::{self, Hop};
use crate::CacheError;

/// The IPv6 prefix that groups addresses into one client by default: a /64 is what one
/// host (one home, one VM) is usually given, so rotating within it escapes nothing.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// Which header the proxies in front of the app write the client's address to.
///
/// Name the one your proxy *writes* (appends to): a header it only passes through is
/// written by the client, and believing it would let clients choose their own key.
///
/// ```
/// use cached_core::throttle::{ClientIp, ProxyHeader};
/// let behind_a_7239_proxy = ClientIp::new().trusted_hops(1).header(ProxyHeader::Forwarded);
/// # let _ = behind_a_7239_proxy;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the default; DRF's).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for="[2001:db8::17]:4711"`. Obfuscated
    /// identifiers (`for=_hidden`) and `for=unknown` are never a client's key.
    Forwarded,
}

/// Where a request's client address comes from, and how addresses group into clients.
///
/// By default the client is the socket's peer address and no header is believed: with
/// nothing configured, a client cannot change its key by writing `X-Forwarded-For`.
/// Behind proxies, say which to trust, either way:
///
/// - **by hop count** ([`trusted_hops`](ClientIp::trusted_hops), DRF's `NUM_PROXIES`):
///   with `n` proxies, the client is the `n`-th address from the right of the header
///   (the leftmost if there are fewer). Right when every request passes through
///   exactly `n` proxies.
/// - **by address** ([`trusted_networks`](ClientIp::trusted_networks), CIDR blocks of
///   IPv4 and IPv6): if the peer is a trusted proxy, the header's addresses are read
///   from the right, skipping trusted proxies; the first untrusted address is the
///   client. A request whose peer is not trusted is keyed by the peer and its header is
///   ignored, so a client that reaches the app directly cannot forge one. A hop that is
///   not an address (`unknown`, an obfuscated `_id`, garbage) ends the walk at the
///   last trusted address before it. When every address is trusted, the leftmost is the
///   client.
///
/// [`header`](ClientIp::header) says which header that is (`X-Forwarded-For` unless
/// told otherwise).
///
/// IPv6 clients are grouped by their `/64` ([`ipv6_prefix`](ClientIp::ipv6_prefix)
/// changes it), so a host that rotates through the addresses of its prefix is still
/// one client. IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) are IPv4 addresses.
///
/// Set it for `#[throttle]` and every layer without its own with
/// [`set_client_ip`](super::set_client_ip), or on one layer with
/// [`ThrottleLayer::client_ip`](super::ThrottleLayer::client_ip).
///
/// ```
/// use std::net::SocketAddr;
/// use axum::extract::ConnectInfo;
/// use cached_core::throttle::{ClientIp, ProxyHeader};
///
/// let client_ip = ClientIp::new().trusted_networks(["10.0.0.0/8", "fd00::/8"])?;
///
/// let mut req = http::Request::new(());
/// req.headers_mut().insert("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.1.2.3".parse()?);
/// req.extensions_mut().insert(ConnectInfo("10.0.0.2:4000".parse::<SocketAddr>()?));
/// // From the right: 10.1.2.3 is a trusted proxy, 203.0.113.9 is not: the client.
/// let ip = client_ip.resolve(req.headers(), req.extensions());
/// assert_eq!(ip, Some("203.0.113.9".parse()?));
///
/// // The same header from an untrusted peer is ignored.
/// req.extensions_mut().insert(ConnectInfo("198.51.100.7:4000".parse::<SocketAddr>()?));
/// let ip = client_ip.resolve(req.headers(), req.extensions());
/// assert_eq!(ip, Some("198.51.100.7".parse()?));
///
/// // One IPv6 host, one client.
/// assert_eq!(client_ip.client_key("2001:db8:1:2:aaaa::1".parse()?), "2001:db8:1:2::/64");
/// assert_eq!(client_ip.client_key("203.0.113.9".parse()?), "203.0.113.9");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp {
    trust: Trust,
    header: ProxyHeader,
    ipv6_prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Trust {
    Hops(usize),
    Networks(Arc<[Network]>),
}

impl Default for ClientIp {
    fn default() -> Self {
        ClientIp::new()
    }
}

impl ClientIp {
    /// The peer address only, IPv6 grouped by /64.
    pub const fn new() -> ClientIp {
        ClientIp {
            trust: Trust::Hops(0),
            header: ProxyHeader::XForwardedFor,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
        }
    }

    /// Trusts the header through `n` proxies (DRF's `NUM_PROXIES`); 0 believes no
    /// header. Replaces [`trusted_networks`](ClientIp::trusted_networks).
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use axum::extract::ConnectInfo;
    /// use cached_core::throttle::ClientIp;
    ///
    /// let mut req = http::Request::new(());
    /// req.headers_mut().insert("x-forwarded-for", "6.6.6.6, 203.0.113.9".parse().unwrap());
    /// req.extensions_mut().insert(ConnectInfo("10.0.0.2:4000".parse::<SocketAddr>().unwrap()));
    /// let ip = |n| ClientIp::new().trusted_hops(n).resolve(req.headers(), req.extensions());
    /// assert_eq!(ip(0).unwrap().to_string(), "10.0.0.2");
    /// assert_eq!(ip(1).unwrap().to_string(), "203.0.113.9");
    /// assert_eq!(ip(2).unwrap().to_string(), "6.6.6.6");
    /// ```
    pub fn trusted_hops(mut self, n: usize) -> ClientIp {
        self.trust = Trust::Hops(n);
        self
    }

    /// Trusts the proxies whose addresses are in `networks`: CIDR blocks (`10.0.0.0/8`,
    /// `fd00::/8`) or single addresses (`192.0.2.7`, `::1`). Host bits below the
    /// prefix are ignored (`10.1.2.3/8` is `10.0.0.0/8`). Replaces
    /// [`trusted_hops`](ClientIp::trusted_hops).
    ///
    /// A network that does not parse is a [`CacheError::Config`] quoting it.
    ///
    /// ```
    /// use cached_core::throttle::ClientIp;
    /// assert!(ClientIp::new().trusted_networks(["10.0.0.0/8", "::1"]).is_ok());
    /// let err = ClientIp::new().trusted_networks(["10.0.0.0/33"]).unwrap_err();
    /// assert!(err.to_string().contains("`10.0.0.0/33`"));
    /// ```
    pub fn trusted_networks<I>(mut self, networks: I) -> Result<ClientIp, CacheError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let networks = networks
            .into_iter()
            .map(|n| Network::parse(n.as_ref()))
            .collect::<Result<Arc<[Network]>, CacheError>>()?;
        self.trust = Trust::Networks(networks);
        Ok(self)
    }

    /// Reads the client address from `header` (default `X-Forwarded-For`).
    pub fn header(mut self, header: ProxyHeader) -> ClientIp {
        self.header = header;
        self
    }

    /// Groups IPv6 clients by their first `bits` bits (default 64; values over 128 mean
    /// 128, one address per client).
    ///
    /// ```
    /// use cached_core::throttle::ClientIp;
    /// let per_48 = ClientIp::new().ipv6_prefix(48);
    /// assert_eq!(per_48.client_key("2001:db8:1:2::9".parse().unwrap()), "2001:db8:1::/48");
    /// ```
    pub fn ipv6_prefix(mut self, bits: u8) -> ClientIp {
        self.ipv6_prefix = bits.min(128);
        self
    }

    /// The client's address: the peer (`ConnectInfo<SocketAddr>` in `extensions`), or
    /// the address the trusted proxies' header names (see the [type docs](ClientIp)).
    /// `None` when the request carries no peer address and no header says otherwise.
    pub fn resolve(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
        let peer = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_canonical());
        match &self.trust {
            Trust::Hops(0) => peer,
            Trust::Hops(n) => {
                let hops = self.hops(headers);
                let Some(hop) = hops.get(hops.len().saturating_sub(*n)) else {
                    return peer;
                };
                match hop {
                    Hop::Addr(ip) => Some(ip.to_canonical()),
                    Hop::Opaque => peer,
                }
            }
            Trust::Networks(networks) => {
                let trusted = |ip: &IpAddr| networks.iter().any(|n| n.contains(*ip));
                let peer = peer?;
                if !trusted(&peer) {
                    return Some(peer);
                }
                let mut client = peer;
                for hop in self.hops(headers).iter().rev() {
                    let Hop::Addr(ip) = hop else {
                        return Some(client);
                    };
                    client = ip.to_canonical();
                    if !trusted(&client) {
                        return Some(client);
                    }
                }
                Some(client)
            }
        }
    }

    fn hops(&self, headers: &HeaderMap) -> Vec<Hop> {
        match self.header {
            ProxyHeader::XForwardedFor => forwarded::x_forwarded_for(headers),
            ProxyHeader::Forwarded => forwarded::forwarded(headers),
        }
    }

    /// The key throttles count `ip` under: an IPv4 address as it is, an IPv6 address as
    /// its prefix (`2001:db8:1:2::/64`), or the whole address with a /128 prefix.
    pub fn client_key(&self, ip: IpAddr) -> String {
        match ip.to_canonical() {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) if self.ipv6_prefix >= 128 => v6.to_string(),
            IpAddr::V6(v6) => {
                let masked = Ipv6Addr::from(u128::from(v6) & mask(self.ipv6_prefix));
                format!("{masked}/{}", self.ipv6_prefix)
            }
        }
    }
}

/// The netmask of `bits` leading ones over 128 bits.
fn mask(bits: u8) -> u128 {
    match bits {
        0 => 0,
        b => u128::MAX << (128 - u32::from(b.min(128))),
    }
}

/// A CIDR block.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Network {
    /// IPv4 blocks as IPv4-mapped IPv6 (`::ffff:a.b.c.d`), prefixes shifted by 96.
    base: u128,
    bits: u8,
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = Ipv6Addr::from(self.base).to_canonical();
        let bits = match addr {
            IpAddr::V4(_) => self.bits - 96,
            IpAddr::V6(_) => self.bits,
        };
        write!(f, "{addr}/{bits}")
    }
}

impl Network {
    fn parse(s: &str) -> Result<Network, CacheError> {
        let bad = |why: &str| {
            CacheError::config(
                "trusted proxy networks",
                format!(
                    "`{s}` is not an IP network ({why}): write an address or a CIDR block, e.g. `10.0.0.0/8`, `192.0.2.7` or `fd00::/8`"
                ),
            )
        };
        let (addr, bits) = match s.trim().split_once('/') {
            Some((addr, bits)) => (addr, Some(bits)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| bad("not an IPv4 or IPv6 address"))?;
        let (v6, max, shift) = match addr {
            IpAddr::V4(v4) => (v4.to_ipv6_mapped(), 32, 96),
            IpAddr::V6(v6) => (v6, 128, 0),
        };
        let bits = match bits {
            None => max,
            Some(b) if !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) => {
                match b.parse::<u8>() {
                    Ok(n) if n <= max => n,
                    _ => return Err(bad(&format!("the prefix is over {max} bits"))),
                }
            }
            Some(_) => return Err(bad("the prefix is not a number of bits")),
        };
        let bits = bits + shift;
        Ok(Network {
            base: u128::from(v6) & mask(bits),
            bits,
        })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let v6 = match ip.to_canonical() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        u128::from(v6) & mask(self.bits) == self.base
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use proptest::prelude::*;

    use super::*;

    fn request(peer: Option<&str>, header: (&'static str, &[&str])) -> (HeaderMap, Extensions) {
        let mut headers = HeaderMap::new();
        for v in header.1 {
            headers.append(header.0, HeaderValue::from_str(v).expect("value"));
        }
        let mut extensions = Extensions::new();
        if let Some(peer) = peer {
            let addr: SocketAddr = peer.parse().expect("peer");
            extensions.insert(ConnectInfo(addr));
        }
        (headers, extensions)
    }

    fn resolve(ip: &ClientIp, peer: Option<&str>, header: (&'static str, &[&str])) -> String {
        let (h, e) = request(peer, header);
        ip.resolve(&h, &e).map_or("none".into(), |a| a.to_string())
    }

    const XFF: &str = "x-forwarded-for";

    #[test]
    fn networks_parse_and_match_both_families() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let n = Network::parse("10.0.0.0/8").expect("v4");
        assert!(n.contains(ip("10.255.0.1")));
        assert!(!n.contains(ip("11.0.0.1")));
        assert!(n.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped is IPv4");
        assert!(!n.contains(ip("::a01:203")), "IPv4-compatible is not");
        let n = Network::parse(" fd00::/8 ").expect("v6");
        assert!(n.contains(ip("fd12::1")));
        assert!(!n.contains(ip("fe80::1")));
        assert!(!n.contains(ip("10.0.0.1")));
        assert!(Network::parse("192.0.2.7")
            .expect("host")
            .contains(ip("192.0.2.7")));
        assert!(!Network::parse("192.0.2.7")
            .expect("host")
            .contains(ip("192.0.2.8")));
        assert!(Network::parse("0.0.0.0/0")
            .expect("all v4")
            .contains(ip("1.2.3.4")));
        assert!(!Network::parse("0.0.0.0/0")
            .expect("all v4")
            .contains(ip("::1")));
        assert!(Network::parse("::/0").expect("all").contains(ip("::1")));
        assert_eq!(
            format!("{:?}", Network::parse("10.1.2.3/8").expect("v4")),
            "10.0.0.0/8"
        );
        for bad in [
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/+8",
            "10.0.0/8",
            "x",
            "10.0.0.0/8/8",
            "10.0.0.0/ 8",
            "10.0.0.0/256",
        ] {
            let err = Network::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn by_default_only_the_peer_counts() {
        let ip = ClientIp::new();
        assert_eq!(
            resolve(&ip, Some("192.0.2.1:1"), (XFF, &["1.1.1.1"])),
            "192.0.2.1"
        );
        assert_eq!(
            resolve(&ip, Some("[::ffff:192.0.2.1]:1"), (XFF, &[])),
            "192.0.2.1"
        );
        assert_eq!(resolve(&ip, None, (XFF, &["1.1.1.1"])), "none");
    }

    #[test]
    fn hop_counts_take_the_nth_from_the_right() {
        let ip = ClientIp::new().trusted_hops(2);
        let peer = Some("10.0.0.1:1");
        assert_eq!(
            resolve(&ip, peer, (XFF, &["1.1.1.1, 2.2.2.2, 3.3.3.3"])),
            "2.2.2.2"
        );
        assert_eq!(
            resolve(&ip, peer, (XFF, &["1.1.1.1", "2.2.2.2, 3.3.3.3"])),
            "2.2.2.2"
        );
        assert_eq!(
            resolve(&ip, peer, (XFF, &["3.3.3.3"])),
            "3.3.3.3",
            "fewer: leftmost"
        );
        assert_eq!(resolve(&ip, peer, (XFF, &[])), "10.0.0.1");
        assert_eq!(resolve(&ip, peer, (XFF, &["junk, 3.3.3.3"])), "10.0.0.1");
    }

    #[test]
    fn trusted_networks_walk_from_the_right_to_the_first_untrusted_address() {
        let ip = ClientIp::new()
            .trusted_networks(["10.0.0.0/8", "fd00::/8"])
            .expect("networks");
        let proxy = Some("10.0.0.2:1");
        // Spoofed entries left of the real client are never reached.
        assert_eq!(
            resolve(&ip, proxy, (XFF, &["6.6.6.6, 203.0.113.9, 10.9.9.9"])),
            "203.0.113.9"
        );
        assert_eq!(
            resolve(&ip, proxy, (XFF, &["6.6.6.6, 2001:db8::1, [fd00::2]:80"])),
            "2001:db8::1"
        );
        // A hop from an untrusted address: its header is ignored.
        assert_eq!(
            resolve(&ip, Some("198.51.100.7:1"), (XFF, &["10.1.1.1, 1.2.3.4"])),
            "198.51.100.7"
        );
        assert_eq!(
            resolve(&ip, Some("[2001:db8::9]:1"), (XFF, &["1.2.3.4"])),
            "2001:db8::9"
        );
        // Garbage or an opaque hop ends the walk at the last trusted address.
        assert_eq!(
            resolve(&ip, proxy, (XFF, &["1.2.3.4, junk, 10.3.3.3"])),
            "10.3.3.3"
        );
        assert_eq!(
            resolve(&ip, proxy, (XFF, &["1.2.3.4, unknown"])),
            "10.0.0.2"
        );
        // Every hop trusted: the leftmost. No header: the peer.
        assert_eq!(
            resolve(&ip, proxy, (XFF, &["10.1.1.1, 10.2.2.2"])),
            "10.1.1.1"
        );
        assert_eq!(resolve(&ip, proxy, (XFF, &[])), "10.0.0.2");
        assert_eq!(resolve(&ip, None, (XFF, &["1.2.3.4"])), "none");
    }

    #[test]
    fn forwarded_is_read_only_when_named_and_obfuscated_nodes_are_not_keys() {
        let fwd = ClientIp::new()
            .trusted_networks(["10.0.0.0/8"])
            .expect("networks")
            .header(ProxyHeader::Forwarded);
        let proxy = Some("10.0.0.2:1");
        let header = (
            "forwarded",
            &["for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https"][..],
        );
        assert_eq!(resolve(&fwd, proxy, header), "2001:db8:cafe::17");
        assert_eq!(
            resolve(&fwd, proxy, ("forwarded", &["for=1.2.3.4, for=_hidden"])),
            "10.0.0.2"
        );
        assert_eq!(
            resolve(&fwd, proxy, (XFF, &["1.2.3.4"])),
            "10.0.0.2",
            "XFF is not read"
        );
        // And the other way round: X-Forwarded-For mode ignores a Forwarded header.
        let xff = ClientIp::new()
            .trusted_networks(["10.0.0.0/8"])
            .expect("networks");
        assert_eq!(
            resolve(&xff, proxy, ("forwarded", &["for=1.2.3.4"])),
            "10.0.0.2"
        );
        let hops = ClientIp::new()
            .trusted_hops(1)
            .header(ProxyHeader::Forwarded);
        assert_eq!(
            resolve(&hops, proxy, ("forwarded", &["for=1.2.3.4;by=x"])),
            "1.2.3.4"
        );
        assert_eq!(
            resolve(&hops, proxy, ("forwarded", &["for=unknown"])),
            "10.0.0.2"
        );
    }

    #[test]
    fn ipv6_clients_are_grouped_by_prefix() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let default = ClientIp::new();
        let a = default.client_key(ip("2001:db8:1:2:1111::1"));
        let b = default.client_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_eq!(a, b);
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_ne!(a, default.client_key(ip("2001:db8:1:3::1")));
        assert_eq!(default.client_key(ip("::ffff:192.0.2.1")), "192.0.2.1");
        assert_eq!(
            ClientIp::new()
                .ipv6_prefix(200)
                .client_key(ip("2001:db8::1")),
            "2001:db8::1"
        );
        assert_eq!(
            ClientIp::new().ipv6_prefix(0).client_key(ip("2001:db8::1")),
            "::/0"
        );
        assert_eq!(
            ClientIp::new()
                .ipv6_prefix(56)
                .client_key(ip("2001:db8:1:2ff::1")),
            "2001:db8:1:200::/56"
        );
    }

    proptest! {
        #[test]
        fn any_network_string_parses_or_errors_without_panicking(s in "\\PC{0,48}") {
            let _ = Network::parse(&s);
        }

        #[test]
        fn network_shapes_parse_or_error_quoting_them(
            s in "[0-9a-f:.]{0,40}(/[0-9+-]{0,4})?"
        ) {
            if let Err(err) = Network::parse(&s) {
                let quoted = format!("`{s}`");
                prop_assert!(err.to_string().contains(&quoted));
            }
        }

        #[test]
        fn a_network_contains_its_own_base_and_every_prefix_key_is_stable(
            v6: u128, bits in 0u8..=128, host: u128,
        ) {
            let addr = Ipv6Addr::from(v6);
            let n = Network::parse(&format!("{addr}/{bits}")).expect("valid");
            prop_assert!(n.contains(IpAddr::V6(addr)) || addr.to_ipv4_mapped().is_some());
            let ip = ClientIp::new().ipv6_prefix(bits);
            let same = Ipv6Addr::from((v6 & mask(bits)) | (host & !mask(bits)));
            if addr.to_ipv4_mapped().is_none() && same.to_ipv4_mapped().is_none() {
                prop_assert_eq!(ip.client_key(IpAddr::V6(addr)), ip.client_key(IpAddr::V6(same)));
            }
        }

        #[test]
        fn hostile_headers_resolve_to_some_address_without_panicking(
            values in proptest::collection::vec("[ -~]{0,200}", 0..6),
            hops in 0usize..5,
        ) {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            let networks = ClientIp::new().trusted_networks(["0.0.0.0/0", "::/0"]).expect("all");
            for ip in [ClientIp::new().trusted_hops(hops), networks.clone(), networks.header(ProxyHeader::Forwarded)] {
                for name in [XFF, "forwarded"] {
                    let (h, e) = request(Some("10.0.0.1:1"), (name, &values));
                    prop_assert!(ip.resolve(&h, &e).is_some());
                }
            }
        }
    }
}
