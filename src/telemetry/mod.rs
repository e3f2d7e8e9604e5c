//! Telemetry: log lines (text by default, JSON by flag, each line of a call
//! carrying its trace id, and in JSON its span id), OpenTelemetry traces
//! over OTLP when the standard `OTEL_EXPORTER_OTLP_*` variables are set, and
//! Prometheus metrics.
use std::io::IsTerminal;
use std::sync::{Arc, OnceLock};

use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};
use tracing::dispatcher::{Dispatch, WeakDispatch};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter, Targets};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, format};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::{LookupSpan, Registry};
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

/// JSON lines to `writer`, the ids read through the dispatch `dispatch`
/// will hold (a `DispatchSlot` in the same subscriber fills it).
fn json_logs<S, W>(
    dispatch: Arc<OnceLock<WeakDispatch>>,
    writer: W,
) -> fmt::Layer<S, format::JsonFields, WithTraceIds<format::Format<format::Json>>, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> fmt::MakeWriter<'w> + 'static,
{
    fmt::layer()
        .json()
        .event_format(WithTraceIds {
            inner: format()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false),
            dispatch,
        })
        .with_writer(writer)
}

/// Hands the JSON formatter the dispatch it runs in, which the OpenTelemetry
/// context of a span is read through: inside an event the thread's default
/// dispatch can read as none (a nested lookup, with a scoped subscriber).
/// Weak, because the dispatch owns the formatter.
struct DispatchSlot(Arc<OnceLock<WeakDispatch>>);

impl DispatchSlot {
    /// Filtered to nothing: a layer without a filter of its own would be
    /// interested in every span and event of every crate, whatever the log
    /// level, and the registry would build them all. It still hears of the
    /// dispatch.
    fn layer<S>(
        slot: Arc<OnceLock<WeakDispatch>>,
    ) -> tracing_subscriber::filter::Filtered<Self, LevelFilter, S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        Self(slot).with_filter(LevelFilter::OFF)
    }
}

impl<S: Subscriber> Layer<S> for DispatchSlot {
    fn on_register_dispatch(&self, dispatch: &Dispatch) {
        let _ = self.0.set(dispatch.downgrade());
    }
}

/// tracing-subscriber's JSON line with `trace_id` and `span_id` added at
/// the top level, when the event happens inside a span with an
/// OpenTelemetry context.
struct WithTraceIds<F> {
    inner: F,
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let ids = self
            .dispatch
            .get()
            .and_then(WeakDispatch::upgrade)
            .and_then(|dispatch| trace_ids(&dispatch, event));
        let Some((trace_id, span_id)) = ids else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        // One object and a newline: the ids go in before its closing brace.
        match line.trim_end().strip_suffix('}') {
            Some(open) => {
                let comma = if open.ends_with('{') { "" } else { "," };
                writeln!(
                    writer,
                    "{open}{comma}\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}"
                )
            }
            None => writer.write_str(&line),
        }
    }
}

/// The ids of the nearest span, from the event's own up to the root, that
/// has an OpenTelemetry context: spans of other crates (hyper's, h2's) have
/// none, and neither does a call's span that no layer records.
fn trace_ids(dispatch: &Dispatch, event: &Event<'_>) -> Option<(TraceId, SpanId)> {
    let start = match event.parent() {
        Some(id) => id.clone(),
        None if event.is_contextual() => dispatch.current_span().id()?.clone(),
        None => return None,
    };
    // The registry's view, not the log's: the span holding the ids may be
    // one the log filter hides (a `warn` log of an exported call).
    let registry = dispatch.downcast_ref::<Registry>()?;
    registry.span(&start)?.scope().find_map(|span| {
        let cx = tracing_opentelemetry::get_otel_context(&span.id(), dispatch)?;
        let otel = cx.span();
        let ids = otel.span_context();
        ids.is_valid().then(|| (ids.trace_id(), ids.span_id()))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use opentelemetry::trace::TracerProvider as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Under a scoped subscriber (where a lookup of the default dispatch
    /// inside an event reads as none), through a span the log hides and one
    /// without an OpenTelemetry context, and with an explicit parent.
    #[test]
    fn json_lines_carry_the_ids_of_the_nearest_span_with_a_context() {
        let lines = Lines::default();
        let slot = Arc::new(OnceLock::new());
        let provider = otel::ids_only();
        let subscriber = tracing_subscriber::registry()
            .with(DispatchSlot::layer(slot.clone()))
            .with(
                tracing_opentelemetry::layer()
                    .with_tracer(provider.tracer("test"))
                    .with_filter(Targets::new().with_target("traced", tracing::Level::INFO)),
            )
            .with(
                json_logs(slot, {
                    let lines = lines.clone();
                    move || lines.clone()
                })
                .with_filter(EnvFilter::new("warn")),
            );
        let call_ids = tracing::subscriber::with_default(subscriber, || {
            // INFO: hidden by the `warn` log, traced all the same.
            let call = tracing::info_span!(target: "traced", "call");
            let cx = call.context();
            let ids = cx.span().span_context().clone();
            call.in_scope(|| {
                // Logged, but with no OpenTelemetry context of its own.
                tracing::warn_span!(target: "untraced", "inner")
                    .in_scope(|| tracing::warn!("inside"));
            });
            tracing::warn!(parent: &call, "explicit parent");
            tracing::warn!("outside");
            ids
        });
        assert!(call_ids.is_valid());
        let text = String::from_utf8(lines.0.lock().expect("lock").clone()).expect("utf-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        let line = |message: &str| {
            lines
                .iter()
                .find(|l| l["message"] == message)
                .unwrap_or_else(|| panic!("no {message:?} in {text}"))
        };
        for message in ["inside", "explicit parent"] {
            assert_eq!(line(message)["trace_id"], call_ids.trace_id().to_string());
            assert_eq!(line(message)["span_id"], call_ids.span_id().to_string());
        }
        assert_eq!(line("inside")["span"]["name"], "inner");
        let outside = line("outside");
        assert!(
            outside.get("trace_id").is_none() && outside.get("span_id").is_none(),
            "{outside}"
        );
    }

    /// What a quiet log (the benchmark's `warn`, text or JSON, nothing
    /// exported) creates: no spans of other crates or of ours below its
    /// level. Building h2's and hyper's spans for every call once cost more
    /// instructions than the call itself.
    #[test]
    fn a_quiet_log_creates_no_spans_below_its_level() {
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
