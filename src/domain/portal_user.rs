//! Portal users (the onboarding modal's Users tab) and the rules that tie them
//! to alert contacts.
use std::collections::HashSet;
use std::fmt;

use chrono::{DateTime, Utc};

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
pub fn require_portal_users(fields: &ContactFields, users: &PortalUserEmails) -> Result<(), Error> {
    let violations = alert_contacts_not_users(fields, users);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Error::FailedPrecondition { violations })
    }
}

/// A change to a partner's portal users, decided by [`grant`],
/// [`change_role`] or [`revoke`] over the users a store loaded (and locked);
/// the store only writes it, with its revision, in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortalUserChange {
    Grant(PortalUser),
    UpdateRole(PortalUser),
    /// The user as it was.
    Revoke(PortalUser),
}

impl PortalUserChange {
    /// The user after the change (as it was, for a revoke).
    pub fn user(&self) -> &PortalUser {
        match self {
            Self::Grant(u) | Self::UpdateRole(u) | Self::Revoke(u) => u,
        }
    }

    pub fn into_user(self) -> PortalUser {
        match self {
            Self::Grant(u) | Self::UpdateRole(u) | Self::Revoke(u) => u,
        }
    }

    /// The revision history's name for it.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Grant(_) => "GRANT",
            Self::UpdateRole(_) => "UPDATE_ROLE",
            Self::Revoke(_) => "REVOKE",
        }
    }
}

/// GrantPortalAccess over the partner's current `users`: ALREADY_EXISTS when
/// the address's mailbox has access; FAILED_PRECONDITION when the partner's
/// first user would not be an ADMINISTRATOR. `id` is the new user's.
pub fn grant(
    users: &[PortalUser],
    partner: &PartnerId,
    email: &Email,
    role: PortalRole,
    id: uuid::Uuid,
    now: DateTime<Utc>,
) -> Result<PortalUserChange, Error> {
    let key = email.comparison_key();
    if users.iter().any(|u| u.email.comparison_key() == key) {
        return Err(user_exists(partner));
    }
    if users.is_empty() && role != PortalRole::Administrator {
        return Err(Error::FailedPrecondition {
            violations: vec![PreconditionViolation {
                kind: "FIRST_USER_MUST_BE_ADMINISTRATOR",
                subject: "portal_user.role".to_owned(),
                description: "the first portal user of a partner must be an ADMINISTRATOR"
                    .to_owned(),
            }],
        });
    }
    Ok(PortalUserChange::Grant(PortalUser {
        name: PortalUserName {
            partner: partner.clone(),
            id,
        },
        email: email.clone(),
        role,
        create_time: now,
        update_time: now,
    }))
}

/// UpdatePortalUserRole over the partner's current `users`: NOT_FOUND for an
/// unknown user; FAILED_PRECONDITION when no administrator would remain.
pub fn change_role(
    users: &[PortalUser],
    name: &PortalUserName,
    role: PortalRole,
    now: DateTime<Utc>,
) -> Result<PortalUserChange, Error> {
    let mut user = find(users, name)?.clone();
    administrators_remain(users, name, Some(role))?;
    user.role = role;
    user.update_time = now;
    Ok(PortalUserChange::UpdateRole(user))
}

/// RevokePortalAccess over the partner's current `users`: NOT_FOUND for an
/// unknown user; FAILED_PRECONDITION when no administrator would remain.
pub fn revoke(users: &[PortalUser], name: &PortalUserName) -> Result<PortalUserChange, Error> {
    let user = find(users, name)?.clone();
    administrators_remain(users, name, None)?;
    Ok(PortalUserChange::Revoke(user))
}

fn find<'a>(users: &'a [PortalUser], name: &PortalUserName) -> Result<&'a PortalUser, Error> {
    users
        .iter()
        .find(|u| u.name == *name)
        .ok_or_else(|| Error::NotFound {
            resource_type: crate::error::PORTAL_USER_TYPE,
            name: name.to_string(),
        })
}

