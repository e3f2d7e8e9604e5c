//! Change notifications: what was saved, by this replica or, through
//! PostgreSQL LISTEN/NOTIFY, by any other. Caches and watch streams follow it.
use tokio::sync::broadcast;

use crate::domain::{ContactInfoName, Environment, PartnerId};

/// The PostgreSQL channel every replica listens on.
pub const CHANNEL: &str = "partner_contacts_changes";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A contact info was saved as `revision`.
    ContactInfo {
        name: ContactInfoName,
        revision: i64,
    },
    /// A partner's portal users changed.
    PortalUsers { partner: PartnerId },
    /// Changes may have been missed (the listener reconnected, a subscriber
    /// lagged): forget everything derived from the store.
    Resync,
}

impl Change {
    /// The NOTIFY payload: short, and no personal data.
    pub fn encode(&self) -> String {
        match self {
            Self::ContactInfo { name, revision } => format!(
                "c {} {} {revision}",
                name.partner.as_str(),
                name.environment.as_str()
            ),
            Self::PortalUsers { partner } => format!("u {}", partner.as_str()),
            Self::Resync => "r".to_owned(),
        }
    }

    pub fn decode(payload: &str) -> Option<Self> {
        let parts: Vec<&str> = payload.split(' ').collect();
        match parts.as_slice() {
            ["c", partner, env, revision] => Some(Self::ContactInfo {
                name: ContactInfoName::new(
                    PartnerId::parse(partner).ok()?,
                    Environment::parse(env)?,
                ),
                revision: revision.parse().ok()?,
            }),
            ["u", partner] => Some(Self::PortalUsers {
                partner: PartnerId::parse(partner).ok()?,
            }),
            ["r"] => Some(Self::Resync),
            _ => None,
        }
    }
}

/// Fans changes out to every subscriber in this process. A subscriber that
/// falls behind is told (`RecvError::Lagged`) and must resynchronise.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    tx: broadcast::Sender<Change>,
}

impl ChangeFeed {
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity.max(1)).0,
        }
    }

    pub fn publish(&self, change: Change) {
        // No subscriber is fine: nothing is cached or watched yet.
        let _ = self.tx.send(change);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }
}

impl Default for ChangeFeed {
    fn default() -> Self {
        Self::new(4096)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let name = ContactInfoName::new(
            PartnerId::parse("acme-1").expect("partner"),
            Environment::Production,
        );
        for change in [
            Change::ContactInfo { name, revision: 42 },
            Change::PortalUsers {
                partner: PartnerId::parse("7").expect("partner"),
            },
            Change::Resync,
        ] {
            assert_eq!(Change::decode(&change.encode()), Some(change));
        }
        for bad in ["", "c acme production", "c Acme production 1", "x", "u"] {
            assert_eq!(Change::decode(bad), None, "{bad}");
        }
    }
}
