//! The `token` subcommand: mints HS256 development tokens with the configured shared secret.
use std::path::PathBuf;

use clap::ArgGroup;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use super::config::{MIN_HS256_SECRET_BYTES, load};
use crate::domain::{PartnerId, PortalRole, Principal, Scope, Scopes};

/// Longest lifetime `--ttl-seconds` accepts: development tokens should not
/// outlive a working week. The config's `max_token_lifetime_seconds` (24 hours
/// by default) bounds it further: `mint` refuses a longer `--ttl-seconds`.
pub const MAX_TTL_SECONDS: u64 = 7 * 24 * 3600;

/// Lifetime of a minted token when `--ttl-seconds` is not given (or the
/// config's `max_token_lifetime_seconds` when that is shorter).
pub const DEFAULT_TTL_SECONDS: u64 = 3600;

/// Mint a development token signed with the config's HS256 secret.
#[derive(Debug, Clone, clap::Args)]
#[command(group(ArgGroup::new("kind").required(true).args(["scopes", "partner"])))]
pub struct TokenArgs {
    /// Identity configuration file (TOML) with [jwt] hs256_secret or hs256_secret_file.
    #[arg(long, env = "PARTNER_CONTACTS_AUTH_CONFIG", value_name = "PATH")]
    pub auth_config: PathBuf,

    /// Subject: the calling service's name, or the portal user's id.
    #[arg(long)]
    pub sub: String,

    /// Scope granted to a service token (repeatable): contacts.read,
    /// contacts.read_user_facing, contacts.write, gate.check, users.manage, history.read,
    /// events.read, contacts.verify.
    #[arg(long = "scope", value_name = "SCOPE", value_parser = parse_scope)]
    pub scopes: Vec<Scope>,

    /// Partner a portal-user token acts for (with --role).
    #[arg(long, value_parser = parse_partner, requires = "role")]
    pub partner: Option<PartnerId>,

    /// Portal role: ADMINISTRATOR, EDITOR or READ_ONLY (with --partner).
    #[arg(long, value_parser = parse_role, requires = "partner")]
    pub role: Option<PortalRole>,

    /// Seconds until the token expires. Default: 3600, or the auth config's
    /// max_token_lifetime_seconds when that is shorter. Longer than that
    /// setting is refused: the server would refuse the token.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_TTL_SECONDS))]
    pub ttl_seconds: Option<u64>,
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    Scope::parse(s).ok_or_else(|| {
        let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown scope (known: {})", known.join(", "))
    })
}

fn parse_partner(s: &str) -> Result<PartnerId, String> {
    PartnerId::parse(s).map_err(str::to_owned)
}

fn parse_role(s: &str) -> Result<PortalRole, String> {
    PortalRole::parse(s).ok_or_else(|| "must be ADMINISTRATOR, EDITOR or READ_ONLY".to_owned())
}

/// The compact JWT for `args`, signed with the configured development secret.
pub fn mint(args: &TokenArgs) -> Result<String, String> {
    let cfg = load(&args.auth_config)?;
    let shown = args.auth_config.display();
    let jwt = cfg.jwt.as_ref().ok_or_else(|| {
        format!("auth config {shown} has no [jwt] section: there is no secret to sign with")
    })?;
    let secret = jwt
        .hs256_secret_bytes()
        .map_err(|e| format!("invalid auth config {shown}: {e}"))?
        .ok_or_else(|| {
            format!(
                "auth config {shown} has no [jwt] hs256_secret or hs256_secret_file: \
                 development tokens are signed with it"
            )
        })?;
    let principal = match (&args.partner, args.role) {
        (Some(partner), Some(role)) => Principal::PortalUser {
            sub: args.sub.clone(),
            partner: partner.clone(),
            role,
        },
        (None, None) => Principal::Service {
            sub: args.sub.clone(),
            scopes: args.scopes.iter().copied().collect(),
        },
        _ => return Err("--partner and --role go together".to_owned()),
    };
    let max = jwt.max_token_lifetime_seconds;
    let ttl_seconds = match args.ttl_seconds {
        None => DEFAULT_TTL_SECONDS.min(max),
        Some(ttl) if ttl > max => {
            return Err(format!(
                "--ttl-seconds {ttl} is longer than max_token_lifetime_seconds ({max}) \
                 in auth config {shown}: the server would refuse the token"
            ));
        }
        Some(ttl) => ttl,
    };
    mint_hs256(&secret, &jwt.issuer, &jwt.audience, &principal, ttl_seconds)
}

#[derive(Serialize)]
struct MintedClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partner: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    portal_role: Option<&'static str>,
}

/// An HS256 token that `Authenticator::authenticate` turns back into `principal`.
/// For the `token` subcommand and tests; `Principal::Developer` has no token.
pub fn mint_hs256(
    secret: &[u8],
    issuer: &str,
    audience: &str,
    principal: &Principal,
    ttl_seconds: u64,
) -> Result<String, String> {
    if secret.len() < MIN_HS256_SECRET_BYTES {
        return Err(format!(
            "the HS256 secret is {} bytes; at least {MIN_HS256_SECRET_BYTES} are required",
            secret.len()
        ));
    }
    let now = jsonwebtoken::get_current_timestamp();
    let exp = now
        .checked_add(ttl_seconds)
        .ok_or_else(|| "ttl_seconds is too large".to_owned())?;
    let (sub, scope, partner, portal_role) = match principal {
        Principal::Developer => {
            return Err(
                "the developer principal is for servers without auth; it has no token".to_owned(),
            );
        }
        Principal::Service { sub, scopes } => (sub, scope_claim(*scopes), None, None),
        Principal::PortalUser { sub, partner, role } => {
            (sub, None, Some(partner.as_str()), Some(role.as_str()))
        }
    };
    if sub.trim().is_empty() {
        return Err("sub must not be empty".to_owned());
    }
    let claims = MintedClaims {
        iss: issuer,
        aud: audience,
        sub,
        iat: now,
        nbf: now,
        exp,
        scope,
        partner,
        portal_role,
    };
    let key =
        EncodingKey::from_secret(secret).map_err(|e| format!("unusable HS256 secret: {e}"))?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
        .map_err(|e| format!("cannot sign the token: {e}"))
}

fn scope_claim(scopes: Scopes) -> Option<String> {
    let names: Vec<&str> = scopes.iter().map(Scope::as_str).collect();
    (!names.is_empty()).then(|| names.join(" "))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;
    use serde_json::Value;

    use super::*;
    use crate::auth::test_support::*;

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
        let args =
            token_args(&jwks.path(), &["--sub", "x", "--scope", "gate.check"]).expect("args");
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
}
