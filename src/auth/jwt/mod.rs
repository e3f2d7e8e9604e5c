//! Bearer JWT verification: picks the key by algorithm and `kid`, checks the claims, maps them to a Principal.
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse, RSAKeyParameters,
};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, Validation};
use serde::Deserialize;

use super::config::{JwtConfig, MAX_LEEWAY_SECONDS, MAX_MAX_TOKEN_LIFETIME_SECONDS};
use super::reload::{Reload, Watched};
use super::unauthenticated;
use crate::domain::{PartnerId, PortalRole, Principal, Scopes};
use crate::error::Error;

/// Far above any real token; stops a client from making us base64- and
/// JSON-decode megabytes on every call.
pub(super) const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// `sub` becomes the actor of revisions: keep it a name, not a document.
pub(super) const MAX_SUB_BYTES: usize = 256;

/// RSA moduli accepted from the JWKS, in bits (NIST minimum; the rsa crate's maximum).
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

/// Everything needed per call, built once.
pub(super) struct JwtVerifier {
    issuer: String,
    hs256: Option<DecodingKey>,
    /// The `jwks_file`'s keys, re-read when it changes (see `reload`).
    jwks: Option<Arc<Watched<Jwks>>>,
    hs256_validation: Validation,
    rs256_validation: Validation,
    es256_validation: Validation,
    /// `max_token_lifetime_seconds` and `leeway_seconds` of the config.
    max_lifetime: u64,
    leeway: u64,
}

/// By `kid`. Only RS256 and ES256 keys: an HMAC key here would let anyone
/// holding the public JWKS mint tokens.
type Jwks = HashMap<String, JwksKey>;

struct JwksKey {
    alg: Algorithm,
    key: DecodingKey,
}

/// The claims we read; the registered ones are checked by jsonwebtoken.
/// All optional so a missing claim is reported by name, not as bad JSON.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    iss: Option<serde_json::Value>,
    /// Checked by jsonwebtoken (required, a NumericDate); read again here to
    /// bound the token's lifetime.
    #[serde(default)]
    exp: Option<serde_json::Value>,
    #[serde(default)]
    iat: Option<serde_json::Value>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    partner: Option<String>,
    #[serde(default)]
    portal_role: Option<String>,
}

impl JwtVerifier {
    pub(super) fn from_config(cfg: &JwtConfig) -> Result<Self, String> {
        if cfg.issuer.trim().is_empty() {
            return Err("[jwt] issuer must not be empty".to_owned());
        }
        if cfg.audience.trim().is_empty() {
            return Err("[jwt] audience must not be empty".to_owned());
        }
        if cfg.leeway_seconds > MAX_LEEWAY_SECONDS {
            return Err(format!(
                "[jwt] leeway_seconds is {}; at most {MAX_LEEWAY_SECONDS} is allowed",
                cfg.leeway_seconds
            ));
        }
        if !(1..=MAX_MAX_TOKEN_LIFETIME_SECONDS).contains(&cfg.max_token_lifetime_seconds) {
            return Err(format!(
                "[jwt] max_token_lifetime_seconds is {}; it must be 1 to \
                 {MAX_MAX_TOKEN_LIFETIME_SECONDS} (30 days)",
                cfg.max_token_lifetime_seconds
            ));
        }
        let hs256 = cfg
            .hs256_secret_bytes()?
            .map(|secret| {
                DecodingKey::from_secret(&secret)
                    .map_err(|e| format!("[jwt]: unusable HS256 secret: {e}"))
            })
            .transpose()?;
        let jwks = cfg.jwks_file.as_deref().map(watch_jwks).transpose()?;
        if hs256.is_none() && jwks.is_none() {
            return Err(
                "[jwt] needs hs256_secret, hs256_secret_file or jwks_file: tokens cannot be verified without a key"
                    .to_owned(),
            );
        }
        let validation = |alg| {
            let mut v = Validation::new(alg);
            v.leeway = cfg.leeway_seconds;
            v.validate_exp = true;
            v.validate_nbf = true;
            v.validate_aud = true;
            v.set_issuer(&[&cfg.issuer]);
            v.set_audience(&[&cfg.audience]);
            v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            v
        };
        Ok(Self {
            issuer: cfg.issuer.clone(),
            hs256,
            jwks,
            hs256_validation: validation(Algorithm::HS256),
            rs256_validation: validation(Algorithm::RS256),
            es256_validation: validation(Algorithm::ES256),
            max_lifetime: cfg.max_token_lifetime_seconds,
            leeway: cfg.leeway_seconds,
        })
    }

    /// The JWKS file, for the reload task; `None` without one.
    pub(super) fn reloadable(&self) -> Option<Arc<dyn Reload>> {
        self.jwks.clone().map(|w| w as Arc<dyn Reload>)
    }

