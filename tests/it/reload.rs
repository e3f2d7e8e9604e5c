//! Key and certificate rotation without a restart: a real server on port 0
//! re-reads its JWKS and TLS files every 100 ms; changed files that check out
//! are used by the next call or connection, bad ones are refused and the old
//! material keeps serving.
//!
//! SQLite only, like tests/it/mtls.rs: identity sits in front of the store.
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use partner_contacts::auth::{self, Authenticator};
use partner_contacts::pb::contacts_service_client::ContactsServiceClient;
use partner_contacts::server::ServerSettings;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use tonic::Code;

use crate::api::bearer;
use crate::common::{self, Backend, TEST_AUDIENCE, TEST_ISSUER, TestServer};
use crate::mtls::{Ca, Leaf, READER, assert_refused, connect, get_request, write};

/// Short, so that a test waits fractions of a second for a reload.
const RELOAD: Duration = Duration::from_millis(100);

/// Long enough for several checks to have seen a file written before it.
const SETTLE: Duration = Duration::from_millis(1000);

const JWKS: &[u8] = include_bytes!("../fixtures/auth/jwks.json");
const RS256_KEY: &[u8] = include_bytes!("../fixtures/auth/rs256-test.key");
const ES256_KEY: &[u8] = include_bytes!("../fixtures/auth/es256-test.key");

/// A server configured by `dir/auth.toml`, reloading every [`RELOAD`].
async fn start(dir: &Path) -> TestServer {
    let cfg = auth::load(&dir.join("auth.toml")).expect("auth config loads");
    let authenticator = Authenticator::from_config(&cfg)
        .expect("authenticator")
        .with_reload_interval(RELOAD);
    let tls = auth::tls_config(&cfg)
        .expect("tls config")
        .map(|tls| tls.with_reload_interval(RELOAD));
    TestServer::start_configured(
        common::store(Backend::Sqlite).await,
        ServerSettings {
            auth: Arc::new(authenticator),
            tls,
            ..common::dev_settings()
        },
    )
    .await
}

/// Polls `check` until it holds, for at most 15 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes `name` the way cert-manager and most tools do: a temporary file
/// renamed over the old one, so a reader never sees half of it.
fn replace(dir: &Path, name: &str, contents: &str) {
    let tmp = format!(".{name}.tmp");
    write(dir, &tmp, contents);
    std::fs::rename(dir.join(&tmp), dir.join(name)).expect("rename over");
}

// ---------------------------------------------------------------- JWKS

/// The fixture JWKS with only the keys named.
fn jwks_with(kids: &[&str]) -> String {
    let mut all: Value = serde_json::from_slice(JWKS).expect("fixture JWKS");
    if let Some(keys) = all["keys"].as_array_mut() {
        keys.retain(|k| k["kid"].as_str().is_some_and(|kid| kids.contains(&kid)));
    }
    all.to_string()
}

