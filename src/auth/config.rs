//! The identity configuration file (TOML): JWT keys and mutual TLS, checked whole at load.
use std::fmt;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use crate::domain::{Scope, Scopes};

/// Clock skew allowed on `exp` and `nbf` when the file does not say.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 30;

/// More than this is a misconfiguration (milliseconds, minutes), not clock skew.
pub const MAX_LEEWAY_SECONDS: u64 = 300;

/// The longest token lifetime accepted when the file does not say: 24 hours,
/// for every kind of key. A development (HS256) config gets the same default
/// so that tokens refused in production are refused while developing too; the
/// `token` subcommand's default lifetime (1 hour) is well below it.
pub const DEFAULT_MAX_TOKEN_LIFETIME_SECONDS: u64 = 24 * 3600;

/// More than this (30 days) is not a bound on token lifetime.
pub const MAX_MAX_TOKEN_LIFETIME_SECONDS: u64 = 30 * 24 * 3600;

/// RFC 7518 §3.2: an HS256 key must be at least as long as the SHA-256 output.
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// How callers prove who they are; the module documentation shows an example file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Bearer JWTs in the `authorization` metadata.
    pub jwt: Option<JwtConfig>,
    /// TLS for the listener and, with `client_ca`, client certificates.
    pub mtls: Option<MtlsConfig>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// `iss` must equal this.
    pub issuer: String,
    /// `aud` must be or contain this.
    pub audience: String,
    /// Development: the shared HS256 secret, at least 32 bytes.
    pub hs256_secret: Option<String>,
    /// The shared secret read from a file (trailing line breaks are ignored).
    pub hs256_secret_file: Option<PathBuf>,
    /// Production: RS256/ES256 public keys as a JWKS document; tokens name their key by `kid`.
    pub jwks_file: Option<PathBuf>,
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// The longest lifetime a token may have, in seconds: `exp - iat`, and for
    /// every token `exp - now` (at most `leeway_seconds` more, for clock skew),
    /// so a token without `iat`, or with an `iat` in the future, is bounded too.
    #[serde(default = "default_max_token_lifetime")]
    pub max_token_lifetime_seconds: u64,
}

fn default_leeway() -> u64 {
    DEFAULT_LEEWAY_SECONDS
}

fn default_max_token_lifetime() -> u64 {
    DEFAULT_MAX_TOKEN_LIFETIME_SECONDS
}

// Hand-written so the secret never reaches a log line through `{:?}`.
impl fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("hs256_secret_file", &self.hs256_secret_file)
            .field("jwks_file", &self.jwks_file)
            .field("leeway_seconds", &self.leeway_seconds)
            .field(
                "max_token_lifetime_seconds",
                &self.max_token_lifetime_seconds,
            )
            .finish()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtlsConfig {
    /// PEM certificate chain the server presents (leaf first).
    pub server_cert: Option<PathBuf>,
    /// PEM private key of `server_cert` (PKCS#8, PKCS#1 or SEC1).
    pub server_key: Option<PathBuf>,
    /// PEM CA certificate(s); when set, every client must present a certificate it issued.
    pub client_ca: Option<PathBuf>,
    /// Which client SPIFFE IDs are accepted, with what scopes.
    #[serde(default)]
    pub identities: Vec<MtlsIdentity>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtlsIdentity {
    pub spiffe_id: String,
    pub scopes: Vec<String>,
}

/// Reads, parses and validates the identity configuration: every key, certificate
/// and scope name is checked here so a bad file stops the server at start.
/// Relative paths inside resolve against the file's directory; the returned
/// config holds them resolved.
pub fn load(path: &Path) -> Result<AuthConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read auth config {}: {e}", path.display()))?;
    let mut cfg =
        parse_toml(&text).map_err(|e| format!("invalid auth config {}: {e}", path.display()))?;
    let base = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    cfg.resolve_paths(&base);
    cfg.validate()
        .map_err(|e| format!("invalid auth config {}: {e}", path.display()))?;
    Ok(cfg)
}

/// toml's own message quotes the offending line, which may hold the secret:
/// report only the line number and what is wrong.
fn parse_toml(text: &str) -> Result<AuthConfig, String> {
    toml::from_str(text).map_err(|e: toml::de::Error| {
        let message = e.message().trim_end();
        match e.span() {
            Some(span) => {
                let line = text
                    .get(..span.start)
                    .map_or(0, |before| before.matches('\n').count())
                    + 1;
                format!("line {line}: {message}")
            }
            None => message.to_owned(),
        }
    })
}

