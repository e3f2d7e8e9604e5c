//! JSON log lines: the span's fields as one JSON object that later
//! records append to, and `trace_id` and `span_id` at the top level of each
//! line, read from the OpenTelemetry context of the nearest span that has
//! one.
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};
use tracing::dispatcher::{Dispatch, WeakDispatch};
use tracing::span::Record;
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::registry::{LookupSpan, Registry};

/// JSON lines to `writer`, the ids read through the dispatch `dispatch`
/// will hold (a `DispatchSlot` in the same subscriber fills it).
pub(super) fn json_logs<S, W>(
    dispatch: Arc<OnceLock<WeakDispatch>>,
    writer: W,
) -> fmt::Layer<S, AppendJsonFields, WithTraceIds<format::Format<format::Json>>, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> fmt::MakeWriter<'w> + 'static,
{
    fmt::layer()
        .json()
        .fmt_fields(AppendJsonFields)
        .event_format(WithTraceIds {
            inner: fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false),
            dispatch,
        })
        .with_writer(writer)
}

/// A span's fields as one JSON object, written straight to text, to which
/// a later `record` appends. tracing-subscriber's `JsonFields` builds a map
/// of JSON values for each span, and parses the object and writes it anew on
/// every `record`; a call's span records three times (trace id, partner,
/// status), and in JSON at INFO that was a third of every cached read's
/// instructions. A field recorded twice is in the object twice; the JSON
/// line's `span` shows the last value, as a reader of the object keeps it.
pub(super) struct AppendJsonFields;

impl<'a> FormatFields<'a> for AppendJsonFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'_>,
        fields: R,
    ) -> std::fmt::Result {
        writer.write_char('{')?;
        let mut object = JsonObject {
            out: &mut writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut object);
        object.result?;
        writer.write_char('}')
    }

    fn add_fields(
        &self,
        current: &'a mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> std::fmt::Result {
        if current.fields.is_empty() {
            return self.format_fields(current.as_writer(), fields);
        }
        let text = &mut current.fields;
        if text.pop() != Some('}') {
            return Err(std::fmt::Error);
        }
        let mut object = JsonObject {
            empty: text.ends_with('{'),
            out: text,
            result: Ok(()),
        };
        fields.record(&mut object);
        object.result?;
        text.push('}');
        Ok(())
    }
}

/// Writes visited fields as `"name":value` members of a JSON object.
struct JsonObject<'w> {
    out: &'w mut dyn std::fmt::Write,
    empty: bool,
    result: std::fmt::Result,
}

impl JsonObject<'_> {
    /// A member whose value is written as it is (a number, a boolean).
    fn member(&mut self, field: &tracing::field::Field, value: std::fmt::Arguments<'_>) {
        self.put(field, |out| out.write_fmt(value));
    }

    /// A member whose value is a JSON string.
    fn string(&mut self, field: &tracing::field::Field, value: std::fmt::Arguments<'_>) {
        self.put(field, |out| {
            out.write_char('"')?;
            JsonEscaped(&mut *out).write_fmt(value)?;
            out.write_char('"')
        });
    }

    fn put(
        &mut self,
        field: &tracing::field::Field,
        value: impl FnOnce(&mut dyn std::fmt::Write) -> std::fmt::Result,
    ) {
        if self.result.is_err() {
            return;
        }
        let first = std::mem::take(&mut self.empty);
        let out = &mut *self.out;
        self.result = (|| {
            if !first {
                out.write_char(',')?;
            }
            out.write_char('"')?;
            JsonEscaped(&mut *out).write_str(field.name())?;
            out.write_str("\":")?;
            value(out)
        })();
    }
}

impl tracing::field::Visit for JsonObject<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.string(field, format_args!("{value:?}"));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.string(field, format_args!("{value}"));
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.member(field, format_args!("{value}"));
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.member(field, format_args!("{value}"));
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.member(field, format_args!("{value}"));
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        if value.is_finite() {
            self.member(field, format_args!("{value}"));
        } else {
            self.member(field, format_args!("null"));
        }
    }
}

