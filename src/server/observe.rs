//! One span and one set of metrics per ContactsService call: the span
//! continues the caller's W3C trace (`traceparent`), carries the method, the
//! partner and the gRPC status code (never personal data), and gives every
//! log line of the call its trace id.
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use opentelemetry::trace::TraceContextExt;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Bytes, Service, http};
use tonic::server::NamedService;
use tonic::{Code, Status};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::telemetry::Metrics;
use crate::telemetry::metrics::{CallKind, code_name};

/// The methods of ContactsService and their gRPC type: a metric label may
/// only take one of these, whatever path a caller sends.
const METHODS: &[(&str, &str)] = &[
    ("GetContacts", CallKind::UNARY),
    ("UpdateContacts", CallKind::UNARY),
    ("CopyContactInfo", CallKind::UNARY),
    ("CheckOnboardingGate", CallKind::UNARY),
    ("WatchContacts", CallKind::SERVER_STREAM),
    ("ResolveRecipients", CallKind::UNARY),
    ("ListContactInfoRevisions", CallKind::UNARY),
    ("ListPortalUsers", CallKind::UNARY),
    ("GrantPortalAccess", CallKind::UNARY),
    ("UpdatePortalUserRole", CallKind::UNARY),
    ("RevokePortalAccess", CallKind::UNARY),
    ("ListEvents", CallKind::UNARY),
    ("SendVerification", CallKind::UNARY),
    ("ConfirmContact", CallKind::UNARY),
];

/// The method's name and gRPC type; `unknown` (unary, as tonic answers
/// it) for a path the service does not have.
fn method_of(path: &str) -> (&'static str, &'static str) {
    // By byte: `rsplit` with a char pattern cost more than the lookup.
    let name = path
        .as_bytes()
        .iter()
        .rposition(|&b| b == b'/')
        .map_or(path, |slash| &path[slash + 1..]);
    METHODS
        .iter()
        .find(|(m, _)| *m == name)
        .copied()
        .unwrap_or(("unknown", CallKind::UNARY))
}

/// Counts the gRPC messages in a body's bytes, however its data frames cut
/// them: each message is a 5-byte prefix (a flag, then its length, big
/// endian) and that many bytes.
#[derive(Debug, Default)]
struct Framing {
    /// Bytes of the current prefix seen (0 to 4).
    prefix: u8,
    length: u32,
    /// Bytes of the current message still to come.
    left: u64,
    complete: u64,
}

impl Framing {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.left > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                self.left -= n as u64;
                data = &data[n..];
                if self.left == 0 {
                    self.complete += 1;
                }
                continue;
            }
            let byte = data[0];
            data = &data[1..];
            if self.prefix > 0 {
                self.length = (self.length << 8) | u32::from(byte);
            }
            self.prefix += 1;
            if self.prefix == 5 {
                self.left = u64::from(self.length);
                (self.prefix, self.length) = (0, 0);
                if self.left == 0 {
                    self.complete += 1;
                }
            }
        }
    }
}

/// A request body that counts the messages passing through it.
struct CountedRequest {
    inner: Body,
    framing: Framing,
    received: Arc<AtomicU64>,
}

