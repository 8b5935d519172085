//! `tracing` spans around the backend calls of a `Cache` (no `metrics` feature needed):
//! what a subscriber such as an OpenTelemetry pipeline receives, captured by a small
//! layer of this test under a real subscriber, against a real redis-server and the
//! memory backend.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cached_kit::{Cache, MemoryBackend};
use cached_testing::RedisServer;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// A closed span as the subscriber saw it.
#[derive(Debug, Clone)]
struct Closed {
    name: &'static str,
    level: Level,
    parent: Option<&'static str>,
    fields: BTreeMap<String, String>,
}

impl Closed {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// Keeps every closed span with its fields and its parent's name.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Closed>>>);

impl Capture {
    fn cache_spans(&self) -> Vec<Closed> {
        let spans = self.0.lock().expect("captured spans");
        spans
            .iter()
            .filter(|s| s.name == "cache")
            .cloned()
            .collect()
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<Fields>() {
                values.record(fields);
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let fields = span.extensions_mut().remove::<Fields>().unwrap_or_default();
        self.0.lock().expect("captured spans").push(Closed {
            name: span.name(),
            level: *span.metadata().level(),
            parent: span.parent().map(|p| p.name()),
            fields: fields.0,
        });
    }
}

/// Runs `f` on a current-thread runtime under a subscriber at `level` that captures.
///
/// One at a time: `tracing` caches each callsite's interest across every live
/// dispatcher, and the tests' scoped subscribers, created and dropped in parallel
/// threads, raced that cache (once in CI a failed Redis call's INFO span was not
/// captured at all).
fn traced<F: std::future::Future<Output = ()>>(
    level: LevelFilter,
    f: impl FnOnce() -> F,
) -> Capture {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone().with_filter(level));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    tracing::subscriber::with_default(subscriber, || rt.block_on(f()));
    capture
}

#[test]
fn redis_calls_are_info_spans_inside_the_request_with_the_key_only_at_trace() {
    let server = RedisServer::start();
    let url = format!("{}?key_prefix=spans", server.url());
    let cache = Cache::from_url_as("spans-redis", "test", &url).unwrap();

    let work = || {
        let cache = cache.clone();
        async move {
            let request = tracing::info_span!("request");
            let _ = tracing::Instrument::instrument(
                async {
                    cache
                        .set("secret-key-span", &1u32, Duration::from_secs(60))
                        .await
                        .unwrap();
                    assert_eq!(cache.get::<u32>("secret-key-span").await.unwrap(), Some(1));
                    assert_eq!(cache.get::<u32>("absent").await.unwrap(), None);
                },
                request,
            )
            .await;
        }
    };

    let at_info = traced(LevelFilter::INFO, work).cache_spans();
    let ops: Vec<(&str, &str)> = at_info
        .iter()
        .map(|s| (s.field("op").unwrap(), s.field("outcome").unwrap()))
        .collect();
    assert_eq!(
        ops,
        [("set", "ok"), ("get", "hit"), ("get", "miss")],
        "{at_info:#?}"
    );
    for span in &at_info {
        assert_eq!(span.level, Level::INFO);
        assert_eq!(span.parent, Some("request"), "inside the request's trace");
        assert_eq!(span.field("cache"), Some("spans-redis"));
        assert_eq!(span.field("backend"), Some("redis"));
        assert_eq!(span.field("otel.kind"), Some("client"));
        assert!(span.field("duration_us").is_some(), "{span:?}");
        assert_eq!(span.field("key"), None, "no key below TRACE: {span:?}");
    }
    assert_eq!(at_info[0].field("otel.name"), Some("cache set"));

    let at_trace = traced(LevelFilter::TRACE, work).cache_spans();
    // The gets first try the backend's answer without waiting (Redis has none): TRACE
    // spans, "deferred".
    let keyed: Vec<&Closed> = at_trace.iter().filter(|s| s.level == Level::INFO).collect();
    assert_eq!(keyed.len(), 3, "{at_trace:#?}");
    assert_eq!(keyed[0].field("key"), Some("spans:1:secret-key-span"));
    assert!(at_trace
        .iter()
        .filter(|s| s.level == Level::TRACE)
        .all(|s| s.field("outcome") == Some("deferred")));
}

#[test]
fn a_failed_call_says_so_and_its_kind() {
    let mut server = RedisServer::start();
    let cache = Cache::from_url_as("spans-down", "test", &server.url()).unwrap();
    server.kill();
    let spans = traced(LevelFilter::INFO, || {
        let cache = cache.clone();
        async move {
            assert!(cache.get::<u32>("k").await.is_err());
        }
    })
    .cache_spans();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].field("outcome"), Some("error"));
    let kind = spans[0].field("error").unwrap();
    assert!(kind == "backend" || kind == "timeout", "{kind}");
}

#[test]
fn memory_calls_are_trace_spans_so_info_costs_them_nothing() {
    let cache = Cache::builder(MemoryBackend::default())
        .alias("spans-memory")
        .build();
    let work = || {
        let cache = cache.clone();
        async move {
            cache
                .set("k", &1u32, Duration::from_secs(60))
                .await
                .unwrap();
            assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(1));
        }
    };
    assert!(traced(LevelFilter::INFO, work).cache_spans().is_empty());
    let spans = traced(LevelFilter::TRACE, work).cache_spans();
    let ops: Vec<(&str, &str, Option<&str>)> = spans
        .iter()
        .map(|s| {
            (
                s.field("op").unwrap(),
                s.field("outcome").unwrap(),
                s.field("key"),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [("set", "ok", Some(":1:k")), ("get", "hit", Some(":1:k"))],
        "{spans:#?}"
    );
    assert!(spans.iter().all(|s| s.level == Level::TRACE
        && s.field("otel.kind") == Some("internal")
        && s.field("cache") == Some("spans-memory")));
}
