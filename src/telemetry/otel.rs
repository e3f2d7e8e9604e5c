//! OpenTelemetry trace export over OTLP, gRPC or HTTP/protobuf, configured
//! the standard way (`OTEL_EXPORTER_OTLP_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL`,
//! `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_SERVICE_NAME`, ...), and W3C trace context from incoming gRPC
//! metadata.
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

/// The signal's own variable first: it wins, as the specification says.
const ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];
const PROTOCOL_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
];

/// How spans travel to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (`grpc`), port 4317 by convention.
    Grpc,
    /// OTLP/HTTP with protobuf bodies (`http/protobuf`), port 4318 by
    /// convention; the exporter appends `/v1/traces` to
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, not to `..._TRACES_ENDPOINT`.
    HttpProtobuf,
}

impl Protocol {
    /// The protocol the environment names, `grpc` when it names none.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// `grpc` by default, where the specification says `http/protobuf`:
    /// deployments configured before HTTP was offered name a gRPC port
    /// without naming the protocol. Values are compared ignoring case, as
    /// the exporter itself does.
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        for name in PROTOCOL_VARIABLES {
            let Some(value) = lookup(name) else {
                continue;
            };
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            return match value.to_ascii_lowercase().as_str() {
                "grpc" => Ok(Self::Grpc),
                "http/protobuf" => Ok(Self::HttpProtobuf),
                "http/json" => Err(format!(
                    "{name}=http/json is not supported (OTLP/HTTP with JSON bodies is not built in); \
                     use grpc or http/protobuf"
                )),
                _ => Err(format!(
                    "{name}={value:?} is not an OTLP protocol; use grpc or http/protobuf"
                )),
            };
        }
        Ok(Self::Grpc)
    }
}

/// A provider exporting to the endpoint the environment names, over the
/// protocol it names; `None` when no endpoint is set (or
/// `OTEL_SDK_DISABLED=true`): tracing is off by default. A protocol variable
/// holding something else than `grpc` or `http/protobuf` is an error even
/// then, so that a typo is found before it matters.
pub fn from_env() -> Result<Option<SdkTracerProvider>, String> {
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    if disabled {
        return Ok(None);
    }
    let protocol = Protocol::from_env()?;
    let endpoint = ENDPOINT_VARIABLES.iter().find_map(|name| {
        std::env::var(name)
            .ok()
            .filter(|e| !e.trim().is_empty())
            .map(|e| (*name, e))
    });
    let Some((name, endpoint)) = endpoint else {
        return Ok(None);
    };
    // The HTTP client is hyper's plain connector: without this check an
    // https:// collector would fail every export, silently, at run time.
    // (The gRPC exporter refuses https:// at build for the same reason.)
    if protocol == Protocol::HttpProtobuf
        && endpoint
            .trim_start()
            .get(..6)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https:"))
    {
        return Err(format!(
            "{name} names an https:// collector, but OTLP over http/protobuf is sent without TLS; \
             use an http:// endpoint (e.g. a collector on the node or in the pod)"
        ));
    }
    provider(protocol, None).map(Some)
}

/// A provider exporting over `protocol` to `endpoint` (used as given: no
/// `/v1/traces` is appended), or to what the environment says when `None`.
/// Must be called inside the Tokio runtime that will run exports.
pub fn provider(protocol: Protocol, endpoint: Option<&str>) -> Result<SdkTracerProvider, String> {
    let exporter = match protocol {
        Protocol::Grpc => {
            let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic();
            if let Some(endpoint) = endpoint {
                exporter = exporter.with_endpoint(endpoint);
            }
            exporter.build()
        }
        // Named explicitly: left to itself, the exporter would read the
        // protocol variables again and could pick JSON.
        Protocol::HttpProtobuf => {
            let mut exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
            if let Some(endpoint) = endpoint {
                exporter = exporter.with_endpoint(endpoint);
            }
            exporter.build()
        }
    }
    .map_err(|e| format!("OTLP trace exporter: {e}"))?;
    let batches =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win when set.
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("partner-contacts");
    }
    Ok(SdkTracerProvider::builder()
        .with_span_processor(batches)
        .with_resource(resource.build())
        .build())
}

/// A provider that samples and exports nothing, for its ids alone: with it
/// each span still gets a span id and a trace id (the caller's, or a new
/// one), which JSON log lines carry when no collector is configured.
pub fn ids_only() -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_sampler(Sampler::AlwaysOff)
        .build()
}

struct Headers<'a>(&'a tonic::codegen::http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The caller's trace context (`traceparent`, `tracestate`), if it sent one.
pub fn caller_context(headers: &tonic::codegen::http::HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&Headers(headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protocol(vars: &[(&str, &str)]) -> Result<Protocol, String> {
        Protocol::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn the_traces_protocol_variable_wins_and_grpc_is_the_default() {
        assert_eq!(protocol(&[]), Ok(Protocol::Grpc));
        assert_eq!(
            protocol(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]),
            Ok(Protocol::HttpProtobuf)
        );
        assert_eq!(
            protocol(&[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ]),
            Ok(Protocol::Grpc)
        );
        // Empty is unset, as for the endpoint.
        assert_eq!(
            protocol(&[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "HTTP/Protobuf"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", " "),
            ]),
            Ok(Protocol::HttpProtobuf)
        );
    }

    #[test]
    fn other_protocols_are_refused_by_variable_with_the_allowed_values() {
        let err = protocol(&[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http")])
            .expect_err("not a protocol");
        assert!(
            err.contains("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                && err.contains("grpc or http/protobuf"),
            "{err}"
        );
        let err =
            protocol(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]).expect_err("not built in");
        assert!(
            err.contains("OTEL_EXPORTER_OTLP_PROTOCOL=http/json is not supported"),
            "{err}"
        );
    }
}
