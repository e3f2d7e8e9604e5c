//! Address verification in the store: challenges recorded with their
//! events, confirmed once, refused when wrong, used, expired, replaced or
//! another partner's; facts read back per mailbox.
use chrono::{DateTime, Utc};
use partner_contacts::domain::{
    ContactInfoName, Email, Environment, Event, EventKind, PartnerId, VerificationFacts,
    challenge_hash,
};
use partner_contacts::store::{DynStore, NewChallenge};

use super::acme_store;
use crate::common::StoreKind;
use crate::on_every_store;

fn acme() -> PartnerId {
    PartnerId::parse("acme").expect("partner")
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("time")
}

/// Challenges `email` of acme at `sent` (valid 100 s) with `challenge`.
async fn challenge(s: &DynStore, email: &str, challenge: &str, sent: i64) {
    let email = Email::parse(email).expect("email");
    let c = NewChallenge {
        email: email.clone(),
        hash: challenge_hash(challenge),
        create_time: at(sent),
        expire_time: at(sent + 100),
    };
    let event = Event {
        id: uuid::Uuid::new_v4(),
        partner: acme(),
        create_time: at(sent),
        actor: "test".to_owned(),
        kind: EventKind::VerificationRequested {
            contact_info: ContactInfoName::new(acme(), Environment::Production),
            email,
            fields: Vec::new(),
            challenge: challenge.to_owned(),
            expire_time: at(sent + 100),
        },
    };
    s.record_challenges(&acme(), &[c], &[event])
        .await
        .expect("record");
}

async fn confirm(s: &DynStore, partner: &PartnerId, challenge: &str, now: i64) -> Option<String> {
    s.confirm_challenge(partner, &challenge_hash(challenge), at(now))
        .await
        .expect("confirm")
        .map(|(email, facts)| {
            assert_eq!(facts.verify_time, Some(at(now)));
            email
        })
}

async fn challenges_are_single_use_and_expire(kind: StoreKind) {
    let t = acme_store(kind).await;
    let s = &t.store;
    let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
    challenge(s, "Pager@Acme.example", &a, 0).await;
    challenge(s, "dev@acme.example", &b, 0).await;

    let facts = s.verifications(&acme()).await.expect("facts");
    assert_eq!(facts.0.len(), 2);
    let pager = facts
        .get(
            &Email::parse("pager@acme.example")
                .expect("email")
                .comparison_key(),
        )
        .expect("the pager's facts, by mailbox");
    assert_eq!(
        pager,
        &VerificationFacts {
            key: pager.key.clone(),
            verify_time: None,
            challenge_expire_time: Some(at(100)),
        }
    );

    let other = PartnerId::parse("other").expect("partner");
    assert_eq!(confirm(s, &other, &a, 10).await, None, "another partner's");
    assert_eq!(confirm(s, &acme(), &c, 10).await, None, "wrong");
    assert_eq!(
        confirm(s, &acme(), &a, 10).await.as_deref(),
        Some("Pager@Acme.example")
    );
    assert_eq!(confirm(s, &acme(), &a, 11).await, None, "used");
    assert_eq!(confirm(s, &acme(), &b, 100).await, None, "expired");

    // A new challenge replaces the outstanding one.
    challenge(s, "dev@acme.example", &c, 200).await;
    assert_eq!(confirm(s, &acme(), &b, 201).await, None, "replaced");
    assert_eq!(
        confirm(s, &acme(), &c, 201).await.as_deref(),
        Some("dev@acme.example")
    );
    let facts = s.verifications(&acme()).await.expect("facts");
    assert!(
        facts
            .0
            .iter()
            .all(|f| f.verify_time.is_some() && f.challenge_expire_time.is_none()),
        "{facts:?}"
    );
    // Each challenge went out in its own event.
    let events = s.list_events(&acme(), 0, 100).await.expect("events");
    let requested = events
        .iter()
        .filter(|e| e.event_type == "verification.requested")
        .count();
    assert_eq!(requested, 3);
}

on_every_store!(challenges_are_single_use_and_expire);
