//! [`RedisConfig`]: where Redis is and how to reach it, from `redis://`, `rediss://` and
//! `redis+cluster://` URLs or in code.

use std::time::Duration;

use cached_backend::{CacheError, CacheUrl};

use crate::near::NearConfig;

/// How long to wait for a connection to Redis, by default (`connect_timeout=` in ms).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long to wait for Redis to answer a command, by default (`response_timeout=` in ms).
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_millis(1000);
/// Consecutive failures that open the circuit breaker, by default (`breaker_threshold=`).
pub const DEFAULT_BREAKER_THRESHOLD: u32 = 5;
/// How long an open breaker fails calls fast before it lets a probe through, by default
/// (`breaker_cooldown=` in ms).
pub const DEFAULT_BREAKER_COOLDOWN: Duration = Duration::from_millis(1000);

/// The query parameters a Redis cache URL understands besides the common ones.
pub(crate) const THROTTLE_PARAMS: &str =
    "connect_timeout, response_timeout, breaker_threshold, breaker_cooldown (milliseconds but the threshold), ca_cert (rediss:// only), key_prefix";

pub(crate) const REDIS_PARAMS: &str =
    "connect_timeout, response_timeout, breaker_threshold, breaker_cooldown (milliseconds but the threshold), ca_cert (rediss:// only), near_max_entries, near_ttl (seconds), near_invalidation (tracking or pubsub), key_prefix, version, default_ttl, codec";

/// Where and how to reach Redis: the server (or cluster nodes), timeouts and the circuit
/// breaker.
///
/// Built from a URL ([`RedisConfig::from_url`]) and adjusted in code:
///
/// ```
/// use std::time::Duration;
/// use cached_redis::RedisConfig;
/// let config = RedisConfig::from_url("redis://127.0.0.1:6379/0?response_timeout=250")
///     .unwrap()
///     .connect_timeout(Duration::from_millis(500))
///     .breaker(3, Duration::from_secs(2));
/// assert_eq!(config.get_response_timeout(), Duration::from_millis(250));
/// assert_eq!(config.get_connect_timeout(), Duration::from_millis(500));
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    pub(crate) target: Target,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) breaker_threshold: u32,
    pub(crate) breaker_cooldown: Duration,
    /// A PEM root certificate to trust for `rediss://` (instead of the system roots).
    pub(crate) ca_cert: Option<Vec<u8>>,
    /// The near tier in front of Redis, if any.
    pub(crate) near: Option<NearConfig>,
}

impl std::fmt::Debug for RedisConfig {
    /// Passwords in the URLs are shown as `***`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<String> = match &self.target {
            Target::Single(url) => vec![redact(url)],
            Target::Cluster(nodes) => nodes.iter().map(|n| redact(n)).collect(),
        };
        f.debug_struct("RedisConfig")
            .field("urls", &urls)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("breaker_threshold", &self.breaker_threshold)
            .field("breaker_cooldown", &self.breaker_cooldown)
            .field("ca_cert", &self.ca_cert.is_some())
            .field("near", &self.near)
            .finish()
    }
}