    pub(super) fn verify(&self, token: &str) -> Result<Principal, Error> {
        // The header is read unverified only to choose the key; the signature
        // check below covers it.
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            unauthenticated("token header is malformed or names an unsupported algorithm")
        })?;
        // Held for this call only: a reload meanwhile affects the next call.
        let jwks = self.jwks.as_ref().map(|w| w.current());
        let (key, validation) = match header.alg {
            Algorithm::HS256 => match &self.hs256 {
                Some(key) => (key, &self.hs256_validation),
                // With only public keys configured, an HS256 token is the
                // classic confusion attack (public key used as HMAC secret).
                None => return Err(unauthenticated("token algorithm is not accepted")),
            },
            Algorithm::RS256 | Algorithm::ES256 => {
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| unauthenticated("token has no key id (kid)"))?;
                let entry = jwks
                    .as_ref()
                    .and_then(|keys| keys.get(kid))
                    .ok_or_else(|| unauthenticated("token signing key is unknown"))?;
                if entry.alg != header.alg {
                    return Err(unauthenticated(
                        "token algorithm does not match its signing key",
                    ));
                }
                let validation = if entry.alg == Algorithm::RS256 {
                    &self.rs256_validation
                } else {
                    &self.es256_validation
                };
                (&entry.key, validation)
            }
            _ => return Err(unauthenticated("token algorithm is not accepted")),
        };
        let data = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|e| unauthenticated(describe(e.kind())))?;
        // Only a token whose signature verified learns the bound.
        let exp = data
            .claims
            .exp
            .as_ref()
            .and_then(numeric_date)
            .ok_or_else(|| unauthenticated("token exp claim is malformed"))?;
        let iat = match &data.claims.iat {
            None => None,
            Some(iat) => Some(
                numeric_date(iat).ok_or_else(|| unauthenticated("token iat claim is malformed"))?,
            ),
        };
        check_lifetime(
            iat,
            exp,
            jsonwebtoken::get_current_timestamp(),
            self.max_lifetime,
            self.leeway,
        )
        .map_err(|message| unauthenticated(&message))?;
        self.principal(data.claims)
    }

    fn principal(&self, claims: Claims) -> Result<Principal, Error> {
        // jsonwebtoken accepts an `iss` array that merely contains ours; RFC 7519
        // makes `iss` a single string, and the issue asks for equality.
        match &claims.iss {
            Some(serde_json::Value::String(iss)) if *iss == self.issuer => {}
            _ => return Err(unauthenticated("token issuer does not match")),
        }
        let sub = claims.sub.unwrap_or_default();
        if sub.trim().is_empty() {
            return Err(unauthenticated("token sub claim is empty"));
        }
        if sub.len() > MAX_SUB_BYTES || sub.chars().any(char::is_control) {
            return Err(unauthenticated(
                "token sub claim is too long or has control characters",
            ));
        }
        match (claims.partner, claims.portal_role) {
            (Some(partner), Some(role)) => {
                let partner = PartnerId::parse(&partner).map_err(|_| {
                    unauthenticated("token partner claim is not a valid partner id")
                })?;
                let role = PortalRole::parse(&role).ok_or_else(|| {
                    unauthenticated(
                        "token portal_role claim must be ADMINISTRATOR, EDITOR or READ_ONLY",
                    )
                })?;
                Ok(Principal::PortalUser { sub, partner, role })
            }
            (Some(_), None) => Err(unauthenticated(
                "token has a partner claim but no portal_role claim",
            )),
            // A role without a partner is not a service: refuse rather than guess.
            (None, Some(_)) => Err(unauthenticated(
                "token has a portal_role claim but no partner claim",
            )),
            (None, None) => Ok(Principal::Service {
                sub,
                scopes: Scopes::parse_claim(claims.scope.as_deref().unwrap_or("")),
            }),
        }
    }
}

/// A JWT NumericDate as jsonwebtoken reads `exp`: a non-negative integer, or
/// a finite non-negative number rounded to whole seconds.
fn numeric_date(value: &serde_json::Value) -> Option<u64> {
    let number = value.as_number()?;
    if let Some(seconds) = number.as_u64() {
        return Some(seconds);
    }
    let seconds = number.as_f64()?;
    (seconds.is_finite() && (0.0..u64::MAX as f64).contains(&seconds))
        .then(|| seconds.round() as u64)
}

/// Refuses a token that lives longer than `max` seconds. Its lifetime is
/// `exp - iat` (both from the issuer's clock, so no leeway). Whatever `iat`
/// says (absent, or in the future), `exp` may also be at most `max` seconds
/// from `now`, plus `leeway` for the issuer's clock running ahead of ours.
/// The message names the bound, never the token's claims.
pub(super) fn check_lifetime(
    iat: Option<u64>,
    exp: u64,
    now: u64,
    max: u64,
    leeway: u64,
) -> Result<(), String> {
    if let Some(iat) = iat
        && exp.saturating_sub(iat) > max
    {
        return Err(format!(
            "token lifetime (exp - iat) is longer than the maximum of {max} seconds"
        ));
    }
    if exp.saturating_sub(now) > max.saturating_add(leeway) {
        return Err(format!(
            "token expires too far in the future: more than the maximum token lifetime \
             of {max} seconds from now"
        ));
    }
    Ok(())
}

