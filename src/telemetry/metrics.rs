//! Prometheus metrics, served on their own HTTP port (`--metrics-listen`):
//! calls by method and code, latency, calls in flight, the database pool, the
//! read cache, the change listener and what the guard refused.
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::relay::RelayStats;
use crate::store::CachedStore;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    grpc_method: &'static str,
    grpc_code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    grpc_method: &'static str,
}

/// What the server's guard turned away, by reason, and the connections it
/// accepted: bumped by the guard, read by the metrics (and tests). Kept here,
/// below the server, so that telemetry never imports the server.
#[derive(Debug, Default)]
pub struct GuardCounters {
    pub shed: AtomicU64,
    pub deadline_exceeded: AtomicU64,
    pub too_large: AtomicU64,
    pub connections: AtomicU64,
}

/// The process's metrics. Cheap to update from any thread.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    handled: Family<CallLabels, Counter>,
    handling: Family<MethodLabels, Histogram>,
    in_flight: Gauge,
    sources: Arc<OnceLock<Sources>>,
}

/// What is read from its owner at each scrape rather than counted twice.
#[derive(Debug)]
struct Sources {
    store: Arc<CachedStore>,
    guard: Arc<GuardCounters>,
    relay: Option<Arc<RelayStats>>,
}

#[derive(Debug)]
struct SourcesCollector(Arc<OnceLock<Sources>>);

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> std::fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// The events relay's, when one runs (`--events-nats-url`).
fn relay_metrics(e: &mut DescriptorEncoder, r: &RelayStats) -> std::fmt::Result {
    use std::sync::atomic::Ordering::Relaxed;
    counter(
        e,
        "partner_contacts_events_published",
        "Events the relay published to NATS JetStream and saw acknowledged.",
        r.published.load(Relaxed),
    )?;
    counter(
        e,
        "partner_contacts_events_duplicates",
        "Publishes JetStream acknowledged as duplicates (redeliveries it dropped).",
        r.duplicates.load(Relaxed),
    )?;
    counter(
        e,
        "partner_contacts_events_relay_failures",
        "Relay rounds that failed (broker or database) and were retried after a backoff.",
        r.failures.load(Relaxed),
    )?;
    let lag = ConstGauge::new(r.lag_micros.load(Relaxed) as f64 / 1e6);
    lag.encode(e.encode_descriptor(
        "partner_contacts_events_relay_lag_seconds",
        "Age of the oldest event not yet published (0 when all are).",
        None,
        lag.metric_type(),
    )?)?;
    gauge(
        e,
        "partner_contacts_events_broker_connected",
        "1 while the relay is connected to NATS, else 0.",
        i64::from(r.connected.load(Relaxed)),
    )
}

impl Collector for SourcesCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let Some(s) = self.0.get() else {
            return Ok(());
        };
        let stats = s.store.stats();
        let pool = stats.pool;
        counter(
            &mut e,
            "partner_contacts_cache_hits",
            "Reads answered from the in-process cache.",
            stats.cache_hits,
        )?;
        counter(
            &mut e,
            "partner_contacts_cache_misses",
            "Reads that went to the database.",
            stats.cache_misses,
        )?;
        gauge(
            &mut e,
            "partner_contacts_cache_bytes",
            "Heap bytes the cache holds (as its weigher counts them).",
            i64::try_from(stats.cache_bytes).unwrap_or(i64::MAX),
        )?;
        gauge(
            &mut e,
            "partner_contacts_cache_entries",
            "Entries in the cache.",
            i64::try_from(stats.cache_entries).unwrap_or(i64::MAX),
        )?;
        gauge(
            &mut e,
            "partner_contacts_db_pool_max",
            "Largest number of database connections.",
            i64::from(pool.max),
        )?;
        gauge(
            &mut e,
            "partner_contacts_db_pool_size",
            "Database connections open.",
            i64::from(pool.size),
        )?;
        gauge(
            &mut e,
            "partner_contacts_db_pool_idle",
            "Database connections open and idle.",
            i64::from(pool.idle),
        )?;
        gauge(
            &mut e,
            "partner_contacts_db_pool_waiters",
            "Store calls in flight beyond the connections in use: calls waiting for a connection.",
            i64::try_from(stats.calls_in_flight)
                .unwrap_or(i64::MAX)
                .saturating_sub(i64::from(pool.size.saturating_sub(pool.idle)))
                .max(0),
        )?;
        counter(
            &mut e,
            "partner_contacts_change_listener_reconnects",
            "Times the PostgreSQL change listener lost its connection (each is followed by a cache resync).",
            pool.listener_reconnects,
        )?;
        let g = &s.guard;
        use std::sync::atomic::Ordering::Relaxed;
        counter(
            &mut e,
            "partner_contacts_calls_shed",
            "Calls refused with RESOURCE_EXHAUSTED at the concurrency limit.",
            g.shed.load(Relaxed),
        )?;
        counter(
            &mut e,
            "partner_contacts_calls_deadline_exceeded",
            "Calls ended by their deadline.",
            g.deadline_exceeded.load(Relaxed),
        )?;
        counter(
            &mut e,
            "partner_contacts_requests_too_large",
            "Requests refused for their size.",
            g.too_large.load(Relaxed),
        )?;
        counter(
            &mut e,
            "partner_contacts_connections_accepted",
            "Client connections accepted.",
            g.connections.load(Relaxed),
        )?;
        if let Some(r) = &s.relay {
            relay_metrics(&mut e, r)?;
        }
        Ok(())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let handled = Family::<CallLabels, Counter>::default();
        registry.register(
            "grpc_server_handled",
            "ContactsService calls completed, by method and gRPC status code.",
            handled.clone(),
        );
        let handling = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            // 50 µs to about 6.5 s.
            Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
        });
        registry.register(
            "grpc_server_handling_seconds",
            "Time from a call's arrival to its last byte, by method.",
            handling.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "grpc_server_in_flight",
            "ContactsService calls (and open streams) being served.",
            in_flight.clone(),
        );
        let sources = Arc::new(OnceLock::new());
        registry.register_collector(Box::new(SourcesCollector(sources.clone())));
        Self {
            registry,
            handled,
            handling,
            in_flight,
            sources,
        }
    }

    /// Connects the scrape-time sources; the first call wins.
    pub fn attach(
        &self,
        store: Arc<CachedStore>,
        guard: Arc<GuardCounters>,
        relay: Option<Arc<RelayStats>>,
    ) {
        let _ = self.sources.set(Sources {
            store,
            guard,
            relay,
        });
    }

    pub fn call_started(&self) {
        self.in_flight.inc();
    }

    pub fn call_finished(&self, method: &'static str, code: tonic::Code, took: Duration) {
        self.in_flight.dec();
        self.handled
            .get_or_create(&CallLabels {
                grpc_method: method,
                grpc_code: code_name(code),
            })
            .inc();
        self.handling
            .get_or_create(&MethodLabels {
                grpc_method: method,
            })
            .observe(took.as_secs_f64());
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The code's canonical name, as Prometheus users expect (`OK`, `NOT_FOUND`).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    use axum::http::{StatusCode, header};
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                match metrics.render() {
                    Ok(body) => (
                        StatusCode::OK,
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        body,
                    ),
                    Err(_) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                        "cannot encode metrics\n".to_owned(),
                    ),
                }
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("metrics server: {e}"))
}
