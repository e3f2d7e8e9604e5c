//! Granting, re-roling and revoking portal access: each decided over the
//! partner's users as a store loaded them, for the store to write.
use chrono::{DateTime, Utc};

use super::{PortalUser, PortalUserName};
use crate::domain::{Email, PartnerId, PortalRole};
use crate::error::{Error, PreconditionViolation};

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
