//! The binary's log and trace settings, as an operator sets them: JSON lines
//! carry `trace_id` and `span_id` at the top level (the exported span's, the
//! caller's trace), RUST_LOG is read and our own variable wins over it, and
//! `OTEL_EXPORTER_OTLP_PROTOCOL` picks OTLP over HTTP/protobuf (received by
//! an in-process collector at `/v1/traces`) or refuses what it cannot send.
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use partner_contacts::pb;
use partner_contacts::pb::contacts_service_client::ContactsServiceClient;
use prost::Message;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_partner-contacts");
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";
const GET: &str = "partnerportal.contacts.v1.ContactsService/GetContacts";

/// The binary in `dir` with its own SQLite database, and none of the
/// log, trace or service settings of the test run's environment.
fn binary(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("PARTNER_CONTACTS_")
            || key.starts_with("OTEL_")
            || key == "DATABASE_URL"
            || key == "RUST_LOG"
        {
            cmd.env_remove(key);
        }
    }
    cmd.env(
        "DATABASE_URL",
        format!("sqlite:{}", dir.join("contacts.sqlite3").display()),
    );
    cmd
}

/// A server started from the binary, its stderr collected line by line.
struct Running {
    child: Child,
    addr: String,
    stderr: Option<JoinHandle<Vec<String>>>,
}

impl Running {
    fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stderr = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .collect()
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut running = Self {
            child,
            addr: String::new(),
            stderr: Some(stderr),
        };
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no listening line: {:?}", running.stop()));
        running.addr = line
            .strip_prefix("partner-contacts listening on ")
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}: {:?}", running.stop()))
            .to_owned();
        running
    }

    /// One GetContacts call (NOT_FOUND: nothing is saved), with a
    /// `traceparent` when `traced`.
    async fn get(&self, traced: bool) {
        let mut client = ContactsServiceClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect");
        let mut request = tonic::Request::new(pb::GetContactsRequest {
            name: "partners/acme/environments/production/contactInfo".into(),
            ..Default::default()
        });
        if traced {
            request.metadata_mut().insert(
                "traceparent",
                format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01")
                    .parse()
                    .expect("header"),
            );
        }
        let status = client.get_contacts(request).await.expect_err("not saved");
        assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    }

    /// SIGTERM, as Kubernetes stops it (buffered spans are flushed), then
    /// the lines it wrote to stderr.
    fn stop(&mut self) -> Vec<String> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every stderr line as JSON: with `--log-format json` there is nothing else.
fn json_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The lines of the RPC's "call finished" event (debug level).
fn call_finished(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|l| l["message"] == "call finished")
        .collect()
}

