//! What integrators take from the repository: the clients `clients/generate`
//! makes from proto/ (Python with grpcio, TypeScript for Connect-ES), whose
//! examples must work against a real server with identity on; the shipped
//! gRPC service config (clients/service-config.json), loaded as is by a
//! stock grpcio client, riding out a database outage; and `partner-contacts
//! descriptor`.
//!
//! Generation runs once per test process, installing its pinned tools only
//! when they are not cached yet. It needs python3, node and npm, and the
//! network the first time; when it fails, these tests fail.
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use partner_contacts::pb;
use partner_contacts::server::ServerSettings;
use partner_contacts::store::StoreOptions;
use partner_contacts::telemetry::Metrics;
use prost::Message;
use serde_json::Value;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::common::{self, Backend, TcpProxy, TestServer};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const SERVICE: &str = "partnerportal.contacts.v1.ContactsService";

fn root() -> &'static Path {
    Path::new(ROOT)
}

static GENERATED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Runs `clients/generate` once for this process, then holds its output
/// directory's lock shared while the caller uses it, so that another
/// process regenerating it (it takes the lock exclusively) waits.
async fn generated() -> File {
    GENERATED
        .get_or_init(|| async {
            let started = Instant::now();
            let out = tokio::task::spawn_blocking(|| {
                Command::new(root().join("clients/generate"))
                    .current_dir(root())
                    .output()
            })
            .await
            .expect("join")
            .expect("run clients/generate");
            assert!(
                out.status.success(),
                "clients/generate failed ({}):\n{}{}",
                out.status,
                text(&out.stdout),
                text(&out.stderr)
            );
            eprintln!("clients/generate took {:?}", started.elapsed());
        })
        .await;
    tokio::task::spawn_blocking(|| {
        let lock = File::open(root().join("target/clients/.lock")).expect("target/clients/.lock");
        lock.lock_shared().expect("lock target/clients");
        lock
    })
    .await
    .expect("join")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A command run from the repository root with no proxy settings (grpcio
/// follows them, even to 127.0.0.1) and no token unless given.
fn command(program: impl AsRef<std::ffi::OsStr>, token: Option<&str>) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(root());
    for var in [
        "http_proxy",
        "https_proxy",
        "grpc_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "PARTNER_CONTACTS_TOKEN",
    ] {
        cmd.env_remove(var);
    }
    if let Some(token) = token {
        cmd.env("PARTNER_CONTACTS_TOKEN", token);
    }
    cmd
}

#[derive(Clone, Copy, Debug)]
enum Client {
    /// clients/python/example.py on the generated grpcio client.
    Python,
    /// clients/typescript/example.ts on the generated protobuf-es code and
    /// Connect-ES, with clients/typescript/service-config.ts.
    TypeScript,
}

/// How to run `client`'s example; the TypeScript one is compiled first,
/// into `scratch`.
fn example(
    client: Client,
    scratch: &Path,
    addr: std::net::SocketAddr,
    partner: &str,
    token: Option<&str>,
) -> Command {
    let args = ["--target", &addr.to_string(), "--partner", partner];
    match client {
        Client::Python => {
            let mut cmd = command(root().join("target/clients/venv/bin/python"), token);
            cmd.arg("clients/python/example.py")
                .args(args)
                .env("PYTHONPATH", root().join("target/clients/python"));
            cmd
        }
        Client::TypeScript => {
            let project = root().join("target/clients/typescript");
            let dist = scratch.join("dist");
            if !dist.exists() {
                let tsc = command(project.join("node_modules/.bin/tsc"), None)
                    .arg("-p")
                    .arg(&project)
                    .arg("--outDir")
                    .arg(&dist)
                    .output()
                    .expect("run tsc");
                assert!(
                    tsc.status.success(),
                    "tsc: {}{}",
                    text(&tsc.stdout),
                    text(&tsc.stderr)
                );
                // Node finds the packages and the module type from here.
                let modules = std::fs::canonicalize(project.join("node_modules")).expect("tools");
                std::os::unix::fs::symlink(modules, scratch.join("node_modules")).expect("link");
                std::fs::write(scratch.join("package.json"), r#"{"type": "module"}"#)
                    .expect("package.json");
            }
            let mut cmd = command("node", token);
            cmd.arg(dist.join("example.js")).args(args);
            cmd
        }
    }
}

async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run the example")
}

/// The example's JSON lines, by step, after checking it succeeded and said
/// what the server answered.
fn check_example_output(client: Client, out: &Output, partner: &str) -> BTreeMap<String, Value> {
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{client:?} example failed: {stderr}");
    let mut steps = BTreeMap::new();
    let mut order = Vec::new();
    for line in text(&out.stdout).lines() {
        let mut v: Value = serde_json::from_str(line).expect("a JSON line");
        let step = v["step"].as_str().expect("step").to_owned();
        v.as_object_mut().expect("object").remove("step");
        order.push(step.clone());
        steps.insert(step, v);
    }
    assert_eq!(
        order,
        [
            "UpdateContacts",
            "UpdateContacts (same request_id)",
            "GetContacts",
            "CheckOnboardingGate",
            "GetContacts (never saved)",
        ],
        "{client:?}: {stderr}"
    );
    let etag = &steps["UpdateContacts"]["etag"];
    assert!(etag.as_str().is_some_and(|e| !e.is_empty()), "{steps:?}");
    assert_eq!(&steps["UpdateContacts (same request_id)"]["etag"], etag);
    let read = &steps["GetContacts"]["contact_info"];
    assert_eq!(read["etag"], *etag);
    assert_eq!(
        read["name"],
        format!("partners/{partner}/environments/sandbox/contactInfo")
    );
    assert_eq!(
        read["technicalEmergencyContacts"][0]["email"],
        format!("pager@{partner}.example")
    );
    assert_eq!(steps["CheckOnboardingGate"]["open"], false);
    assert_eq!(steps["GetContacts (never saved)"]["code"], "NOT_FOUND");
    steps
}

/// What the example saved, as the server has it: one revision (the resent
/// save with the same request_id saved nothing), the example's contacts.
async fn check_saved(server: &TestServer, partner: &str) {
    let token = common::full_access_token("test-reader");
    let name = format!("partners/{partner}/environments/sandbox/contactInfo");
    let mut client = server.client.clone();
    let info = client
        .get_contacts(common::as_caller(
            Some(&token),
            pb::GetContactsRequest {
                name: name.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("the example's save")
        .into_inner();
    let emails = |cs: &[pb::Contact]| cs.iter().map(|c| c.email.clone()).collect::<Vec<_>>();
    assert_eq!(
        emails(&info.technical_emergency_contacts),
        [format!("pager@{partner}.example")]
    );
    assert_eq!(
        emails(&info.technical_non_emergency_contacts),
        [format!("integrations@{partner}.example")]
    );
    let revisions = client
        .list_contact_info_revisions(common::as_caller(
            Some(&token),
            pb::ListContactInfoRevisionsRequest {
                name,
                ..Default::default()
            },
        ))
        .await
        .expect("revisions")
        .into_inner()
        .revisions;
    assert_eq!(revisions.len(), 1, "saved once: {revisions:?}");
}

/// The scopes the examples need, and no more.
fn example_token() -> String {
    common::service_token(
        "example-client",
        &["contacts.read", "contacts.write", "gate.check"],
    )
}

async fn the_example_calls_the_server(client: Client) {
    let _lock = generated().await;
    let scratch = tempfile::tempdir().expect("scratch");
    let server = TestServer::start_with_auth(Backend::Sqlite, common::hs256_authenticator()).await;

    // Identity is on: without a token the first call is refused.
    let out = run(example(client, scratch.path(), server.addr, "acme", None)).await;
    assert!(
        !out.status.success(),
        "{client:?} succeeded without a token"
    );
    assert!(
        text(&out.stderr).contains("UNAUTHENTICATED")
            || text(&out.stderr).contains("unauthenticated"),
        "{client:?}: {}",
        text(&out.stderr)
    );

    let token = example_token();
    let started = Instant::now();
    let out = run(example(
        client,
        scratch.path(),
        server.addr,
        "acme",
        Some(&token),
    ))
    .await;
    eprintln!("{client:?} example took {:?}", started.elapsed());
    check_example_output(client, &out, "acme");
    check_saved(&server, "acme").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_calls_the_server_with_the_generated_client() {
    the_example_calls_the_server(Client::Python).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_example_calls_the_server_with_the_generated_client() {
    the_example_calls_the_server(Client::TypeScript).await;
}

/// `grpc_server_handled_total` for `method` and `code`.
fn handled(metrics: &Metrics, method: &str, code: &str) -> u64 {
    let text = metrics.render().expect("metrics");
    text.lines()
        .filter(|l| l.starts_with("grpc_server_handled_total{"))
        .filter(|l| {
            l.contains(&format!("grpc_method=\"{method}\""))
                && l.contains(&format!("grpc_code=\"{code}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The example, started while PostgreSQL is unreachable (the server answers
/// UNAVAILABLE at once), succeeds once it is back 1.5 s later: the service
/// config's retries carried its calls over the outage.
async fn rides_out_a_database_outage(client: Client) {
    let _lock = generated().await;
    let scratch = tempfile::tempdir().expect("scratch");
    let mut proxy = TcpProxy::start(common::pg_server_addr()).await;
    let options = StoreOptions {
        acquire_timeout: Duration::from_millis(500),
        ..StoreOptions::default()
    };
    let store = common::store_with(Backend::Postgres, options, |url| proxy.route(url)).await;
    let metrics = Arc::new(Metrics::new());
    let server = TestServer::start_configured(
        store,
        ServerSettings {
            auth: Arc::new(common::hs256_authenticator()),
            metrics: Some(metrics.clone()),
            ..common::dev_settings()
        },
    )
    .await;
    let token = example_token();
    // Compiled before the outage, so that the outage times only the calls.
    let cmd = example(client, scratch.path(), server.addr, "acme", Some(&token));

    assert!(
        server
            .await_health(ServingStatus::Serving, Duration::from_secs(10))
            .await,
        "health never reported SERVING"
    );
    proxy.cut();
    assert!(
        server
            .await_health(ServingStatus::NotServing, Duration::from_secs(10))
            .await,
        "health never saw the outage"
    );
    let started = Instant::now();
    let running = tokio::spawn(run(cmd));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.restore().await;
    let out = running.await.expect("join");
    let took = started.elapsed();
    eprintln!("{client:?} example through the outage took {took:?}");

    check_example_output(client, &out, "acme");
    let rendered = metrics.render().expect("metrics");
    let refused = handled(&metrics, "UpdateContacts", "Unavailable");
    assert!(
        refused >= 1,
        "the first save was not refused during the outage, so nothing was retried:\n{rendered}"
    );
    // Two saves succeeded, each once: every refused attempt was retried.
    assert_eq!(handled(&metrics, "UpdateContacts", "OK"), 2, "{rendered}");
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    check_saved(&server, "acme").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_grpcio_client_with_the_service_config_rides_out_a_database_outage() {
    rides_out_a_database_outage(Client::Python).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_with_the_service_config_interceptor_rides_out_a_database_outage() {
    rides_out_a_database_outage(Client::TypeScript).await;
}

// ------------------------------------------------------------ service config

/// Seconds of a protobuf JSON Duration ("8s", "0.5s").
fn seconds(v: &Value) -> f64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a duration: {v}"));
    s.strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a duration: {s}"))
}

fn service_methods() -> Vec<String> {
    let set = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).expect("descriptor");
    set.file
        .iter()
        .filter(|f| f.package() == "partnerportal.contacts.v1")
        .flat_map(|f| &f.service)
        .filter(|s| s.name() == "ContactsService")
        .flat_map(|s| &s.method)
        .map(|m| m.name().to_owned())
        .collect()
}

/// Every method has a deliberate entry: reads and the writes a request_id
/// makes idempotent are retried on UNAVAILABLE, other writes never; the
/// backoff schedule outlasts a few seconds of outage and fits in the
/// timeouts; reads time out sooner than writes; WatchContacts never.
#[test]
fn the_service_config_retries_only_what_is_safe_to_retry() {
    const READS: [&str; 6] = [
        "GetContacts",
        "CheckOnboardingGate",
        "ResolveRecipients",
        "ListContactInfoRevisions",
        "ListPortalUsers",
        "ListEvents",
    ];
    const IDEMPOTENT_WRITES: [&str; 2] = ["UpdateContacts", "CopyContactInfo"];
    const OTHER_WRITES: [&str; 5] = [
        "GrantPortalAccess",
        "UpdatePortalUserRole",
        "RevokePortalAccess",
        "SendVerification",
        "ConfirmContact",
    ];
    let methods = service_methods();
    let classified: BTreeSet<&str> = READS
        .iter()
        .chain(&IDEMPOTENT_WRITES)
        .chain(&OTHER_WRITES)
        .chain(&["WatchContacts"])
        .copied()
        .collect();
    assert_eq!(
        methods.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        classified,
        "a method was added or removed: decide whether clients/service-config.json retries it"
    );

    let text = std::fs::read_to_string(root().join("clients/service-config.json")).expect("read");
    let config: Value = serde_json::from_str(&text).expect("valid JSON");
    let entries = config["methodConfig"].as_array().expect("methodConfig");
    // The entry gRPC applies to a method: the one naming it, else the service's.
    let entry = |method: &str| -> &Value {
        let names =
            |e: &Value, m: Option<&str>| {
                e["name"].as_array().expect("name").iter().any(|n| {
                    n["service"] == SERVICE && n.get("method").and_then(Value::as_str) == m
                })
            };
        entries
            .iter()
            .find(|e| names(e, Some(method)))
            .or_else(|| entries.iter().find(|e| names(e, None)))
            .unwrap_or_else(|| panic!("no method config applies to {method}"))
    };
    for method in &methods {
        let e = entry(method);
        let retried = !OTHER_WRITES.contains(&method.as_str());
        assert_eq!(e.get("retryPolicy").is_some(), retried, "{method}: {e}");
        let timeout = e.get("timeout").map(seconds);
        if method == "WatchContacts" {
            assert_eq!(
                timeout, None,
                "a stream that lives for hours needs no deadline"
            );
        } else if READS.contains(&method.as_str()) {
            assert_eq!(timeout, Some(8.0), "{method}");
        } else {
            assert_eq!(timeout, Some(15.0), "{method}");
        }
        let Some(policy) = e.get("retryPolicy") else {
            continue;
        };
        assert_eq!(
            policy["retryableStatusCodes"],
            serde_json::json!(["UNAVAILABLE"])
        );
        let attempts = policy["maxAttempts"].as_u64().expect("maxAttempts");
        assert!((2..=5).contains(&attempts), "gRPC caps maxAttempts at 5");
        let (initial, max) = (
            seconds(&policy["initialBackoff"]),
            seconds(&policy["maxBackoff"]),
        );
        let multiplier = policy["backoffMultiplier"]
            .as_f64()
            .expect("backoffMultiplier");
        let schedule: f64 = (0..attempts - 1)
            .map(|i| (initial * multiplier.powi(i as i32)).min(max))
            .sum();
        // grpcio (gRPC core) varies each pause by up to 20 %.
        assert!(schedule * 0.8 >= 5.0, "{method}: retries span {schedule} s");
        if let Some(timeout) = timeout {
            assert!(
                schedule * 1.2 < timeout,
                "{method}: the last attempt ({schedule} s) would come after the {timeout} s deadline"
            );
        }
    }
    let throttling = &config["retryThrottling"];
    assert!(throttling["maxTokens"].as_f64().is_some_and(|t| t >= 10.0));
    assert!(throttling["tokenRatio"].as_f64().is_some_and(|r| r > 0.0));
}

// ---------------------------------------------------------------- descriptor

/// `partner-contacts descriptor` prints the descriptor set the binary
/// serves reflection from, and the build put the same bytes beside it.
#[test]
fn the_descriptor_subcommand_prints_the_descriptor_set() {
    let dir = tempfile::tempdir().expect("dir");
    let out = crate::cli::binary(dir.path())
        .arg("descriptor")
        .stdin(Stdio::null())
        .output()
        .expect("run partner-contacts descriptor");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let set =
        prost_types::FileDescriptorSet::decode(out.stdout.as_slice()).expect("a FileDescriptorSet");
    let service = set
        .file
        .iter()
        .filter(|f| f.package() == "partnerportal.contacts.v1")
        .flat_map(|f| &f.service)
        .find(|s| s.name() == "ContactsService")
        .expect("partnerportal.contacts.v1.ContactsService");
    assert!(service.method.iter().any(|m| m.name() == "GetContacts"));
    // Self-contained: every import is in the set too (grpcurl -protoset needs it).
    let files: BTreeSet<&str> = set.file.iter().map(|f| f.name()).collect();
    for f in &set.file {
        for dep in &f.dependency {
            assert!(
                files.contains(dep.as_str()),
                "{} imports {dep}, not in the set",
                f.name()
            );
        }
    }
    assert_eq!(out.stdout, pb::FILE_DESCRIPTOR_SET);

    let beside: PathBuf =
        Path::new(env!("CARGO_BIN_EXE_partner-contacts")).with_file_name("partner-contacts.binpb");
    let written = std::fs::read(&beside).unwrap_or_else(|e| panic!("{}: {e}", beside.display()));
    assert_eq!(written, out.stdout, "{} is stale", beside.display());
}
