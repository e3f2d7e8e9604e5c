//! The client subcommands through the binary against a real server: every
//! exit code of `gate` (open, closed, invalid, unavailable, recovering,
//! refused, other) and its JSON, `get` and `apply` as contacts-as-code (one save per
//! change, dry runs, concurrent edits, round trips in YAML and TOML, errors
//! at the file's field paths), TLS with client certificates, and no database.
//!
//! SQLite only: these check the client and its exit codes; the server's
//! storage is tested on both backends elsewhere.
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use partner_contacts::domain::{GatePolicy, PortalRole};
use partner_contacts::pb;
use partner_contacts::server::ServerSettings;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use serde_json::Value;
use tonic::Code;

use crate::api::{self, Client, PROD, SANDBOX, complete_info, contact, editable, named, put};
use crate::cli::{binary, text};
use crate::common::{self, Backend, TcpProxy, TestServer};

/// What the binary did: its exit code and both streams.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl From<Output> for Ran {
    fn from(out: Output) -> Self {
        Ran {
            code: out.status.code().expect("exited, not killed by a signal"),
            stdout: text(&out.stdout),
            stderr: text(&out.stderr),
        }
    }
}

/// Runs `cmd` off the runtime's workers (the server under test runs on them),
/// with `stdin` as its standard input.
async fn run(mut cmd: Command, stdin: Option<String>) -> Ran {
    tokio::task::spawn_blocking(move || {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().expect("start partner-contacts");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        Ran::from(child.wait_with_output().expect("wait"))
    })
    .await
    .expect("join")
}

/// `partner-contacts SUBCOMMAND --server http://ADDR ...args`, in `dir`.
fn client_cmd(dir: &Path, server: &TestServer, subcommand: &str, args: &[&str]) -> Command {
    let mut cmd = binary(dir);
    cmd.arg(subcommand)
        .arg("--server")
        .arg(format!("http://{}", server.addr))
        .args(args);
    cmd
}

async fn gate(dir: &Path, server: &TestServer, args: &[&str]) -> Ran {
    run(client_cmd(dir, server, "gate", args), None).await
}

async fn apply(dir: &Path, server: &TestServer, file: &Path, args: &[&str]) -> Ran {
    let mut cmd = client_cmd(dir, server, "apply", args);
    cmd.arg("-f").arg(file);
    run(cmd, None).await
}

async fn get_file(dir: &Path, server: &TestServer, name: &str, format: &str) -> Ran {
    run(
        client_cmd(dir, server, "get", &["--name", name, "--output", format]),
        None,
    )
    .await
}

fn write(dir: &Path, file: &str, contents: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {file}: {e}"));
    path
}

async fn revisions(c: &mut Client, name: &str) -> Vec<pb::ContactInfoRevision> {
    c.list_contact_info_revisions(pb::ListContactInfoRevisionsRequest {
        name: name.to_owned(),
        page_size: 1000,
        page_token: String::new(),
    })
    .await
    .expect("ListContactInfoRevisions")
    .into_inner()
    .revisions
}

async fn stored(c: &mut Client, name: &str) -> Result<pb::ContactInfo, tonic::Status> {
    api::get(c, name).await
}

async fn save(c: &mut Client, info: pb::ContactInfo) -> pb::ContactInfo {
    c.update_contacts(put(info))
        .await
        .expect("UpdateContacts")
        .into_inner()
}

/// A sandbox contact info written as a person would: a phone number in a
/// local written form, a language tag in odd case, a time zone alias and
/// days out of order, which the server stores in their canonical forms.
const SANDBOX_YAML: &str = "\
name: partners/acme/environments/sandbox/contactInfo
technical_emergency_contacts:
  - email: pager@acme.example
    display_name: Acme pager
    phone_number: +1 (650) 253-0000
technical_non_emergency_contacts:
  - email: integrations@acme.example
    language_code: EN-us
platform_operational_contacts:
  - email: escalations@acme.example
user_facing_operational_contacts:
  - email: support@acme.example
operational_support:
  windows:
    - time_zone: US/Pacific
      days: [FRIDAY, monday]
      open_time: 08:00
      close_time: 00:00
";

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

