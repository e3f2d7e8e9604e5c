//! Portal users (the onboarding modal's Users tab) and the rules that tie them
//! to alert contacts.
use std::collections::HashSet;
use std::fmt;

use chrono::{DateTime, Utc};

mod change;
mod rekey;

pub use change::{PortalUserChange, change_role, grant, revoke, user_exists};
pub use rekey::{EMAIL_KEY_SCHEME, RekeyReport, Rekeyed, StoredUserKey, rekey};

use super::{ContactFields, Email, Field, PartnerId, PortalRole};
use crate::error::{Error, PreconditionViolation};

/// `partners/{partner}/portalUsers/{portal_user}`; the id is a UUID the
/// service assigns, so that names (which end up in logs) carry no email.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortalUserName {
    pub partner: PartnerId,
    pub id: uuid::Uuid,
}

impl PortalUserName {
    pub fn parse(s: &str) -> Result<Self, String> {
        const HINT: &str = "must be partners/{partner}/portalUsers/{portal_user}";
        let parts: Vec<&str> = s.split('/').collect();
        let ["partners", partner, "portalUsers", id] = parts.as_slice() else {
            return Err(HINT.to_owned());
        };
        let partner = PartnerId::parse(partner).map_err(|e| format!("{e}; {HINT}"))?;
        let id = uuid::Uuid::try_parse(id)
            .ok()
            .filter(|_| id.len() == 36)
            .ok_or_else(|| format!("unknown portal user id; {HINT}"))?;
        Ok(Self { partner, id })
    }
}

impl fmt::Display for PortalUserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "partners/{}/portalUsers/{}",
            self.partner.as_str(),
            self.id.hyphenated()
        )
    }
}

/// `partners/{partner}`, the parent of portal users.
pub fn parse_partner_parent(s: &str) -> Result<PartnerId, String> {
    const HINT: &str = "must be partners/{partner}";
    let partner = s.strip_prefix("partners/").ok_or_else(|| HINT.to_owned())?;
    PartnerId::parse(partner).map_err(|e| format!("{e}; {HINT}"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalUser {
    pub name: PortalUserName,
    pub email: Email,
    pub role: PortalRole,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

/// The email comparison keys (`Email::comparison_key`) of a partner's portal users.
///
/// Hashed with foldhash: the gate looks its alert contacts up on every call,
/// and the keys are the partner's own users' addresses, not a caller's
/// choice to collide (SipHash's reason to be).
pub type PortalUserEmails = HashSet<String, foldhash::fast::RandomState>;

/// Alert contacts that are not portal users, as precondition violations
/// naming the field path (never the address).
pub fn alert_contacts_not_users(
    fields: &ContactFields,
    users: &PortalUserEmails,
) -> Vec<PreconditionViolation> {
    fields
        .alert_contacts
        .iter()
        .enumerate()
        .filter(|(_, c)| !users.contains(&c.email.comparison_key()))
        .map(|(i, _)| PreconditionViolation {
            kind: "NOT_A_PORTAL_USER",
            subject: format!("contact_info.{}[{i}].email", Field::AlertContacts.as_str()),
            description:
                "alert contacts must be portal users of the partner; grant portal access first"
                    .to_owned(),
        })
        .collect()
}

/// FAILED_PRECONDITION unless every alert contact is a portal user.
pub fn require_portal_users(fields: &ContactFields, users: &PortalUserEmails) -> Result<(), Error> {
    let violations = alert_contacts_not_users(fields, users);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Error::FailedPrecondition { violations })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Contact;

    #[test]
    fn names_round_trip() {
        let s = "partners/acme/portalUsers/2f1e9a9c-2d43-4b0e-9a4e-8c1f3b7d5e60";
        assert_eq!(PortalUserName::parse(s).expect("valid").to_string(), s);
        for bad in [
            "partners/acme/portalUsers/alice@example.com",
            "partners/acme/portalUsers/",
            "partners/Acme/portalUsers/2f1e9a9c-2d43-4b0e-9a4e-8c1f3b7d5e60",
            "partners/acme/users/2f1e9a9c-2d43-4b0e-9a4e-8c1f3b7d5e60",
            "partners/acme/portalUsers/2f1e9a9c2d434b0e9a4e8c1f3b7d5e60",
        ] {
            assert!(PortalUserName::parse(bad).is_err(), "{bad}");
        }
        assert!(parse_partner_parent("partners/acme").is_ok());
        assert!(parse_partner_parent("partners/acme/environments/sandbox").is_err());
    }

    #[test]
    fn alert_contacts_must_be_users_case_insensitively() {
        let fields = ContactFields {
            alert_contacts: vec![
                Contact {
                    email: Email::parse("Ann@Example.com").expect("valid"),
                    display_name: None,
                    phone_number: None,
                    language_code: None,
                },
                Contact {
                    email: Email::parse("bob@example.com").expect("valid"),
                    display_name: None,
                    phone_number: None,
                    language_code: None,
                },
            ],
            ..Default::default()
        };
        let users: PortalUserEmails = ["ann@example.com".to_owned()].into_iter().collect();
        let v = alert_contacts_not_users(&fields, &users);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].subject, "contact_info.alert_contacts[1].email");
        assert!(!v[0].description.contains("bob"));
    }
}