fn is_hex(value: &Value, len: usize) -> bool {
    value.as_str().is_some_and(|s| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && s.bytes().any(|b| b != b'0')
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OTLP/HTTP collector: what it received, and at which path and with
/// which content type.
#[derive(Default, Clone)]
struct HttpCollector {
    spans: Arc<Mutex<Vec<Span>>>,
    requests: Arc<Mutex<Vec<(String, String)>>>,
}

async fn export(
    State(collector): State<HttpCollector>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], Vec<u8>) {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    collector
        .requests
        .lock()
        .expect("lock")
        .push((uri.path().to_owned(), content_type));
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain")],
            b"not an ExportTraceServiceRequest".to_vec(),
        );
    };
    let mut spans = collector.spans.lock().expect("lock");
    for resource in request.resource_spans {
        for scope in resource.scope_spans {
            spans.extend(scope.spans);
        }
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_export_and_json_lines_share_the_span_ids() {
    let collector = HttpCollector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let collector_addr = listener.local_addr().expect("addr");
    let app = axum::Router::new()
        .fallback(export)
        .with_state(collector.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = binary(dir.path());
    // The general endpoint: the exporter appends /v1/traces to it. RUST_LOG
    // alone asks for the debug line each call ends with.
    cmd.env(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("http://{collector_addr}"),
    )
    .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    .env("RUST_LOG", "partner_contacts=debug,info");
    let mut server = Running::start(cmd);
    server.get(true).await;
    server.get(false).await;
    let lines = json_lines(&server.stop());

    let requests = collector.requests.lock().expect("lock").clone();
    assert!(!requests.is_empty(), "nothing exported; stderr: {lines:?}");
    for (path, content_type) in &requests {
        assert_eq!(path, "/v1/traces");
        assert_eq!(content_type, "application/x-protobuf");
    }
    let spans = collector.spans.lock().expect("lock").clone();
    let calls: Vec<&Span> = spans.iter().filter(|s| s.name == GET).collect();
    assert_eq!(
        calls.len(),
        2,
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let traced = calls
        .iter()
        .find(|s| hex(&s.trace_id) == TRACE_ID)
        .expect("the call with a traceparent continues its trace");
    assert_eq!(hex(&traced.parent_span_id), PARENT_SPAN_ID);
    let untraced = calls
        .iter()
        .find(|s| hex(&s.trace_id) != TRACE_ID)
        .expect("the other call has a trace of its own");

    // Each call's line carries its exported span's ids, at the top level,
    // beside the usual fields and the call's span nested under `span`.
    let finished = call_finished(&lines);
    assert_eq!(finished.len(), 2, "{lines:?}");
    for span in [traced, untraced] {
        let line = finished
            .iter()
            .find(|l| l["span_id"] == hex(&span.span_id))
            .unwrap_or_else(|| panic!("no line with span {}: {finished:?}", hex(&span.span_id)));
        assert_eq!(line["trace_id"], hex(&span.trace_id), "{line}");
        assert_eq!(line["level"], "DEBUG", "{line}");
        assert_eq!(line["span"]["rpc.method"], "GetContacts", "{line}");
        assert!(
            line["timestamp"].is_string() && line["target"].is_string(),
            "{line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_carry_ids_without_an_exporter() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = binary(dir.path());
    cmd.args(["--log-level", "partner_contacts=debug,info"]);
    let mut server = Running::start(cmd);
    server.get(true).await;
    server.get(false).await;
    let lines = json_lines(&server.stop());
    let finished = call_finished(&lines);
    assert_eq!(finished.len(), 2, "{lines:?}");
    for line in &finished {
        assert!(
            is_hex(&line["trace_id"], 32) && is_hex(&line["span_id"], 16),
            "{line}"
        );
        // The server's own span: a child of the caller's, not the caller's.
        assert_ne!(line["span_id"], PARENT_SPAN_ID, "{line}");
    }
    assert!(
        finished.iter().any(|l| l["trace_id"] == TRACE_ID),
        "the caller's trace: {finished:?}"
    );
    assert!(
        finished.iter().any(|l| l["trace_id"] != TRACE_ID),
        "a trace of its own without traceparent: {finished:?}"
    );
    // Lines outside any call have no ids.
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "INFO" && l.get("trace_id").is_none()),
        "{lines:?}"
    );
}

/// RUST_LOG is the filter when nothing else is set; PARTNER_CONTACTS_LOG
/// (like `--log-level`) wins over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_is_read_and_our_own_variable_wins() {
    for (ours, expect_debug) in [(None, true), (Some("info"), false)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = binary(dir.path());
        cmd.env("RUST_LOG", "partner_contacts=debug,info");
        if let Some(level) = ours {
            cmd.env("PARTNER_CONTACTS_LOG", level);
        }
        let mut server = Running::start(cmd);
        server.get(false).await;
        let lines = json_lines(&server.stop());
        assert!(
            lines.iter().any(|l| l["level"] == "INFO"),
            "the log is on: {lines:?}"
        );
        assert_eq!(
            !call_finished(&lines).is_empty(),
            expect_debug,
            "PARTNER_CONTACTS_LOG={ours:?}: {lines:?}"
        );
    }
}

/// A protocol the server cannot speak, or an https:// collector over
/// http/protobuf (sent without TLS), stops it at start, naming the variable.
#[test]
fn unusable_otlp_settings_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        (
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc-web"),
            ],
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=\"grpc-web\" is not an OTLP protocol; use grpc or http/protobuf",
        ),
        (
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ],
            "OTEL_EXPORTER_OTLP_PROTOCOL=http/json is not supported",
        ),
        (
            vec![
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "https://collector.example:4318/v1/traces",
                ),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ],
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT names an https:// collector",
        ),
    ];
    for (vars, message) in cases {
        let mut cmd = binary(dir.path());
        cmd.args(["--listen", "127.0.0.1:0"])
            .envs(vars.iter().copied());
        let out = cmd.output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{vars:?} started");
        assert!(stderr.contains(message), "{vars:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{vars:?} listened");
    }
}
