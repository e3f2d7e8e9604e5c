//! Tests of caller identity: tokens, JWKS keys, SPIFFE certificates, config validation, minting.
use std::path::{Path, PathBuf};

use clap::Parser;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{CertificateParams, Issuer, KeyPair, SanType, string::Ia5String};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::CertificateDer;

use super::*;
use crate::domain::{PartnerId, PortalRole, Scope, Scopes};

const ISS: &str = "https://auth.partnerportal.example";
const AUD: &str = "partner-contacts";
const SECRET: &str = "0123456789abcdef0123456789abcdef";
const JWKS: &[u8] = include_bytes!("../../tests/fixtures/auth/jwks.json");
const RS256_KEY: &[u8] = include_bytes!("../../tests/fixtures/auth/rs256-test.key");
const ES256_KEY: &[u8] = include_bytes!("../../tests/fixtures/auth/es256-test.key");
const SPIFFE_DISPATCHER: &str = "spiffe://platform.example/ns/alerts/sa/dispatcher";

/// A config directory: `auth.toml` plus the given files.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(toml: &str, files: &[(&str, &[u8])]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("auth.toml"), toml).expect("write auth.toml");
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes).expect("write fixture file");
        }
        Self { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("auth.toml")
    }

    fn load(&self) -> Result<AuthConfig, String> {
        load(&self.path())
    }

    fn authenticator(&self) -> Authenticator {
        let cfg = self.load().expect("valid config");
        Authenticator::from_config(&cfg).expect("authenticator")
    }
}

fn jwt_toml(keys: &str) -> String {
    format!("[jwt]\nissuer = \"{ISS}\"\naudience = \"{AUD}\"\n{keys}\n")
}

fn hs256_only() -> Authenticator {
    Fixture::new(&jwt_toml(&format!("hs256_secret = \"{SECRET}\"")), &[]).authenticator()
}

fn jwks_only() -> Authenticator {
    Fixture::new(
        &jwt_toml("jwks_file = \"jwks.json\""),
        &[("jwks.json", JWKS)],
    )
    .authenticator()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn service_claims() -> Value {
    json!({
        "iss": ISS,
        "aud": AUD,
        "sub": "svc-alerts",
        "iat": now(),
        "exp": now() + 600,
        "scope": "contacts.read gate.check some.other.service.scope",
    })
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("sign test token")
}

fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(SECRET.as_bytes()).expect("key"),
        claims,
    )
}

fn rs256_key() -> EncodingKey {
    let der = PrivateKeyDer::from_pem_slice(RS256_KEY).expect("fixture RSA key");
    EncodingKey::from_rsa_der(der.secret_der())
}

fn es256_key() -> EncodingKey {
    let der = PrivateKeyDer::from_pem_slice(ES256_KEY).expect("fixture EC key");
    EncodingKey::from_ec_der(der.secret_der())
}

fn bearer(value: &str) -> MetadataMap {
    let mut md = MetadataMap::new();
    md.insert(
        "authorization",
        MetadataValue::try_from(value).expect("ascii metadata"),
    );
    md
}

fn with_token(token: &str) -> MetadataMap {
    bearer(&format!("Bearer {token}"))
}

