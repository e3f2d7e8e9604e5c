//! Mutual TLS end to end, with certificates made in the test: the server
//! requires client certificates from its client CA, and maps each client's
//! SPIFFE ID to the scopes the auth config gives it.
//!
//! These run on SQLite only: TLS and the identity mapping sit in front of the
//! handlers and never reach the store, so a second backend would exercise
//! nothing more (the access rules per backend are the access matrix's job).
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use partner_contacts::auth::{self, Authenticator};
use partner_contacts::domain::GatePolicy;
use partner_contacts::pb::{self, contacts_service_client::ContactsServiceClient};
use partner_contacts::server::ServerSettings;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_types::StatusExt;

use crate::api::{Client, PROD, bearer, contact, expect_code, named, put};
use crate::common::{self, Backend, TestServer};

pub(crate) const READER: &str = "spiffe://platform.example/ns/alerts/sa/dispatcher";
const WRITER: &str = "spiffe://platform.example/ns/contacts/sa/sync";
const STRANGER: &str = "spiffe://platform.example/ns/alerts/sa/stranger";

/// A certificate authority made for one test.
pub(crate) struct Ca {
    pub(crate) pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its private key, PEM.
pub(crate) struct Leaf {
    pub(crate) cert: String,
    pub(crate) key: String,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for localhost and 127.0.0.1.
    pub(crate) fn server(&self) -> Leaf {
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("params");
        self.sign(params)
    }

