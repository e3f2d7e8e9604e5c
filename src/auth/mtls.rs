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

#[cfg(test)]
mod tests {
    use tonic::metadata::MetadataMap;

    use super::*;
    use crate::auth::test_support::*;
    use crate::domain::Scope;

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
    fn spiffe_id_grammar() {
        for ok in [
            "spiffe://example.org",
            "spiffe://example.org/ns/a_b/sa/c-d.e",
            SPIFFE_DISPATCHER,
        ] {
            assert!(is_spiffe_id(ok), "{ok}");
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
            assert!(!is_spiffe_id(bad), "{bad}");
        }
    }
}