/// Asserts UNAUTHENTICATED with a message containing `expected`, and that the
/// message repeats neither the token nor any of `secrets`.
fn assert_unauth(result: Result<Principal, crate::error::Error>, expected: &str, secrets: &[&str]) {
    match result {
        Err(crate::error::Error::Unauthenticated { message }) => {
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

fn check_token(auth: &Authenticator, token: &str, expected: &str) {
    assert_unauth(
        auth.authenticate(&with_token(token), None),
        expected,
        &[token, "svc-alerts"],
    );
}

fn service(sub: &str, scopes: &[Scope]) -> Principal {
    Principal::Service {
        sub: sub.to_owned(),
        scopes: scopes.iter().copied().collect(),
    }
}

// ---------------------------------------------------------------- tokens

#[test]
fn hs256_service_token_gives_service_with_known_scopes() {
    let auth = hs256_only();
    let got = auth
        .authenticate(&with_token(&hs256(&service_claims())), None)
        .expect("valid token");
    assert_eq!(
        got,
        service("svc-alerts", &[Scope::ContactsRead, Scope::GateCheck])
    );
}

#[test]
fn service_token_without_scope_has_no_scopes() {
    let mut claims = service_claims();
    claims.as_object_mut().expect("object").remove("scope");
    let got = hs256_only()
        .authenticate(&with_token(&hs256(&claims)), None)
        .expect("valid token");
    assert_eq!(
        got,
        Principal::Service {
            sub: "svc-alerts".to_owned(),
            scopes: Scopes::default()
        }
    );
}

#[test]
fn audience_array_containing_ours_is_accepted() {
    let mut claims = service_claims();
    claims["aud"] = json!(["other-service", AUD]);
    hs256_only()
        .authenticate(&with_token(&hs256(&claims)), None)
        .expect("aud array containing ours");
}

#[test]
fn portal_token_gives_portal_user() {
    let auth = hs256_only();
    for (role, expected) in [
        ("ADMINISTRATOR", PortalRole::Administrator),
        ("EDITOR", PortalRole::Editor),
        ("READ_ONLY", PortalRole::ReadOnly),
    ] {
        let mut claims = service_claims();
        claims["sub"] = json!("user-123");
        claims["partner"] = json!("acme-corp");
        claims["portal_role"] = json!(role);
        let got = auth
            .authenticate(&with_token(&hs256(&claims)), None)
            .expect("valid portal token");
        assert_eq!(
            got,
            Principal::PortalUser {
                sub: "user-123".to_owned(),
                partner: PartnerId::parse("acme-corp").expect("valid id"),
                role: expected,
            }
        );
    }
}

#[test]
fn bad_portal_claims_are_unauthenticated() {
    let auth = hs256_only();
    let cases = [
        (
            json!("acme-corp"),
            json!("OWNER"),
            "portal_role claim must be",
        ),
        (
            json!("acme-corp"),
            json!("administrator"),
            "portal_role claim must be",
        ),
        (
            json!("Acme Corp!"),
            json!("EDITOR"),
            "partner claim is not a valid partner id",
        ),
        (
            json!(""),
            json!("EDITOR"),
            "partner claim is not a valid partner id",
        ),
        (json!("acme-corp"), Value::Null, "no portal_role claim"),
        (Value::Null, json!("EDITOR"), "no partner claim"),
        (json!(42), json!("EDITOR"), "claims are malformed"),
    ];
    for (partner, role, expected) in cases {
        let mut claims = service_claims();
        claims["partner"] = partner;
        claims["portal_role"] = role;
        let token = hs256(&claims);
        assert_unauth(
            auth.authenticate(&with_token(&token), None),
            expected,
            &[&token, "OWNER", "Acme Corp!"],
        );
    }
}

#[test]
fn expired_token() {
    let mut claims = service_claims();
    claims["exp"] = json!(now() - 120);
    check_token(&hs256_only(), &hs256(&claims), "token expired");
}

#[test]
fn expiry_within_leeway_is_accepted() {
    let mut claims = service_claims();
    claims["exp"] = json!(now() - 5);
    hs256_only()
        .authenticate(&with_token(&hs256(&claims)), None)
        .expect("5 s past exp is within the 30 s leeway");
}

#[test]
fn nbf_in_future() {
    let mut claims = service_claims();
    claims["nbf"] = json!(now() + 300);
    check_token(&hs256_only(), &hs256(&claims), "not valid yet");
    claims["nbf"] = json!(now() + 5);
    hs256_only()
        .authenticate(&with_token(&hs256(&claims)), None)
        .expect("nbf within leeway");
}

#[test]
fn wrong_issuer() {
    let auth = hs256_only();
    let mut claims = service_claims();
    claims["iss"] = json!("https://evil.example");
    check_token(&auth, &hs256(&claims), "issuer does not match");
    // jsonwebtoken alone accepts an array that contains ours; we do not.
    claims["iss"] = json!([ISS, "https://evil.example"]);
    check_token(&auth, &hs256(&claims), "issuer does not match");
    claims.as_object_mut().expect("object").remove("iss");
    check_token(&auth, &hs256(&claims), "no iss claim");
}

#[test]
fn wrong_audience() {
    let auth = hs256_only();
    let mut claims = service_claims();
    claims["aud"] = json!("another-service");
    check_token(&auth, &hs256(&claims), "audience does not match");
    claims.as_object_mut().expect("object").remove("aud");
    check_token(&auth, &hs256(&claims), "no aud claim");
}

#[test]
fn bad_signature() {
    let other = EncodingKey::from_secret(b"another-secret-that-is-32-bytes-long").expect("key");
    let token = sign(Algorithm::HS256, None, &other, &service_claims());
    check_token(&hs256_only(), &token, "signature is invalid");
    // A valid token whose payload was swapped keeps its old signature.
    let good = hs256(&service_claims());
    let mut forged_claims = service_claims();
    forged_claims["scope"] = json!("contacts.write users.manage");
    let forged = hs256(&forged_claims);
    let parts: Vec<&str> = good.split('.').collect();
    let forged_parts: Vec<&str> = forged.split('.').collect();
    let spliced = format!("{}.{}.{}", parts[0], forged_parts[1], parts[2]);
    check_token(&hs256_only(), &spliced, "signature is invalid");
}

#[test]
fn missing_exp() {
    let mut claims = service_claims();
    claims.as_object_mut().expect("object").remove("exp");
    check_token(&hs256_only(), &hs256(&claims), "no exp claim");
}

// ---------------------------------------------------------------- token lifetime

const DAY: u64 = 24 * 3600;

#[test]
fn lifetime_bound_is_exp_minus_iat_without_leeway() {
    let now = 1_800_000_000;
    let check = |iat, exp| jwt::check_lifetime(iat, exp, now, DAY, 30);
    check(Some(now), now + DAY).expect("exactly the bound");
    check(Some(now - 600), now + DAY - 600).expect("issued earlier, same lifetime");
    let err = check(Some(now), now + DAY + 1).expect_err("one second over");
    assert_contains(&err, "lifetime (exp - iat)");
    assert_contains(&err, "86400 seconds");
    // iat and exp come from the same clock: leeway does not stretch the lifetime.
    check(Some(now - 10), now + DAY).expect_err("lifetime 86410 even though exp - now is 86400");
    // iat after exp: no lifetime to speak of; exp - now still bounds it.
    check(Some(now + 10), now + 5).expect("an odd but short token");
}

#[test]
fn lifetime_bound_applies_to_exp_minus_now_with_leeway() {
    let now = 1_800_000_000;
    let check = |iat, exp| jwt::check_lifetime(iat, exp, now, DAY, 30);
    // Without iat: exp - now, plus the leeway for an issuer clock running ahead.
    check(None, now + DAY).expect("a day from now");
    check(None, now + DAY + 30).expect("within the leeway");
    let err = check(None, now + DAY + 31).expect_err("past the leeway");
    assert_contains(&err, "maximum token lifetime");
    check(None, now + 100 * 365 * DAY).expect_err("a century");
    check(None, u64::MAX).expect_err("the end of time");
    // An iat in the future keeps exp - iat short but not exp - now.
    check(Some(now + 100 * 365 * DAY), now + 100 * 365 * DAY + 60).expect_err("future iat");
    check(Some(u64::MAX - 60), u64::MAX).expect_err("future iat at the end of time");
    // No leeway configured: none given.
    jwt::check_lifetime(None, now + DAY + 1, now, DAY, 0).expect_err("no leeway");
    // An expired token is never refused for its lifetime (jsonwebtoken reports it expired).
    check(None, now - 5).expect("in the past");
}

#[test]
fn tokens_longer_than_the_bound_are_unauthenticated() {
    let auth = hs256_only();
    let t = now();
    let with = |iat: Option<Value>, exp: Value| {
        let mut claims = service_claims();
        let obj = claims.as_object_mut().expect("object");
        match iat {
            Some(iat) => obj.insert("iat".to_owned(), iat),
            None => obj.remove("iat"),
        };
        obj.insert("exp".to_owned(), exp);
        hs256(&claims)
    };
    let ok = |token: String, why: &str| {
        auth.authenticate(&with_token(&token), None)
            .unwrap_or_else(|e| panic!("{why}: {e:?}"));
    };
    // The default bound is 24 hours; the fixture's leeway the default 30 s.
    ok(with(Some(json!(t)), json!(t + DAY)), "exactly 24 h");
    ok(with(None, json!(t + DAY)), "no iat, 24 h from now");
    ok(
        with(Some(json!(t as f64 + 0.4)), json!(t + 3600)),
        "a fractional iat",
    );
    ok(
        with(Some(Value::Null), json!(t + 600)),
        "iat null, as if absent",
    );
    let century = t + 100 * 365 * DAY;
    for (token, expected) in [
        (with(Some(json!(t)), json!(century)), "lifetime (exp - iat)"),
        (
            with(Some(json!(t)), json!(t + DAY + 1)),
            "lifetime (exp - iat)",
        ),
        (with(None, json!(century)), "maximum token lifetime"),
        (with(None, json!(t + DAY + 300)), "maximum token lifetime"),
        (
            with(Some(json!(century - 60)), json!(century)),
            "maximum token lifetime",
        ),
        (
            with(Some(json!("yesterday")), json!(t + 60)),
            "iat claim is malformed",
        ),
        (
            with(Some(json!(-5)), json!(t + 60)),
            "iat claim is malformed",
        ),
    ] {
        check_token(&auth, &token, expected);
    }
    // The same for RS256 tokens verified through the JWKS.
    let mut claims = service_claims();
    claims["exp"] = json!(century);
    check_token(
        &jwks_only(),
        &sign(Algorithm::RS256, Some("test-rs256"), &rs256_key(), &claims),
        "lifetime",
    );
    claims["exp"] = json!(t + DAY);
    jwks_only()
        .authenticate(
            &with_token(&sign(
                Algorithm::RS256,
                Some("test-rs256"),
                &rs256_key(),
                &claims,
            )),
            None,
        )
        .expect("RS256 at exactly the bound");
}

#[test]
fn a_token_that_does_not_verify_is_not_told_the_bound() {
    let mut claims = service_claims();
    claims["exp"] = json!(now() + 100 * 365 * DAY);
    let forged = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!").expect("key"),
        &claims,
    );
    check_token(&hs256_only(), &forged, "signature is invalid");
}

#[test]
fn the_bound_is_configurable() {
    let fixture = Fixture::new(
        &jwt_toml(&format!(
            "hs256_secret = \"{SECRET}\"\nleeway_seconds = 0\nmax_token_lifetime_seconds = 600"
        )),
        &[],
    );
    let cfg = fixture.load().expect("valid");
    assert_eq!(
        cfg.jwt.as_ref().expect("[jwt]").max_token_lifetime_seconds,
        600
    );
    let auth = Authenticator::from_config(&cfg).expect("authenticator");
    let mut claims = service_claims();
    let t = now();
    claims["iat"] = json!(t);
    claims["exp"] = json!(t + 600);
    auth.authenticate(&with_token(&hs256(&claims)), None)
        .expect("exactly 600 s");
    claims["exp"] = json!(t + 601);
    check_token(&auth, &hs256(&claims), "maximum of 600 seconds");
    // Absent: 24 hours, whatever the kind of key.
    for toml in [
        jwt_toml(&format!("hs256_secret = \"{SECRET}\"")),
        jwt_toml("jwks_file = \"jwks.json\""),
    ] {
        let cfg = Fixture::new(&toml, &[("jwks.json", JWKS)])
            .load()
            .expect("valid");
        let jwt = cfg.jwt.expect("[jwt]");
        assert_eq!(
            jwt.max_token_lifetime_seconds,
            DEFAULT_MAX_TOKEN_LIFETIME_SECONDS
        );
        assert_eq!(DEFAULT_MAX_TOKEN_LIFETIME_SECONDS, DAY);
        assert_contains(&format!("{jwt:?}"), "max_token_lifetime_seconds: 86400");
    }
}

#[test]
fn an_unbounded_lifetime_cannot_be_configured() {
    let secret = format!("hs256_secret = \"{SECRET}\"");
    for bad in ["0", "2592001", "18446744073709551615"] {
        let err = load_error(
            &jwt_toml(&format!("{secret}\nmax_token_lifetime_seconds = {bad}")),
            &[],
        );
        assert_contains(&err, "max_token_lifetime_seconds");
    }
    for bad in ["-1", "\"1d\"", "86400.5"] {
        let err = load_error(
            &jwt_toml(&format!("{secret}\nmax_token_lifetime_seconds = {bad}")),
            &[],
        );
        assert_contains(&err, "line 5");
        assert!(!err.contains(SECRET), "{err}");
    }
    Fixture::new(
        &jwt_toml(&format!("{secret}\nmax_token_lifetime_seconds = 2592000")),
        &[],
    )
    .load()
    .expect("30 days is the most");
}

#[test]
fn missing_or_empty_sub() {
    let auth = hs256_only();
    let mut claims = service_claims();
    claims["sub"] = json!("");
    check_token(&auth, &hs256(&claims), "sub claim is empty");
    claims["sub"] = json!("   ");
    check_token(&auth, &hs256(&claims), "sub claim is empty");
    claims.as_object_mut().expect("object").remove("sub");
    check_token(&auth, &hs256(&claims), "no sub claim");
    claims["sub"] = json!("x".repeat(300));
    check_token(&auth, &hs256(&claims), "too long");
}

#[test]
fn authorization_header_must_be_bearer_jwt() {
    let auth = hs256_only();
    let token = hs256(&service_claims());
    let cases = [
        (token.clone(), "must be \"Bearer <token>\""),
        (format!("Basic {token}"), "must be \"Bearer <token>\""),
        ("Bearer".to_owned(), "must be \"Bearer <token>\""),
        ("Bearer ".to_owned(), "missing bearer token"),
        (format!("Bearer {token} extra"), "not a JWT"),
        ("Bearer not-a-jwt".to_owned(), "header is malformed"),
        ("Bearer a.b.c".to_owned(), "header is malformed"),
        (format!("Bearer {}", "a".repeat(9000)), "too large"),
    ];
    for (value, expected) in cases {
        assert_unauth(
            auth.authenticate(&bearer(&value), None),
            expected,
            &[&token],
        );
    }
    // The scheme is case-insensitive.
    auth.authenticate(&bearer(&format!("bearer {token}")), None)
        .expect("lower-case scheme");
    // Two authorization values are ambiguous.
    let mut md = with_token(&token);
    md.append(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).expect("ascii"),
    );
    assert_unauth(auth.authenticate(&md, None), "more than one", &[&token]);
}

#[test]
fn no_credentials() {
    assert_unauth(
        hs256_only().authenticate(&MetadataMap::new(), None),
        "missing bearer token",
        &[],
    );
}

#[test]
fn alg_none_is_refused() {
    // {"alg":"none","typ":"JWT"}
    const NONE_HEADER: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
    let good = hs256(&service_claims());
    let parts: Vec<&str> = good.split('.').collect();
    for token in [
        format!("{NONE_HEADER}.{}.", parts[1]),
        format!("{NONE_HEADER}.{}.{}", parts[1], parts[2]),
    ] {
        check_token(&hs256_only(), &token, "unsupported algorithm");
        check_token(&jwks_only(), &token, "unsupported algorithm");
    }
}

#[test]
fn hs256_token_refused_when_only_jwks_is_configured() {
    // The classic confusion: the RSA public key (here its JWKS modulus, and
    // the whole JWKS) used as an HMAC secret.
    let jwks: Value = serde_json::from_slice(JWKS).expect("jwks json");
    let modulus = jwks["keys"][0]["n"].as_str().expect("n");
    for secret in [modulus.as_bytes(), JWKS] {
        let key = EncodingKey::from_secret(secret).expect("key");
        let token = sign(
            Algorithm::HS256,
            Some("test-rs256"),
            &key,
            &service_claims(),
        );
        check_token(&jwks_only(), &token, "algorithm is not accepted");
    }
}

#[test]
fn rs256_and_es256_tokens_verify_via_jwks() {
    let auth = jwks_only();
    let rs = sign(
        Algorithm::RS256,
        Some("test-rs256"),
        &rs256_key(),
        &service_claims(),
    );
    let es = sign(
        Algorithm::ES256,
        Some("test-es256"),
        &es256_key(),
        &service_claims(),
    );
    let expected = service("svc-alerts", &[Scope::ContactsRead, Scope::GateCheck]);
    assert_eq!(
        auth.authenticate(&with_token(&rs), None).expect("RS256"),
        expected
    );
    assert_eq!(
        auth.authenticate(&with_token(&es), None).expect("ES256"),
        expected
    );
    // An RS256 token is not accepted by an HS256-only server.
    check_token(&hs256_only(), &rs, "signing key is unknown");
}

#[test]
fn jwks_key_choice_is_strict() {
    let auth = jwks_only();
    let claims = service_claims();
    let unknown = sign(
        Algorithm::RS256,
        Some("rotated-away"),
        &rs256_key(),
        &claims,
    );
    check_token(&auth, &unknown, "signing key is unknown");
    let no_kid = sign(Algorithm::RS256, None, &rs256_key(), &claims);
    check_token(&auth, &no_kid, "no key id");
    // The ES256 key's kid on an RS256 token: the key decides the algorithm.
    let mismatch = sign(Algorithm::RS256, Some("test-es256"), &rs256_key(), &claims);
    check_token(&auth, &mismatch, "does not match its signing key");
    // A key we do not know, claiming a kid we do.
    let stranger = KeyPair::generate().expect("P-256 key");
    let stranger_key = EncodingKey::from_ec_der(&stranger.serialize_der());
    let forged = sign(Algorithm::ES256, Some("test-es256"), &stranger_key, &claims);
    check_token(&auth, &forged, "signature is invalid");
    // Algorithms we do not take, even with a known kid.
    let ps = sign(Algorithm::PS256, Some("test-rs256"), &rs256_key(), &claims);
    check_token(&auth, &ps, "algorithm is not accepted");
}

#[test]
fn both_key_kinds_configured_accepts_both() {
    let fixture = Fixture::new(
        &jwt_toml(&format!(
            "hs256_secret = \"{SECRET}\"\njwks_file = \"jwks.json\""
        )),
        &[("jwks.json", JWKS)],
    );
    let auth = fixture.authenticator();
    auth.authenticate(&with_token(&hs256(&service_claims())), None)
        .expect("HS256");
    let es = sign(
        Algorithm::ES256,
        Some("test-es256"),
        &es256_key(),
        &service_claims(),
    );
    auth.authenticate(&with_token(&es), None).expect("ES256");
}

#[test]
fn disabled_authenticator_is_developer() {
    let auth = Authenticator::disabled();
    assert!(!auth.is_enabled());
    assert_eq!(
        auth.authenticate(&MetadataMap::new(), None)
            .expect("developer"),
        Principal::Developer
    );
    assert_eq!(
        auth.authenticate(&bearer("Bearer garbage"), None)
            .expect("developer"),
        Principal::Developer
    );
    assert!(hs256_only().is_enabled());
}

// ---------------------------------------------------------------- mTLS

struct Pki {
    ca_pem: String,
    ca: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Self {
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
    fn leaf(&self, sans: &[&str]) -> (CertificateDer<'static>, String, String) {
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

fn mtls_fixture(pki: &Pki, extra: &str) -> Fixture {
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

#[test]
fn spiffe_certificate_maps_to_configured_scopes() {
    let pki = Pki::new();
    let fixture = mtls_fixture(&pki, "");
    let auth = fixture.authenticator();
    let (leaf, _, _) = pki.leaf(&[SPIFFE_DISPATCHER, "dispatcher.internal"]);
    let chain = [leaf];
    assert_eq!(
        auth.authenticate(&MetadataMap::new(), Some(&chain))
            .expect("mapped identity"),
        service(SPIFFE_DISPATCHER, &[Scope::ContactsRead, Scope::GateCheck])
    );
}

#[test]
fn unusable_client_certificates_are_unauthenticated() {
    let pki = Pki::new();
    let auth = mtls_fixture(&pki, "").authenticator();
    let cases: [(&[&str], &str); 5] = [
        (&[], "no SPIFFE ID"),
        (&["dispatcher.internal"], "no SPIFFE ID"),
        (&["https://platform.example/dispatcher"], "no SPIFFE ID"),
        (
            &[
                SPIFFE_DISPATCHER,
                "spiffe://platform.example/ns/alerts/sa/other",
            ],
            "more than one URI SAN",
        ),
        (
            &["spiffe://platform.example/ns/alerts/sa/unknown"],
            "not allowed",
        ),
    ];
    for (sans, expected) in cases {
        let (leaf, _, _) = pki.leaf(sans);
        let chain = [leaf];
        assert_unauth(
            auth.authenticate(&MetadataMap::new(), Some(&chain)),
            expected,
            &["spiffe://platform.example/ns/alerts/sa/unknown"],
        );
    }
    let garbage = [CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00])];
    assert_unauth(
        auth.authenticate(&MetadataMap::new(), Some(&garbage)),
        "cannot be parsed",
        &[],
    );
    assert_unauth(
        auth.authenticate(&MetadataMap::new(), None),
        "missing bearer token or client certificate",
        &[],
    );
}

#[test]
fn bearer_token_wins_over_certificate_and_never_falls_back() {
    let pki = Pki::new();
    let fixture = mtls_fixture(
        &pki,
        &format!("[jwt]\nissuer = \"{ISS}\"\naudience = \"{AUD}\"\nhs256_secret = \"{SECRET}\"\n"),
    );
    let auth = fixture.authenticator();
    let (leaf, _, _) = pki.leaf(&[SPIFFE_DISPATCHER]);
    let chain = [leaf];
    let mut claims = service_claims();
    claims["sub"] = json!("user-1");
    claims["partner"] = json!("acme-corp");
    claims["portal_role"] = json!("READ_ONLY");
    let got = auth
        .authenticate(&with_token(&hs256(&claims)), Some(&chain))
        .expect("token principal");
    assert!(matches!(got, Principal::PortalUser { .. }), "{got:?}");
    claims["exp"] = json!(now() - 3600);
    assert_unauth(
        auth.authenticate(&with_token(&hs256(&claims)), Some(&chain)),
        "token expired",
        &[],
    );
}

#[test]
fn tokens_refused_when_only_mtls_is_configured() {
    let pki = Pki::new();
    let auth = mtls_fixture(&pki, "").authenticator();
    assert_unauth(
        auth.authenticate(&with_token(&hs256(&service_claims())), None),
        "bearer tokens are not accepted",
        &[],
    );
}

#[test]
fn tls_config_is_built_from_mtls_section() {
    let pki = Pki::new();
    let fixture = mtls_fixture(&pki, "");
    let cfg = fixture.load().expect("valid");
    assert!(tls_config(&cfg).expect("tls").is_some());
    // Server TLS without client certificates is allowed alongside JWT.
    let (_, server_pem, server_key) = pki.leaf(&["localhost"]);
    let plain = Fixture::new(
        &format!(
            "{}[mtls]\nserver_cert = \"s.pem\"\nserver_key = \"s.key\"\n",
            jwt_toml(&format!("hs256_secret = \"{SECRET}\""))
        ),
        &[
            ("s.pem", server_pem.as_bytes()),
            ("s.key", server_key.as_bytes()),
        ],
    );
    assert!(
        tls_config(&plain.load().expect("valid"))
            .expect("tls")
            .is_some()
    );
    let jwt_only = Fixture::new(&jwt_toml(&format!("hs256_secret = \"{SECRET}\"")), &[]);
    assert!(
        tls_config(&jwt_only.load().expect("valid"))
            .expect("tls")
            .is_none()
    );
}

// ---------------------------------------------------------------- config validation

fn load_error(toml: &str, files: &[(&str, &[u8])]) -> String {
    match Fixture::new(toml, files).load() {
        Ok(cfg) => panic!("config should be refused: {cfg:?}"),
        Err(e) => e,
    }
}

fn assert_contains(haystack: &str, needle: &str) {
    assert!(
        haystack.contains(needle),
        "{haystack:?} should contain {needle:?}"
    );
}

#[test]
fn config_errors_name_the_problem() {
    let secret = format!("hs256_secret = \"{SECRET}\"");
    assert_contains(&load_error("", &[]), "no way to authenticate callers");
    assert_contains(
        &load_error(&jwt_toml("hs256_secret = \"too-short\""), &[]),
        "at least 32",
    );
    assert_contains(
        &load_error(&jwt_toml("jwks_file = \"missing.json\""), &[]),
        "missing.json",
    );
    assert_contains(
        &load_error(&jwt_toml("hs256_secret_file = \"nope\""), &[]),
        "cannot read",
    );
    assert_contains(
        &load_error(
            &jwt_toml(&format!("{secret}\nhs256_secret_file = \"s\"")),
            &[("s", SECRET.as_bytes())],
        ),
        "not both",
    );
    assert_contains(&load_error(&jwt_toml(""), &[]), "needs hs256_secret");
    assert_contains(
        &load_error(&jwt_toml(&format!("{secret}\nleeway_seconds = 3600")), &[]),
        "leeway_seconds",
    );
    assert_contains(
        &load_error(
            &format!("[jwt]\nissuer = \"\"\naudience = \"{AUD}\"\n{secret}\n"),
            &[],
        ),
        "issuer must not be empty",
    );
    // deny_unknown_fields, reported by line without quoting the file.
    let typo = load_error(&jwt_toml(&format!("{secret}\naudiences = \"x\"")), &[]);
    assert_contains(&typo, "line 5");
    assert_contains(&typo, "audiences");
    let leaked = load_error(
        &format!(
            "[jwt]\nissuer = \"{ISS}\"\naudience = \"{AUD}\"\nhs256_secret = \"{SECRET}\" trailing\n"
        ),
        &[],
    );
    assert!(!leaked.contains(SECRET), "{leaked}");
}

#[test]
fn secret_file_is_read_relative_to_the_config() {
    let fixture = Fixture::new(&jwt_toml("hs256_secret_file = \"secrets/jwt\""), &[]);
    std::fs::create_dir(fixture.dir.path().join("secrets")).expect("mkdir");
    std::fs::write(
        fixture.dir.path().join("secrets/jwt"),
        format!("{SECRET}\n"),
    )
    .expect("write secret");
    let cfg = fixture.load().expect("valid");
    let path = cfg
        .jwt
        .as_ref()
        .and_then(|j| j.hs256_secret_file.clone())
        .expect("path");
    assert_eq!(path, fixture.dir.path().join("secrets/jwt"));
    let auth = Authenticator::from_config(&cfg).expect("auth");
    // The trailing newline is not part of the secret.
    auth.authenticate(&with_token(&hs256(&service_claims())), None)
        .expect("token signed with the file's secret");
    assert!(!format!("{cfg:?}").contains(SECRET));
}

#[test]
fn jwks_errors_name_the_key() {
    let cases: [(Value, &str); 6] = [
        (json!({"keys": []}), "has no keys"),
        (json!({"nokeys": 1}), "not a JWKS document"),
        (
            json!({"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}),
            "only RS256",
        ),
        (
            json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}),
            "has no kid",
        ),
        (
            json!({"keys": [{"kty": "EC", "kid": "bad", "crv": "P-256", "x": "AAAA", "y": "AAAA"}]}),
            "not a valid P-256",
        ),
        (
            json!({"keys": [{"kty": "RSA", "kid": "small", "n": "AQAB", "e": "AQAB"}]}),
            "RSA modulus is 17 bits",
        ),
    ];
    for (jwks, expected) in cases {
        let bytes = serde_json::to_vec(&jwks).expect("json");
        let err = load_error(&jwt_toml("jwks_file = \"j.json\""), &[("j.json", &bytes)]);
        assert_contains(&err, expected);
    }
    let fixture: Value = serde_json::from_slice(JWKS).expect("json");
    let mut dup = fixture.clone();
    dup["keys"][1]["kid"] = json!("test-rs256");
    let bytes = serde_json::to_vec(&dup).expect("json");
    assert_contains(
        &load_error(&jwt_toml("jwks_file = \"j.json\""), &[("j.json", &bytes)]),
        "more than once",
    );
    let mut enc = fixture;
    enc["keys"][0]["use"] = json!("enc");
    let bytes = serde_json::to_vec(&enc).expect("json");
    assert_contains(
        &load_error(&jwt_toml("jwks_file = \"j.json\""), &[("j.json", &bytes)]),
        "use=enc",
    );
}

#[test]
fn mtls_errors_name_the_problem() {
    let pki = Pki::new();
    let (_, server_pem, server_key) = pki.leaf(&["localhost"]);
    let (_, _, other_key) = pki.leaf(&["localhost"]);
    let files = |key: &str| -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("server.pem", server_pem.clone().into_bytes()),
            ("server.key", key.as_bytes().to_vec()),
            ("ca.pem", pki.ca_pem.clone().into_bytes()),
            ("junk.pem", b"not a certificate".to_vec()),
        ]
    };
    let check = |toml: &str, key: &str, expected: &str| {
        let owned = files(key);
        let refs: Vec<(&str, &[u8])> = owned.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        assert_contains(&load_error(toml, &refs), expected);
    };
    let base = "[mtls]\nserver_cert = \"server.pem\"\nserver_key = \"server.key\"\nclient_ca = \"ca.pem\"\n";
    let ident = |id: &str, scopes: &str| {
        format!("[[mtls.identities]]\nspiffe_id = \"{id}\"\nscopes = [{scopes}]\n")
    };
    let ok_ident = ident(SPIFFE_DISPATCHER, "\"contacts.read\"");
    check(
        &format!(
            "{base}{}",
            ident(SPIFFE_DISPATCHER, "\"contacts.read\", \"contacts.admin\"")
        ),
        &server_key,
        "unknown scope \"contacts.admin\"",
    );
    check(
        &format!("{base}{}", ident("https://platform.example/x", "")),
        &server_key,
        "is not a SPIFFE ID",
    );
    check(
        &format!("{base}{ok_ident}{ok_ident}"),
        &server_key,
        "listed twice",
    );
    check(base, &server_key, "no way to authenticate callers");
    check(
        &format!("{base}{ok_ident}"),
        &other_key,
        "rustls rejects the TLS settings",
    );
    check(
        &format!("{base}{ok_ident}"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "rustls rejects the TLS settings",
    );
    check(
        &format!("{base}{ok_ident}"),
        "garbage",
        "no unencrypted private key",
    );
    check(
        &format!(
            "[mtls]\nserver_cert = \"junk.pem\"\nserver_key = \"server.key\"\nclient_ca = \"ca.pem\"\n{ok_ident}"
        ),
        &server_key,
        "no CERTIFICATE block",
    );
    check(
        &format!(
            "[mtls]\nserver_cert = \"server.pem\"\nserver_key = \"server.key\"\nclient_ca = \"absent.pem\"\n{ok_ident}"
        ),
        &server_key,
        "absent.pem",
    );
    check(
        &format!("[mtls]\nclient_ca = \"ca.pem\"\n{ok_ident}"),
        &server_key,
        "needs server_cert and server_key",
    );
    check(
        &format!(
            "{}[mtls]\nserver_cert = \"server.pem\"\n",
            jwt_toml(&format!("hs256_secret = \"{SECRET}\""))
        ),
        &server_key,
        "server_key is not",
    );
    check(
        &format!(
            "{}[mtls]\nserver_cert = \"server.pem\"\nserver_key = \"server.key\"\n{ok_ident}",
            jwt_toml(&format!("hs256_secret = \"{SECRET}\""))
        ),
        &server_key,
        "needs [mtls] client_ca",
    );
}

#[test]
fn spiffe_id_grammar() {
    for ok in [
        "spiffe://example.org",
        "spiffe://example.org/ns/a_b/sa/c-d.e",
        SPIFFE_DISPATCHER,
    ] {
        assert!(mtls::is_spiffe_id(ok), "{ok}");
    }
    for bad in [
        "",
        "spiffe://",
        "SPIFFE://example.org/x",
        "spiffe://Example.org/x",
        "spiffe://example.org/",
        "spiffe://example.org//x",
        "spiffe://example.org/./x",
        "spiffe://example.org/x?y",
        "spiffe://example.org/x#y",
        "spiffe://example.org:443/x",
        "spiffe://user@example.org/x",
    ] {
        assert!(!mtls::is_spiffe_id(bad), "{bad}");
    }
}

// ---------------------------------------------------------------- minting

#[derive(Debug, Parser)]
struct TokenCli {
    #[command(flatten)]
    args: TokenArgs,
}

fn token_args(config: &Path, rest: &[&str]) -> Result<TokenArgs, clap::Error> {
    let config = config.to_str().expect("utf-8 path");
    let mut argv = vec!["token", "--auth-config", config];
    argv.extend_from_slice(rest);
    TokenCli::try_parse_from(argv).map(|cli| cli.args)
}

#[test]
fn minted_tokens_verify_with_the_same_config() {
    let fixture = Fixture::new(&jwt_toml(&format!("hs256_secret = \"{SECRET}\"")), &[]);
    let auth = fixture.authenticator();
    let args = token_args(
        &fixture.path(),
        &[
            "--sub",
            "svc-gate",
            "--scope",
            "gate.check",
            "--scope",
            "contacts.read_user_facing",
        ],
    )
    .expect("valid args");
    let token = mint(&args).expect("minted");
    assert_eq!(
        auth.authenticate(&with_token(&token), None)
            .expect("verifies"),
        service(
            "svc-gate",
            &[Scope::GateCheck, Scope::ContactsReadUserFacing]
        )
    );
    let args = token_args(
        &fixture.path(),
        &[
            "--sub",
            "user-7",
            "--partner",
            "acme-corp",
            "--role",
            "EDITOR",
            "--ttl-seconds",
            "60",
        ],
    )
    .expect("valid args");
    let token = mint(&args).expect("minted");
    assert_eq!(
        auth.authenticate(&with_token(&token), None)
            .expect("verifies"),
        Principal::PortalUser {
            sub: "user-7".to_owned(),
            partner: PartnerId::parse("acme-corp").expect("id"),
            role: PortalRole::Editor,
        }
    );
    // A JWKS-only server has no secret to mint with.
    let jwks = Fixture::new(
        &jwt_toml("jwks_file = \"jwks.json\""),
        &[("jwks.json", JWKS)],
    );
    let args = token_args(&jwks.path(), &["--sub", "x", "--scope", "gate.check"]).expect("args");
    assert_contains(&mint(&args).expect_err("no secret"), "hs256_secret");
}

#[test]
fn token_arguments_are_validated() {
    let p = Path::new("auth.toml");
    for bad in [
        &["--sub", "x"][..],
        &["--sub", "x", "--scope", "contacts.admin"],
        &["--sub", "x", "--partner", "acme"],
        &["--sub", "x", "--role", "EDITOR"],
        &["--sub", "x", "--partner", "acme", "--role", "OWNER"],
        &["--sub", "x", "--partner", "Acme!", "--role", "EDITOR"],
        &[
            "--sub",
            "x",
            "--scope",
            "gate.check",
            "--partner",
            "acme",
            "--role",
            "EDITOR",
        ],
        &["--sub", "x", "--scope", "gate.check", "--ttl-seconds", "0"],
        &["--scope", "gate.check"],
    ] {
        assert!(token_args(p, bad).is_err(), "{bad:?} should be refused");
    }
    let ok = token_args(
        p,
        &[
            "--sub",
            "x",
            "--scope",
            "gate.check",
            "--scope",
            "history.read",
        ],
    )
    .expect("repeatable --scope");
    assert_eq!(ok.scopes, vec![Scope::GateCheck, Scope::HistoryRead]);
    assert_eq!(ok.ttl_seconds, None, "the default depends on the config");
}

/// The `exp - iat` of a minted token, read without verifying it.
fn minted_lifetime(token: &str) -> u64 {
    let claims: Value =
        jsonwebtoken::dangerous::insecure_decode_claims(token).expect("a compact JWT");
    let get = |name: &str| claims[name].as_u64().unwrap_or_else(|| panic!("{name}"));
    get("exp") - get("iat")
}

#[test]
fn minting_respects_the_configured_lifetime_bound() {
    let secret = format!("hs256_secret = \"{SECRET}\"");
    let service = ["--sub", "svc", "--scope", "gate.check"];
    let with_ttl = |ttl: &'static str| {
        let mut args = service.to_vec();
        args.extend(["--ttl-seconds", ttl]);
        args
    };
    // The default bound (24 h): 1 hour by default, up to exactly 24 h.
    let default = Fixture::new(&jwt_toml(&secret), &[]);
    let auth = default.authenticator();
    let token = mint(&token_args(&default.path(), &service).expect("args")).expect("minted");
    assert_eq!(minted_lifetime(&token), DEFAULT_TTL_SECONDS);
    let token = mint(&token_args(&default.path(), &with_ttl("86400")).expect("args"))
        .expect("exactly the bound");
    assert_eq!(minted_lifetime(&token), DAY);
    auth.authenticate(&with_token(&token), None)
        .expect("a token at the bound verifies");
    // Over it: refused clearly, although --ttl-seconds allows up to 7 days.
    let err = mint(&token_args(&default.path(), &with_ttl("86401")).expect("args"))
        .expect_err("over the bound");
    assert_contains(&err, "--ttl-seconds 86401");
    assert_contains(&err, "max_token_lifetime_seconds (86400)");
    assert_contains(&err, &default.path().display().to_string());
    assert!(token_args(&default.path(), &with_ttl("604801")).is_err());

    // A config bound shorter than the default lifetime: the default shrinks to it.
    let short = Fixture::new(
        &jwt_toml(&format!("{secret}\nmax_token_lifetime_seconds = 600")),
        &[],
    );
    let token = mint(&token_args(&short.path(), &service).expect("args")).expect("minted");
    assert_eq!(minted_lifetime(&token), 600);
    short
        .authenticator()
        .authenticate(&with_token(&token), None)
        .expect("verifies");
    let err = mint(&token_args(&short.path(), &with_ttl("3600")).expect("args"))
        .expect_err("over the bound");
    assert_contains(&err, "max_token_lifetime_seconds (600)");
}

#[test]
fn mint_hs256_refuses_what_cannot_verify() {
    let p = service("svc", &[Scope::GateCheck]);
    assert!(mint_hs256(b"short", ISS, AUD, &p, 60).is_err());
    assert!(mint_hs256(SECRET.as_bytes(), ISS, AUD, &Principal::Developer, 60).is_err());
    assert!(mint_hs256(SECRET.as_bytes(), ISS, AUD, &service(" ", &[]), 60).is_err());
    let token = mint_hs256(SECRET.as_bytes(), ISS, AUD, &p, 60).expect("minted");
    assert_eq!(
        hs256_only()
            .authenticate(&with_token(&token), None)
            .expect("verifies"),
        p
    );
}

#[test]
fn shipped_configs_stay_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The development config is used verbatim by the README's walkthrough.
    let dev = load(&root.join("deploy/auth.dev.toml")).expect("deploy/auth.dev.toml loads");
    assert!(Authenticator::from_config(&dev).is_ok_and(|a| a.is_enabled()));
    assert_eq!(
        dev.jwt.as_ref().map(|j| j.max_token_lifetime_seconds),
        Some(DEFAULT_MAX_TOKEN_LIFETIME_SECONDS)
    );
    // The production example names files that exist only in a deployment;
    // its shape must still parse.
    let text = std::fs::read_to_string(root.join("deploy/auth.example.toml")).expect("read");
    let example: AuthConfig = toml::from_str(&text).expect("deploy/auth.example.toml parses");
    let mtls = example.mtls.expect("[mtls]");
    assert_eq!(mtls.identities.len(), 2);
    assert!(
        example
            .jwt
            .is_some_and(|j| j.jwks_file.is_some() && j.max_token_lifetime_seconds == 86_400)
    );
}
