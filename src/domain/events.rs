//! The events a change emits (issue 14): what happened, to whom it is
//! addressed, decided from the state before and after; the stores write
//! them in the change's own transaction.
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    AddressChange, ContactInfo, ContactInfoName, Email, Field, PartnerId, PortalUser,
    PortalUserChange, RevisionName,
};

/// One event, before the store numbers it within its partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Unique across partners: the consumer's (and JetStream's) dedupe key.
    pub id: Uuid,
    pub partner: PartnerId,
    pub create_time: DateTime<Utc>,
    pub actor: String,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A save changed whom one contact field reaches.
    ContactsChanged {
        /// The revision the save created (its name names the contact info).
        revision: RevisionName,
        change: AddressChange,
    },
    PortalUserGranted(PortalUser),
    PortalUserRoleChanged(PortalUser),
    /// The user as it was.
    PortalUserRevoked(PortalUser),
    /// SendVerification issued `challenge` to `email`: what the mailer needs.
    VerificationRequested {
        contact_info: ContactInfoName,
        email: Email,
        fields: Vec<Field>,
        /// The secret itself: only its hash is stored elsewhere.
        challenge: String,
        expire_time: DateTime<Utc>,
    },
}

impl EventKind {
    /// The documented type name, also the last part of the broker subject.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::ContactsChanged { .. } => "contacts.changed",
            Self::PortalUserGranted(_) => "portal_user.granted",
            Self::PortalUserRoleChanged(_) => "portal_user.role_changed",
            Self::PortalUserRevoked(_) => "portal_user.revoked",
            Self::VerificationRequested { .. } => "verification.requested",
        }
    }
}

/// The events of a contact info save from `before` (nothing saved: `None`)
/// to `after`: one `contacts.changed` per field whose mailboxes changed.
pub fn save_events(before: Option<&ContactInfo>, after: &ContactInfo, actor: &str) -> Vec<Event> {
    super::address_changes(before.map(|b| &b.fields), &after.fields)
        .into_iter()
        .map(|change| Event {
            id: Uuid::new_v4(),
            partner: after.name.partner.clone(),
            create_time: after.update_time,
            actor: actor.to_owned(),
            kind: EventKind::ContactsChanged {
                revision: RevisionName {
                    name: after.name.clone(),
                    revision: after.revision,
                },
                change,
            },
        })
        .collect()
}

/// The event of a change to a portal user, made at `at`.
pub fn user_event(change: &PortalUserChange, actor: &str, at: DateTime<Utc>) -> Event {
    let user = change.user();
    Event {
        id: Uuid::new_v4(),
        partner: user.name.partner.clone(),
        create_time: at,
        actor: actor.to_owned(),
        kind: match change {
            PortalUserChange::Grant(u) => EventKind::PortalUserGranted(u.clone()),
            PortalUserChange::UpdateRole(u) => EventKind::PortalUserRoleChanged(u.clone()),
            PortalUserChange::Revoke(u) => EventKind::PortalUserRevoked(u.clone()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::contact::contact;
    use crate::domain::{
        ContactFields, ContactInfoName, Environment, Field, PortalRole, PortalUserName,
    };

    fn info(revision: i64, fields: ContactFields) -> ContactInfo {
        ContactInfo {
            name: ContactInfoName::new(
                PartnerId::parse("acme").expect("partner"),
                Environment::Production,
            ),
            revision,
            etag: format!("e{revision}"),
            fields,
            create_time: DateTime::UNIX_EPOCH,
            update_time: DateTime::UNIX_EPOCH + chrono::Duration::seconds(revision),
        }
    }

    #[test]
    fn a_save_emits_one_event_per_field_whose_mailboxes_changed() {
        let before = info(
            1,
            ContactFields {
                technical_emergency_contacts: vec![contact("pager@acme.example")],
                merchant_issues_contacts: vec![contact("m@acme.example")],
                ..ContactFields::default()
            },
        );
        let after = info(
            2,
            ContactFields {
                technical_emergency_contacts: vec![contact("new@acme.example")],
                merchant_issues_contacts: vec![contact("M@acme.example")],
                ..ContactFields::default()
            },
        );
        let events = save_events(Some(&before), &after, "alice");
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert_eq!(e.kind.type_name(), "contacts.changed");
        assert_eq!((e.actor.as_str(), e.partner.as_str()), ("alice", "acme"));
        assert_eq!(e.create_time, after.update_time);
        let EventKind::ContactsChanged {
            revision, change, ..
        } = &e.kind
        else {
            panic!("{e:?}")
        };
        assert_eq!(
            revision.to_string(),
            "partners/acme/environments/production/contactInfo/revisions/2"
        );
        assert_eq!(change.field, Field::TechnicalEmergencyContacts);
        assert_eq!(change.recipients().len(), 2);
        assert!(save_events(Some(&after), &after, "alice").is_empty());
    }

    #[test]
    fn each_event_has_its_own_id() {
        let after = info(
            1,
            ContactFields {
                technical_emergency_contacts: vec![contact("a@acme.example")],
                technical_non_emergency_contacts: vec![contact("b@acme.example")],
                ..ContactFields::default()
            },
        );
        let events = save_events(None, &after, "alice");
        assert_eq!(events.len(), 2);
        assert_ne!(events[0].id, events[1].id);
    }

    #[test]
    fn user_changes_have_their_own_types() {
        let user = PortalUser {
            name: PortalUserName {
                partner: PartnerId::parse("acme").expect("partner"),
                id: Uuid::nil(),
            },
            email: crate::domain::Email::parse("a@acme.example").expect("email"),
            role: PortalRole::Editor,
            create_time: DateTime::UNIX_EPOCH,
            update_time: DateTime::UNIX_EPOCH,
        };
        let at = DateTime::UNIX_EPOCH;
        let types: Vec<_> = [
            PortalUserChange::Grant(user.clone()),
            PortalUserChange::UpdateRole(user.clone()),
            PortalUserChange::Revoke(user),
        ]
        .iter()
        .map(|c| user_event(c, "bob", at).kind.type_name())
        .collect();
        assert_eq!(
            types,
            [
                "portal_user.granted",
                "portal_user.role_changed",
                "portal_user.revoked"
            ]
        );
    }
}
