//! SendVerification and ConfirmContact after admission: challenges issued
//! to a contact info's addresses (and carried to the mailer by their
//! events), and a challenge turned into a verified address.
use super::ContactsApi;
use chrono::{DateTime, Utc};

use crate::domain::{
    ContactInfoName, Email, Event, EventKind, MAX_CONTACTS_PER_FIELD, PartnerVerifications,
    Principal, Verification, VerificationPolicy, VerificationState, challenge_expiry,
    challenge_hash, email_key_borrowed, is_challenge_shaped, now_micros, parse_partner_parent,
    to_challenge,
};
use crate::error::{CONTACT_INFO_TYPE, Error, Violations};
use crate::pb;
use crate::store::{ContactStore, NewChallenge};
use crate::wire::address_verification_pb;

/// More addresses than a contact info can hold is a mistake, not a request.
const MAX_EMAILS: usize = 7 * MAX_CONTACTS_PER_FIELD;

/// The one answer to every challenge that cannot be used: guessing must
/// not learn whether a challenge existed, was used, or expired.
fn refused() -> Error {
    Error::invalid_field(
        "challenge",
        "is not a challenge that can be confirmed (mistyped, used, expired or replaced by a newer one); ask for a new one",
    )
}

/// 256 bits from the operating system, as 64 lowercase hex characters.
fn new_challenge() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| Error::Internal {
        detail: "no randomness for a challenge".to_owned(),
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub(super) async fn send(
    api: &ContactsApi,
    principal: &Principal,
    req: pb::SendVerificationRequest,
) -> Result<pb::SendVerificationResponse, Error> {
    let mut v = Violations::default();
    let name = ContactInfoName::parse(&req.name)
        .map_err(|d| v.push("name", d))
        .ok();
    if req.emails.len() > MAX_EMAILS {
        v.push("emails", format!("at most {MAX_EMAILS} addresses"));
    }
    let emails: Vec<Email> = req
        .emails
        .iter()
        .take(MAX_EMAILS)
        .enumerate()
        .filter_map(|(i, e)| {
            Email::parse(e)
                .map_err(|d| v.push(format!("emails[{i}]"), d))
                .ok()
        })
        .collect();
    let Some(name) = v.finish(name)? else {
        return Err(Error::invalid_field("name", "is invalid"));
    };
    let info = api.store.get(&name).await?.ok_or_else(|| Error::NotFound {
        resource_type: CONTACT_INFO_TYPE,
        name: name.to_string(),
    })?;
    let partner = &name.partner;
    let known = api.store.verifications(partner).await?;
    let now = now_micros();
    let policy = &api.verification;
    let mut v = Violations::default();
    let chosen = to_challenge(&info.fields, &emails, &known, now, policy, &mut v);
    v.finish(())?;
    let expire_time = challenge_expiry(now, policy);
    let mut challenges = Vec::with_capacity(chosen.len());
    let mut events = Vec::with_capacity(chosen.len());
    for to in &chosen {
        let challenge = new_challenge()?;
        challenges.push(NewChallenge {
            email: to.email.clone(),
            hash: challenge_hash(&challenge),
            create_time: now,
            expire_time,
        });
        events.push(Event {
            id: uuid::Uuid::new_v4(),
            partner: partner.clone(),
            create_time: now,
            actor: principal.actor().to_owned(),
            kind: EventKind::VerificationRequested {
                contact_info: name.clone(),
                email: to.email.clone(),
                fields: to.fields.clone(),
                challenge,
                expire_time,
            },
        });
    }
    if !challenges.is_empty() {
        api.store
            .record_challenges(partner, &challenges, &events)
            .await?;
    }
    let address_verifications = chosen
        .iter()
        .map(|to| {
            let before = known.of(&to.email, now, policy);
            let after = if before.state == VerificationState::Verified {
                before
            } else {
                Verification {
                    state: VerificationState::Pending,
                    verify_time: before.verify_time,
                    expire_time: Some(expire_time),
                }
            };
            address_verification_pb(to.email.as_str(), &after)
        })
        .collect();
    Ok(pb::SendVerificationResponse {
        address_verifications,
    })
}

pub(super) async fn confirm(
    api: &ContactsApi,
    req: pb::ConfirmContactRequest,
) -> Result<pb::AddressVerification, Error> {
    let mut v = Violations::default();
    let partner = parse_partner_parent(&req.parent)
        .map_err(|d| v.push("parent", d))
        .ok();
    let Some(partner) = v.finish(partner)? else {
        return Err(Error::invalid_field("parent", "is invalid"));
    };
    if !is_challenge_shaped(&req.challenge) {
        return Err(refused());
    }
    let now = now_micros();
    let (email, facts) = api
        .store
        .confirm_challenge(&partner, &challenge_hash(&req.challenge), now)
        .await?
        .ok_or_else(refused)?;
    Ok(address_verification_pb(
        &email,
        &facts.at(now, &api.verification),
    ))
}

/// Sets each contact's `verification`, and the contact info's
/// `address_verifications` (each mailbox once, in field order), from the
/// partner's facts at `now`: what GetContacts, UpdateContacts and
/// CopyContactInfo return. A contact whose address has no facts is left
/// without one (UNVERIFIED). `info` holds only what the caller may see.
pub(super) fn annotate(
    info: &mut pb::ContactInfo,
    facts: &PartnerVerifications,
    now: DateTime<Utc>,
    policy: &VerificationPolicy,
) {
    if facts.is_empty() {
        return;
    }
    let mut listed: Vec<pb::AddressVerification> = Vec::new();
    let mut keys: Vec<&str> = Vec::new();
    // Proto order, as the fields are encoded.
    for contacts in [
        &mut info.alert_contacts,
        &mut info.technical_emergency_contacts,
        &mut info.technical_non_emergency_contacts,
        &mut info.merchant_issues_contacts,
        &mut info.platform_operational_contacts,
        &mut info.user_facing_operational_contacts,
    ] {
        for c in contacts.iter_mut() {
            let Some(f) = facts.get(email_key_borrowed(&c.email).as_ref()) else {
                continue;
            };
            let v = address_verification_pb(&c.email, &f.at(now, policy));
            if !keys.contains(&f.key.as_str()) {
                keys.push(f.key.as_str());
                listed.push(v.clone());
            }
            c.verification = Some(v);
        }
    }
    info.address_verifications = listed;
}
