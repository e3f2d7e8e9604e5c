//! ResolveRecipients after admission: whom the alert dispatcher should reach.
use super::{ContactsApi, convert};
use crate::domain::{
    ContactInfoName, Field, Principal, Purpose, VerificationState, email_key_borrowed, now_micros,
    resolve_with,
};
use crate::error::{CONTACT_INFO_TYPE, Error, Violations};
use crate::pb;
use crate::wire::{Encoded, ResolutionOut};

fn parse_purpose(raw: i32, v: &mut Violations) -> Option<Purpose> {
    match pb::Purpose::try_from(raw) {
        Ok(pb::Purpose::ProductionAlert) => Some(Purpose::ProductionAlert),
        Ok(pb::Purpose::TechnicalEmergency) => Some(Purpose::TechnicalEmergency),
        Ok(pb::Purpose::TechnicalSupport) => Some(Purpose::TechnicalSupport),
        Ok(pb::Purpose::MerchantIssue) => Some(Purpose::MerchantIssue),
        Ok(pb::Purpose::UserEscalation) => Some(Purpose::UserEscalation),
        Ok(pb::Purpose::UserSupport) => Some(Purpose::UserSupport),
        Ok(pb::Purpose::Unspecified) | Err(_) => {
            v.push(
                "purpose",
                "must be one of the PURPOSE_* values other than PURPOSE_UNSPECIFIED",
            );
            None
        }
    }
}

pub(super) async fn resolve_recipients(
    api: &ContactsApi,
    principal: &Principal,
    req: pb::ResolveRecipientsRequest,
) -> Result<Encoded, Error> {
    let mut v = Violations::default();
    let name = ContactInfoName::parse(&req.name)
        .map_err(|d| v.push("name", d))
        .ok();
    let purpose = parse_purpose(req.purpose, &mut v);
    let at = match &req.at_time {
        None => Some(now_micros()),
        Some(t) => {
            let at = convert::time_of(t);
            if at.is_none() {
                v.push("at_time", convert::TIMESTAMP_HINT);
            }
            at
        }
    };
    let (Some(name), Some(purpose), Some(at)) = v.finish((name, purpose, at))? else {
        return Err(Error::invalid_field("name", "is invalid"));
    };

    let (ready, users) =
        api.store
            .ready_and_users(&name)
            .await?
            .ok_or_else(|| Error::NotFound {
                resource_type: CONTACT_INFO_TYPE,
                name: name.to_string(),
            })?;
    let view = principal.read_view();
    let info = ready.view();
    let resolution = resolve_with(
        purpose,
        |field| {
            let shown = view.shows(field);
            info.contacts(field).filter(move |_| shown)
        },
        |c| email_key_borrowed(c.email),
        |key| users.contains(key),
    );
    let requested = purpose.fields()[0];
    let facts = ready.verifications();
    let states: Option<Vec<VerificationState>> = (!facts.is_empty()).then(|| {
        // States now, whatever `at_time` asks about: the facts are today's.
        let now = now_micros();
        resolution
            .recipients
            .iter()
            .map(|(c, _)| {
                facts
                    .get(email_key_borrowed(c.email).as_ref())
                    .map_or(VerificationState::Unverified, |f| {
                        f.at(now, &api.verification).state
                    })
            })
            .collect()
    });
    let answer = ResolutionOut {
        recipients: &resolution.recipients,
        verification: states.as_deref(),
        fallback: resolution
            .fallback
            .map(|used| (requested.as_str(), used.as_str())),
        support_open: view.shows(Field::OperationalSupport) && ready.support_open_at(at),
        at_time: at,
        etag: info.etag(),
    };
    Ok(Encoded(answer.encode()))
}
