//! Contact-info RPCs after admission: validate, call the store, encode.
use prost::Message;
use sha2::{Digest, Sha256};

use super::{ContactsApi, convert, paging, verification};
use crate::domain::{FieldSet, Principal, Revision, Update, now_micros};
use crate::error::{Error, FieldViolation, join_checks};
use crate::pb;
use crate::store::{ContactStore, RequestKey};
use crate::wire::{Encoded, gate_answer};

/// GetContacts, encoded: the ready form as saved (or a copy without what
/// the caller's view hides); a past state from the history is encoded here.
pub(super) async fn get(
    api: &ContactsApi,
    principal: &Principal,
    req: pb::GetContactsRequest,
) -> Result<Encoded, Error> {
    let name = convert::parse_name(&req.name)?;
    let view = principal.read_view();
    let not_found = || Error::NotFound {
        resource_type: crate::error::CONTACT_INFO_TYPE,
        name: name.to_string(),
    };
    match &req.read_time {
        Some(t) => {
            let at = convert::parse_time(t, "read_time")?;
            let info = api.store.get_at(&name, at).await?.ok_or_else(not_found)?;
            Ok(Encoded(
                convert::contact_info_to_pb(&info, view)
                    .encode_to_vec()
                    .into(),
            ))
        }
        None => {
            let ready = api.store.ready(&name).await?.ok_or_else(not_found)?;
            let encoded = ready.encoded_for(view);
            let facts = ready.verifications();
            if facts.is_empty() {
                // Most partners: the bytes as saved, nothing added.
                return Ok(Encoded(encoded));
            }
            // A partner with verification facts: its states depend on the
            // time, so they are added to a decoded copy at each read.
            let mut info = pb::ContactInfo::decode(encoded).map_err(|_| Error::Internal {
                detail: "a ready form did not decode".to_owned(),
            })?;
            verification::annotate(&mut info, facts, now_micros(), &api.verification);
            Ok(Encoded(info.encode_to_vec().into()))
        }
    }
}

pub(super) async fn update(
    api: &ContactsApi,
    principal: &Principal,
    req: pb::UpdateContactsRequest,
) -> Result<pb::ContactInfo, Error> {
    // Report every problem at once: the request id is checked beside the body.
    let key = request_key(&req.request_id, req.validate_only, |id| {
        let mut canonical = req.clone();
        canonical.request_id = id;
        // Unprefixed: the fingerprints recorded before CopyContactInfo
        // existed must still match their retries.
        canonical.encode_to_vec()
    });
    let (update, key) = join_checks(convert::parse_update(&req), key)?;
    save(api, principal, update, key, req.validate_only).await
}

/// CopyContactInfo: the source read as it is now, saved onto the target as
/// an update of the fields both environments have.
pub(super) async fn copy(
    api: &ContactsApi,
    principal: &Principal,
    req: pb::CopyContactInfoRequest,
) -> Result<pb::ContactInfo, Error> {
    let key = request_key(&req.request_id, req.validate_only, |id| {
        let mut canonical = req.clone();
        canonical.request_id = id;
        // Prefixed with the method, so an UpdateContacts request can never
        // share a fingerprint with a copy (the same id on both is a reuse).
        let mut bytes = b"CopyContactInfo\0".to_vec();
        bytes.extend(canonical.encode_to_vec());
        bytes
    });
    let ((target, source), key) =
        join_checks(convert::parse_copy_names(&req.name, &req.source), key)?;
    let from = api
        .store
        .get(&source)
        .await?
        .ok_or_else(|| Error::NotFound {
            resource_type: crate::error::CONTACT_INFO_TYPE,
            name: source.to_string(),
        })?;
    let expected_etag = (!req.etag.is_empty()).then(|| req.etag.clone());
    let update = Update::copy_of(&from, target, expected_etag);
    save(api, principal, update, key, req.validate_only).await
}

