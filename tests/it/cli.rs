//! The `partner-contacts` binary: the `token` subcommand mints tokens the
//! server accepts, the server refuses to expose development mode beyond
//! loopback, and serves with an auth config.
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use partner_contacts::auth::{self, Authenticator};
use partner_contacts::domain::{PartnerId, PortalRole, Principal, Scope};
use partner_contacts::pb::{self, contacts_service_client::ContactsServiceClient};
use tonic::Code;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;

use crate::api::{PROD, as_caller, bearer, contact, expect_code, named, prod_of, put};
use crate::common::{self, Backend, TestServer};
use crate::on_both_backends;

const BIN: &str = env!("CARGO_BIN_EXE_partner-contacts");

/// The binary, run in `dir`, with none of its settings inherited from the
/// environment of the test run. Also used by the hostile-input suite.
pub(crate) fn binary(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("PARTNER_CONTACTS_") || key == "DATABASE_URL" || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// An auth config with the test HS256 secret, written to `dir/auth.toml`.
pub(crate) fn write_auth_config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("auth.toml");
    std::fs::write(
        &path,
        format!(
            "[jwt]\nissuer = \"{}\"\naudience = \"{}\"\nhs256_secret = \"{}\"\n",
            common::TEST_ISSUER,
            common::TEST_AUDIENCE,
            common::TEST_HS256_SECRET
        ),
    )
    .expect("write auth config");
    path
}