impl AuthConfig {
    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(jwt) = &mut self.jwt {
            jwt.hs256_secret_file.iter_mut().for_each(resolve);
            jwt.jwks_file.iter_mut().for_each(resolve);
        }
        if let Some(mtls) = &mut self.mtls {
            mtls.server_cert.iter_mut().for_each(resolve);
            mtls.server_key.iter_mut().for_each(resolve);
            mtls.client_ca.iter_mut().for_each(resolve);
        }
    }

    /// Builds everything the server would build from this config, and throws
    /// it away: a key that does not match its certificate, or a CA rustls
    /// refuses, fails now, not at the first connection.
    pub fn validate(&self) -> Result<(), String> {
        super::Authenticator::from_config(self)?;
        tls_config(self)?;
        Ok(())
    }

    /// Whether any way of authenticating callers is configured.
    pub(super) fn check_has_method(&self) -> Result<(), String> {
        let jwt = self.jwt.is_some();
        // A client CA alone admits connections but maps no certificate to a caller.
        let client_certs = self
            .mtls
            .as_ref()
            .is_some_and(|m| m.client_ca.is_some() && !m.identities.is_empty());
        if jwt || client_certs {
            Ok(())
        } else {
            Err(
                "no way to authenticate callers is configured: add a [jwt] section \
                 (hs256_secret, hs256_secret_file or jwks_file) or [mtls] with client_ca \
                 and [[mtls.identities]]"
                    .to_owned(),
            )
        }
    }
}

impl JwtConfig {
    /// The shared secret, inline or from its file; `None` when neither is set.
    pub(super) fn hs256_secret_bytes(&self) -> Result<Option<Vec<u8>>, String> {
        let secret = match (&self.hs256_secret, &self.hs256_secret_file) {
            (Some(_), Some(_)) => {
                return Err("[jwt]: set hs256_secret or hs256_secret_file, not both".to_owned());
            }
            (Some(s), None) => s.as_bytes().to_vec(),
            (None, Some(path)) => {
                let mut bytes = read_file("[jwt] hs256_secret_file", path)?;
                // Secret files are usually written by `echo` or an editor.
                while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    bytes.pop();
                }
                bytes
            }
            (None, None) => return Ok(None),
        };
        if secret.len() < MIN_HS256_SECRET_BYTES {
            return Err(format!(
                "[jwt]: the HS256 secret is {} bytes; at least {MIN_HS256_SECRET_BYTES} are required",
                secret.len()
            ));
        }
        Ok(Some(secret))
    }
}

/// The scope names of one identity, refused when unknown: unlike a token's
/// `scope` claim, the config is ours, and a typo would silently grant nothing.
pub(super) fn parse_scopes(what: &str, names: &[String]) -> Result<Scopes, String> {
    names
        .iter()
        .map(|name| {
            Scope::parse(name).ok_or_else(|| {
                let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                format!(
                    "{what}: unknown scope \"{name}\" (known: {})",
                    known.join(", ")
                )
            })
        })
        .collect()
}

pub(super) fn read_file(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what}: cannot read {}: {e}", path.display()))
}

/// Server TLS settings: `Some` when `[mtls]` names a server certificate and key.
/// With `client_ca`, client certificates are required and verified against it.
/// The files are read and checked now, and re-read while serving when they
/// change (see [`super::watch_files`]).
pub fn tls_config(cfg: &AuthConfig) -> Result<Option<super::ServerTls>, String> {
    let Some(mtls) = &cfg.mtls else {
        return Ok(None);
    };
    let (cert_path, key_path) = match (&mtls.server_cert, &mtls.server_key) {
        (Some(cert), Some(key)) => (cert, key),
        (None, None) if mtls.client_ca.is_none() => return Ok(None),
        (None, None) => {
            return Err(
                "[mtls]: client_ca needs server_cert and server_key: client certificates \
                 are only asked for over TLS"
                    .to_owned(),
            );
        }
        (Some(_), None) => {
            return Err("[mtls]: server_cert is set but server_key is not".to_owned());
        }
        (None, Some(_)) => {
            return Err("[mtls]: server_key is set but server_cert is not".to_owned());
        }
    };
    super::ServerTls::load(cert_path.clone(), key_path.clone(), mtls.client_ca.clone()).map(Some)
}

/// Parses the PEM certificates, then each as X.509, so a wrong file is named
/// here rather than as "Error parsing TLS certificate" later.
pub(super) fn check_certificates(
    what: &str,
    path: &Path,
    pem: &[u8],
    leaf_first: bool,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} {shown}: not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what} {shown}: no CERTIFICATE block found"));
    }
    for (i, der) in certs.iter().enumerate() {
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| {
            format!(
                "{what} {shown}: certificate {} is not valid X.509: {e}",
                i + 1
            )
        })?;
        // Only the served leaf: an expired CA fails verification visibly anyway,
        // an expired server certificate fails every client at once.
        if leaf_first && i == 0 && !cert.validity().is_valid() {
            return Err(format!(
                "{what} {shown}: the certificate is not valid now (valid from {} to {})",
                cert.validity().not_before,
                cert.validity().not_after
            ));
        }
    }
    Ok(certs)
}

pub(super) fn check_private_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    let shown = path.display();
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(key) => Ok(key),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => Err(format!(
            "[mtls] server_key {shown}: no unencrypted private key found \
             (PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
        )),
        Err(e) => Err(format!("[mtls] server_key {shown}: not valid PEM: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Authenticator;
    use crate::auth::test_support::*;

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
}