impl http_body::Body for CountedRequest {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let this = &mut *self;
            this.framing.feed(data);
            this.received
                .store(this.framing.complete, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Server-side codes that mean the service failed (OpenTelemetry's rule
/// for gRPC servers); the others are the caller's.
fn is_server_error(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

#[derive(Debug, Clone)]
pub struct Observed<S> {
    inner: S,
    metrics: Option<Arc<Metrics>>,
}

impl<S> Observed<S> {
    pub fn new(inner: S, metrics: Option<Arc<Metrics>>) -> Self {
        Self { inner, metrics }
    }
}

impl<S: NamedService> NamedService for Observed<S> {
    const NAME: &'static str = S::NAME;
}

/// The call's trace id: the caller's, the exporter's when it made a new
/// trace, or a fresh random one so that logs can still be grouped.
fn trace_id(span: &tracing::Span, caller: &opentelemetry::Context) -> String {
    for cx in [span.context(), caller.clone()] {
        let id = cx.span().span_context().trace_id();
        if id != opentelemetry::trace::TraceId::INVALID {
            return id.to_string();
        }
    }
    uuid::Uuid::new_v4().simple().to_string()
}

impl<S> Service<http::Request<Body>> for Observed<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + NamedService
        + Send
        + 'static,
    S::Future: Send + Unpin + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Observing<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let (method, grpc_type) = method_of(request.uri().path());
        let span = tracing::info_span!(
            "rpc",
            otel.name = %format_args!("{}/{method}", S::NAME),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = S::NAME,
            rpc.method = method,
            rpc.grpc.status_code = tracing::field::Empty,
            partner = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        // Nothing would record the call (a quiet log level, no exporter, no
        // metrics): it passes through as it came, and costs nothing more.
        if span.is_disabled() && self.metrics.is_none() {
            return Observing::Through(self.inner.call(request));
        }
        if !span.is_disabled() {
            let caller = crate::telemetry::otel::caller_context(request.headers());
            // Without an exporter there is no OpenTelemetry layer and this
            // does nothing; the trace id below still follows the caller's.
            let _ = span.set_parent(caller.clone());
            span.record("trace_id", trace_id(&span, &caller).as_str());
        }
        let metrics = self.metrics.clone();
        let kind = CallKind {
            grpc_service: S::NAME,
            grpc_method: method,
            grpc_type,
        };
        let received = Arc::new(AtomicU64::new(0));
        let mut request = request;
        if let Some(m) = &metrics {
            m.call_started(kind);
            let counted = received.clone();
            request = request.map(|inner| {
                Body::new(CountedRequest {
                    inner,
                    framing: Framing::default(),
                    received: counted,
                })
            });
        }
        // Made before the call starts: if the caller goes away first and
        // the future is dropped, its Drop still counts the call (CANCELLED).
        let finish = Finish {
            span: span.clone(),
            metrics,
            kind,
            started: Instant::now(),
            code: None,
            received,
            sent: Framing::default(),
        };
        let served = self.inner.call(request).instrument(span);
        Observing::Watched(Box::pin(async move {
            let mut finish = finish;
            let Ok(response) = served.await;
            // A trailers-only response (every error of ours) has its status
            // in the headers; otherwise it comes in the body's trailers.
            match response
                .headers()
                .get(super::GRPC_STATUS)
                .map(|v| Code::from_bytes(v.as_bytes()))
            {
                Some(code) => {
                    finish.code = Some(code);
                    Ok(response)
                }
                None => Ok(response.map(|body| {
                    Body::new(ObservedBody {
                        inner: body,
                        finish,
                    })
                })),
            }
        }))
    }
}

/// A call's future: as the inner service made it when nothing observes the
/// call, else wrapped to record it.
pub enum Observing<F> {
    Through(F),
    Watched(BoxFuture<http::Response<Body>, Infallible>),
}

impl<F> std::future::Future for Observing<F>
where
    F: std::future::Future<Output = Result<http::Response<Body>, Infallible>> + Unpin,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Through(f) => Pin::new(f).poll(cx),
            Self::Watched(f) => f.as_mut().poll(cx),
        }
    }
}

/// Records the call once, when the last part of it (the response future or
/// the response body) is dropped: with the code seen, or CANCELLED when the
/// caller went away before one was sent.
struct Finish {
    span: tracing::Span,
    metrics: Option<Arc<Metrics>>,
    kind: CallKind,
    started: Instant,
    code: Option<Code>,
    received: Arc<AtomicU64>,
    sent: Framing,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let code = self.code.unwrap_or(Code::Cancelled);
        self.span.record("rpc.grpc.status_code", code as i32);
        if is_server_error(code) {
            self.span.record("otel.status_code", "ERROR");
        }
        if let Some(m) = &self.metrics {
            m.call_finished(
                self.kind,
                code,
                self.started.elapsed(),
                self.received.load(Ordering::Relaxed),
                self.sent.complete,
            );
        }
        tracing::debug!(parent: &self.span, code = code_name(code), "call finished");
    }
}

/// A response body that notes the call's status when its trailers pass.
struct ObservedBody {
    inner: Body,
    finish: Finish,
}