pub(crate) fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run partner-contacts")
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `partner-contacts token ...args`: the printed token, after checking the
/// call succeeded and printed exactly one compact JWT.
pub(crate) fn mint(dir: &Path, config: &Path, args: &[&str]) -> String {
    let out = run(binary(dir)
        .arg("token")
        .arg("--auth-config")
        .arg(config)
        .args(args));
    assert!(
        out.status.success(),
        "token {args:?} failed: {}",
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    let token = stdout.trim_end_matches('\n');
    assert!(!token.contains('\n'), "one line: {stdout:?}");
    let segments: Vec<&str> = token.split('.').collect();
    assert_eq!(segments.len(), 3, "a compact JWS: {token}");
    assert!(
        segments.iter().all(|s| !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')),
        "base64url segments: {token}"
    );
    token.to_owned()
}

fn principal_of(auth: &Authenticator, token: &str) -> Principal {
    let mut metadata = MetadataMap::new();
    metadata.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    auth.authenticate(&metadata, None)
        .unwrap_or_else(|e| panic!("the minted token does not verify: {e}"))
}

async fn minted_tokens_are_accepted_by_the_server(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_auth_config(dir.path());
    let service = mint(
        dir.path(),
        &config,
        &[
            "--sub",
            "contacts-sync",
            "--scope",
            "contacts.read",
            "--scope",
            "gate.check",
        ],
    );
    let editor = mint(
        dir.path(),
        &config,
        &[
            "--sub",
            "user-7",
            "--partner",
            "acme",
            "--role",
            "EDITOR",
            "--ttl-seconds",
            "120",
        ],
    );

    // They verify against the same config, as the principals asked for.
    let auth = Authenticator::from_config(&auth::load(&config).expect("load")).expect("auth");
    assert_eq!(
        principal_of(&auth, &service),
        Principal::Service {
            sub: "contacts-sync".to_owned(),
            scopes: [Scope::ContactsRead, Scope::GateCheck]
                .into_iter()
                .collect(),
        }
    );
    assert_eq!(
        principal_of(&auth, &editor),
        Principal::PortalUser {
            sub: "user-7".to_owned(),
            partner: PartnerId::parse("acme").expect("partner"),
            role: PortalRole::Editor,
        }
    );

    // A server started with that config accepts them, with their rights.
    let server = TestServer::start_with_auth(backend, auth).await;
    let mut c = server.client.clone();
    let get = |name: &str| pb::GetContactsRequest {
        name: name.to_owned(),
        read_time: None,
    };
    let draft = put(pb::ContactInfo {
        technical_emergency_contacts: vec![contact("pager@example.com")],
        ..named(PROD)
    });
    expect_code(
        c.get_contacts(bearer(&service, get(PROD))).await,
        Code::NotFound,
    );
    expect_code(
        c.update_contacts(bearer(&service, draft.clone())).await,
        Code::PermissionDenied,
    );
    let saved = c
        .update_contacts(bearer(&editor, draft))
        .await
        .expect("an EDITOR of acme updates acme")
        .into_inner();
    let read = c
        .get_contacts(bearer(&service, get(PROD)))
        .await
        .expect("contacts.read")
        .into_inner();
    assert_eq!(read, saved);
    c.check_onboarding_gate(bearer(
        &service,
        pb::CheckOnboardingGateRequest {
            name: PROD.to_owned(),
            integration_type: String::new(),
        },
    ))
    .await
    .expect("gate.check");
    expect_code(
        c.get_contacts(bearer(&editor, get(&prod_of("other"))))
            .await,
        Code::PermissionDenied,
    );
    let revisions = c
        .list_contact_info_revisions(bearer(
            &editor,
            pb::ListContactInfoRevisionsRequest {
                name: PROD.to_owned(),
                ..Default::default()
            },
        ))
        .await
        .expect("portal users read history")
        .into_inner()
        .revisions;
    assert_eq!(revisions[0].actor, "user-7");
    expect_code(
        c.get_contacts(as_caller(None, get(PROD))).await,
        Code::Unauthenticated,
    );
}

#[test]
fn token_subcommand_refuses_what_it_cannot_mint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_auth_config(dir.path());
    let config_arg = config.to_str().expect("utf-8 path");
    // A JWKS-only config has no secret to sign with.
    let jwks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/auth/jwks.json");
    let jwks_only = dir.path().join("jwks-only.toml");
    std::fs::write(
        &jwks_only,
        format!(
            "[jwt]\nissuer = \"i\"\naudience = \"a\"\njwks_file = \"{}\"\n",
            jwks.display()
        ),
    )
    .expect("write");
    // A secret too short to use; it must not be echoed.
    let short = dir.path().join("short.toml");
    std::fs::write(
        &short,
        "[jwt]\nissuer = \"i\"\naudience = \"a\"\nhs256_secret = \"zq9-tiny-secret\"\n",
    )
    .expect("write");

    let cases: Vec<(Vec<&str>, &str)> = vec![
        // Neither scopes nor partner and role.
        (vec!["--auth-config", config_arg, "--sub", "x"], ""),
        (
            vec![
                "--auth-config",
                config_arg,
                "--sub",
                "x",
                "--partner",
                "acme",
            ],
            "",
        ),
        (
            vec![
                "--auth-config",
                config_arg,
                "--sub",
                "x",
                "--role",
                "EDITOR",
            ],
            "",
        ),
        (
            vec![
                "--auth-config",
                config_arg,
                "--sub",
                "x",
                "--scope",
                "contacts.everything",
            ],
            "unknown scope",
        ),
        (
            vec![
                "--auth-config",
                config_arg,
                "--sub",
                "x",
                "--partner",
                "Acme!",
                "--role",
                "EDITOR",
            ],
            "",
        ),
        (
            vec![
                "--auth-config",
                config_arg,
                "--sub",
                "x",
                "--partner",
                "acme",
                "--role",
                "OWNER",
            ],
            "",
        ),
        (
            vec![
                "--auth-config",
                config_arg,
                "--sub",
                "",
                "--scope",
                "contacts.read",
            ],
            "sub",
        ),
        (
            vec![
                "--auth-config",
                config_arg,
                "--sub",
                "x",
                "--scope",
                "contacts.read",
                "--ttl-seconds",
                "0",
            ],
            "",
        ),
        (
            vec![
                "--auth-config",
                jwks_only.to_str().expect("utf-8"),
                "--sub",
                "x",
                "--scope",
                "contacts.read",
            ],
            "hs256_secret",
        ),
        (
            vec![
                "--auth-config",
                short.to_str().expect("utf-8"),
                "--sub",
                "x",
                "--scope",
                "contacts.read",
            ],
            "bytes",
        ),
        (
            vec![
                "--auth-config",
                "no-such-file.toml",
                "--sub",
                "x",
                "--scope",
                "contacts.read",
            ],
            "no-such-file.toml",
        ),
    ];
    for (args, mentions) in cases {
        let out = run(binary(dir.path()).arg("token").args(&args));
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "token {args:?} succeeded");
        assert!(
            out.stdout.is_empty(),
            "token {args:?} printed {:?}",
            text(&out.stdout)
        );
        assert!(stderr.contains(mentions), "token {args:?}: {stderr}");
        assert!(
            !stderr.contains("zq9-tiny-secret"),
            "secret echoed: {stderr}"
        );
    }
}