// ------------------------------------------------------------------- gate

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_exits_1_while_closed_0_once_open_and_2_for_an_unknown_integration_type() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = api::server(Backend::Sqlite).await;
    let mut c = server.client.clone();

    let closed = gate(dir.path(), &server, &["--name", PROD]).await;
    assert_eq!(closed.code, 1, "{closed:?}");
    assert!(closed.stdout.starts_with("gate CLOSED: "), "{closed:?}");
    assert!(
        closed.stdout.lines().any(|l| l
            == "  alert_contacts: REQUIRED_FIELD_MISSING: alert_contacts is required for \
                integration type reservations-e2e in production"),
        "one line per finding, field: reason: message: {closed:?}"
    );

    save(&mut c, complete_info(PROD)).await;
    let open = gate(
        dir.path(),
        &server,
        &["--partner", "acme", "--environment", "production"],
    )
    .await;
    assert_eq!(open.code, 0, "{open:?}");
    assert_eq!(
        open.stdout,
        "gate OPEN: partners/acme/environments/production/contactInfo (integration type \
         reservations-e2e)\n"
    );
    // merchant_issues_contacts is required by this type only: still open.
    let merchants = gate(
        dir.path(),
        &server,
        &[
            "--name",
            PROD,
            "--integration-type",
            "reservations-e2e-merchants",
        ],
    )
    .await;
    assert_eq!(merchants.code, 0, "{merchants:?}");

    let unknown = gate(
        dir.path(),
        &server,
        &["--name", PROD, "--integration-type", "no-such-type"],
    )
    .await;
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(unknown.stdout.is_empty(), "{unknown:?}");
    assert!(
        unknown
            .stderr
            .contains("partner-contacts gate: INVALID_ARGUMENT: ")
            && unknown.stderr.contains("reservations-e2e-merchants"),
        "names the known types: {unknown:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_json_is_one_documented_object_for_answers_and_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = api::server(Backend::Sqlite).await;
    let mut c = server.client.clone();

    let closed = gate(
        dir.path(),
        &server,
        &["--name", SANDBOX, "--output", "json"],
    )
    .await;
    assert_eq!(closed.code, 1, "{closed:?}");
    let answer = json(&closed.stdout);
    assert_eq!(
        keys(&answer),
        [
            "etag",
            "evaluate_time",
            "findings",
            "integration_type",
            "name",
            "open"
        ]
    );
    assert_eq!(answer["open"], false);
    assert_eq!(answer["name"], SANDBOX);
    assert_eq!(answer["integration_type"], "reservations-e2e");
    assert_eq!(answer["etag"], "");
    let time = answer["evaluate_time"].as_str().expect("a string");
    assert!(
        chrono::DateTime::parse_from_rfc3339(time).is_ok() && time.ends_with('Z'),
        "RFC 3339 UTC: {time}"
    );
    let findings = answer["findings"].as_array().expect("an array");
    let fields: Vec<&str> = findings
        .iter()
        .map(|f| f["field"].as_str().expect("field"))
        .collect();
    assert_eq!(
        fields,
        [
            "technical_emergency_contacts",
            "technical_non_emergency_contacts",
            "platform_operational_contacts",
            "user_facing_operational_contacts",
            "operational_support"
        ]
    );
    for f in findings {
        assert_eq!(keys(f), ["field", "message", "reason"], "{f}");
        assert_eq!(f["reason"], "GATE_FINDING_REASON_REQUIRED_FIELD_MISSING");
        assert!(!f["message"].as_str().expect("message").is_empty());
    }

    let saved = save(&mut c, complete_info(SANDBOX)).await;
    let open = gate(
        dir.path(),
        &server,
        &["--name", SANDBOX, "--output", "json"],
    )
    .await;
    assert_eq!(open.code, 0, "{open:?}");
    let answer = json(&open.stdout);
    assert_eq!(answer["open"], true);
    assert_eq!(answer["etag"], saved.etag.as_str());
    assert_eq!(answer["findings"], serde_json::json!([]));

    let unknown = gate(
        dir.path(),
        &server,
        &[
            "--name",
            SANDBOX,
            "--integration-type",
            "nope",
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(unknown.code, 2, "{unknown:?}");
    let error = json(&unknown.stdout);
    assert_eq!(keys(&error), ["error"]);
    assert_eq!(error["error"]["code"], "INVALID_ARGUMENT");
    assert_eq!(error["error"]["exit_code"], 2);
    assert_eq!(
        error["error"]["field_violations"][0]["field"],
        "integration_type"
    );
    assert!(error["error"]["message"].as_str().is_some());
}

/// A port on which nothing listens (bound, then closed).
async fn closed_port() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    listener.local_addr().expect("addr")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_gives_up_on_an_unreachable_server_with_exit_3_within_its_timeout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let addr = closed_port().await;
    let mut cmd = binary(dir.path());
    cmd.args([
        "gate",
        "--name",
        PROD,
        "--timeout",
        "1.5",
        "--output",
        "json",
    ])
    .arg("--server")
    .arg(format!("http://{addr}"));
    let started = Instant::now();
    let ran = run(cmd, None).await;
    let took = started.elapsed();
    assert_eq!(ran.code, 3, "{ran:?}");
    let error = json(&ran.stdout);
    assert_eq!(error["error"]["code"], "UNAVAILABLE", "{ran:?}");
    assert_eq!(error["error"]["exit_code"], 3);
    // It retried (backoff notices on stderr), for about the whole timeout,
    // and not much longer (process start and exit on top, on a busy machine).
    let retries = ran.stderr.matches("retrying in").count();
    assert!(retries >= 2, "{ran:?}");
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_secs(8),
        "took {took:?}: {ran:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_retries_until_the_server_is_back_within_its_timeout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = api::server(Backend::Sqlite).await;
    save(&mut server.client.clone(), complete_info(PROD)).await;
    let mut proxy = TcpProxy::start(server.addr).await;
    proxy.cut();
    // The proxy's listener closes once its task is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(proxy.addr).await.is_ok() {
        assert!(Instant::now() < deadline, "the proxy still accepts");
        tokio::task::yield_now().await;
    }

    let mut cmd = binary(dir.path());
    cmd.args(["gate", "--name", PROD, "--timeout", "30"])
        .arg("--server")
        .arg(format!("http://{}", proxy.addr))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    let mut child = cmd.spawn().expect("start gate");
    let stderr = child.stderr.take().expect("stderr");
    // Reads stderr as it comes, so the test can act on the first retry.
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let first_retry = tokio::task::spawn_blocking(move || {
        loop {
            match lines_rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) if line.contains("retrying in") => return (line, lines_rx),
                Ok(_) => {}
                Err(e) => panic!("no retry notice on stderr: {e}"),
            }
        }
    })
    .await
    .expect("join");
    assert!(first_retry.0.contains("UNAVAILABLE"), "{}", first_retry.0);

    proxy.restore().await;
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .expect("join");
    reader.join().expect("stderr reader");
    let rest: Vec<String> = first_retry.1.try_iter().collect();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr after the first retry: {rest:?}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout).starts_with("gate OPEN: "));
    // Back on the next attempt: the pauses are at most 2 s (plus jitter).
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_exits_4_for_a_caller_the_server_refuses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start_with_auth(Backend::Sqlite, common::hs256_authenticator()).await;
    let with_env = |token: Option<&str>, args: &[&str]| {
        let mut cmd = client_cmd(dir.path(), &server, "gate", args);
        if let Some(token) = token {
            cmd.env("PARTNER_CONTACTS_TOKEN", token);
        }
        cmd
    };

    // No token at all.
    let anonymous = run(with_env(None, &["--name", PROD]), None).await;
    assert_eq!(anonymous.code, 4, "{anonymous:?}");
    assert!(
        anonymous.stderr.contains("UNAUTHENTICATED"),
        "{anonymous:?}"
    );

    // A service without the gate.check scope.
    let reader = common::service_token("reader", &["contacts.read"]);
    let no_scope = run(with_env(Some(&reader), &["--name", PROD]), None).await;
    assert_eq!(no_scope.code, 4, "{no_scope:?}");
    assert!(
        no_scope.stderr.contains("PERMISSION_DENIED"),
        "{no_scope:?}"
    );

    // A portal user of another partner, in JSON.
    let stranger = common::portal_token("user-9", "other", PortalRole::Administrator);
    let other = run(
        with_env(Some(&stranger), &["--name", PROD, "--output", "json"]),
        None,
    )
    .await;
    assert_eq!(other.code, 4, "{other:?}");
    assert_eq!(json(&other.stdout)["error"]["code"], "PERMISSION_DENIED");

    // The right token, from a file, from a variable of the caller's choosing,
    // and (for --token-file) with the line break an editor leaves.
    let ci = common::service_token("launch-pipeline", &["gate.check"]);
    let token_file = write(dir.path(), "token", &format!("{ci}\n"));
    let mut from_file = client_cmd(dir.path(), &server, "gate", &["--name", PROD]);
    from_file.arg("--token-file").arg(&token_file);
    // The file wins over the default variable.
    from_file.env("PARTNER_CONTACTS_TOKEN", &reader);
    let allowed = run(from_file, None).await;
    assert_eq!(allowed.code, 1, "allowed, and closed: {allowed:?}");
    let mut from_var = client_cmd(
        dir.path(),
        &server,
        "gate",
        &["--name", PROD, "--token-env", "CI_GATE_TOKEN"],
    );
    from_var.env("CI_GATE_TOKEN", &ci);
    let allowed = run(from_var, None).await;
    assert_eq!(allowed.code, 1, "{allowed:?}");
    // Nothing the caller sent is echoed.
    for ran in [&anonymous, &no_scope, &other, &allowed] {
        assert!(!ran.stderr.contains(&reader) && !ran.stdout.contains(&reader));
        assert!(!ran.stderr.contains(&ci) && !ran.stdout.contains(&ci));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_exits_5_when_the_server_fails_otherwise() {
    // A gRPC server that is not ContactsService (here: health only) answers
    // UNIMPLEMENTED: an error no retry or flag fixes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (_reporter, health) = tonic_health::server::health_reporter();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stopped.await;
                },
            ),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = binary(dir.path());
    cmd.args(["gate", "--name", PROD, "--output", "json"])
        .arg("--server")
        .arg(format!("http://{addr}"));
    let ran = run(cmd, None).await;
    assert_eq!(ran.code, 5, "{ran:?}");
    let error = json(&ran.stdout);
    assert_eq!(error["error"]["code"], "UNIMPLEMENTED", "{ran:?}");
    assert_eq!(error["error"]["exit_code"], 5);
    assert!(!ran.stderr.contains("retrying"), "not retried: {ran:?}");
    let _ = stop.send(());
    serving.await.expect("join").expect("health server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_usage_errors_exit_2_and_no_database_is_opened() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start(Backend::Sqlite).await;
    let cases: [(&str, &[&str]); 6] = [
        ("no resource", &["gate"]),
        (
            "partner without environment",
            &["gate", "--partner", "acme"],
        ),
        (
            "unknown environment",
            &["gate", "--partner", "acme", "--environment", "staging"],
        ),
        (
            "both --name and --partner",
            &[
                "gate",
                "--name",
                PROD,
                "--partner",
                "acme",
                "--environment",
                "production",
            ],
        ),
        (
            "not http or https",
            &["gate", "--name", PROD, "--server", "ftp://127.0.0.1:1"],
        ),
        (
            "a token file that is not there",
            &["gate", "--name", PROD, "--token-file", "missing-token"],
        ),
    ];
    for (what, args) in cases {
        let mut cmd = binary(dir.path());
        cmd.args(args);
        let ran = run(cmd, None).await;
        assert_eq!(ran.code, 2, "{what}: {ran:?}");
        assert!(!ran.stderr.is_empty(), "{what}: says why");
    }
    // A TLS flag with a plaintext server.
    let ca = write(dir.path(), "ca.pem", "not used");
    let mut cmd = client_cmd(dir.path(), &server, "gate", &["--name", PROD]);
    cmd.arg("--ca-file").arg(&ca);
    let ran = run(cmd, None).await;
    assert_eq!(ran.code, 2, "{ran:?}");

    // A database URL in the environment that could not be opened changes
    // nothing, and the embedded default's directory is never created.
    let mut cmd = client_cmd(dir.path(), &server, "gate", &["--name", PROD]);
    cmd.env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none");
    let ran = run(cmd, None).await;
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        !dir.path().join("data").exists(),
        "a client subcommand created the embedded database's directory"
    );
}

