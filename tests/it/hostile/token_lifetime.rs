//! Token lifetime is bounded (`max_token_lifetime_seconds`, 24 hours by
//! default): a correctly signed token that lives longer, by `exp - iat`, or by
//! `exp - now` when it has no `iat`, is UNAUTHENTICATED on a running server. The
//! `token` subcommand refuses to mint what the server would refuse.
use std::time::{SystemTime, UNIX_EPOCH};

use partner_contacts::auth::{self, Authenticator, DEFAULT_MAX_TOKEN_LIFETIME_SECONDS};
use partner_contacts::pb;
use serde_json::json;
use tonic::Code;

use crate::api::{PROD, bearer, expect_code};
use crate::cli::{binary, mint, run, text, write_auth_config};
use crate::common::{self, Backend, TestServer};
use crate::on_both_backends;

const DAY: u64 = 24 * 3600;
const CENTURY: u64 = 100 * 365 * DAY;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn get() -> pb::GetContactsRequest {
    pb::GetContactsRequest {
        name: PROD.to_owned(),
        read_time: None,
    }
}

/// A full-access token with these `iat` (removed when `None`) and `exp`.
fn token(iat: Option<u64>, exp: u64) -> String {
    let mut claims = json!({ "exp": exp });
    claims["iat"] = iat.map_or(serde_json::Value::Null, |iat| json!(iat));
    let token = common::signed_claims(claims);
    if iat.is_some() {
        return token;
    }
    // signed_claims fills in iat; sign again without it.
    let mut claims: serde_json::Value =
        jsonwebtoken::dangerous::insecure_decode_claims(&token).expect("a compact JWT");
    claims.as_object_mut().expect("object").remove("iat");
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(common::TEST_HS256_SECRET.as_bytes()).expect("key"),
    )
    .expect("encode")
}

async fn long_lived_tokens_are_unauthenticated(backend: Backend) {
    // The test config: the default bound (24 h), no leeway.
    assert_eq!(
        common::hs256_config()
            .jwt
            .map(|j| (j.max_token_lifetime_seconds, j.leeway_seconds)),
        Some((DEFAULT_MAX_TOKEN_LIFETIME_SECONDS, 0))
    );
    assert_eq!(DEFAULT_MAX_TOKEN_LIFETIME_SECONDS, DAY);
    let server = TestServer::start_with_auth(backend, common::hs256_authenticator()).await;
    let mut c = server.client.clone();
    let t = now();

    // Accepted: nothing is stored, so an authenticated call is NOT_FOUND.
    for (token, what) in [
        (token(Some(t), t + DAY), "exactly the bound"),
        (token(Some(t - 3600), t + DAY - 3600), "issued an hour ago"),
        (token(None, t + 3600), "no iat, an hour from now"),
    ] {
        let status = expect_code(c.get_contacts(bearer(&token, get())).await, Code::NotFound);
        assert!(!status.message().contains("lifetime"), "{what}: {status:?}");
    }

    // Refused, saying why, whatever the call.
    for (token, why, what) in [
        (
            token(Some(t), t + CENTURY),
            "lifetime (exp - iat)",
            "exp in 100 years",
        ),
        (
            token(Some(t), t + DAY + 1),
            "lifetime (exp - iat)",
            "one second over",
        ),
        (
            token(None, t + CENTURY),
            "maximum token lifetime",
            "no iat, exp in 100 years",
        ),
        (
            token(None, t + DAY + 600),
            "maximum token lifetime",
            "no iat, 10 min over",
        ),
        (
            token(Some(t + CENTURY - 60), t + CENTURY),
            "maximum token lifetime",
            "iat in 100 years, a minute's lifetime",
        ),
    ] {
        let status = expect_code(
            c.get_contacts(bearer(&token, get())).await,
            Code::Unauthenticated,
        );
        assert!(status.message().contains(why), "{what}: {status:?}");
        assert!(status.message().contains("86400"), "{what}: {status:?}");
        let status = expect_code(
            c.check_onboarding_gate(bearer(
                &token,
                pb::CheckOnboardingGateRequest {
                    name: PROD.to_owned(),
                    integration_type: String::new(),
                },
            ))
            .await,
            Code::Unauthenticated,
        );
        assert!(status.message().contains(why), "{what}: {status:?}");
    }
}

async fn the_token_subcommand_mints_within_the_bound(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    // The test config: no max_token_lifetime_seconds line, so 24 hours.
    let config = write_auth_config(dir.path());
    let auth = Authenticator::from_config(&auth::load(&config).expect("load")).expect("auth");
    let server = TestServer::start_with_auth(backend, auth).await;
    let mut c = server.client.clone();
    let service = ["--sub", "reader", "--scope", "contacts.read"];

    let at_bound = mint(
        dir.path(),
        &config,
        &[&service[..], &["--ttl-seconds", "86400"]].concat(),
    );
    expect_code(
        c.get_contacts(bearer(&at_bound, get())).await,
        Code::NotFound,
    );

    // Longer: refused, with a message that says why, and nothing printed.
    let out = run(binary(dir.path())
        .arg("token")
        .arg("--auth-config")
        .arg(&config)
        .args(service)
        .args(["--ttl-seconds", "86401"]));
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "minted a token over the bound");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(
        stderr.contains("--ttl-seconds 86401")
            && stderr.contains("max_token_lifetime_seconds (86400)"),
        "{stderr}"
    );

    // A shorter bound in the file: the default lifetime (1 hour) shrinks to it.
    let short = dir.path().join("short.toml");
    let text_of_config = std::fs::read_to_string(&config).expect("read");
    std::fs::write(
        &short,
        format!("{text_of_config}max_token_lifetime_seconds = 600\n"),
    )
    .expect("write");
    let minted = mint(dir.path(), &short, &service);
    let claims: serde_json::Value =
        jsonwebtoken::dangerous::insecure_decode_claims(&minted).expect("a compact JWT");
    let lifetime = claims["exp"]
        .as_u64()
        .zip(claims["iat"].as_u64())
        .map(|(e, i)| e - i);
    assert_eq!(lifetime, Some(600), "{claims}");
    expect_code(c.get_contacts(bearer(&minted, get())).await, Code::NotFound);
}

on_both_backends!(
    long_lived_tokens_are_unauthenticated,
    the_token_subcommand_mints_within_the_bound,
);
