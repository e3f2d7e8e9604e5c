//! Portal users (the onboarding modal's Users tab) and the rules that tie them
//! to alert contacts.
use std::collections::HashSet;
use std::fmt;

use chrono::{DateTime, Utc};

use super::{ContactFields, Email, Field, PartnerId, PortalRole};
use crate::error::PreconditionViolation;

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
pub type PortalUserEmails = HashSet<String>;

/// Which rule wrote a stored `portal_users.email_key`: 1, Unicode lower-casing
/// (releases before the mailbox identity); 2, [`Email::comparison_key`].
pub const EMAIL_KEY_SCHEME: i16 = 2;

/// A portal user as stored, for recomputing its email key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUserKey {
    pub name: PortalUserName,
    pub email: String,
    pub create_time: DateTime<Utc>,
}

/// The key a stored user gets under [`EMAIL_KEY_SCHEME`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rekeyed {
    pub name: PortalUserName,
    pub key: String,
    /// The older user of the same partner whose address is the same mailbox
    /// under the new key. Both stay (nothing is merged or lost); the newer
    /// one is marked and reported.
    pub shares_mailbox_with: Option<uuid::Uuid>,
    /// The address fails today's rules (it was accepted by an earlier
    /// release); its key matches no address accepted today.
    pub no_longer_valid: bool,
}

/// New email keys for every user of the partners in `users`, all of each
/// partner's users given: within a partner the oldest user (create time,
/// then id) of a key keeps it unmarked, later ones point at it.
pub fn rekey(mut users: Vec<StoredUserKey>) -> Vec<Rekeyed> {
    users.sort_by(|a, b| {
        (a.name.partner.as_str(), a.create_time, a.name.id).cmp(&(
            b.name.partner.as_str(),
            b.create_time,
            b.name.id,
        ))
    });
    let mut first_of: std::collections::HashMap<(String, String), uuid::Uuid> =
        std::collections::HashMap::new();
    users
        .into_iter()
        .map(|u| {
            let key = super::email_key_of_stored(&u.email);
            let owner = *first_of
                .entry((u.name.partner.as_str().to_owned(), key.clone()))
                .or_insert(u.name.id);
            Rekeyed {
                no_longer_valid: Email::parse(&u.email).is_err(),
                shares_mailbox_with: (owner != u.name.id).then_some(owner),
                key,
                name: u.name,
            }
        })
        .collect()
}

/// What recomputing the stored email keys found, for the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RekeyReport {
    /// Users whose key was recomputed.
    pub rekeyed: usize,
    /// (older user, newer user) pairs whose addresses are one mailbox.
    pub shared_mailboxes: Vec<(PortalUserName, PortalUserName)>,
    /// Users whose stored address today's rules refuse.
    pub no_longer_valid: Vec<PortalUserName>,
}

impl RekeyReport {
    pub fn of(plan: &[Rekeyed]) -> Self {
        Self {
            rekeyed: plan.len(),
            shared_mailboxes: plan
                .iter()
                .filter_map(|r| {
                    r.shares_mailbox_with.map(|owner| {
                        (
                            PortalUserName {
                                partner: r.name.partner.clone(),
                                id: owner,
                            },
                            r.name.clone(),
                        )
                    })
                })
                .collect(),
            no_longer_valid: plan
                .iter()
                .filter(|r| r.no_longer_valid)
                .map(|r| r.name.clone())
                .collect(),
        }
    }

    /// One line per finding, naming users (never addresses: they are
    /// personal data and end up in logs).
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .shared_mailboxes
            .iter()
            .map(|(older, newer)| {
                format!(
                    "portal users {older} and {newer} have addresses that are the same mailbox; both kept, {newer} is marked shares_mailbox_with; revoke the one that should not have access"
                )
            })
            .collect();
        out.extend(self.no_longer_valid.iter().map(|u| {
            format!(
                "portal user {u} has an address that this release refuses (invisible or look-alike characters); it matches no alert contact; revoke it and grant the intended address"
            )
        }));
        out
    }
}

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
pub fn require_portal_users(
    fields: &ContactFields,
    users: &PortalUserEmails,
) -> Result<(), crate::error::Error> {
    let violations = alert_contacts_not_users(fields, users);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(crate::error::Error::FailedPrecondition { violations })
    }
}

/// Refuses a change that would leave a partner without an administrator.
/// `administrators_after` counts them as the change would leave them.
pub fn check_administrators_remain(
    administrators_after: usize,
) -> Result<(), PreconditionViolation> {
    if administrators_after == 0 {
        Err(PreconditionViolation {
            kind: "LAST_ADMINISTRATOR",
            subject: "role".to_owned(),
            description: "a partner must keep at least one ADMINISTRATOR; grant the role to someone else first".to_owned(),
        })
    } else {
        Ok(())
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
        let users: PortalUserEmails = ["ann@example.com".to_owned()].into();
        let v = alert_contacts_not_users(&fields, &users);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].subject, "contact_info.alert_contacts[1].email");
        assert!(!v[0].description.contains("bob"));
        assert!(check_administrators_remain(0).is_err());
        assert!(check_administrators_remain(1).is_ok());
    }
}
