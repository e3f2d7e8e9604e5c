//! Events as the proto's `Event` bytes: encoded once when the change is
//! saved, stored in the outbox as they are, and sent unchanged by ListEvents
//! and the broker relay. The per-partner `sequence` is only known once the
//! store numbers the event, so it is appended to the stored bytes when read
//! (a protobuf message may be extended by concatenation).
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint};

use crate::domain::{Event, EventKind, PortalRole, PortalUser};
use crate::pb;

/// `Event.sequence`'s field number.
const SEQUENCE_FIELD: u32 = 3;

/// A portal user as the API returns it.
pub fn portal_user_pb(u: &PortalUser) -> pb::PortalUser {
    pb::PortalUser {
        name: u.name.to_string(),
        email: u.email.as_str().to_owned(),
        role: role_pb(u.role) as i32,
        create_time: Some(super::timestamp_pb(u.create_time)),
        update_time: Some(super::timestamp_pb(u.update_time)),
    }
}

fn role_pb(r: PortalRole) -> pb::PortalRole {
    match r {
        PortalRole::Administrator => pb::PortalRole::Administrator,
        PortalRole::Editor => pb::PortalRole::Editor,
        PortalRole::ReadOnly => pb::PortalRole::ReadOnly,
    }
}

/// The event as stored: every field but `sequence`.
pub fn encode_event(e: &Event) -> Vec<u8> {
    use pb::event::Payload;
    let payload = match &e.kind {
        EventKind::ContactsChanged { revision, change } => {
            let before: Vec<_> = change.before.iter().map(|m| m.comparison_key()).collect();
            let after: Vec<_> = change.after.iter().map(|m| m.comparison_key()).collect();
            let recipients = change
                .recipients()
                .into_iter()
                .map(|email| {
                    let key = email.comparison_key();
                    let how = match (before.contains(&key), after.contains(&key)) {
                        (true, true) => pb::notified_address::Change::Kept,
                        (true, false) => pb::notified_address::Change::Removed,
                        _ => pb::notified_address::Change::Added,
                    };
                    pb::NotifiedAddress {
                        email: email.as_str().to_owned(),
                        change: how as i32,
                    }
                })
                .collect();
            Payload::ContactsChanged(pb::ContactsChanged {
                contact_info: revision.name.to_string(),
                revision: revision.to_string(),
                field: change.field.as_str().to_owned(),
                recipients,
            })
        }
        EventKind::PortalUserGranted(u)
        | EventKind::PortalUserRoleChanged(u)
        | EventKind::PortalUserRevoked(u) => Payload::PortalUserChanged(pb::PortalUserChanged {
            portal_user: Some(portal_user_pb(u)),
        }),
        EventKind::VerificationRequested {
            contact_info,
            email,
            fields,
            challenge,
            expire_time,
        } => Payload::VerificationRequested(pb::VerificationRequested {
            email: email.as_str().to_owned(),
            contact_info: contact_info.to_string(),
            fields: fields.iter().map(|f| f.as_str().to_owned()).collect(),
            challenge: challenge.clone(),
            expire_time: Some(super::timestamp_pb(*expire_time)),
        }),
    };
    pb::Event {
        name: format!(
            "partners/{}/events/{}",
            e.partner.as_str(),
            e.id.hyphenated()
        ),
        r#type: e.kind.type_name().to_owned(),
        sequence: 0,
        create_time: Some(super::timestamp_pb(e.create_time)),
        actor: e.actor.clone(),
        payload: Some(payload),
    }
    .encode_to_vec()
}

/// The stored bytes with the event's `sequence`: the whole `Event`.
pub fn with_sequence(stored: &[u8], sequence: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(stored.len() + 11);
    out.extend_from_slice(stored);
    encode_key(SEQUENCE_FIELD, WireType::Varint, &mut out);
    encode_varint(sequence as u64, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::domain::{
        AddressChange, ContactInfoName, Environment, Field, PartnerId, RevisionName,
    };

    #[test]
    fn a_change_notice_names_each_mailbox_once_with_what_happened_to_it() {
        let c = |e: &str| crate::domain::Email::parse(e).expect("email");
        let event = Event {
            id: uuid::Uuid::nil(),
            partner: PartnerId::parse("acme").expect("partner"),
            create_time: DateTime::UNIX_EPOCH,
            actor: "alice".to_owned(),
            kind: EventKind::ContactsChanged {
                revision: RevisionName {
                    name: ContactInfoName::new(
                        PartnerId::parse("acme").expect("partner"),
                        Environment::Production,
                    ),
                    revision: 4,
                },
                change: AddressChange {
                    field: Field::TechnicalEmergencyContacts,
                    before: vec![c("old@acme.example"), c("kept@acme.example")],
                    after: vec![c("Kept@acme.example"), c("new@acme.example")],
                },
            },
        };
        let stored = encode_event(&event);
        let decoded = pb::Event::decode(with_sequence(&stored, 7).as_slice()).expect("decode");
        assert_eq!(decoded.sequence, 7);
        assert_eq!(decoded.r#type, "contacts.changed");
        assert_eq!(
            decoded.name,
            "partners/acme/events/00000000-0000-0000-0000-000000000000"
        );
        let Some(pb::event::Payload::ContactsChanged(changed)) = decoded.payload else {
            panic!("{decoded:?}")
        };
        assert_eq!(changed.field, "technical_emergency_contacts");
        assert_eq!(
            changed.revision,
            "partners/acme/environments/production/contactInfo/revisions/4"
        );
        let got: Vec<_> = changed
            .recipients
            .iter()
            .map(|r| (r.email.as_str(), r.change()))
            .collect();
        use pb::notified_address::Change;
        assert_eq!(
            got,
            [
                ("old@acme.example", Change::Removed),
                ("kept@acme.example", Change::Kept),
                ("new@acme.example", Change::Added),
            ]
        );
    }
}
