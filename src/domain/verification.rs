//! Whether an address is known to reach someone (issue 14): the facts kept
//! per partner mailbox, the state they mean at a given time, the challenge's
//! hash, and which addresses a SendVerification challenges.
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{ContactFields, Email, Field};
use crate::error::Violations;

/// How long a confirmation lasts, and a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerificationPolicy {
    /// After this, a confirmed address is unverified again.
    pub period: Duration,
    /// A challenge can be confirmed for this long after it was sent.
    pub challenge_lifetime: Duration,
}

impl Default for VerificationPolicy {
    fn default() -> Self {
        Self {
            period: Duration::from_secs(365 * 24 * 3600),
            challenge_lifetime: Duration::from_secs(72 * 3600),
        }
    }
}

/// What is stored about one of a partner's mailboxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationFacts {
    /// The mailbox's comparison key (`Email::comparison_key`).
    pub key: String,
    /// When it was last confirmed.
    pub verify_time: Option<DateTime<Utc>>,
    /// The outstanding challenge's expiry, while one is outstanding (sent
    /// and not used).
    pub challenge_expire_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationState {
    Unverified,
    Pending,
    Verified,
    Failed,
}

/// A state, with the time the proto's `expire_time` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub state: VerificationState,
    pub verify_time: Option<DateTime<Utc>>,
    pub expire_time: Option<DateTime<Utc>>,
}

impl Verification {
    pub const UNVERIFIED: Self = Self {
        state: VerificationState::Unverified,
        verify_time: None,
        expire_time: None,
    };
}

impl VerificationFacts {
    /// The facts of the mailbox `key` just confirmed at `now`: its challenge
    /// is used up.
    pub fn confirmed(key: String, now: DateTime<Utc>) -> Self {
        Self {
            key,
            verify_time: Some(now),
            challenge_expire_time: None,
        }
    }

    /// The state at `now`: a confirmation within its period wins over a
    /// newer challenge (re-verifying early unverifies nothing); otherwise an
    /// outstanding challenge is pending until it expires, then failed.
    pub fn at(&self, now: DateTime<Utc>, policy: &VerificationPolicy) -> Verification {
        let lapses = self.verify_time.map(|t| plus(t, policy.period));
        if let Some(until) = lapses.filter(|until| *until > now) {
            return Verification {
                state: VerificationState::Verified,
                verify_time: self.verify_time,
                expire_time: Some(until),
            };
        }
        let state = match self.challenge_expire_time {
            Some(expires) if expires > now => VerificationState::Pending,
            Some(_) => VerificationState::Failed,
            None => VerificationState::Unverified,
        };
        Verification {
            state,
            verify_time: self.verify_time,
            expire_time: self.challenge_expire_time,
        }
    }
}

