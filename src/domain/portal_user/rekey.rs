//! Recomputing stored portal-user email keys under the mailbox identity:
//! which user keeps a key, which ones share a mailbox, which addresses no
//! longer pass; the plan a store writes and the report an operator reads.
use chrono::{DateTime, Utc};

use super::PortalUserName;
use crate::domain::Email;

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
            let key = crate::domain::email_key_of_stored(&u.email);
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
