//! UpdateContacts request ids: the key a request is recorded under, and the
//! replay of a recorded first result to a retry.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::rows::internal;
use crate::domain::{ContactFields, ContactInfo, ContactInfoName, Environment, PartnerId};
use crate::error::{Error, FieldViolation, InvalidReason};

/// How long a `request_id` is remembered. The API promises at least 24 hours.
pub const REQUEST_ID_RETENTION: chrono::Duration = chrono::Duration::hours(48);

/// Identifies one UpdateContacts request for safe retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    /// The caller's `request_id`, as the revision history shows it.
    pub id: uuid::Uuid,
    /// Where the request is recorded: the id scoped to the partner, so that
    /// the same id sent for another partner is another request, neither
    /// refused nor told apart from a fresh one.
    pub slot: uuid::Uuid,
    /// A digest of the whole request: the same id with another digest is a
    /// reuse, not a retry.
    pub fingerprint: [u8; 32],
}

impl RequestKey {
    pub fn new(partner: &PartnerId, id: uuid::Uuid, fingerprint: [u8; 32]) -> Self {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        // Versioned and separated, so no other input can give the same slot.
        h.update(b"partner-contacts request_id slot v1\0");
        h.update(partner.as_str().as_bytes());
        h.update(b"\0");
        h.update(id.as_bytes());
        let digest = h.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self {
            id,
            slot: uuid::Builder::from_custom_bytes(bytes).into_uuid(),
            fingerprint,
        }
    }
}

/// What a request record keeps: the response of the first call.
#[derive(Serialize, Deserialize)]
struct RecordedResponse {
    partner: String,
    environment: Environment,
    revision: i64,
    etag: String,
    fields: ContactFields,
    create_time: DateTime<Utc>,
    update_time: DateTime<Utc>,
}

pub(crate) fn encode_response(info: &ContactInfo) -> Result<String, Error> {
    serde_json::to_string(&RecordedResponse {
        partner: info.name.partner.as_str().to_owned(),
        environment: info.name.environment,
        revision: info.revision,
        etag: info.etag.clone(),
        fields: info.fields.clone(),
        create_time: info.create_time,
        update_time: info.update_time,
    })
    .map_err(|_| internal("could not encode the recorded response"))
}

/// Checks a recorded request against a retry and returns the first result.
pub(crate) fn replay(
    key: &RequestKey,
    fingerprint: &[u8],
    response: Option<&str>,
) -> Result<ContactInfo, Error> {
    if fingerprint != key.fingerprint {
        return Err(Error::InvalidArgument {
            reason: InvalidReason::RequestIdReused,
            violations: vec![FieldViolation::new(
                "request_id",
                "was already used for a different request; use a new request_id for a new request",
            )],
        });
    }
    let text = response.ok_or_else(|| internal("recorded request has no response"))?;
    let r: RecordedResponse =
        serde_json::from_str(text).map_err(|_| internal("recorded response does not decode"))?;
    let partner =
        PartnerId::parse(&r.partner).map_err(|_| internal("recorded partner id is invalid"))?;
    Ok(ContactInfo {
        name: ContactInfoName::new(partner, r.environment),
        fields: r.fields,
        revision: r.revision,
        etag: r.etag,
        create_time: r.create_time,
        update_time: r.update_time,
    })
}