/// Refuses a change that would leave the partner without an administrator:
/// `target` gets `new_role` (`None`: removed).
fn administrators_remain(
    users: &[PortalUser],
    target: &PortalUserName,
    new_role: Option<PortalRole>,
) -> Result<(), Error> {
    let administrators_after = users
        .iter()
        .map(|u| {
            if u.name == *target {
                new_role
            } else {
                Some(u.role)
            }
        })
        .filter(|r| *r == Some(PortalRole::Administrator))
        .count();
    if administrators_after == 0 {
        return Err(Error::FailedPrecondition {
            violations: vec![PreconditionViolation {
                kind: "LAST_ADMINISTRATOR",
                subject: "role".to_owned(),
                description: "a partner must keep at least one ADMINISTRATOR; grant the role to someone else first".to_owned(),
            }],
        });
    }
    Ok(())
}

/// ALREADY_EXISTS for a mailbox that has access; a store also answers it when
/// a concurrent grant of the same mailbox committed first.
pub fn user_exists(partner: &PartnerId) -> Error {
    // The message names the partner, not the address: it is personal data.
    Error::AlreadyExists {
        name: format!(
            "a portal user with this email in partners/{}",
            partner.as_str()
        ),
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
    }

    fn user(n: u128, email: &str, role: PortalRole) -> PortalUser {
        PortalUser {
            name: PortalUserName {
                partner: PartnerId::parse("acme").expect("partner"),
                id: uuid::Uuid::from_u128(n),
            },
            email: Email::parse(email).expect("email"),
            role,
            create_time: chrono::DateTime::UNIX_EPOCH,
            update_time: chrono::DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn grant_rules() {
        let acme = PartnerId::parse("acme").expect("partner");
        let now = chrono::DateTime::UNIX_EPOCH + chrono::Duration::seconds(5);
        let kim = Email::parse("kim@acme.example").expect("email");
        let first_editor = grant(&[], &acme, &kim, PortalRole::Editor, uuid::Uuid::nil(), now);
        assert!(matches!(
            first_editor,
            Err(Error::FailedPrecondition { .. })
        ));
        let first = grant(
            &[],
            &acme,
            &kim,
            PortalRole::Administrator,
            uuid::Uuid::nil(),
            now,
        )
        .expect("first administrator");
        assert_eq!(first.action(), "GRANT");
        assert_eq!(first.user().create_time, now);
        let users = [user(1, "Kim@ACME.example", PortalRole::Administrator)];
        let again = grant(
            &users,
            &acme,
            &kim,
            PortalRole::Editor,
            uuid::Uuid::nil(),
            now,
        );
        assert!(matches!(again, Err(Error::AlreadyExists { .. })));
        let other = Email::parse("ann@acme.example").expect("email");
        assert!(
            grant(
                &users,
                &acme,
                &other,
                PortalRole::Editor,
                uuid::Uuid::nil(),
                now
            )
            .is_ok()
        );
    }

    #[test]
    fn the_last_administrator_stays() {
        let now = chrono::DateTime::UNIX_EPOCH;
        let users = [
            user(1, "kim@acme.example", PortalRole::Administrator),
            user(2, "ann@acme.example", PortalRole::Editor),
        ];
        let kim = users[0].name.clone();
        let ann = users[1].name.clone();
        assert!(matches!(
            change_role(&users, &kim, PortalRole::Editor, now),
            Err(Error::FailedPrecondition { .. })
        ));
        assert!(matches!(
            revoke(&users, &kim),
            Err(Error::FailedPrecondition { .. })
        ));
        let promoted = change_role(&users, &ann, PortalRole::Administrator, now).expect("promote");
        assert_eq!(promoted.user().role, PortalRole::Administrator);
        assert_eq!(promoted.action(), "UPDATE_ROLE");
        assert_eq!(revoke(&users, &ann).expect("revoke").action(), "REVOKE");
        let unknown = PortalUserName {
            partner: kim.partner.clone(),
            id: uuid::Uuid::from_u128(9),
        };
        assert!(matches!(
            revoke(&users, &unknown),
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            change_role(&users, &unknown, PortalRole::Editor, now),
            Err(Error::NotFound { .. })
        ));
    }
}
