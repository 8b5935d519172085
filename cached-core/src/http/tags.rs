//! [`CacheTags`]: the tags a handler gives its own response, for the objects it shows.

use std::convert::Infallible;

use axum::response::{IntoResponseParts, ResponseParts};

/// Tags for one response of a cached view or layer, naming the objects it shows: once
/// any of them is invalidated with [`Cache::invalidate_tags`](crate::Cache::invalidate_tags)
/// on the view's cache, the stored response is a miss, in every process sharing the
/// backend.
///
/// Put it in the response's extensions: return it beside the body (it is an
/// [`IntoResponseParts`]), or insert it into `response.extensions_mut()`. Several
/// `CacheTags` parts in one response add up. The view's static tags
/// (`#[cache_view(tags = [..])]`, [`CacheLayer::tags`](super::CacheLayer::tags)) are
/// added to them.
///
/// ```
/// use axum::{extract::Path, routing::get, Router};
/// use cached_core::http::{CacheLayer, CacheTags};
///
/// async fn list(Path(page): Path<u32>) -> (CacheTags, String) {
///     let ids: Vec<u32> = (page * 20..page * 20 + 20).collect();
///     let tags = CacheTags::new(ids.iter().map(|id| format!("product:{id}")));
///     (tags, format!("{ids:?}"))
/// }
///
/// let app: Router = Router::new()
///     .route("/products/page/{page}", get(list))
///     .layer(CacheLayer::new().tags(["products"]));
/// # let _ = app;
/// // After writing product 7: `cache.invalidate_tags(&["product:7"]).await`.
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheTags(Vec<String>);

impl CacheTags {
    /// These tags.
    ///
    /// ```
    /// let tags = cached_core::http::CacheTags::new(["product:1", "product:7"]);
    /// assert_eq!(tags.iter().collect::<Vec<_>>(), ["product:1", "product:7"]);
    /// ```
    pub fn new<I>(tags: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        CacheTags(tags.into_iter().map(Into::into).collect())
    }

    /// Adds a tag.
    ///
    /// ```
    /// let mut tags = cached_core::http::CacheTags::default();
    /// tags.push("category:lamps");
    /// assert_eq!(tags.len(), 1);
    /// ```
    pub fn push(&mut self, tag: impl Into<String>) {
        self.0.push(tag.into());
    }

    /// The tags, in the order given.
    ///
    /// ```
    /// let tags = cached_core::http::CacheTags::new(["a"]);
    /// assert_eq!(tags.iter().next(), Some("a"));
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// How many tags.
    ///
    /// ```
    /// assert_eq!(cached_core::http::CacheTags::new(["a", "b"]).len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    ///
    /// ```
    /// assert!(cached_core::http::CacheTags::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<S: Into<String>> FromIterator<S> for CacheTags {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        CacheTags::new(iter)
    }
}

impl<S: Into<String>> Extend<S> for CacheTags {
    fn extend<I: IntoIterator<Item = S>>(&mut self, iter: I) {
        self.0.extend(iter.into_iter().map(Into::into));
    }
}

/// Adds the tags to the response's extensions (to those already there).
impl IntoResponseParts for CacheTags {
    type Error = Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Infallible> {
        match res.extensions_mut().get_mut::<CacheTags>() {
            Some(tags) => tags.0.extend(self.0),
            None => {
                res.extensions_mut().insert(self);
            }
        }
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    #[test]
    fn tags_in_one_response_add_up() {
        let response = (
            CacheTags::new(["product:1"]),
            CacheTags::new(["product:7"]),
            "body",
        )
            .into_response();
        let tags = response.extensions().get::<CacheTags>().expect("tags");
        assert_eq!(tags.iter().collect::<Vec<_>>(), ["product:1", "product:7"]);
    }
}
