//! Domain -> proto `ContactInfo` (saved, previewed, and as one revision),
//! always through the caller's audience view.
use chrono::{DateTime, Utc};

use super::contact::contact_to_pb;
use super::support::support_to_pb;
use super::time::timestamp;
use crate::domain::{Contact, ContactFields, ContactInfo, ContactInfoName, ReadView, Revision};
use crate::pb;

/// Domain -> proto, through the caller's audience filter: there is no way to
/// encode contact fields without naming who will see them.
pub fn contact_info_to_pb(info: &ContactInfo, view: ReadView) -> pb::ContactInfo {
    resource_to_pb(
        &info.name,
        &visible(&info.fields, view),
        &info.etag,
        Some(info.create_time),
        Some(info.update_time),
    )
}

fn visible(fields: &ContactFields, view: ReadView) -> std::borrow::Cow<'_, ContactFields> {
    view.filter(fields)
}

/// One revision, through the caller's audience filter (its changed fields
/// too: a hidden field's name is not for this caller either).
pub fn revision_to_pb(revision: &Revision, view: ReadView) -> pb::ContactInfoRevision {
    pb::ContactInfoRevision {
        name: format!(
            "{}/revisions/{}",
            revision.info.name, revision.info.revision
        ),
        actor: revision.actor.clone(),
        create_time: Some(timestamp(revision.info.update_time)),
        request_id: revision
            .request_id
            .map_or_else(String::new, |id| id.hyphenated().to_string()),
        changed_fields: revision
            .changed
            .iter()
            .filter(|f| view.shows(*f))
            .map(|f| f.as_str().to_owned())
            .collect(),
        contact_info: Some(contact_info_to_pb(&revision.info, view)),
        source: revision.source.clone().unwrap_or_default(),
    }
}

/// The would-be resource for `validate_only`: `fields` under `name`, with the
/// output-only fields of `current` (empty when nothing is stored yet), because
/// nothing was saved and so nothing about them changed.
pub fn preview_to_pb(
    name: &ContactInfoName,
    fields: &ContactFields,
    current: Option<&ContactInfo>,
    view: ReadView,
) -> pb::ContactInfo {
    resource_to_pb(
        name,
        &visible(fields, view),
        current.map_or("", |c| c.etag.as_str()),
        current.map(|c| c.create_time),
        current.map(|c| c.update_time),
    )
}

fn resource_to_pb(
    name: &ContactInfoName,
    fields: &ContactFields,
    etag: &str,
    create_time: Option<DateTime<Utc>>,
    update_time: Option<DateTime<Utc>>,
) -> pb::ContactInfo {
    let contacts = |cs: &[Contact]| cs.iter().map(contact_to_pb).collect::<Vec<_>>();
    pb::ContactInfo {
        name: name.to_string(),
        alert_contacts: contacts(&fields.alert_contacts),
        technical_emergency_contacts: contacts(&fields.technical_emergency_contacts),
        technical_non_emergency_contacts: contacts(&fields.technical_non_emergency_contacts),
        merchant_issues_contacts: contacts(&fields.merchant_issues_contacts),
        platform_operational_contacts: contacts(&fields.platform_operational_contacts),
        user_facing_operational_contacts: contacts(&fields.user_facing_operational_contacts),
        operational_support: fields.operational_support.as_ref().map(support_to_pb),
        etag: etag.to_owned(),
        create_time: create_time.map(timestamp),
        update_time: update_time.map(timestamp),
        address_verifications: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::convert::fixtures::{PROD, full_info, request};
    use crate::api::convert::parse_update;
    use crate::domain::{FieldSet, PortalUserEmails, now_micros};

    #[test]
    fn full_request_round_trips() {
        let input = full_info(PROD);
        let update = parse_update(&request(input.clone(), &[])).expect("valid");
        assert_eq!(update.mask, FieldSet::all());
        assert_eq!(update.expected_etag, None);
        let now = now_micros();
        // A save checks that alert contacts are portal users: here they are.
        let users: PortalUserEmails = update
            .patch
            .alert_contacts
            .iter()
            .map(|c| c.email.comparison_key())
            .collect();
        let saved = update.apply(None, Some(&users), now).expect("apply");
        let out = contact_info_to_pb(&saved, ReadView::Full);

        // What comes back is the canonical form: E.164 phones, days in week
        // order, zone aliases by their canonical name.
        let mut want = input;
        want.alert_contacts[0].phone_number = "+16502530000".into();
        want.technical_non_emergency_contacts[0].phone_number = "+41446681800".into();
        let windows = &mut want.operational_support.as_mut().expect("support").windows;
        windows[1].days = vec![pb::DayOfWeek::Saturday as i32, pb::DayOfWeek::Sunday as i32];
        windows[2].time_zone = "Etc/UTC".into();
        want.etag = saved.etag.clone();
        want.create_time = Some(timestamp(now));
        want.update_time = Some(timestamp(now));
        assert_eq!(out, want);

        let preview = preview_to_pb(&saved.name, &saved.fields, None, ReadView::Full);
        assert_eq!(preview.etag, "");
        assert_eq!(preview.create_time, None);
        assert_eq!(preview.update_time, None);
        let preview = preview_to_pb(&saved.name, &saved.fields, Some(&saved), ReadView::Full);
        assert_eq!(preview, want);
    }
}
