//! OpenTelemetry trace export over OTLP/gRPC, configured the standard way
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`, ...), and W3C trace
//! context from incoming gRPC metadata.
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;

const ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// A provider exporting to the endpoint the environment names; `None` when
/// none is set (or `OTEL_SDK_DISABLED=true`): tracing is off by default.
pub fn from_env() -> Result<Option<SdkTracerProvider>, String> {
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let configured = ENDPOINT_VARIABLES
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|e| !e.trim().is_empty()));
    if disabled || !configured {
        return Ok(None);
    }
    provider(None).map(Some)
}

/// A provider exporting to `endpoint`, or to what the environment says when
/// `None`. Must be called inside the Tokio runtime that will run exports.
pub fn provider(endpoint: Option<&str>) -> Result<SdkTracerProvider, String> {
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic();
    if let Some(endpoint) = endpoint {
        exporter = exporter.with_endpoint(endpoint);
    }
    let exporter = exporter
        .build()
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
