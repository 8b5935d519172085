//! [`Cache::from_url`]: a cache from a URL, with the parameters every URL takes.

use std::time::Duration;

use cached_backend::{CacheError, CacheUrl};

use super::registry::backend_from_url;
use crate::cache::{Cache, DEFAULT_TTL, NO_EXPIRY};
use crate::codec::Codec;

impl Cache {
    /// The cache a URL describes, under the alias `"default"`.
    ///
    /// Every scheme the enabled cargo features provide is known here, whatever else the
    /// program has or has not called before (see [`config`](crate::caches)).
    ///
    /// ```
    /// use cached_core::Cache;
    /// let cache = Cache::from_url("memory://?max_entries=1000&key_prefix=shop&version=2").unwrap();
    /// assert_eq!(cache.make_key("k"), "shop:2:k");
    ///
    /// let err = Cache::from_url("memcached://localhost").unwrap_err();
    /// assert!(err.to_string().contains("memcached"));
    /// ```
    pub fn from_url(url: &str) -> Result<Cache, CacheError> {
        Self::from_url_as("default", "Cache::from_url", url)
    }

    /// The cache a URL describes, under `alias`; `origin` names the URL's source in errors.
    ///
    /// ```
    /// use cached_core::Cache;
    /// let cache = Cache::from_url_as("reports", "REPORTS_URL", "dummy://").unwrap();
    /// assert_eq!(cache.alias(), "reports");
    /// let err = Cache::from_url_as("reports", "REPORTS_URL", "dummy://?ttl=5").unwrap_err();
    /// assert!(err.to_string().contains("REPORTS_URL"));
    /// ```
    pub fn from_url_as(alias: &str, origin: &str, url: &str) -> Result<Cache, CacheError> {
        let mut url = CacheUrl::parse(origin, url)?;
        let key_prefix = url.take("key_prefix").unwrap_or_default();
        let version = url
            .take_parsed::<u32>("version", "a whole number")?
            .unwrap_or(1);
        let default_ttl = match url.take("default_ttl") {
            None => DEFAULT_TTL,
            Some(v) if v.eq_ignore_ascii_case("none") => NO_EXPIRY,
            Some(v) => Duration::from_secs(v.parse().map_err(|_| {
                CacheError::config(
                    origin,
                    format!("`default_ttl={v}` is not valid: expected whole seconds or `none`"),
                )
            })?),
        };
        let codec = match url.take("codec") {
            None => Codec::default(),
            Some(name) => {
                let codec = Codec::from_name(&name).ok_or_else(|| {
                    CacheError::config(
                        origin,
                        format!("unknown codec `{name}`: use bincode, postcard or json"),
                    )
                })?;
                codec.check_enabled()?;
                codec
            }
        };
        let backend = backend_from_url(&mut url)?;
        Ok(Cache::builder_arc(backend)
            .alias(alias)
            .key_prefix(key_prefix)
            .version(version)
            .default_ttl(default_ttl)
            .codec(codec)
            .build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(url: &str) -> String {
        match Cache::from_url_as("default", "CACHE_URL", url) {
            Ok(_) => panic!("{url} should be rejected"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn malformed_urls_name_the_problem() {
        assert!(err("localhost:6379").contains("not a URL"));
        assert!(err("memcached://x").contains("unknown scheme `memcached://`"));
        assert!(err("memory://?max_entries=lots").contains("`max_entries=lots` is not valid"));
        assert!(err("memory://?colour=blue").contains("unknown parameter `colour`"));
        assert!(err("memory://?version=-1").contains("`version=-1`"));
        assert!(err("memory://?default_ttl=5m").contains("`default_ttl=5m`"));
        assert!(err("memory://?codec=xml").contains("unknown codec `xml`"));
        assert!(err("memory://?max_entries=1&max_bytes=1").contains("not both"));
        assert!(err("memory://host").contains("takes no host"));
        assert!(err("memory://?a=%zz").contains("percent-escape"));
        assert!(err("memory://?a=1&a=2").contains("given twice"));
    }

    #[test]
    fn every_scheme_is_provided_or_names_its_feature() {
        // Which schemes exist depends on the features this build unified; each is either
        // built (without connecting) or an error naming the feature that provides it.
        for (scheme, feature) in [
            ("redis", "redis"),
            ("rediss", "redis-tls"),
            ("redis+cluster", "redis-cluster"),
        ] {
            let url = format!("{scheme}://127.0.0.1:1");
            let provided = cached_features::schemes().iter().any(|s| s.name == scheme);
            match Cache::from_url_as("default", "CACHE_URL", &url) {
                Ok(cache) => {
                    assert!(provided, "{scheme} built without its feature");
                    assert_eq!(cache.backend().name(), "redis");
                }
                Err(e) => {
                    assert!(!provided, "{scheme}: {e}");
                    let e = e.to_string();
                    assert!(e.contains(&format!("`{feature}` feature")), "{e}");
                    assert!(e.contains("CACHE_URL"), "{e}");
                }
            }
        }
    }

    #[test]
    fn common_parameters_apply() {
        let cache =
            Cache::from_url("memory://?key_prefix=a%20b&version=3&default_ttl=60").expect("valid");
        assert_eq!(cache.key_prefix(), "a b");
        assert_eq!(cache.version(), 3);
        assert_eq!(cache.default_ttl(), Duration::from_secs(60));
        let forever = Cache::from_url("dummy://?default_ttl=none").expect("valid");
        assert_eq!(forever.default_ttl(), NO_EXPIRY);
    }
}
