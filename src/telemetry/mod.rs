//! Telemetry: log lines (text by default, JSON by flag, each line of a call
//! carrying its trace id), OpenTelemetry traces over OTLP when the standard
//! `OTEL_EXPORTER_OTLP_*` variables are set, and Prometheus metrics.
use std::io::IsTerminal;

use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

pub mod metrics;
pub mod otel;

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
    /// tracing EnvFilter syntax, e.g. `info` or `partner_contacts=debug,info`.
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
    let filter = EnvFilter::try_new(&args.filter)
        .map_err(|e| format!("invalid --log-level {:?}: {e}", args.filter))?;
    // Colour only for a person at a terminal: escape codes in collected log
    // files are noise.
    let ansi = std::io::stderr().is_terminal();
    let logs = match args.format {
        LogFormat::Text => fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .with_filter(filter)
            .boxed(),
        // The call's span (rpc, method, partner, trace_id) goes on every line.
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    // Exported spans are this service's own (RPCs, store calls) whatever the
    // log level: a quiet log must not mean a blind trace.
    let spans = tracer.as_ref().map(|provider| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("partner-contacts"))
            .with_filter(Targets::new().with_target("partner_contacts", tracing::Level::INFO))
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init()
        .map_err(|e| format!("cannot initialise logging: {e}"))?;
    Ok(Telemetry { tracer })
}