    /// A client certificate whose only URI SAN is `spiffe_id`.
    pub(crate) fn client(&self, spiffe_id: &str) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = vec![SanType::URI(spiffe_id.try_into().expect("IA5 URI"))];
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

pub(crate) fn write(dir: &Path, name: &str, contents: &str) {
    std::fs::write(dir.join(name), contents).unwrap_or_else(|e| panic!("write {name}: {e}"));
}

/// A server with the auth config of an operator: server certificate, client
/// CA and two mapped identities, in a TOML file with relative paths.
async fn mtls_server(ca: &Ca, dir: &Path) -> TestServer {
    let server_leaf = ca.server();
    write(dir, "server.pem", &server_leaf.cert);
    write(dir, "server.key", &server_leaf.key);
    write(dir, "clients-ca.pem", &ca.pem);
    write(
        dir,
        "auth.toml",
        &format!(
            "[mtls]\n\
             server_cert = \"server.pem\"\n\
             server_key = \"server.key\"\n\
             client_ca = \"clients-ca.pem\"\n\
             [[mtls.identities]]\n\
             spiffe_id = \"{READER}\"\n\
             scopes = [\"contacts.read\", \"gate.check\"]\n\
             [[mtls.identities]]\n\
             spiffe_id = \"{WRITER}\"\n\
             scopes = [\"contacts.write\", \"contacts.read\", \"history.read\"]\n"
        ),
    );
    let cfg = auth::load(&dir.join("auth.toml")).expect("auth config loads");
    let authenticator = Authenticator::from_config(&cfg).expect("authenticator");
    let tls = auth::tls_config(&cfg).expect("tls config");
    assert!(tls.is_some(), "[mtls] with a server certificate means TLS");
    TestServer::start_configured(
        common::store(Backend::Sqlite).await,
        ServerSettings {
            policy: Arc::new(GatePolicy::builtin()),
            auth: Arc::new(authenticator),
            tls,
            shutdown_grace: Duration::from_secs(5),
            limits: Default::default(),
            counters: Default::default(),
            metrics: None,
            cache: Default::default(),
            events: None,
            verification: Default::default(),
        },
    )
    .await
}

/// A TLS channel to `server` that trusts `trusted_ca_pem` and presents
/// `identity`, if any.
pub(crate) async fn connect(
    server: &TestServer,
    trusted_ca_pem: &str,
    identity: Option<&Leaf>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(trusted_ca_pem))
        .domain_name("localhost");
    if let Some(leaf) = identity {
        tls = tls.identity(Identity::from_pem(&leaf.cert, &leaf.key));
    }
    Channel::from_shared(format!("https://{}", server.addr))
        .expect("uri")
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
}

async fn client(server: &TestServer, ca: &Ca, identity: &Leaf) -> Client {
    ContactsServiceClient::new(
        connect(server, &ca.pem, Some(identity))
            .await
            .expect("TLS connection with a client certificate"),
    )
}

pub(crate) fn get_request() -> pb::GetContactsRequest {
    pb::GetContactsRequest {
        name: PROD.to_owned(),
        read_time: None,
    }
}

fn gate_request() -> pb::CheckOnboardingGateRequest {
    pb::CheckOnboardingGateRequest {
        name: PROD.to_owned(),
        integration_type: String::new(),
    }
}

fn draft() -> pb::UpdateContactsRequest {
    put(pb::ContactInfo {
        technical_emergency_contacts: vec![contact("pager@example.com")],
        ..named(PROD)
    })
}

/// A call that must not have reached the service: the connection fails, or
/// the call does with a transport-level status.
pub(crate) async fn assert_refused(result: Result<Channel, tonic::transport::Error>, what: &str) {
    let channel = match result {
        Err(_) => return,
        // TLS 1.3 lets a client finish its side of the handshake before the
        // server has checked the client's certificate: the refusal then
        // arrives on the first call.
        Ok(channel) => channel,
    };
    let status = ContactsServiceClient::new(channel)
        .get_contacts(get_request())
        .await
        .expect_err(what);
    // A transport failure, not an answer of the service (which would carry
    // its ErrorInfo).
    assert!(
        matches!(
            status.code(),
            Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled
        ),
        "{what}: {status:?}"
    );
    assert!(
        status.get_error_details().error_info().is_none(),
        "{what}: the service answered: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spiffe_ids_map_to_their_configured_scopes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new("clients CA");
    let server = mtls_server(&ca, dir.path()).await;

    let reader = ca.client(READER);
    let writer = ca.client(WRITER);
    let mut as_reader = client(&server, &ca, &reader).await;
    let mut as_writer = client(&server, &ca, &writer).await;

    // The reader: contacts.read and gate.check, nothing else.
    expect_code(as_reader.get_contacts(get_request()).await, Code::NotFound);
    let gate = as_reader
        .check_onboarding_gate(gate_request())
        .await
        .expect("gate.check")
        .into_inner();
    assert!(!gate.open);
    expect_code(
        as_reader.update_contacts(draft()).await,
        Code::PermissionDenied,
    );
    expect_code(
        as_reader
            .list_portal_users(pb::ListPortalUsersRequest {
                parent: "partners/acme".to_owned(),
                ..Default::default()
            })
            .await,
        Code::PermissionDenied,
    );

    // The writer saves; the reader reads it; the revision names the writer's
    // SPIFFE ID as its actor.
    let saved = as_writer
        .update_contacts(draft())
        .await
        .expect("contacts.write")
        .into_inner();
    let read = as_reader
        .get_contacts(get_request())
        .await
        .expect("contacts.read")
        .into_inner();
    assert_eq!(read, saved);
    let revisions = as_writer
        .list_contact_info_revisions(pb::ListContactInfoRevisionsRequest {
            name: PROD.to_owned(),
            ..Default::default()
        })
        .await
        .expect("history.read")
        .into_inner()
        .revisions;
    assert_eq!(revisions.len(), 1);
    assert_eq!(revisions[0].actor, WRITER);

    // A bearer token decides over the certificate: with no [jwt] configured,
    // a token is refused rather than replaced by the certificate's identity.
    expect_code(
        as_writer
            .get_contacts(bearer("aaa.bbb.ccc", get_request()))
            .await,
        Code::Unauthenticated,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmapped_or_missing_client_certificates_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new("clients CA");
    let server = mtls_server(&ca, dir.path()).await;

    // Issued by the right CA, but its SPIFFE ID is not in the config: the
    // connection is fine, the caller is not.
    let stranger = ca.client(STRANGER);
    let mut as_stranger = client(&server, &ca, &stranger).await;
    for result in [
        as_stranger.get_contacts(get_request()).await.map(drop),
        as_stranger
            .check_onboarding_gate(gate_request())
            .await
            .map(drop),
    ] {
        let s = expect_code(result, Code::Unauthenticated);
        assert!(!s.message().contains(STRANGER), "{s:?}");
    }
    // A certificate without any SPIFFE ID.
    let nameless = {
        let params = CertificateParams::new(vec!["client.internal".to_owned()]).expect("params");
        ca.sign(params)
    };
    let mut as_nameless = client(&server, &ca, &nameless).await;
    expect_code(
        as_nameless.get_contacts(get_request()).await,
        Code::Unauthenticated,
    );

    // No client certificate: the handshake fails, no call gets through.
    assert_refused(
        connect(&server, &ca.pem, None).await,
        "no client certificate",
    )
    .await;
    // A certificate from another CA, even with a mapped SPIFFE ID.
    let rogue_ca = Ca::new("rogue CA");
    let rogue = rogue_ca.client(READER);
    assert_refused(
        connect(&server, &ca.pem, Some(&rogue)).await,
        "client certificate from an unknown CA",
    )
    .await;
    // Plaintext to a TLS listener.
    let plaintext = Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await;
    assert_refused(plaintext, "plaintext").await;

    // The server is still serving the callers it knows.
    let reader = ca.client(READER);
    let mut as_reader = client(&server, &ca, &reader).await;
    expect_code(as_reader.get_contacts(get_request()).await, Code::NotFound);
}