/// What went wrong, for the caller; never the token or a claim value.
fn describe(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidSignature => "token signature is invalid",
        ErrorKind::ExpiredSignature => "token expired",
        ErrorKind::ImmatureSignature => "token is not valid yet (nbf)",
        ErrorKind::InvalidIssuer => "token issuer does not match",
        ErrorKind::InvalidAudience => "token audience does not match",
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "exp" => "token has no exp claim",
            "iss" => "token has no iss claim",
            "aud" => "token has no aud claim",
            "sub" => "token has no sub claim",
            _ => "token lacks a required claim",
        },
        ErrorKind::InvalidClaimFormat(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
            "token claims are malformed"
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            "token algorithm is not accepted"
        }
        ErrorKind::InvalidToken | ErrorKind::Base64(_) => "token is malformed",
        // Key-format errors cannot come from the caller's token once the key
        // was chosen by algorithm; treat them as a failed verification.
        _ => "token signature is invalid",
    }
}

/// Reads the JWKS now (a bad one fails the start) and watches it for changes.
fn watch_jwks(path: &Path) -> Result<Arc<Watched<Jwks>>, String> {
    let parse_path = path.to_path_buf();
    Watched::load(
        "[jwt] jwks_file",
        vec![("[jwt] jwks_file", path.to_path_buf())],
        move |files| match files {
            [bytes] => parse_jwks(&parse_path, bytes),
            _ => Err("[jwt] jwks_file: expected one file".to_owned()),
        },
    )
    .map(Arc::new)
}

fn parse_jwks(path: &Path, bytes: &[u8]) -> Result<Jwks, String> {
    let shown = path.display();
    let set: JwkSet = serde_json::from_slice(bytes)
        .map_err(|e| format!("[jwt] jwks_file {shown}: not a JWKS document: {e}"))?;
    if set.keys.is_empty() {
        return Err(format!("[jwt] jwks_file {shown}: has no keys"));
    }
    let mut out = HashMap::with_capacity(set.keys.len());
    for (i, jwk) in set.keys.iter().enumerate() {
        let kid = jwk
            .common
            .key_id
            .as_deref()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                format!(
                    "[jwt] jwks_file {shown}: key {} has no kid (tokens choose their key by kid)",
                    i + 1
                )
            })?;
        let what = format!("[jwt] jwks_file {shown}: key \"{kid}\"");
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return Err(format!(
                "{what} is for encryption (use=enc), not signatures"
            ));
        }
        let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
            (AlgorithmParameters::RSA(params), None | Some(KeyAlgorithm::RS256)) => {
                check_rsa(&what, params)?;
                Algorithm::RS256
            }
            (AlgorithmParameters::EllipticCurve(params), None | Some(KeyAlgorithm::ES256))
                if params.curve == EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            _ => {
                return Err(format!(
                    "{what}: only RS256 (kty RSA) and ES256 (kty EC, crv P-256) public keys are supported"
                ));
            }
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("{what}: unusable key: {e}"))?;
        if alg == Algorithm::ES256 {
            // jsonwebtoken parses the EC point only when verifying: probe once
            // so a point off the curve is refused now, not on every call.
            jsonwebtoken::crypto::verify("AA", b"probe", &key, alg)
                .map_err(|_| format!("{what}: x/y are not a valid P-256 public key"))?;
        }
        if out.insert(kid.to_owned(), JwksKey { alg, key }).is_some() {
            return Err(format!("{what} appears more than once"));
        }
    }
    Ok(out)
}

fn check_rsa(what: &str, params: &RSAKeyParameters) -> Result<(), String> {
    let key = DecodingKey::from_rsa_components(&params.n, &params.e)
        .map_err(|e| format!("{what}: n/e are not base64url: {e}"))?;
    let DecodingKeyKind::RsaModulusExponent { n, e } = key.kind() else {
        return Err(format!("{what}: not an RSA public key"));
    };
    let n = strip_leading_zeros(n);
    let bits = n
        .first()
        .map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize);
    if !RSA_BITS.contains(&bits) {
        return Err(format!(
            "{what}: RSA modulus is {bits} bits; {} to {} are accepted",
            RSA_BITS.start(),
            RSA_BITS.end()
        ));
    }
    let e = strip_leading_zeros(e);
    let e_is_sane = (1..=4).contains(&e.len())
        && e.last().is_some_and(|low| low & 1 == 1)
        && !(e.len() == 1 && e[0] < 3);
    if !e_is_sane {
        return Err(format!(
            "{what}: RSA exponent is not a usable public exponent"
        ));
    }
    Ok(())
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests;