// ------------------------------------------------------------ get / apply

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_a_file_twice_saves_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start(Backend::Sqlite).await;
    let mut c = server.client.clone();
    let file = write(dir.path(), "contacts.yaml", SANDBOX_YAML);

    let first = apply(dir.path(), &server, &file, &[]).await;
    assert_eq!(first.code, 0, "{first:?}");
    assert!(
        first
            .stdout
            .starts_with(&format!("{SANDBOX}: 5 fields change\n")),
        "{first:?}"
    );
    // The diff shows what the server will store, contact by contact.
    assert!(
        first.stdout.contains(
            "technical_emergency_contacts:\n  - (none)\n  + pager@acme.example \
             display_name=\"Acme pager\" phone_number=\"+16502530000\"\n"
        ),
        "{first:?}"
    );
    assert!(
        first
            .stdout
            .contains("operational_support:\n  - (not provided)\n  + America/Los_Angeles MONDAY,FRIDAY 08:00-24:00\n"),
        "{first:?}"
    );
    let saved = stored(&mut c, SANDBOX).await.expect("saved");
    assert!(
        first
            .stdout
            .ends_with(&format!("saved {SANDBOX}, etag {}\n", saved.etag)),
        "{first:?}"
    );
    assert_eq!(
        saved.technical_non_emergency_contacts[0].language_code,
        "en-US"
    );

    let second = apply(dir.path(), &server, &file, &[]).await;
    assert_eq!(second.code, 0, "{second:?}");
    assert_eq!(second.stdout, format!("{SANDBOX}: no changes\n"));
    let history = revisions(&mut c, SANDBOX).await;
    assert_eq!(history.len(), 1, "one save: {history:?}");
    // The save carried a request_id derived from the content.
    assert!(uuid::Uuid::try_parse(&history[0].request_id).is_ok());
    assert_eq!(
        stored(&mut c, SANDBOX).await.expect("still").etag,
        saved.etag
    );

    // An edit is one more save, of that field only.
    let edited = write(
        dir.path(),
        "contacts.yaml",
        &SANDBOX_YAML.replace("support@acme.example", "help@acme.example"),
    );
    let third = apply(dir.path(), &server, &edited, &[]).await;
    assert_eq!(third.code, 0, "{third:?}");
    assert!(
        third.stdout.contains(
            "user_facing_operational_contacts:\n  - support@acme.example\n  + help@acme.example\n"
        ),
        "{third:?}"
    );
    let history = revisions(&mut c, SANDBOX).await;
    assert_eq!(history.len(), 2);
    assert_eq!(
        history[0].changed_fields,
        ["user_facing_operational_contacts"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_shows_the_changes_and_saves_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start(Backend::Sqlite).await;
    let mut c = server.client.clone();
    let file = write(dir.path(), "contacts.yml", SANDBOX_YAML);

    let dry = apply(dir.path(), &server, &file, &["--dry-run"]).await;
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stdout.contains(": 5 fields change\n"), "{dry:?}");
    assert!(
        dry.stdout
            .ends_with("dry run: validated by the server, nothing saved\n"),
        "{dry:?}"
    );
    api::expect_code(stored(&mut c, SANDBOX).await, Code::NotFound);
    assert!(revisions(&mut c, SANDBOX).await.is_empty());

    // A dry run of an invalid file fails as the real apply would.
    let bad = write(
        dir.path(),
        "bad.yml",
        &SANDBOX_YAML.replace("integrations@acme.example", "integrations"),
    );
    let refused = apply(dir.path(), &server, &bad, &["--dry-run"]).await;
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(revisions(&mut c, SANDBOX).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_saved_between_get_and_apply_is_refused_and_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start(Backend::Sqlite).await;
    let mut c = server.client.clone();
    save(&mut c, complete_info(SANDBOX)).await;

    let got = get_file(dir.path(), &server, SANDBOX, "yaml").await;
    assert_eq!(got.code, 0, "{got:?}");
    let mine = write(
        dir.path(),
        "mine.yaml",
        &got.stdout.replace("dev@example.com", "mine@example.com"),
    );
    // Someone else saves meanwhile.
    let theirs = save(
        &mut c,
        pb::ContactInfo {
            technical_non_emergency_contacts: vec![contact("theirs@example.com")],
            ..complete_info(SANDBOX)
        },
    )
    .await;

    let refused = apply(dir.path(), &server, &mine, &[]).await;
    assert_eq!(refused.code, 6, "{refused:?}");
    assert!(
        refused.stderr.contains("ABORTED") && refused.stderr.contains("saved by someone else"),
        "{refused:?}"
    );
    assert!(!refused.stdout.contains("saved "), "{refused:?}");
    let now = stored(&mut c, SANDBOX).await.expect("stored");
    assert_eq!(now, theirs, "their change is kept");
    assert_eq!(revisions(&mut c, SANDBOX).await.len(), 2);

    // --etag overrides the file's: with the current one, the apply goes through.
    let forced = apply(dir.path(), &server, &mine, &["--etag", &theirs.etag]).await;
    assert_eq!(forced.code, 0, "{forced:?}");
    assert_eq!(
        stored(&mut c, SANDBOX)
            .await
            .expect("stored")
            .technical_non_emergency_contacts,
        vec![contact("mine@example.com")]
    );
    // And a stale --etag is refused like a stale file.
    let stale = apply(dir.path(), &server, &mine, &["--etag", &theirs.etag]).await;
    assert_eq!(stale.code, 0, "nothing left to change: {stale:?}");
    let edited = write(
        dir.path(),
        "mine.yaml",
        &got.stdout.replace("dev@example.com", "third@example.com"),
    );
    let stale = apply(dir.path(), &server, &edited, &["--etag", &theirs.etag]).await;
    assert_eq!(stale.code, 6, "{stale:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_then_apply_round_trips_in_yaml_and_toml_without_saving() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = api::server(Backend::Sqlite).await;
    let mut c = server.client.clone();
    let saved = save(&mut c, complete_info(PROD)).await;

    for (format, file) in [("yaml", "prod.yaml"), ("toml", "prod.toml")] {
        let got = get_file(dir.path(), &server, PROD, format).await;
        assert_eq!(got.code, 0, "{got:?}");
        assert!(
            got.stdout.contains("alert_contacts") && got.stdout.contains(&saved.etag),
            "{format}: {got:?}"
        );
        let path = write(dir.path(), file, &got.stdout);
        let again = apply(dir.path(), &server, &path, &[]).await;
        assert_eq!(again.code, 0, "{format}: {again:?}");
        assert_eq!(again.stdout, format!("{PROD}: no changes\n"), "{format}");

        // Piped: get | apply -f - (with --format for TOML).
        let cmd = client_cmd(
            dir.path(),
            &server,
            "apply",
            &["-f", "-", "--format", format],
        );
        let piped = run(cmd, Some(got.stdout.clone())).await;
        assert_eq!(piped.code, 0, "{format}: {piped:?}");
        assert_eq!(piped.stdout, format!("{PROD}: no changes\n"));
    }
    assert_eq!(revisions(&mut c, PROD).await.len(), 1, "nothing saved");
    assert_eq!(stored(&mut c, PROD).await.expect("stored"), saved);

    // A TOML file written by hand saves like a YAML one.
    let toml = write(
        dir.path(),
        "sandbox.toml",
        "name = \"partners/acme/environments/sandbox/contactInfo\"\n\
         [[technical_emergency_contacts]]\nemail = \"pager@acme.example\"\n\
         [operational_support]\nalways_open = true\n",
    );
    let applied = apply(dir.path(), &server, &toml, &[]).await;
    assert_eq!(applied.code, 0, "{applied:?}");
    let sandbox = stored(&mut c, SANDBOX).await.expect("saved");
    assert_eq!(
        editable(sandbox),
        pb::ContactInfo {
            technical_emergency_contacts: vec![contact("pager@acme.example")],
            operational_support: api::always_open(),
            ..named(SANDBOX)
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_values_are_reported_at_the_files_field_paths() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start(Backend::Sqlite).await;
    let mut c = server.client.clone();
    let file = write(
        dir.path(),
        "bad.yaml",
        &SANDBOX_YAML
            .replace("pager@acme.example", "not-an-email")
            .replace(
                "platform_operational_contacts:",
                "alert_contacts:\n  - email: oncall@acme.example\nplatform_operational_contacts:",
            ),
    );
    let ran = apply(dir.path(), &server, &file, &[]).await;
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(
        ran.stderr
            .contains("\n  technical_emergency_contacts[0].email: "),
        "{ran:?}"
    );
    // Alert contacts exist only in production.
    assert!(ran.stderr.contains("\n  alert_contacts: "), "{ran:?}");
    assert!(
        !ran.stderr.contains("\n  contact_info."),
        "file paths, not request paths: {ran:?}"
    );
    assert!(revisions(&mut c, SANDBOX).await.is_empty());

    // A misspelt field is refused before anything is sent.
    let typo = write(
        dir.path(),
        "typo.yaml",
        &SANDBOX_YAML.replace(
            "technical_non_emergency_contacts",
            "technical_non_emergency",
        ),
    );
    let ran = apply(dir.path(), &server, &typo, &[]).await;
    assert_eq!(ran.code, 2, "{ran:?}");
    assert!(ran.stderr.contains("technical_non_emergency"), "{ran:?}");

    // Nothing saved under that name: get says so with its own code.
    let missing = get_file(dir.path(), &server, SANDBOX, "yaml").await;
    assert_eq!(missing.code, 7, "{missing:?}");
}

// -------------------------------------------------------------------- TLS

/// A certificate authority made for one test, and its leaves (PEM).
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// (certificate, key) signed by this CA.
    fn sign(&self, mut params: CertificateParams, san_uri: Option<&str>) -> (String, String) {
        if let Some(uri) = san_uri {
            params.subject_alt_names = vec![SanType::URI(uri.try_into().expect("IA5 URI"))];
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        (cert.pem(), key.serialize_pem())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_speaks_tls_with_a_client_certificate() {
    const PIPELINE: &str = "spiffe://platform.example/ns/ci/sa/launch";
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let ca = Ca::new();
    let (server_cert, server_key) = ca.sign(
        CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params"),
        None,
    );
    let (client_cert, client_key) = ca.sign(
        CertificateParams::new(Vec::<String>::new()).expect("params"),
        Some(PIPELINE),
    );
    write(d, "server.pem", &server_cert);
    write(d, "server.key", &server_key);
    let ca_file = write(d, "ca.pem", &ca.pem);
    let cert_file = write(d, "client.pem", &client_cert);
    let key_file = write(d, "client.key", &client_key);
    let config = write(
        d,
        "auth.toml",
        &format!(
            "[mtls]\nserver_cert = \"server.pem\"\nserver_key = \"server.key\"\n\
             client_ca = \"ca.pem\"\n[[mtls.identities]]\nspiffe_id = \"{PIPELINE}\"\n\
             scopes = [\"gate.check\"]\n"
        ),
    );
    let cfg = partner_contacts::auth::load(&config).expect("auth config");
    let server = TestServer::start_configured(
        common::store(Backend::Sqlite).await,
        ServerSettings {
            policy: Arc::new(GatePolicy::builtin()),
            auth: Arc::new(
                partner_contacts::auth::Authenticator::from_config(&cfg).expect("authenticator"),
            ),
            tls: partner_contacts::auth::tls_config(&cfg).expect("tls"),
            ..common::dev_settings()
        },
    )
    .await;

    let mut cmd = binary(d);
    cmd.args(["gate", "--name", PROD, "--timeout", "10"])
        .arg("--server")
        .arg(format!("https://{}", server.addr))
        .arg("--ca-file")
        .arg(&ca_file)
        .arg("--client-cert")
        .arg(&cert_file)
        .arg("--client-key")
        .arg(&key_file);
    let ran = run(cmd, None).await;
    // Identified by its certificate alone, allowed, and the gate is closed.
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(ran.stdout.starts_with("gate CLOSED: "), "{ran:?}");
}