fn plus(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// When a challenge sent at `now` expires.
pub fn challenge_expiry(now: DateTime<Utc>, policy: &VerificationPolicy) -> DateTime<Utc> {
    plus(now, policy.challenge_lifetime)
}

/// A partner's verification facts, by mailbox; few per partner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartnerVerifications(pub Vec<VerificationFacts>);

impl PartnerVerifications {
    pub fn get(&self, key: &str) -> Option<&VerificationFacts> {
        self.0.iter().find(|f| f.key == key)
    }

    /// The state of `email` at `now`; UNVERIFIED when nothing is stored.
    pub fn of(
        &self,
        email: &Email,
        now: DateTime<Utc>,
        policy: &VerificationPolicy,
    ) -> Verification {
        self.get(&email.comparison_key())
            .map_or(Verification::UNVERIFIED, |f| f.at(now, policy))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The stored form of a challenge: its SHA-256. The challenge itself (64
/// hex characters of 256 random bits) travels only in the event.
pub fn challenge_hash(challenge: &str) -> [u8; 32] {
    Sha256::digest(challenge.as_bytes()).into()
}

/// Whether `s` has a challenge's shape. Anything else is refused exactly as
/// a wrong challenge is.
pub fn is_challenge_shaped(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// One address a SendVerification challenges, with the fields naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToVerify {
    /// As the contact info first names it.
    pub email: Email,
    pub fields: Vec<Field>,
}

/// The distinct mailboxes of `fields`, in the order the fields first name
/// them, each with every field naming it.
pub fn addresses(fields: &ContactFields) -> Vec<ToVerify> {
    let mut out: Vec<ToVerify> = Vec::new();
    for field in Field::ALL {
        for contact in fields.contacts(field).unwrap_or(&[]) {
            let key = contact.email.comparison_key();
            match out.iter_mut().find(|t| t.email.comparison_key() == key) {
                Some(t) if !t.fields.contains(&field) => t.fields.push(field),
                Some(_) => {}
                None => out.push(ToVerify {
                    email: contact.email.clone(),
                    fields: vec![field],
                }),
            }
        }
    }
    out
}

/// Which addresses of `fields` a SendVerification challenges: those
/// `requested` names (each must be one of them: a violation at `emails[i]`
/// otherwise), or, when it names none, every one not verified at `now`.
pub fn to_challenge(
    fields: &ContactFields,
    requested: &[Email],
    known: &PartnerVerifications,
    now: DateTime<Utc>,
    policy: &VerificationPolicy,
    v: &mut Violations,
) -> Vec<ToVerify> {
    let all = addresses(fields);
    if requested.is_empty() {
        return all
            .into_iter()
            .filter(|t| known.of(&t.email, now, policy).state != VerificationState::Verified)
            .collect();
    }
    let mut chosen: Vec<ToVerify> = Vec::new();
    for (i, email) in requested.iter().enumerate() {
        let key = email.comparison_key();
        match all.iter().find(|t| t.email.comparison_key() == key) {
            None => v.push(
                format!("emails[{i}]"),
                "is not an address of this contact info",
            ),
            Some(t) if !chosen.iter().any(|c| c.email.comparison_key() == key) => {
                chosen.push(t.clone());
            }
            Some(_) => {}
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::contact::contact;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + chrono::Duration::seconds(s)
    }

    const DAY: i64 = 24 * 3600;

    fn policy() -> VerificationPolicy {
        VerificationPolicy {
            period: Duration::from_secs(365 * DAY as u64),
            challenge_lifetime: Duration::from_secs(3 * DAY as u64),
        }
    }

    fn facts(verified: Option<i64>, challenge_expires: Option<i64>) -> VerificationFacts {
        VerificationFacts {
            key: "a@x.example".to_owned(),
            verify_time: verified.map(t),
            challenge_expire_time: challenge_expires.map(t),
        }
    }

    #[test]
    fn states_follow_time() {
        use VerificationState::*;
        let p = policy();
        let at = |f: &VerificationFacts, now: i64| f.at(t(now), &p).state;
        assert_eq!(at(&facts(None, None), 0), Unverified);
        let sent = facts(None, Some(3 * DAY));
        assert_eq!(at(&sent, DAY), Pending);
        assert_eq!(at(&sent, 3 * DAY), Failed, "expired at its expire time");
        let confirmed = facts(Some(DAY), None);
        assert_eq!(at(&confirmed, 2 * DAY), Verified);
        assert_eq!(
            confirmed.at(t(2 * DAY), &p).expire_time,
            Some(t(366 * DAY)),
            "re-verification due a period after"
        );
        assert_eq!(at(&confirmed, 366 * DAY), Unverified, "lapsed");
        let rechecking = facts(Some(DAY), Some(400 * DAY));
        assert_eq!(at(&rechecking, 300 * DAY), Verified, "still within");
        assert_eq!(at(&rechecking, 380 * DAY), Pending, "lapsed, re-sent");
        assert_eq!(at(&rechecking, 401 * DAY), Failed);
        assert_eq!(
            rechecking.at(t(401 * DAY), &p).verify_time,
            Some(t(DAY)),
            "the last confirmation is still reported"
        );
    }

    #[test]
    fn challenges_are_hashed_and_shaped() {
        let c = "0".repeat(64);
        assert!(is_challenge_shaped(&c));
        assert!(!is_challenge_shaped(&"A".repeat(64)));
        assert!(!is_challenge_shaped(&"0".repeat(63)));
        assert_ne!(challenge_hash(&c), challenge_hash(&"1".repeat(64)));
        assert_eq!(challenge_hash(&c), challenge_hash(&c));
    }

    #[test]
    fn all_means_every_address_not_verified_and_named_ones_must_exist() {
        let fields = ContactFields {
            technical_emergency_contacts: vec![contact("pager@acme.example")],
            technical_non_emergency_contacts: vec![
                contact("Pager@acme.example"),
                contact("dev@acme.example"),
            ],
            ..ContactFields::default()
        };
        let all = addresses(&fields);
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[0].fields,
            [
                Field::TechnicalEmergencyContacts,
                Field::TechnicalNonEmergencyContacts
            ]
        );
        let known = PartnerVerifications(vec![VerificationFacts {
            key: contact("dev@acme.example").email.comparison_key(),
            verify_time: Some(t(0)),
            challenge_expire_time: None,
        }]);
        let p = policy();
        let mut v = Violations::default();
        let chosen = to_challenge(&fields, &[], &known, t(DAY), &p, &mut v);
        assert_eq!(chosen.len(), 1, "dev@ is verified");
        assert_eq!(chosen[0].email.as_str(), "pager@acme.example");
        let named = [
            contact("DEV@acme.example").email,
            contact("nobody@acme.example").email,
        ];
        let chosen = to_challenge(&fields, &named, &known, t(DAY), &p, &mut v);
        assert_eq!(chosen.len(), 1, "a named address is sent even if verified");
        assert_eq!(chosen[0].email.as_str(), "dev@acme.example");
        let Err(crate::error::Error::InvalidArgument { violations, .. }) = v.finish(()) else {
            panic!("nobody@ is not in the contact info");
        };
        assert_eq!(violations[0].field, "emails[1]");
    }
}