/// Text written into a JSON string: quotes, backslashes and control
/// characters escaped.
struct JsonEscaped<'w>(&'w mut dyn std::fmt::Write);

impl std::fmt::Write for JsonEscaped<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find(|c: char| c == '"' || c == '\\' || c < ' ') {
            self.0.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().ok_or(std::fmt::Error)?;
            match c {
                '"' => self.0.write_str("\\\""),
                '\\' => self.0.write_str("\\\\"),
                '\n' => self.0.write_str("\\n"),
                '\r' => self.0.write_str("\\r"),
                '\t' => self.0.write_str("\\t"),
                c => write!(self.0, "\\u{:04x}", u32::from(c)),
            }?;
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// Hands the JSON formatter the dispatch it runs in, which the OpenTelemetry
/// context of a span is read through: inside an event the thread's default
/// dispatch can read as none (a nested lookup, with a scoped subscriber).
/// Weak, because the dispatch owns the formatter.
pub(super) struct DispatchSlot(Arc<OnceLock<WeakDispatch>>);

impl DispatchSlot {
    /// Filtered to nothing: a layer without a filter of its own would be
    /// interested in every span and event of every crate, whatever the log
    /// level, and the registry would build them all. It still hears of the
    /// dispatch.
    pub(super) fn layer<S>(
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
pub(super) struct WithTraceIds<F> {
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
    use crate::telemetry::{otel, scoped_subscriber_lock};
    use tracing_subscriber::filter::{EnvFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;

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
        let _one_at_a_time = scoped_subscriber_lock();
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

    /// Fields recorded after the span was made, once or again, reach the
    /// JSON line's `span` object with their last value.
    #[test]
    fn json_span_fields_recorded_later_are_appended() {
        let _one_at_a_time = scoped_subscriber_lock();
        let lines = Lines::default();
        let slot = Arc::new(OnceLock::new());
        let subscriber = tracing_subscriber::registry()
            .with(DispatchSlot::layer(slot.clone()))
            .with(json_logs(slot, {
                let lines = lines.clone();
                move || lines.clone()
            }));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "rpc",
                method = "GetContacts",
                partner = tracing::field::Empty,
                code = tracing::field::Empty,
                quoted = tracing::field::Empty,
            );
            span.record("partner", "acme");
            span.record("code", 5);
            span.record("quoted", "a \"}{\" b\\ \n\t\u{1}");
            span.record("code", 0);
            span.in_scope(|| tracing::info!("inside"));
            let bare = tracing::info_span!(
                "bare",
                otel.name = tracing::field::Empty,
                debugged = tracing::field::Empty
            );
            bare.record("otel.name", format_args!("{}/{}", "S", "M"));
            bare.record("debugged", tracing::field::debug(&Some("x")));
            let typed = tracing::info_span!(parent: &bare, "typed", n = -3_i64, b = true, f = 0.5_f64, u = 7_u64);
            typed.in_scope(|| tracing::info!("typed"));
            bare.in_scope(|| tracing::info!("bare"));
        });
        let text = String::from_utf8(lines.0.lock().expect("lock").clone()).expect("utf-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let [line, typed, bare] = &lines[..] else {
            panic!("three lines expected: {text}")
        };
        assert_eq!(bare["span"]["otel.name"], "S/M", "{bare}");
        assert_eq!(bare["span"]["debugged"], "Some(\"x\")", "{bare}");
        let span = &line["span"];
        assert_eq!(span["name"], "rpc", "{line}");
        assert_eq!(span["method"], "GetContacts", "{line}");
        assert_eq!(span["partner"], "acme", "{line}");
        assert_eq!(span["code"], 0, "{line}");
        assert_eq!(span["quoted"], "a \"}{\" b\\ \n\t\u{1}", "{line}");
        let span = &typed["span"];
        assert_eq!(span["name"], "typed", "{typed}");
        assert_eq!(span["n"], -3, "{typed}");
        assert_eq!(span["b"], true, "{typed}");
        assert_eq!(span["f"], 0.5, "{typed}");
        assert_eq!(span["u"], 7, "{typed}");
    }
}