/// Waits for `child` at most `limit`; kills it and fails when it runs longer.
fn wait_at_most(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "still running after {limit:?}; stderr: {}",
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn refuses_to_listen_beyond_loopback_without_auth() {
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("refused.sqlite3");
        let child = binary(dir.path())
            .args(["--listen", listen])
            .env("DATABASE_URL", format!("sqlite:{}", db.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let out = wait_at_most(child, Duration::from_secs(5));
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{listen}: started: {stderr}");
        assert!(
            stderr.contains("without authentication") && stderr.contains("--auth-config"),
            "{listen}: {stderr}"
        );
        assert!(!text(&out.stdout).contains("listening"), "{listen}");
        // Refused before touching the database.
        assert!(!db.exists(), "{listen}: the database was created");
    }
}

/// A server process, killed when dropped.
struct Running {
    child: Child,
    /// The printed "partner-contacts listening on ..." line.
    first_line: String,
    addr: String,
}

impl Running {
    /// Starts the binary with `args` and waits for its "listening on" line.
    fn start(dir: &Path, database_url: &str, args: &[&str]) -> Self {
        let mut child = binary(dir)
            .args(args)
            .env("DATABASE_URL", database_url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut running = Self {
            child,
            first_line: String::new(),
            addr: String::new(),
        };
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no listening line: {}", running.stop()));
        running.addr = line
            .strip_prefix("partner-contacts listening on ")
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}: {}", running.stop()))
            .to_owned();
        running.first_line = line;
        running
    }

    async fn client(&self) -> ContactsServiceClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .expect("connect to the binary");
        ContactsServiceClient::new(channel)
    }

    /// Kills the process; returns what it wrote to stderr.
    fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        stderr
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn binary_serves_with_and_without_auth(backend: Backend) {
    let store = common::store(backend).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_auth_config(dir.path());
    let config_arg = config.to_str().expect("utf-8");
    let get = || pb::GetContactsRequest {
        name: PROD.to_owned(),
        read_time: None,
    };

    let mut secured = Running::start(
        dir.path(),
        &store.url,
        &["--listen", "127.0.0.1:0", "--auth-config", config_arg],
    );
    assert!(
        secured.first_line.contains("identity: required"),
        "{}",
        secured.first_line
    );
    let token = mint(
        dir.path(),
        &config,
        &["--sub", "reader", "--scope", "contacts.read"],
    );
    let mut c = secured.client().await;
    expect_code(c.get_contacts(bearer(&token, get())).await, Code::NotFound);
    expect_code(c.get_contacts(get()).await, Code::Unauthenticated);
    let wrong = common::wrong_secret_token();
    expect_code(
        c.get_contacts(bearer(&wrong, get())).await,
        Code::Unauthenticated,
    );
    secured.stop();

    // Development mode on loopback: anyone may call, and the log says so.
    let mut open = Running::start(dir.path(), &store.url, &["--listen", "127.0.0.1:0"]);
    assert!(
        open.first_line.contains("development"),
        "{}",
        open.first_line
    );
    let mut c = open.client().await;
    expect_code(c.get_contacts(get()).await, Code::NotFound);
    let stderr = open.stop();
    assert!(stderr.contains("development mode"), "{stderr}");
}

on_both_backends!(
    minted_tokens_are_accepted_by_the_server,
    binary_serves_with_and_without_auth,
);

/// JSON logs: every line of a call carries its trace id (the caller's, from
/// `traceparent`), and `--metrics-listen` serves Prometheus metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_of_a_call_carry_its_trace_id() {
    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite:{}", dir.path().join("logs.sqlite3").display());
    let mut server = Running::start(
        dir.path(),
        &url,
        &[
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--log-level",
            "partner_contacts=debug,warn",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );
    let metrics_at = server
        .first_line
        .split(", metrics: http://")
        .nth(1)
        .and_then(|rest| rest.trim_end().strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics address in {:?}", server.first_line))
        .to_owned();
    let mut c = server.client().await;
    let mut request = tonic::Request::new(pb::GetContactsRequest {
        name: PROD.to_owned(),
        read_time: None,
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-00f067aa0ba902b7-01")
            .parse()
            .expect("header"),
    );
    expect_code(c.get_contacts(request).await, Code::NotFound);

    let mut scrape = std::net::TcpStream::connect(&metrics_at).expect("metrics port");
    std::io::Write::write_all(
        &mut scrape,
        b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n",
    )
    .expect("scrape");
    let mut scraped = String::new();
    scrape.read_to_string(&mut scraped).expect("metrics");
    assert!(
        scraped.contains(
            r#"grpc_server_handled_total{grpc_service="partnerportal.contacts.v1.ContactsService",grpc_method="GetContacts",grpc_type="unary",grpc_code="NotFound"} 1"#
        ),
        "{scraped}"
    );

    let stderr = server.stop();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let of_the_call: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["span"]["rpc.method"] == "GetContacts")
        .collect();
    assert!(
        !of_the_call.is_empty(),
        "no log line of the call in:\n{stderr}"
    );
    for line in of_the_call {
        assert_eq!(line["span"]["trace_id"], TRACE_ID, "{line}");
    }
}

/// `migrate` names a row whose stored fields do not decode and still
/// succeeds (a deploy's migration job must not hang on a row that reads no
/// worse than before); the rows after it get their forms.
#[tokio::test]
async fn migrate_names_an_undecodable_row_and_succeeds() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite:{}", dir.path().join("db.sqlite3").display());
    let migrate = |dir: &Path| {
        run(binary(dir).args(["migrate", "--database-url", &url, "--log-level", "warn"]))
    };
    let first = migrate(dir.path());
    assert!(first.status.success(), "{}", text(&first.stderr));
    let mut db = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    // What an older release (no ready form) saved, and one row broken by hand.
    let fields = r#"{"alert_contacts":[],"technical_emergency_contacts":[],"technical_non_emergency_contacts":[],"merchant_issues_contacts":[],"platform_operational_contacts":[],"user_facing_operational_contacts":[]}"#;
    for (partner, fields) in [("a-bad", r#"{"alert_contacts": 5}"#), ("b-good", fields)] {
        sqlx::query(
            "INSERT INTO contact_info
                 (partner, environment, revision, etag, fields, create_time, update_time)
             VALUES (?1, 'production', 1, 'W/\"1\"', ?2, 0, 0)",
        )
        .bind(partner)
        .bind(fields)
        .execute(&mut db)
        .await
        .expect("insert");
    }
    let out = migrate(dir.path());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("ready forms written for 1 contact infos"),
        "{stdout}"
    );
    assert!(
        stdout.contains("warning: 1 contact infos skipped") && stdout.contains("a-bad/production"),
        "{stdout}"
    );
    let written: Option<i64> =
        sqlx::query_scalar("SELECT ready_revision FROM contact_info WHERE partner = 'b-good'")
            .fetch_one(&mut db)
            .await
            .expect("read b-good");
    assert_eq!(written, Some(1));
}