/// Saves `update` (or, for `validate_only`, checks it and returns what would
/// be saved): UpdateContacts and CopyContactInfo alike.
async fn save(
    api: &ContactsApi,
    principal: &Principal,
    update: Update,
    key: Option<(uuid::Uuid, [u8; 32])>,
    validate_only: bool,
) -> Result<pb::ContactInfo, Error> {
    let key = key.map(|(id, fingerprint)| RequestKey::new(&update.name.partner, id, fingerprint));
    let view = principal.read_view();
    if validate_only {
        let current = api.store.get(&update.name).await?;
        let users = match update.needs_portal_users() {
            true => Some(api.store.portal_user_emails(&update.name.partner).await?),
            false => None,
        };
        let fields = update.checked_fields(current.as_ref(), users.as_ref())?;
        return Ok(convert::preview_to_pb(
            &update.name,
            &fields,
            current.as_ref(),
            view,
        ));
    }
    let saved = api
        .store
        .save(&update, key.as_ref(), principal.actor())
        .await?;
    let facts = match saved.verifications {
        Some(facts) => facts,
        // A replayed request read nothing in its transaction.
        None => api.store.verifications(&update.name.partner).await?,
    };
    let mut out = convert::contact_info_to_pb(&saved.info, view);
    verification::annotate(&mut out, &facts, now_micros(), &api.verification);
    Ok(out)
}

/// A present `request_id` must be a UUID in its usual hyphenated form (either
/// case); with it comes a fingerprint of the whole request (`canonical`: the
/// request's bytes with the id given), so a reused id can be told from a
/// retry.
fn request_key(
    request_id: &str,
    validate_only: bool,
    canonical: impl FnOnce(String) -> Vec<u8>,
) -> Result<Option<(uuid::Uuid, [u8; 32])>, FieldViolation> {
    if request_id.is_empty() || validate_only {
        return Ok(None);
    }
    let id = uuid::Uuid::try_parse(request_id)
        .ok()
        .filter(|_| request_id.len() == 36)
        .ok_or_else(|| {
            FieldViolation::new(
                "request_id",
                "must be a UUID in hyphenated form, e.g. 2f1e9a9c-2d43-4b0e-9a4e-8c1f3b7d5e60",
            )
        })?;
    // Fingerprint the request as if the id were written in lowercase, so a
    // retry that changes only the id's case is still the same request.
    let fingerprint = Sha256::digest(canonical(id.hyphenated().to_string())).into();
    Ok(Some((id, fingerprint)))
}

pub(super) async fn check_gate(
    api: &ContactsApi,
    req: pb::CheckOnboardingGateRequest,
) -> Result<Encoded, Error> {
    // Both inputs are checked before any lookup, and reported together.
    let name = match convert::parse_gate_name(&req.name) {
        Ok(name) => name,
        Err(Error::InvalidArgument { mut violations, .. }) => {
            if let Err(Error::InvalidArgument {
                violations: more, ..
            }) = api.policy.check_type(&req.integration_type)
            {
                violations.extend(more);
            }
            return Err(Error::invalid(violations));
        }
        Err(e) => return Err(e),
    };
    let requirement = api
        .policy
        .requirement(&req.integration_type, name.environment)?;
    let current = api.store.ready_and_users(&name).await?;
    let now = now_micros();
    let verified = requirement.verified_fields();
    let facts = current.as_ref().map(|(ready, users)| {
        let view = ready.view();
        // Most types ask for no verified field: nothing to look up then.
        let unverified = if verified.is_empty() {
            FieldSet::EMPTY
        } else {
            view.unverified(verified, ready.verifications(), now, &api.verification)
        };
        view.gate_facts(users, unverified)
    });
    let result = requirement.evaluate(facts.as_ref());
    Ok(Encoded(gate_answer(
        &result,
        current
            .as_ref()
            .map_or("", |(ready, _)| ready.view().etag()),
        now,
    )))
}

const REVISIONS_TOKEN: &str = "revisions";

pub(super) async fn list_revisions(
    api: &ContactsApi,
    principal: &Principal,
    req: pb::ListContactInfoRevisionsRequest,
) -> Result<pb::ListContactInfoRevisionsResponse, Error> {
    let (name, size) = join_checks(
        convert::parse_name(&req.name),
        paging::page_size(req.page_size),
    )?;
    let before = paging::start_of_page(&req.page_token, REVISIONS_TOKEN, &req.name, |c| {
        c.parse::<i64>().ok()
    })?;
    let page = paging::fetch_page(
        size,
        REVISIONS_TOKEN,
        &req.name,
        |limit| api.store.list_revisions(&name, before, limit),
        |r: &Revision| r.info.revision.to_string(),
    )
    .await?;
    let view = principal.read_view();
    Ok(pb::ListContactInfoRevisionsResponse {
        revisions: page
            .items
            .iter()
            .map(|r| convert::revision_to_pb(r, view))
            .collect(),
        next_page_token: page.next_page_token,
    })
}
