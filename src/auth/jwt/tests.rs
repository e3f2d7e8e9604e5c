//! Tests of bearer JWT verification: claims, the lifetime bound, algorithms and keys, JWKS loading.
use jsonwebtoken::{Algorithm, EncodingKey};
use rcgen::KeyPair;
use serde_json::{Value, json};

use super::check_lifetime;
use crate::auth::test_support::*;
use crate::auth::{Authenticator, DEFAULT_MAX_TOKEN_LIFETIME_SECONDS};
use crate::domain::{PartnerId, PortalRole, Principal, Scope, Scopes};

/// A refusal must not echo the token or its subject back to the caller.
fn check_token(auth: &Authenticator, token: &str, expected: &str) {
    assert_unauth(
        auth.authenticate(&with_token(token), None),
        expected,
        &[token, "svc-alerts"],
    );
}

// ---------------------------------------------------------------- claims

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

// ---------------------------------------------------------------- lifetime bound

#[test]
fn lifetime_bound_is_exp_minus_iat_without_leeway() {
    let now = 1_800_000_000;
    let check = |iat, exp| check_lifetime(iat, exp, now, DAY, 30);
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
    let check = |iat, exp| check_lifetime(iat, exp, now, DAY, 30);
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
    check_lifetime(None, now + DAY + 1, now, DAY, 0).expect_err("no leeway");
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

// ---------------------------------------------------------------- algorithms and keys

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
