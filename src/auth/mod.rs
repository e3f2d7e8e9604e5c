//! Caller identity: turns a call's bearer token or client certificate into a `Principal`.
//!
//! Configured by a TOML file ([`load`]):
//!
//! ```toml
//! [jwt]
//! issuer = "https://auth.partnerportal.example"      # iss must equal it
//! audience = "partner-contacts"                       # aud must be or contain it
//! hs256_secret = "dev-only-secret-at-least-32-bytes"  # development: shared secret
//! # hs256_secret_file = "/run/secrets/jwt-hs256"      # alternative to the inline secret
//! jwks_file = "/etc/partner-contacts/jwks.json"       # production: RS256/ES256 keys, by kid
//! leeway_seconds = 30                                 # clock skew allowed on exp/nbf
//! max_token_lifetime_seconds = 86400                  # longest exp - iat (and exp - now)
//!
//! [mtls]
//! server_cert = "server.pem"
//! server_key = "server.key"
//! client_ca = "clients-ca.pem"     # when set, client certificates are required
//! [[mtls.identities]]
//! spiffe_id = "spiffe://platform.example/ns/alerts/sa/dispatcher"
//! scopes = ["contacts.read", "gate.check"]
//! ```
//!
//! A bearer token, when sent, decides the principal even over a client
//! certificate: a service may act for a portal user it forwards. A token that
//! does not verify is refused, never replaced by the certificate's identity.
//!
//! `jwks_file` and the `[mtls]` files are re-read while serving when they
//! change (every [`RELOAD_INTERVAL`], see [`watch_files`]); the rest of the
//! file is read once at start.
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::MetadataMap;
use tonic::transport::CertificateDer;

use crate::domain::Principal;
use crate::error::Error;

mod config;
mod jwt;
mod mtls;
mod reload;
mod tls;
mod token;

#[cfg(test)]
mod test_support;

pub use config::{
    AuthConfig, DEFAULT_LEEWAY_SECONDS, DEFAULT_MAX_TOKEN_LIFETIME_SECONDS, JwtConfig,
    MAX_LEEWAY_SECONDS, MAX_MAX_TOKEN_LIFETIME_SECONDS, MIN_HS256_SECRET_BYTES, MtlsConfig,
    MtlsIdentity, load, tls_config,
};
pub use reload::{RELOAD_INTERVAL, ReloadTask};
pub use tls::{HANDSHAKE_TIMEOUT, ServerTls, TlsIncoming};
pub use token::{DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS, TokenArgs, mint, mint_hs256};

/// Verifies callers on every RPC. Cheap to clone; keys and validation rules
/// are prepared once at construction.
#[derive(Clone)]
pub struct Authenticator {
    /// `None`: no auth configured, every caller is the developer.
    inner: Option<Arc<Verifiers>>,
    /// How often the JWKS file is compared with what was loaded.
    reload_interval: Duration,
}

struct Verifiers {
    jwt: Option<jwt::JwtVerifier>,
    spiffe: mtls::SpiffeMap,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            None => f.write_str("Authenticator(disabled)"),
            Some(v) => f
                .debug_struct("Authenticator")
                .field("jwt", &v.jwt.is_some())
                .field("mtls_identities", &!v.spiffe.is_empty())
                .finish(),
        }
    }
}

impl Authenticator {
    /// No authentication: every caller is `Principal::Developer`. Only for a
    /// loopback listener; the server decides that.
    pub fn disabled() -> Self {
        Self {
            inner: None,
            reload_interval: RELOAD_INTERVAL,
        }
    }

    /// Compares the JWKS file every `interval` instead of
    /// [`RELOAD_INTERVAL`]; zero: never.
    pub fn with_reload_interval(mut self, interval: Duration) -> Self {
        self.reload_interval = interval;
        self
    }