impl http_body::Body for ObservedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.finish.sent.feed(data);
                }
                if let Some(trailers) = frame.trailers_ref() {
                    self.finish.code = Some(
                        trailers
                            .get(super::GRPC_STATUS)
                            .map_or(Code::Unknown, |v| Code::from_bytes(v.as_bytes())),
                    );
                }
            }
            Poll::Ready(Some(Err(status))) => self.finish.code = Some(status.code()),
            // Ended without trailers: nothing said it went well.
            Poll::Ready(None) if self.finish.code.is_none() => {
                self.finish.code = Some(Code::Unknown);
            }
            Poll::Ready(None) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every method of the service has its label, and nothing else does: a
    /// new RPC left out here would be measured as `unknown`.
    #[test]
    fn the_method_labels_are_the_services_methods() {
        use prost::Message;
        let set = prost_types::FileDescriptorSet::decode(crate::pb::FILE_DESCRIPTOR_SET)
            .expect("descriptor set");
        let mut declared: Vec<&str> = set
            .file
            .iter()
            .flat_map(|f| &f.service)
            .filter(|s| s.name() == "ContactsService")
            .flat_map(|s| &s.method)
            .map(|m| m.name())
            .collect();
        let mut labels: Vec<&str> = METHODS.iter().map(|(m, _)| *m).collect();
        declared.sort_unstable();
        labels.sort_unstable();
        assert_eq!(labels, declared);
        // And each has the type the descriptor gives it.
        for method in set
            .file
            .iter()
            .flat_map(|f| &f.service)
            .filter(|s| s.name() == "ContactsService")
            .flat_map(|s| &s.method)
        {
            let want = match (method.client_streaming(), method.server_streaming()) {
                (false, false) => CallKind::UNARY,
                (false, true) => CallKind::SERVER_STREAM,
                other => panic!(
                    "{}: a type this list does not know: {other:?}",
                    method.name()
                ),
            };
            assert_eq!(method_of(&format!("/x/{}", method.name())).1, want);
        }
    }

    #[test]
    fn metric_labels_only_take_known_methods() {
        assert_eq!(
            method_of("/partnerportal.contacts.v1.ContactsService/GetContacts"),
            ("GetContacts", "unary")
        );
        assert_eq!(
            method_of("/partnerportal.contacts.v1.ContactsService/WatchContacts"),
            ("WatchContacts", "server_stream")
        );
        assert_eq!(
            method_of("/partnerportal.contacts.v1.ContactsService/DropTables"),
            ("unknown", "unary")
        );
        assert_eq!(method_of("").0, "unknown");
    }

    /// Messages are counted whole, however the bytes are cut into frames.
    #[test]
    fn messages_are_counted_across_frame_boundaries() {
        let message = |len: usize| {
            let mut m = vec![0u8];
            m.extend_from_slice(&u32::try_from(len).expect("small").to_be_bytes());
            m.extend(std::iter::repeat_n(7u8, len));
            m
        };
        let mut bytes = message(3);
        bytes.extend(message(0));
        bytes.extend(message(300));
        for cut in [1, 2, 4, 5, 6, 64, bytes.len()] {
            let mut framing = Framing::default();
            for chunk in bytes.chunks(cut) {
                framing.feed(chunk);
            }
            assert_eq!(framing.complete, 3, "cut every {cut} bytes");
        }
        let mut half = Framing::default();
        half.feed(&message(10)[..8]);
        assert_eq!(half.complete, 0, "a message is counted once all of it came");
    }

    /// Answers every call OK, as a route would.
    #[derive(Clone)]
    struct Ok200;

    impl NamedService for Ok200 {
        const NAME: &'static str = "test.Service";
    }

    impl Service<http::Request<Body>> for Ok200 {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<Body>) -> Self::Future {
            std::future::ready(Ok(http::Response::new(Body::default())))
        }
    }

    fn call(
        metrics: Option<Arc<Metrics>>,
    ) -> Observing<std::future::Ready<Result<http::Response<Body>, Infallible>>> {
        let request = http::Request::builder()
            .uri("/partnerportal.contacts.v1.ContactsService/GetContacts")
            .body(Body::default())
            .expect("a valid request");
        Observed::new(Ok200, metrics).call(request)
    }

    #[tokio::test]
    async fn calls_pass_through_only_when_nothing_records_them() {
        // No subscriber here (the span is disabled) and no metrics.
        assert!(matches!(call(None), Observing::Through(_)));
        let metrics = Arc::new(Metrics::new());
        let watched = call(Some(metrics.clone()));
        assert!(matches!(watched, Observing::Watched(_)));
        let Ok(response) = watched.await;
        // Dropped before its end: the caller went away, and so it is counted.
        drop(response);
        let text = metrics.render().expect("metrics render");
        assert!(
            text.contains(
                "grpc_server_handled_total{grpc_service=\"test.Service\",grpc_method=\"GetContacts\",grpc_type=\"unary\",grpc_code=\"Canceled\"} 1"
            ),
            "{text}"
        );
    }
}