fn token(alg: Algorithm, kid: &str) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({
        "iss": TEST_ISSUER,
        "aud": TEST_AUDIENCE,
        "sub": "svc-rotation",
        "scope": "contacts.read",
        "iat": now,
        "exp": now + 600,
    });
    // The PEM readers are behind a jsonwebtoken feature we do not build.
    let pem = if alg == Algorithm::RS256 {
        RS256_KEY
    } else {
        ES256_KEY
    };
    let der = PrivateKeyDer::from_pem_slice(pem).expect("fixture key");
    let key = if alg == Algorithm::RS256 {
        EncodingKey::from_rsa_der(der.secret_der())
    } else {
        EncodingKey::from_ec_der(der.secret_der())
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

/// Whether the server takes `token`: NOT_FOUND (nothing saved yet) means it
/// authenticated; UNAUTHENTICATED that it did not.
async fn accepted(server: &TestServer, token: &str) -> bool {
    let result = server
        .client
        .clone()
        .get_contacts(bearer(token, get_request()))
        .await;
    match result {
        Err(s) if s.code() == Code::NotFound => true,
        Err(s) if s.code() == Code::Unauthenticated => false,
        other => panic!("unexpected answer: {other:?}"),
    }
}

async fn jwks_server(dir: &Path, kids: &[&str]) -> TestServer {
    write(dir, "jwks.json", &jwks_with(kids));
    write(
        dir,
        "auth.toml",
        &format!(
            "[jwt]\nissuer = \"{TEST_ISSUER}\"\naudience = \"{TEST_AUDIENCE}\"\n\
             jwks_file = \"jwks.json\"\n"
        ),
    );
    start(dir).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_keys_added_and_removed_without_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = jwks_server(dir.path(), &["test-rs256"]).await;
    let old = token(Algorithm::RS256, "test-rs256");
    let new = token(Algorithm::ES256, "test-es256");
    assert!(accepted(&server, &old).await);
    assert!(!accepted(&server, &new).await, "a key not yet published");

    // The issuer publishes its next key beside the current one.
    replace(
        dir.path(),
        "jwks.json",
        &jwks_with(&["test-rs256", "test-es256"]),
    );
    eventually("the new key accepted", || accepted(&server, &new)).await;
    assert!(
        accepted(&server, &old).await,
        "both keys during the overlap"
    );

    // Then retires the old one, written in place this time.
    write(dir.path(), "jwks.json", &jwks_with(&["test-es256"]));
    let (s, o) = (&server, &old);
    eventually("the removed key refused", || async move {
        !accepted(s, o).await
    })
    .await;
    assert!(accepted(&server, &new).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_jwks_keeps_the_keys_loaded_before() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = jwks_server(dir.path(), &["test-rs256"]).await;
    let old = token(Algorithm::RS256, "test-rs256");
    assert!(accepted(&server, &old).await);

    for broken in ["{\"keys\": [", "{\"keys\": []}", ""] {
        replace(dir.path(), "jwks.json", broken);
        tokio::time::sleep(SETTLE).await;
        assert!(accepted(&server, &old).await, "after {broken:?}");
    }
    // Unreadable (removed) keeps them too.
    std::fs::remove_file(dir.path().join("jwks.json")).expect("remove");
    tokio::time::sleep(SETTLE).await;
    assert!(accepted(&server, &old).await, "after removal");

    // A good file after the bad ones is taken: the checks kept running.
    replace(dir.path(), "jwks.json", &jwks_with(&["test-es256"]));
    let new = token(Algorithm::ES256, "test-es256");
    eventually("the fixed file's key accepted", || accepted(&server, &new)).await;
    assert!(!accepted(&server, &old).await);
}

// ---------------------------------------------------------------- TLS

fn mtls_toml() -> String {
    format!(
        "[mtls]\nserver_cert = \"server.pem\"\nserver_key = \"server.key\"\n\
         client_ca = \"clients-ca.pem\"\n\
         [[mtls.identities]]\nspiffe_id = \"{READER}\"\nscopes = [\"contacts.read\"]\n"
    )
}

/// Whether a new connection that trusts `trusted_ca_pem` and presents
/// `identity` gets a call through (NOT_FOUND: authenticated, nothing saved).
async fn serves(server: &TestServer, trusted_ca_pem: &str, identity: &Leaf) -> bool {
    let Ok(channel) = connect(server, trusted_ca_pem, Some(identity)).await else {
        return false;
    };
    let answer = ContactsServiceClient::new(channel)
        .get_contacts(get_request())
        .await;
    matches!(answer, Err(s) if s.code() == Code::NotFound)
}

async fn call_works(channel: tonic::transport::Channel) -> bool {
    let answer = ContactsServiceClient::new(channel)
        .get_contacts(get_request())
        .await;
    matches!(answer, Err(s) if s.code() == Code::NotFound)
}

/// A Kubernetes Secret volume: the files are symlinks through `..data`,
/// which the kubelet points at a new directory in one rename.
#[cfg(unix)]
fn secret_volume(dir: &Path, version: &str, server: &Leaf) {
    use std::os::unix::fs::symlink;
    let data = dir.join(version);
    std::fs::create_dir(&data).expect("mkdir");
    write(&data, "server.pem", &server.cert);
    write(&data, "server.key", &server.key);
    symlink(version, dir.join("..data_tmp")).expect("symlink");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap ..data");
    for name in ["server.pem", "server.key"] {
        if std::fs::symlink_metadata(dir.join(name)).is_err() {
            symlink(format!("..data/{name}"), dir.join(name)).expect("symlink");
        }
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_certificate_rotated_through_a_secret_volume_symlink_swap() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let old_ca = Ca::new("server CA 1");
    let new_ca = Ca::new("server CA 2");
    let clients = Ca::new("clients CA");
    secret_volume(d, "..2026_01_01", &old_ca.server());
    write(d, "clients-ca.pem", &clients.pem);
    write(d, "auth.toml", &mtls_toml());
    let server = start(d).await;
    let reader = clients.client(READER);

    assert!(serves(&server, &old_ca.pem, &reader).await);
    let existing = connect(&server, &old_ca.pem, Some(&reader))
        .await
        .expect("a connection made before the rotation");
    assert!(call_works(existing.clone()).await);
    assert_refused(
        connect(&server, &new_ca.pem, Some(&reader)).await,
        "a client trusting only the next CA, before the rotation",
    )
    .await;

    secret_volume(d, "..2026_02_01", &new_ca.server());
    eventually("the new certificate served", || {
        serves(&server, &new_ca.pem, &reader)
    })
    .await;
    assert_refused(
        connect(&server, &old_ca.pem, Some(&reader)).await,
        "a client trusting only the old CA, after the rotation",
    )
    .await;
    // A connection made before keeps working.
    assert!(call_works(existing).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ca_rotated_without_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let server_ca = Ca::new("server CA");
    let old_clients = Ca::new("clients CA 1");
    let new_clients = Ca::new("clients CA 2");
    let leaf = server_ca.server();
    write(d, "server.pem", &leaf.cert);
    write(d, "server.key", &leaf.key);
    write(d, "clients-ca.pem", &old_clients.pem);
    write(d, "auth.toml", &mtls_toml());
    let server = start(d).await;
    let old_reader = old_clients.client(READER);
    let new_reader = new_clients.client(READER);

    assert!(serves(&server, &server_ca.pem, &old_reader).await);
    assert_refused(
        connect(&server, &server_ca.pem, Some(&new_reader)).await,
        "a certificate of the next client CA, before the rotation",
    )
    .await;

    replace(d, "clients-ca.pem", &new_clients.pem);
    eventually("a certificate of the new client CA accepted", || {
        serves(&server, &server_ca.pem, &new_reader)
    })
    .await;
    assert_refused(
        connect(&server, &server_ca.pem, Some(&old_reader)).await,
        "a certificate of the replaced client CA",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_files_keep_the_certificate_served_before() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let old_ca = Ca::new("server CA 1");
    let new_ca = Ca::new("server CA 2");
    let clients = Ca::new("clients CA");
    let old = old_ca.server();
    write(d, "server.pem", &old.cert);
    write(d, "server.key", &old.key);
    write(d, "clients-ca.pem", &clients.pem);
    write(d, "auth.toml", &mtls_toml());
    let server = start(d).await;
    let reader = clients.client(READER);
    assert!(serves(&server, &old_ca.pem, &reader).await);

    // Not PEM at all.
    replace(d, "server.pem", "not a certificate");
    tokio::time::sleep(SETTLE).await;
    assert!(
        serves(&server, &old_ca.pem, &reader).await,
        "garbage certificate"
    );

    // A valid certificate whose key is not the one beside it.
    let new = new_ca.server();
    replace(d, "server.pem", &new.cert);
    tokio::time::sleep(SETTLE).await;
    assert!(
        serves(&server, &old_ca.pem, &reader).await,
        "certificate without its key"
    );
    assert!(!serves(&server, &new_ca.pem, &reader).await);

    // A client CA file that holds no certificate.
    replace(d, "clients-ca.pem", "");
    tokio::time::sleep(SETTLE).await;
    assert!(
        serves(&server, &old_ca.pem, &reader).await,
        "empty client CA"
    );

    // Once the key and the CA file match again, the new certificate is served.
    replace(d, "clients-ca.pem", &clients.pem);
    replace(d, "server.key", &new.key);
    eventually("the matching pair served", || {
        serves(&server, &new_ca.pem, &reader)
    })
    .await;
}
