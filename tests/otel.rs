//! Trace export: an in-process OTLP collector receives the spans of real
//! calls. A call's span continues the caller's `traceparent`, carries the
//! method, the partner and the status code, has the store call as a child,
//! and no span carries personal data.
//!
//! A test binary of its own: it installs the process's global subscriber.
#[path = "it/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind};
use partner_contacts::pb;
use partner_contacts::telemetry;
use partner_contacts::telemetry::{LogFormat, LogOptions};

use crate::common::{Backend, TestServer};

#[derive(Default, Clone)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().expect("lock");
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_SPAN_ID: &str = "b7ad6b7169203331";
const CANARY: &str = "canary-7f3a@pii.example";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a any_value::Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text(span: &Span, key: &str) -> Option<String> {
    match attribute(span, key) {
        Some(any_value::Value::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

fn int(span: &Span, key: &str) -> Option<i64> {
    match attribute(span, key) {
        Some(any_value::Value::IntValue(i)) => Some(*i),
        _ => None,
    }
}

fn all_text(values: &[KeyValue]) -> String {
    fn flat(v: &AnyValue) -> String {
        format!("{:?}", v.value)
    }
    values
        .iter()
        .map(|kv| {
            format!(
                "{}={}",
                kv.key,
                kv.value.as_ref().map(flat).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_exported_as_spans_that_continue_the_callers_trace() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let provider = telemetry::otel::provider(
        telemetry::otel::Protocol::Grpc,
        Some(&format!("http://{addr}")),
    )
    .expect("provider");
    let telemetry = telemetry::init(
        &LogOptions {
            filter: "warn".into(),
            format: LogFormat::Text,
        },
        Some(provider),
    )
    .expect("telemetry");
    assert!(telemetry.exporting());

    let server = TestServer::start(Backend::Sqlite).await;
    let mut client = server.client.clone();
    let mut request = tonic::Request::new(pb::UpdateContactsRequest {
        contact_info: Some(pb::ContactInfo {
            name: "partners/acme/environments/sandbox/contactInfo".into(),
            technical_emergency_contacts: vec![pb::Contact {
                email: CANARY.into(),
                display_name: "Canary Person".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["technical_emergency_contacts".into()],
        }),
        ..Default::default()
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01")
            .parse()
            .expect("header"),
    );
    client.update_contacts(request).await.expect("save");
    // No traceparent: a trace of its own. NOT_FOUND: a caller's error.
    client
        .get_contacts(pb::GetContactsRequest {
            name: "partners/other/environments/production/contactInfo".into(),
            ..Default::default()
        })
        .await
        .expect_err("nothing saved there");
    drop(server);
    // Spans end when the response body is done; give them a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    telemetry.shutdown();

    let spans = collector.spans.lock().expect("lock").clone();
    let update = spans
        .iter()
        .find(|s| s.name == "partnerportal.contacts.v1.ContactsService/UpdateContacts")
        .unwrap_or_else(|| panic!("no UpdateContacts span among {:?}", names(&spans)));
    assert_eq!(
        hex(&update.trace_id),
        TRACE_ID,
        "continues the caller's trace"
    );
    assert_eq!(hex(&update.parent_span_id), PARENT_SPAN_ID);
    assert_eq!(update.kind, SpanKind::Server as i32);
    assert_eq!(text(update, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(
        text(update, "rpc.method").as_deref(),
        Some("UpdateContacts")
    );
    assert_eq!(text(update, "partner").as_deref(), Some("acme"));
    assert_eq!(int(update, "rpc.grpc.status_code"), Some(0));

    // The store call (`save`, which UpdateContacts calls) is a child span
    // with the partner.
    let store = spans
        .iter()
        .find(|s| s.name == "save" && s.parent_span_id == update.span_id)
        .unwrap_or_else(|| panic!("no store span under the call among {:?}", names(&spans)));
    assert_eq!(store.trace_id, update.trace_id);
    assert_eq!(text(store, "partner").as_deref(), Some("acme"));

    let get = spans
        .iter()
        .find(|s| s.name == "partnerportal.contacts.v1.ContactsService/GetContacts")
        .unwrap_or_else(|| panic!("no GetContacts span among {:?}", names(&spans)));
    assert_ne!(hex(&get.trace_id), TRACE_ID);
    assert!(get.parent_span_id.is_empty(), "a root span");
    assert_eq!(int(get, "rpc.grpc.status_code"), Some(5));
    assert_eq!(text(get, "partner").as_deref(), Some("other"));

    for span in &spans {
        let everything = format!(
            "{} {} {:?}",
            span.name,
            all_text(&span.attributes),
            span.events
                .iter()
                .map(|e| format!("{} {}", e.name, all_text(&e.attributes)))
                .collect::<Vec<_>>()
        );
        assert!(
            !everything.contains("canary") && !everything.contains("Canary"),
            "personal data in span {}: {everything}",
            span.name
        );
    }
}

fn names(spans: &[Span]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}