/// `url` with the credentials (anything between `://` and `@`) replaced by `***`, for
/// logs and error messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(start), Some(at)) if at > start => {
            format!("{}***{}", &url[..start + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// One server, or the seed nodes of a cluster, as `redis` crate connection URLs.
#[derive(Clone)]
pub(crate) enum Target {
    Single(String),
    Cluster(Vec<String>),
}

impl RedisConfig {
    /// Parses a URL: `redis://[user:pass@]host[:port][/db]`, `rediss://...` (feature
    /// `tls`) or `redis+cluster://host1:port1,host2:port2` (feature `cluster`), with the
    /// query parameters `connect_timeout`, `response_timeout`, `breaker_cooldown`
    /// (milliseconds), `breaker_threshold` (failures), `ca_cert` (path to a PEM file,
    /// `rediss://` only), and for a near tier `near_max_entries`, `near_ttl` (seconds)
    /// and `near_invalidation` (`tracking` or `pubsub`; see [`NearConfig`]). Nothing
    /// connects here.
    ///
    /// ```
    /// use cached_redis::RedisConfig;
    /// assert!(RedisConfig::from_url("redis://localhost:6379/0?connect_timeout=200").is_ok());
    /// let err = RedisConfig::from_url("redis://localhost?colour=blue").unwrap_err();
    /// assert!(err.to_string().contains("unknown parameter `colour`"));
    /// ```
    pub fn from_url(url: &str) -> Result<Self, CacheError> {
        let mut parsed = CacheUrl::parse("RedisConfig::from_url", url)?;
        let config = Self::from_cache_url(&mut parsed)?;
        parsed.finish(REDIS_PARAMS)?;
        Ok(config)
    }

    /// Takes this backend's parameters out of a parsed [`CacheUrl`], leaving the others
    /// (`key_prefix`, ...) for the caller. Used by the `CACHE_URL` factory.
    ///
    /// ```
    /// use cached_backend::CacheUrl;
    /// use cached_redis::RedisConfig;
    /// let mut url = CacheUrl::parse("CACHE_URL", "redis://h:6379/0?response_timeout=50&key_prefix=a").unwrap();
    /// let config = RedisConfig::from_cache_url(&mut url).unwrap();
    /// assert_eq!(config.get_response_timeout().as_millis(), 50);
    /// assert_eq!(url.remaining().len(), 1); // key_prefix is left for the Cache
    /// ```
    pub fn from_cache_url(url: &mut CacheUrl) -> Result<Self, CacheError> {
        let millis = |url: &mut CacheUrl, name: &str| {
            url.take_parsed::<u64>(name, "whole milliseconds")
                .map(|v| v.map(Duration::from_millis))
        };
        let connect_timeout = millis(url, "connect_timeout")?.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let response_timeout = millis(url, "response_timeout")?.unwrap_or(DEFAULT_RESPONSE_TIMEOUT);
        let breaker_cooldown = millis(url, "breaker_cooldown")?.unwrap_or(DEFAULT_BREAKER_COOLDOWN);
        let breaker_threshold = url
            .take_parsed::<u32>(
                "breaker_threshold",
                "a whole number of failures, at least 1",
            )?
            .unwrap_or(DEFAULT_BREAKER_THRESHOLD);
        if breaker_threshold == 0 {
            return Err(CacheError::config(
                url.origin(),
                "`breaker_threshold=0` is not valid: expected at least 1",
            ));
        }
        for (name, d) in [
            ("connect_timeout", connect_timeout),
            ("response_timeout", response_timeout),
        ] {
            if d.is_zero() {
                return Err(CacheError::config(
                    url.origin(),
                    format!("`{name}=0` is not valid: expected at least 1 millisecond"),
                ));
            }
        }
        let ca_cert = match url.take("ca_cert") {
            None => None,
            Some(_) if url.scheme() != "rediss" => {
                return Err(CacheError::config(
                    url.origin(),
                    "`ca_cert` only applies to rediss:// URLs",
                ))
            }
            Some(path) => Some(std::fs::read(&path).map_err(|e| {
                CacheError::config(
                    url.origin(),
                    format!("cannot read the `ca_cert` file `{path}`: {e}"),
                )
            })?),
        };
        let near = NearConfig::from_cache_url(url)?;
        let target = target(url)?;
        if let (Some(near), Target::Cluster(_)) = (&near, &target) {
            if near.get_invalidation() == Some(crate::Invalidation::Tracking) {
                return Err(CacheError::config(
                    url.origin(),
                    "`near_invalidation=tracking` is not available on Redis Cluster (it tracks per node): use `near_invalidation=pubsub`, the cluster's default",
                ));
            }
        }
        Ok(Self {
            target,
            connect_timeout,
            response_timeout,
            breaker_threshold,
            breaker_cooldown,
            ca_cert,
            near,
        })
    }

    /// Sets how long to wait for a connection.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Sets how long to wait for Redis to answer a command.
    #[must_use]
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Sets the circuit breaker: open after `threshold` consecutive failures, probe again
    /// after `cooldown`.
    #[must_use]
    pub fn breaker(mut self, threshold: u32, cooldown: Duration) -> Self {
        self.breaker_threshold = threshold.max(1);
        self.breaker_cooldown = cooldown;
        self
    }

    /// Puts a near tier in front of Redis: an in-process copy of recently read entries,
    /// kept coherent across processes (see [`NearConfig`] and docs/redis.md).
    ///
    /// ```
    /// use cached_redis::{NearConfig, RedisConfig};
    /// let config = RedisConfig::from_url("redis://127.0.0.1:6379/0")
    ///     .unwrap()
    ///     .near(NearConfig::new(1_000));
    /// assert_eq!(config.get_near().map(|n| n.get_max_entries()), Some(1_000));
    /// ```
    #[must_use]
    pub fn near(mut self, near: NearConfig) -> Self {
        self.near = Some(near);
        self
    }

    /// The near tier's configuration, if there is one.
    pub fn get_near(&self) -> Option<&NearConfig> {
        self.near.as_ref()
    }

    /// Trusts this PEM root certificate for `rediss://` instead of the system roots.
    #[must_use]
    pub fn ca_cert(mut self, pem: Vec<u8>) -> Self {
        self.ca_cert = Some(pem);
        self
    }

    /// The connect timeout.
    pub fn get_connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The response timeout.
    pub fn get_response_timeout(&self) -> Duration {
        self.response_timeout
    }

    /// Whether this configuration names Redis Cluster nodes.
    pub fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }
}

fn target(url: &CacheUrl) -> Result<Target, CacheError> {
    let location = url.location();
    match url.scheme() {
        "redis" | "rediss" => {
            let full = format!("{}://{location}", url.scheme());
            // Validate now, so a bad host or db is a configuration error.
            redis::parse_redis_url(&full).ok_or_else(|| {
                CacheError::config(
                    url.origin(),
                    format!(
                        "`{}` is not a valid Redis URL: expected {}://[user:password@]host[:port][/db]",
                        redact(&full),
                        url.scheme()
                    ),
                )
            })?;
            Ok(Target::Single(full))
        }
        "redis+cluster" | "redis-cluster" => {
            let (auth, hosts) = match location.rsplit_once('@') {
                Some((auth, hosts)) => (format!("{auth}@"), hosts),
                None => (String::new(), location),
            };
            let hosts = hosts.trim_end_matches('/');
            if hosts.contains('/') {
                return Err(CacheError::config(
                    url.origin(),
                    format!(
                        "a Redis Cluster has only database 0: remove the path from `{location}`"
                    ),
                ));
            }
            let nodes: Vec<String> = hosts
                .split(',')
                .filter(|h| !h.is_empty())
                .map(|h| format!("redis://{auth}{h}"))
                .collect();
            if nodes.is_empty() {
                return Err(CacheError::config(
                    url.origin(),
                    "a redis+cluster:// URL needs at least one node: redis+cluster://host1:7000,host2:7001",
                ));
            }
            for node in &nodes {
                if redis::parse_redis_url(node).is_none() {
                    return Err(CacheError::config(
                        url.origin(),
                        format!("`{}` is not a valid cluster node address", redact(node)),
                    ));
                }
            }
            Ok(Target::Cluster(nodes))
        }
        other => Err(CacheError::config(
            url.origin(),
            format!("`{other}://` is not a Redis URL scheme"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(url: &str) -> String {
        RedisConfig::from_url(url).unwrap_err().to_string()
    }

    #[test]
    fn parameters_are_read_and_defaults_apply() {
        let c = RedisConfig::from_url("redis://127.0.0.1:6390/2").unwrap();
        assert_eq!(c.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(c.response_timeout, DEFAULT_RESPONSE_TIMEOUT);
        assert_eq!(c.breaker_threshold, DEFAULT_BREAKER_THRESHOLD);
        assert!(matches!(&c.target, Target::Single(u) if u == "redis://127.0.0.1:6390/2"));
        let c = RedisConfig::from_url(
            "redis://h?connect_timeout=20&response_timeout=30&breaker_threshold=2&breaker_cooldown=40",
        )
        .unwrap();
        assert_eq!(c.connect_timeout, Duration::from_millis(20));
        assert_eq!(c.response_timeout, Duration::from_millis(30));
        assert_eq!(c.breaker_threshold, 2);
        assert_eq!(c.breaker_cooldown, Duration::from_millis(40));
    }

    #[test]
    fn bad_urls_name_the_bad_part() {
        assert!(err("redis://h?connect_timeout=soon").contains("`connect_timeout=soon`"));
        assert!(err("redis://h?response_timeout=0").contains("`response_timeout=0`"));
        assert!(err("redis://h?breaker_threshold=0").contains("`breaker_threshold=0`"));
        assert!(err("redis://h?nope=1").contains("unknown parameter `nope`"));
        assert!(err("redis://h?ca_cert=/x").contains("only applies to rediss://"));
        assert!(err("redis://h:notaport/0").contains("not a valid Redis URL"));
        assert!(err("redis+cluster://").contains("at least one node"));
        assert!(err("redis+cluster://a:1,b:2/3").contains("only database 0"));
    }

    #[test]
    fn near_parameters_configure_a_near_tier() {
        let c = RedisConfig::from_url("redis://h/0").unwrap();
        assert!(c.near.is_none());
        let mut url = CacheUrl::parse(
            "T",
            "redis://h/0?near_max_entries=10&near_ttl=5&key_prefix=shop&near_invalidation=pubsub",
        )
        .unwrap();
        let c = RedisConfig::from_cache_url(&mut url).unwrap();
        let near = c.near.expect("a near tier");
        assert_eq!(near.get_max_entries(), 10);
        assert_eq!(near.get_ttl(), Some(Duration::from_secs(5)));
        assert_eq!(
            near.tracked_prefix(),
            "",
            "every key: several caches may share it"
        );
        assert_eq!(near.get_invalidation(), Some(crate::Invalidation::PubSub));
        assert_eq!(
            url.take("key_prefix").as_deref(),
            Some("shop"),
            "left for the cache"
        );
        let c = RedisConfig::from_url("redis://h/0?near_max_entries=10").unwrap();
        assert_eq!(c.near.expect("near").tracked_prefix(), "", "every key");
    }

    #[test]
    fn bad_near_parameters_name_the_bad_part() {
        assert!(err("redis://h?near_max_entries=0").contains("`near_max_entries=0`"));
        assert!(err("redis://h?near_max_entries=many").contains("`near_max_entries=many`"));
        assert!(err("redis://h?near_max_entries=1&near_ttl=0").contains("`near_ttl=0`"));
        assert!(err("redis://h?near_max_entries=1&near_ttl=1.5").contains("`near_ttl=1.5`"));
        assert!(err("redis://h?near_ttl=5").contains("add `near_max_entries=N`"));
        assert!(err("redis://h?near_max_entries=1&near_invalidation=smoke")
            .contains("`near_invalidation=smoke`"));
        assert!(
            err("redis+cluster://a:1?near_max_entries=1&near_invalidation=tracking")
                .contains("not available on Redis Cluster")
        );
    }

    #[test]
    fn passwords_never_reach_debug_output_or_errors() {
        let c = RedisConfig::from_url("redis://app:s3cret@h:6379/0").unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("redis://***@h:6379/0"), "{debug}");
        assert!(!err("redis://app:s3cret@h:port/0").contains("s3cret"));
        assert_eq!(redact("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn cluster_urls_list_every_node_with_credentials() {
        let c = RedisConfig::from_url("redis+cluster://u:p@a:7000,b:7001").unwrap();
        match &c.target {
            Target::Cluster(nodes) => {
                assert_eq!(nodes, &["redis://u:p@a:7000", "redis://u:p@b:7001"]);
            }
            Target::Single(_) => panic!("expected a cluster target"),
        }
        assert!(c.is_cluster());
    }
}
