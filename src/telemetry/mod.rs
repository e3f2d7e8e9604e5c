//! Telemetry: log lines (text by default, JSON by flag, each line of a call
//! carrying its trace id, and in JSON its span id), OpenTelemetry traces
//! over OTLP when the standard `OTEL_EXPORTER_OTLP_*` variables are set, and
//! Prometheus metrics.
use std::io::IsTerminal;
use std::sync::{Arc, OnceLock};

use tracing::dispatcher::Dispatch;
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

mod json;
pub mod metrics;
pub mod otel;

use json::{DispatchSlot, json_logs};

pub use metrics::{GuardCounters, Metrics};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// What the log shows and how (the command line's `--log-*` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// tracing EnvFilter syntax, e.g. `info` or `partner_contacts=debug,info`
    /// (`--log-level`, else `PARTNER_CONTACTS_LOG`, else `RUST_LOG`).
    pub filter: String,
    pub format: LogFormat,
}

/// Keeps the trace exporter running; `shutdown` flushes what is buffered.
#[derive(Debug, Default)]
pub struct Telemetry {
    tracer: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.tracer.is_some()
    }

    /// Sends what is still buffered, then stops exporting.
    pub fn shutdown(&self) {
        if let Some(Err(e)) = self.tracer.as_ref().map(|p| p.shutdown()) {
            eprintln!("partner-contacts: flushing traces failed: {e}");
        }
    }
}

/// Installs the process's log output and, when `tracer` is given, span
/// export. Call once, inside the Tokio runtime.
pub fn init(
    args: &LogOptions,
    tracer: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
) -> Result<Telemetry, String> {
    subscriber(args, tracer.as_ref())?
        .try_init()
        .map_err(|e| format!("cannot initialise logging: {e}"))?;
    Ok(Telemetry { tracer })
}

/// The process's subscriber: the log and, when `tracer` is given, span
/// export. A span or event that neither the log nor the export wants is
/// never created (a quiet log keeps h2's, hyper's and sqlx's spans out of
/// every call: they cost more than the call itself).
fn subscriber(
    args: &LogOptions,
    tracer: Option<&opentelemetry_sdk::trace::SdkTracerProvider>,
) -> Result<Dispatch, String> {
    let filter = || {
        EnvFilter::try_new(&args.filter).map_err(|e| {
            format!(
                "invalid log filter {:?} (--log-level, PARTNER_CONTACTS_LOG or RUST_LOG): {e}",
                args.filter
            )
        })
    };
    let dispatch = Arc::new(OnceLock::new());
    // Colour only for a person at a terminal: escape codes in collected log
    // files are noise.
    let ansi = std::io::stderr().is_terminal();
    let logs = match args.format {
        LogFormat::Text => fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_filter(filter()?)
            .boxed(),
        // The call's span (rpc, method, partner) goes on every line, nested
        // under `span`; the trace and span ids at the top, where log
        // pipelines look for them.
        LogFormat::Json => json_logs(dispatch.clone(), std::io::stderr)
            .with_filter(filter()?)
            .boxed(),
    };
    // Exported spans are this service's own (RPCs, store calls) whatever the
    // log level: a quiet log must not mean a blind trace.
    let spans =
        match tracer {
            Some(provider) => {
                use opentelemetry::trace::TracerProvider as _;
                Some(
                    tracing_opentelemetry::layer()
                        .with_tracer(provider.tracer("partner-contacts"))
                        .with_filter(
                            Targets::new().with_target("partner_contacts", tracing::Level::INFO),
                        )
                        .boxed(),
                )
            }
            // Nothing exported, but JSON lines still carry ids: spans get them
            // from a provider that records nothing, and only the spans the log
            // shows (a quiet log keeps its calls free of this work). Location,
            // thread and timing attributes would go nowhere.
            None if args.format == LogFormat::Json => {
                use opentelemetry::trace::TracerProvider as _;
                Some(
                    tracing_opentelemetry::layer()
                        .with_tracer(otel::ids_only().tracer("partner-contacts"))
                        .with_location(false)
                        .with_threads(false)
                        .with_tracked_inactivity(false)
                        .with_context_activation(false)
                        .with_filter(filter()?.and(
                            Targets::new().with_target("partner_contacts", tracing::Level::INFO),
                        ))
                        .boxed(),
                )
            }
            None => None,
        };
    Ok(tracing_subscriber::registry()
        .with(DispatchSlot::layer(dispatch))
        .with(spans)
        .with(logs)
        .into())
}

/// Held by unit tests that run under a subscriber of their own: tracing
/// caches each callsite's interest across every live subscriber, and one
/// made or dropped on another thread meanwhile can leave a callsite marked
/// as always enabled for a subscriber that would refuse it.
#[cfg(test)]
pub(crate) fn scoped_subscriber_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a quiet log (the benchmark's `warn`, text or JSON, nothing
    /// exported) creates: no spans of other crates or of ours below its
    /// level. Building h2's and hyper's spans for every call once cost more
    /// instructions than the call itself.
    #[test]
    fn a_quiet_log_creates_no_spans_below_its_level() {
        let _one_at_a_time = scoped_subscriber_lock();
        for format in [LogFormat::Text, LogFormat::Json] {
            let args = LogOptions {
                filter: "warn".into(),
                format,
            };
            let dispatch = subscriber(&args, None).expect("a subscriber");
            tracing::dispatcher::with_default(&dispatch, || {
                for span in [
                    tracing::info_span!(target: "h2::proto", "poll"),
                    tracing::trace_span!(target: "hyper::proto", "encode"),
                    tracing::debug_span!(target: "sqlx::query", "query"),
                    tracing::info_span!(target: "partner_contacts::server", "rpc"),
                ] {
                    assert!(span.is_disabled(), "{format:?}: {span:?} was created");
                }
                assert!(!tracing::enabled!(target: "h2::codec", tracing::Level::DEBUG));
                let warned = tracing::warn_span!(target: "partner_contacts::server", "rpc");
                assert!(!warned.is_disabled(), "{format:?}: a WARN span is logged");
            });
        }
        // With spans exported, ours are created at INFO whatever the log
        // level, other crates' still not.
        let provider = otel::ids_only();
        let args = LogOptions {
            filter: "warn".into(),
            format: LogFormat::Text,
        };
        let dispatch = subscriber(&args, Some(&provider)).expect("a subscriber");
        tracing::dispatcher::with_default(&dispatch, || {
            assert!(!tracing::info_span!(target: "partner_contacts::server", "rpc").is_disabled());
            assert!(tracing::info_span!(target: "h2::proto", "poll").is_disabled());
        });
    }
}
