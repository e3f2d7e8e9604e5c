//! ResolveRecipients after admission: whom the alert dispatcher should reach.
use super::{ContactsApi, convert};
use crate::domain::{ContactInfoName, Field, Principal, Purpose, now_micros, resolve};
use crate::error::{CONTACT_INFO_TYPE, Error, Violations};
use crate::pb;

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
) -> Result<pb::ResolveRecipientsResponse, Error> {
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

    let info = api
        .store
        .get_shared(&name)
        .await?
        .ok_or_else(|| Error::NotFound {
            resource_type: CONTACT_INFO_TYPE,
            name: name.to_string(),
        })?;
    let mut fields = principal.read_view().filter(&info.fields);
    if purpose.fields().contains(&Field::AlertContacts) && !fields.alert_contacts.is_empty() {
        // A revoked portal user keeps their place in the saved list but must
        // stop receiving production alerts at once.
        let users = api.store.portal_user_emails_shared(&name.partner).await?;
        if fields
            .alert_contacts
            .iter()
            .any(|c| !users.contains(&c.email.comparison_key()))
        {
            fields
                .to_mut()
                .alert_contacts
                .retain(|c| users.contains(&c.email.comparison_key()));
        }
    }
    let resolution = resolve(&fields, purpose);
    let requested = purpose.fields()[0];
    Ok(pb::ResolveRecipientsResponse {
        recipients: resolution
            .recipients
            .iter()
            .map(|(c, field)| {
                // A recipient is a contact as responses spell it, plus where
                // it was found.
                let pb::Contact {
                    email,
                    display_name,
                    phone_number,
                    language_code,
                } = convert::contact_to_pb(c);
                pb::Recipient {
                    email,
                    display_name,
                    language_code,
                    phone_number,
                    field: field.as_str().to_owned(),
                }
            })
            .collect(),
        fallback: resolution.fallback.map(|used| pb::Fallback {
            requested_field: requested.as_str().to_owned(),
            used_field: used.as_str().to_owned(),
            rule: format!("{} is empty: using {}", requested.as_str(), used.as_str()),
        }),
        support_open: fields
            .operational_support
            .as_ref()
            .is_some_and(|s| s.is_open_at(at)),
        at_time: Some(convert::timestamp(at)),
        etag: info.etag.clone(),
    })
}
