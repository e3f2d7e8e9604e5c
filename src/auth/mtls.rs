//! Client certificates: the leaf's SPIFFE ID (its one URI SAN) mapped to configured scopes.
use std::collections::HashMap;

use tonic::transport::CertificateDer;
use x509_parser::extensions::GeneralName;

use super::config::{MtlsIdentity, parse_scopes};
use super::unauthenticated;
use crate::domain::{Principal, Scopes};
use crate::error::Error;

/// SPIFFE ID -> scopes, from `[[mtls.identities]]`.
#[derive(Debug, Default)]
pub(super) struct SpiffeMap(HashMap<String, Scopes>);

impl SpiffeMap {
    pub(super) fn from_config(identities: &[MtlsIdentity]) -> Result<Self, String> {
        let mut map = HashMap::with_capacity(identities.len());
        for (i, identity) in identities.iter().enumerate() {
            let what = format!("[[mtls.identities]] entry {}", i + 1);
            if !is_spiffe_id(&identity.spiffe_id) {
                return Err(format!(
                    "{what}: spiffe_id \"{}\" is not a SPIFFE ID (spiffe://trust-domain/path, \
                     lower-case trust domain, no query, fragment, port or trailing slash)",
                    identity.spiffe_id
                ));
            }
            let scopes = parse_scopes(&what, &identity.scopes)?;
            if map.insert(identity.spiffe_id.clone(), scopes).is_some() {
                return Err(format!(
                    "{what}: spiffe_id \"{}\" is listed twice",
                    identity.spiffe_id
                ));
            }
        }
        Ok(Self(map))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The caller identified by the verified chain (rustls has checked it
    /// against the client CA before any request arrives).
    pub(super) fn principal(&self, chain: &[CertificateDer<'static>]) -> Result<Principal, Error> {
        let leaf = chain
            .first()
            .ok_or_else(|| unauthenticated("missing client certificate"))?;
        let (_, cert) = x509_parser::parse_x509_certificate(leaf)
            .map_err(|_| unauthenticated("client certificate cannot be parsed"))?;
        let san = cert.subject_alternative_name().map_err(|_| {
            unauthenticated("client certificate has a malformed subject alternative name")
        })?;
        let mut uris = san
            .iter()
            .flat_map(|ext| ext.value.general_names.iter())
            .filter_map(|name| match name {
                GeneralName::URI(uri) => Some(*uri),
                _ => None,
            });
        let uri = match (uris.next(), uris.next()) {
            (Some(uri), None) => uri,
            (None, _) => return Err(unauthenticated("client certificate has no SPIFFE ID")),
            // X.509-SVID: exactly one URI SAN, else the identity is ambiguous.
            (Some(_), Some(_)) => {
                return Err(unauthenticated(
                    "client certificate has more than one URI SAN; a SPIFFE ID must be the only one",
                ));
            }
        };
        if !is_spiffe_id(uri) {
            return Err(unauthenticated("client certificate has no SPIFFE ID"));
        }
        let scopes = self.0.get(uri).ok_or_else(|| {
            unauthenticated("client certificate's SPIFFE ID is not allowed to call this service")
        })?;
        Ok(Principal::Service {
            sub: uri.to_owned(),
            scopes: *scopes,
        })
    }
}

/// The SPIFFE ID grammar (SPIFFE-ID spec §2): `spiffe://` + lower-case trust
/// domain + optional path of non-empty segments from `[A-Za-z0-9._-]`, none
/// `.` or `..`; no query, fragment, port, user info or trailing slash.
pub(super) fn is_spiffe_id(id: &str) -> bool {
    const MAX_LEN: usize = 2048;
    const MAX_TRUST_DOMAIN: usize = 255;
    let Some(rest) = id.strip_prefix("spiffe://") else {
        return false;
    };
    if id.len() > MAX_LEN {
        return false;
    }
    let (trust_domain, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let domain_ok = !trust_domain.is_empty()
        && trust_domain.len() <= MAX_TRUST_DOMAIN
        && trust_domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    let path_ok = path.is_none_or(|path| {
        path.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
    });
    domain_ok && path_ok
}
