//! Fixtures shared by the auth tests: keys, signed claims, config directories and a throwaway PKI.
use std::path::PathBuf;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{CertificateParams, Issuer, KeyPair, SanType, string::Ia5String};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::CertificateDer;

use super::{AuthConfig, Authenticator, load};
use crate::domain::{Principal, Scope};
use crate::error::Error;

pub(super) const ISS: &str = "https://auth.partnerportal.example";
pub(super) const AUD: &str = "partner-contacts";
pub(super) const SECRET: &str = "0123456789abcdef0123456789abcdef";
pub(super) const JWKS: &[u8] = include_bytes!("../../tests/fixtures/auth/jwks.json");
const RS256_KEY: &[u8] = include_bytes!("../../tests/fixtures/auth/rs256-test.key");
const ES256_KEY: &[u8] = include_bytes!("../../tests/fixtures/auth/es256-test.key");
pub(super) const SPIFFE_DISPATCHER: &str = "spiffe://platform.example/ns/alerts/sa/dispatcher";

/// The default `max_token_lifetime_seconds`, and the unit lifetimes are counted in.
pub(super) const DAY: u64 = 24 * 3600;

/// A config directory: `auth.toml` plus the given files.
pub(super) struct Fixture {
    pub(super) dir: tempfile::TempDir,
}

impl Fixture {
    pub(super) fn new(toml: &str, files: &[(&str, &[u8])]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("auth.toml"), toml).expect("write auth.toml");
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes).expect("write fixture file");
        }
        Self { dir }
    }

    pub(super) fn path(&self) -> PathBuf {
        self.dir.path().join("auth.toml")
    }

    pub(super) fn load(&self) -> Result<AuthConfig, String> {
        load(&self.path())
    }

    pub(super) fn authenticator(&self) -> Authenticator {
        let cfg = self.load().expect("valid config");
        Authenticator::from_config(&cfg).expect("authenticator")
    }
}

pub(super) fn jwt_toml(keys: &str) -> String {
    format!("[jwt]\nissuer = \"{ISS}\"\naudience = \"{AUD}\"\n{keys}\n")
}

pub(super) fn hs256_only() -> Authenticator {
    Fixture::new(&jwt_toml(&format!("hs256_secret = \"{SECRET}\"")), &[]).authenticator()
}

pub(super) fn jwks_only() -> Authenticator {
    Fixture::new(
        &jwt_toml("jwks_file = \"jwks.json\""),
        &[("jwks.json", JWKS)],
    )
    .authenticator()
}

pub(super) fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

pub(super) fn service_claims() -> Value {
    json!({
        "iss": ISS,
        "aud": AUD,
        "sub": "svc-alerts",
        "iat": now(),
        "exp": now() + 600,
        "scope": "contacts.read gate.check some.other.service.scope",
    })
}

pub(super) fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("sign test token")
}

pub(super) fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(SECRET.as_bytes()).expect("key"),
        claims,
    )
}

pub(super) fn rs256_key() -> EncodingKey {
    let der = PrivateKeyDer::from_pem_slice(RS256_KEY).expect("fixture RSA key");
    EncodingKey::from_rsa_der(der.secret_der())
}

pub(super) fn es256_key() -> EncodingKey {
    let der = PrivateKeyDer::from_pem_slice(ES256_KEY).expect("fixture EC key");
    EncodingKey::from_ec_der(der.secret_der())
}

pub(super) fn bearer(value: &str) -> MetadataMap {
    let mut md = MetadataMap::new();
    md.insert(
        "authorization",
        MetadataValue::try_from(value).expect("ascii metadata"),
    );
    md
}

pub(super) fn with_token(token: &str) -> MetadataMap {
    bearer(&format!("Bearer {token}"))
}

/// Asserts UNAUTHENTICATED with a message containing `expected`, and that the
/// message repeats neither the token nor any of `secrets`.
pub(super) fn assert_unauth(result: Result<Principal, Error>, expected: &str, secrets: &[&str]) {
    match result {
        Err(Error::Unauthenticated { message }) => {
            assert!(
                message.contains(expected),
                "message {message:?} should contain {expected:?}"
            );
            for s in secrets {
                assert!(!message.contains(s), "message {message:?} leaks {s:?}");
            }
        }
        other => panic!("expected UNAUTHENTICATED ({expected}), got {other:?}"),
    }
}

pub(super) fn service(sub: &str, scopes: &[Scope]) -> Principal {
    Principal::Service {
        sub: sub.to_owned(),
        scopes: scopes.iter().copied().collect(),
    }
}

/// A client CA and leaves it signs, generated per test so that no certificate
/// checked into the tree can expire under the suite.
pub(super) struct Pki {
    pub(super) ca_pem: String,
    ca: Issuer<'static, KeyPair>,
}

impl Pki {
    pub(super) fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA cert");
        Self {
            ca_pem: cert.pem(),
            ca: Issuer::new(params, key),
        }
    }

    /// A leaf with the given SANs: URIs for `spiffe://`/`https://`, DNS otherwise.
    pub(super) fn leaf(&self, sans: &[&str]) -> (CertificateDer<'static>, String, String) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = sans
            .iter()
            .map(|s| {
                if s.contains("://") {
                    SanType::URI(Ia5String::try_from(*s).expect("ia5"))
                } else {
                    SanType::DnsName(Ia5String::try_from(*s).expect("ia5"))
                }
            })
            .collect();
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.ca).expect("leaf cert");
        (cert.der().clone(), cert.pem(), key.serialize_pem())
    }
}

/// A TLS server requiring client certificates, mapping the dispatcher's SPIFFE
/// ID; `extra` is appended TOML (a `[jwt]` section, more identities).
pub(super) fn mtls_fixture(pki: &Pki, extra: &str) -> Fixture {
    let (_, server_pem, server_key) = pki.leaf(&["localhost"]);
    let toml = format!(
        "[mtls]\nserver_cert = \"server.pem\"\nserver_key = \"server.key\"\nclient_ca = \"ca.pem\"\n\
         [[mtls.identities]]\nspiffe_id = \"{SPIFFE_DISPATCHER}\"\nscopes = [\"contacts.read\", \"gate.check\"]\n{extra}"
    );
    Fixture::new(
        &toml,
        &[
            ("server.pem", server_pem.as_bytes()),
            ("server.key", server_key.as_bytes()),
            ("ca.pem", pki.ca_pem.as_bytes()),
        ],
    )
}

/// The message `load` refuses this config with.
pub(super) fn load_error(toml: &str, files: &[(&str, &[u8])]) -> String {
    match Fixture::new(toml, files).load() {
        Ok(cfg) => panic!("config should be refused: {cfg:?}"),
        Err(e) => e,
    }
}

pub(super) fn assert_contains(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "{haystack:?} should contain {needle:?}"
    );
}