    /// Builds the verifiers, checking keys and identities (see [`load`], which
    /// also resolves relative paths).
    pub fn from_config(cfg: &AuthConfig) -> Result<Self, String> {
        cfg.check_has_method()?;
        let jwt = cfg
            .jwt
            .as_ref()
            .map(jwt::JwtVerifier::from_config)
            .transpose()?;
        let identities = cfg.mtls.as_ref().map_or(&[][..], |m| &m.identities[..]);
        if !identities.is_empty() && cfg.mtls.as_ref().is_none_or(|m| m.client_ca.is_none()) {
            return Err(
                "[[mtls.identities]] needs [mtls] client_ca: without it clients send no certificate"
                    .to_owned(),
            );
        }
        let spiffe = mtls::SpiffeMap::from_config(identities)?;
        Ok(Self {
            inner: Some(Arc::new(Verifiers { jwt, spiffe })),
            reload_interval: RELOAD_INTERVAL,
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The caller of one RPC, from its `authorization` metadata or, failing
    /// that, its verified client certificate chain (`Request::peer_certs()`).
    pub fn authenticate(
        &self,
        metadata: &MetadataMap,
        peer_certs: Option<&[CertificateDer<'static>]>,
    ) -> Result<Principal, Error> {
        let Some(v) = &self.inner else {
            return Ok(Principal::Developer);
        };
        if let Some(token) = bearer_token(metadata)? {
            return match &v.jwt {
                Some(jwt) => jwt.verify(token),
                None => Err(unauthenticated(
                    "bearer tokens are not accepted by this server",
                )),
            };
        }
        if !v.spiffe.is_empty()
            && let Some(chain) = peer_certs.filter(|c| !c.is_empty())
        {
            return v.spiffe.principal(chain);
        }
        Err(unauthenticated(if v.spiffe.is_empty() {
            "missing bearer token"
        } else {
            "missing bearer token or client certificate"
        }))
    }
}

/// Starts re-reading `auth`'s JWKS file and `tls`'s certificate, key and
/// client CA every [`RELOAD_INTERVAL`] (or what their `with_reload_interval`
/// says), swapping in changed ones that check out and keeping the old ones
/// (with a warning) otherwise. Stops when
/// the returned task drops; `None` when nothing is read from a file or
/// reloading is off. Needs a Tokio runtime.
pub fn watch_files(auth: &Authenticator, tls: Option<&ServerTls>) -> Option<ReloadTask> {
    let jwks = auth
        .inner
        .as_ref()
        .and_then(|v| v.jwt.as_ref())
        .and_then(jwt::JwtVerifier::reloadable)
        .map(|w| (w, auth.reload_interval));
    let tls = tls.map(|t| (t.reloadable(), t.reload_interval()));
    // One task for both, at the shorter interval; zero: that one is not watched.
    let (watched, intervals): (Vec<_>, Vec<_>) = jwks
        .into_iter()
        .chain(tls)
        .filter(|(_, interval)| !interval.is_zero())
        .unzip();
    reload::spawn(watched, intervals.into_iter().min()?)
}

/// The token of `authorization: Bearer <token>`, `None` without the header.
fn bearer_token(metadata: &MetadataMap) -> Result<Option<&str>, Error> {
    let mut values = metadata.get_all("authorization").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(unauthenticated("more than one authorization header"));
    }
    let value = value
        .to_str()
        .map_err(|_| unauthenticated("authorization header is not printable ASCII"))?;
    let malformed = || unauthenticated("authorization header must be \"Bearer <token>\"");
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    // RFC 7235: the scheme is case-insensitive.
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed());
    }
    let token = token.trim_matches(' ');
    if token.is_empty() {
        return Err(unauthenticated("missing bearer token"));
    }
    if token.len() > jwt::MAX_TOKEN_BYTES {
        return Err(unauthenticated("bearer token is too large"));
    }
    // A compact JWS is base64url segments joined by dots.
    let jws_chars = token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !jws_chars {
        return Err(unauthenticated("bearer token is not a JWT"));
    }
    Ok(Some(token))
}

fn unauthenticated(message: &str) -> Error {
    Error::Unauthenticated {
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tonic::metadata::{MetadataMap, MetadataValue};

    use super::test_support::*;
    use super::*;

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

    #[test]
    fn bearer_token_wins_over_certificate_and_never_falls_back() {
        let pki = Pki::new();
        let fixture = mtls_fixture(
            &pki,
            &format!(
                "[jwt]\nissuer = \"{ISS}\"\naudience = \"{AUD}\"\nhs256_secret = \"{SECRET}\"\n"
            ),
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
}
