//! Prometheus metrics, served on their own HTTP port (`--metrics-listen`):
//! gRPC calls under go-grpc-prometheus's names and labels (so that stock
//! dashboards and alerts work unchanged), stream lifetimes apart from unary
//! latency, the build and the process, the database pool, the read cache, the
//! change listener and what the guard refused. `deploy/prometheus/metrics.txt`
//! lists every series; a test checks this module exposes exactly those.
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

/// Which call: the labels every gRPC series has.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallKind {
    /// The fully qualified service, `partnerportal.contacts.v1.ContactsService`.
    pub grpc_service: &'static str,
    pub grpc_method: &'static str,
    /// `unary` or `server_stream`, as go-grpc-prometheus writes them.
    pub grpc_type: &'static str,
}

impl CallKind {
    pub const UNARY: &'static str = "unary";
    pub const SERVER_STREAM: &'static str = "server_stream";

    fn streaming(&self) -> bool {
        self.grpc_type != Self::UNARY
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    #[prometheus(flatten)]
    kind: CallKind,
    grpc_code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    grpc_service: &'static str,
    grpc_method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    revision: &'static str,
}

/// The commit this binary was built from: `PARTNER_CONTACTS_REVISION` at
/// build time (an image build without `.git` passes it), else what git said
/// to build.rs, else `unknown`.
pub const REVISION: &str = match option_env!("PARTNER_CONTACTS_REVISION") {
    Some(r) => r,
    None => "unknown",
};

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
    started: Family<CallKind, Counter>,
    handled: Family<CallLabels, Counter>,
    handling: Family<CallKind, Histogram>,
    streams: Family<StreamLabels, Histogram>,
    received: Family<CallKind, Counter>,
    sent: Family<CallKind, Counter>,
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
        gauge(
            &mut e,
            "partner_contacts_database_up",
            "1 while health's probe reaches the database, else 0 (calls that need it fail at once with UNAVAILABLE).",
            i64::from(s.store.reachable()),
        )?;
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

/// The process's own figures under the names every Prometheus client library
/// uses (`process_*`), read at each scrape.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let p = metrics_process::collector::collect();
        if let Some(cpu) = p.cpu_seconds_total {
            let metric = ConstCounter::new(cpu);
            metric.encode(e.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                metric.metric_type(),
            )?)?;
        }
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                p.resident_memory_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                p.virtual_memory_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                p.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                p.max_fds,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                p.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                gauge(&mut e, name, help, i64::try_from(v).unwrap_or(i64::MAX))?;
            }
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
        let started = Family::<CallKind, Counter>::default();
        registry.register(
            "grpc_server_started",
            "ContactsService calls started, by method and type.",
            started.clone(),
        );
        let handled = Family::<CallLabels, Counter>::default();
        registry.register(
            "grpc_server_handled",
            "ContactsService calls completed, by method, type and gRPC status code.",
            handled.clone(),
        );
        let handling = Family::<CallKind, Histogram>::new_with_constructor(|| {
            // 50 µs to about 6.5 s.
            Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
        });
        registry.register(
            "grpc_server_handling_seconds",
            "Time from a unary call's arrival to its last byte, by method (streams are in partner_contacts_stream_duration_seconds).",
            handling.clone(),
        );
        let streams = Family::<StreamLabels, Histogram>::new_with_constructor(|| {
            // 1 s to about 18 h: a stream lives as long as its consumer.
            Histogram::new(exponential_buckets(1.0, 4.0, 9))
        });
        registry.register(
            "partner_contacts_stream_duration_seconds",
            "Lifetime of server streams (WatchContacts), from opening to end.",
            streams.clone(),
        );
        let received = Family::<CallKind, Counter>::default();
        registry.register(
            "grpc_server_msg_received",
            "Request messages received, by method and type.",
            received.clone(),
        );
        let sent = Family::<CallKind, Counter>::default();
        registry.register(
            "grpc_server_msg_sent",
            "Response messages sent, by method and type.",
            sent.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "grpc_server_in_flight",
            "ContactsService calls (and open streams) being served.",
            in_flight.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                revision: REVISION,
            })
            .set(1);
        registry.register(
            "partner_contacts_build_info",
            "Always 1; the labels name the running version and the commit it was built from.",
            build,
        );
        registry.register_collector(Box::new(ProcessCollector));
        let sources = Arc::new(OnceLock::new());
        registry.register_collector(Box::new(SourcesCollector(sources.clone())));
        Self {
            registry,
            started,
            handled,
            handling,
            streams,
            received,
            sent,
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

    pub fn call_started(&self, kind: CallKind) {
        self.in_flight.inc();
        self.started.get_or_create(&kind).inc();
    }

    /// Records a call that ended with `code` after `took`, having received
    /// and sent that many messages.
    pub fn call_finished(
        &self,
        kind: CallKind,
        code: tonic::Code,
        took: Duration,
        received: u64,
        sent: u64,
    ) {
        self.in_flight.dec();
        self.handled
            .get_or_create(&CallLabels {
                kind,
                grpc_code: go_code_name(code),
            })
            .inc();
        if kind.streaming() {
            self.streams
                .get_or_create(&StreamLabels {
                    grpc_service: kind.grpc_service,
                    grpc_method: kind.grpc_method,
                })
                .observe(took.as_secs_f64());
        } else {
            self.handling
                .get_or_create(&kind)
                .observe(took.as_secs_f64());
        }
        if received > 0 {
            self.received.get_or_create(&kind).inc_by(received);
        }
        if sent > 0 {
            self.sent.get_or_create(&kind).inc_by(sent);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// The code as go-grpc-prometheus labels it (`OK`, `NotFound`, `Canceled`):
/// the `grpc_code` values stock dashboards and alert rules match on.
pub fn go_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

/// The code's canonical name (`OK`, `NOT_FOUND`), as logs and error
/// reasons write it.
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
