//! SendVerification and ConfirmContact through the API: challenges reach
//! the mailer as events, confirm once, and every unusable challenge is
//! refused the same way, however many are tried.
use std::time::Duration;

use partner_contacts::domain::VerificationPolicy;
use partner_contacts::server::ServerSettings;
use pb::address_verification::State;
use tonic::Code;

use super::*;
use crate::common::{self, Backend, TestServer};
use crate::on_both_backends;

async fn send(c: &mut Client, emails: &[&str]) -> Result<Vec<pb::AddressVerification>, Status> {
    c.send_verification(pb::SendVerificationRequest {
        name: PROD.to_owned(),
        emails: emails.iter().map(|e| (*e).to_owned()).collect(),
    })
    .await
    .map(|r| r.into_inner().address_verifications)
}

async fn confirm(
    c: &mut Client,
    parent: &str,
    challenge: &str,
) -> Result<pb::AddressVerification, Status> {
    c.confirm_contact(pb::ConfirmContactRequest {
        parent: parent.to_owned(),
        challenge: challenge.to_owned(),
    })
    .await
    .map(tonic::Response::into_inner)
}

/// The verification.requested events of acme, oldest first.
async fn requested(c: &mut Client) -> Vec<pb::VerificationRequested> {
    c.list_events(pb::ListEventsRequest {
        parent: "partners/acme".to_owned(),
        page_size: 1000,
        ..Default::default()
    })
    .await
    .expect("ListEvents")
    .into_inner()
    .events
    .into_iter()
    .filter_map(|e| match e.payload {
        Some(pb::event::Payload::VerificationRequested(v)) => Some(v),
        _ => None,
    })
    .collect()
}

fn states(list: &[pb::AddressVerification]) -> Vec<(&str, State)> {
    list.iter().map(|v| (v.email.as_str(), v.state())).collect()
}

async fn a_challenge_reaches_the_mailer_and_confirms_once(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    save(&mut c, put(complete_info(PROD))).await;

    // Every address of the contact info, each mailbox once.
    let sent = send(&mut c, &[]).await.expect("send");
    assert_eq!(
        states(&sent),
        [
            ("alerts@example.com", State::Pending),
            ("oncall@example.com", State::Pending),
            ("Pager.Team@Example.COM", State::Pending),
            ("dev@example.com", State::Pending),
            ("merchants@example.com", State::Pending),
            ("escalations@example.com", State::Pending),
            ("Support@Example.com", State::Pending),
        ]
    );
    assert!(
        sent.iter()
            .all(|v| v.expire_time.is_some() && v.verify_time.is_none())
    );
    let mail = requested(&mut c).await;
    assert_eq!(mail.len(), 7);
    let pager = mail
        .iter()
        .find(|m| m.email == "Pager.Team@Example.COM")
        .expect("the pager's challenge");
    assert_eq!(pager.contact_info, PROD);
    assert_eq!(pager.fields, ["technical_emergency_contacts"]);
    assert_eq!(pager.challenge.len(), 64);
    assert_eq!(pager.expire_time, sent[2].expire_time);
    let distinct: std::collections::HashSet<_> = mail.iter().map(|m| &m.challenge).collect();
    assert_eq!(distinct.len(), 7, "each address its own challenge");

    let confirmed = confirm(&mut c, "partners/acme", &pager.challenge)
        .await
        .expect("confirm");
    assert_eq!(confirmed.email, "Pager.Team@Example.COM");
    assert_eq!(confirmed.state(), State::Verified);
    assert!(confirmed.verify_time.is_some() && confirmed.expire_time.is_some());
    let again = confirm(&mut c, "partners/acme", &pager.challenge).await;
    assert_invalid(again, &["challenge"]);

    // "All" now leaves out the verified address; naming it re-sends, and it
    // stays verified meanwhile.
    let rest = send(&mut c, &[]).await.expect("send");
    assert_eq!(rest.len(), 6);
    assert!(!rest.iter().any(|v| v.email == "Pager.Team@Example.COM"));
    let named = send(&mut c, &["pager.team@example.com"])
        .await
        .expect("send");
    assert_eq!(
        states(&named),
        [("Pager.Team@Example.COM", State::Verified)]
    );
}

async fn unusable_challenges_are_refused_alike(backend: Backend) {
    let settings = ServerSettings {
        verification: VerificationPolicy {
            challenge_lifetime: Duration::from_millis(600),
            ..VerificationPolicy::default()
        },
        ..common::dev_settings()
    };
    let server = TestServer::start_configured(common::store(backend).await, settings).await;
    let mut c = server.client.clone();
    grant_alert_users(&mut c, "acme", None).await;
    save(&mut c, put(complete_info(PROD))).await;

    send(&mut c, &["dev@example.com"]).await.expect("send");
    let replaced = requested(&mut c).await.remove(0).challenge;
    send(&mut c, &["dev@example.com"])
        .await
        .expect("send again");
    let current = requested(&mut c).await.remove(1).challenge;
    send(&mut c, &["merchants@example.com"])
        .await
        .expect("send");
    let expiring = requested(&mut c).await.remove(2).challenge;

    let mut refusals = vec![
        confirm(&mut c, "partners/acme", &replaced).await,
        confirm(&mut c, "partners/other", &current).await,
        confirm(&mut c, "partners/acme", "not a challenge").await,
        confirm(&mut c, "partners/acme", &current.to_uppercase()).await,
        confirm(&mut c, "partners/acme", "").await,
    ];
    // Guessing: many well-formed challenges, none of them right.
    for i in 0..200u32 {
        let guess = format!("{:064x}", u128::from(i) * 0x9e37_79b9_7f4a_7c15);
        refusals.push(confirm(&mut c, "partners/acme", &guess).await);
    }
    confirm(&mut c, "partners/acme", &current)
        .await
        .expect("the current challenge still works after the guesses");
    refusals.push(confirm(&mut c, "partners/acme", &current).await);
    tokio::time::sleep(Duration::from_millis(700)).await;
    refusals.push(confirm(&mut c, "partners/acme", &expiring).await);

    let first = assert_invalid(refusals.remove(0), &["challenge"]);
    for (i, r) in refusals.into_iter().enumerate() {
        let s = expect_code(r, Code::InvalidArgument);
        assert_eq!(
            (s.message(), s.details()),
            (first.message(), first.details()),
            "refusal {i} tells something the first does not"
        );
    }
}

async fn bad_requests_are_refused(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let missing = send(&mut c, &[]).await;
    expect_code(missing, Code::NotFound);
    save(&mut c, put(complete_info(PROD))).await;
    // A malformed address is refused before the contact info is looked at;
    // then every address it does not hold, at once.
    assert_invalid(
        send(&mut c, &["stranger@example.com", "not an email"]).await,
        &["emails[1]"],
    );
    assert_invalid(
        send(
            &mut c,
            &["stranger@example.com", "dev@example.com", "x@example.com"],
        )
        .await,
        &["emails[0]", "emails[2]"],
    );
    let bad_name = c
        .send_verification(pb::SendVerificationRequest {
            name: "partners/acme".to_owned(),
            emails: Vec::new(),
        })
        .await;
    assert_invalid(bad_name, &["name"]);
    assert_invalid(confirm(&mut c, "acme", &"0".repeat(64)).await, &["parent"]);
    assert!(requested(&mut c).await.is_empty(), "nothing was sent");
}

on_both_backends!(
    a_challenge_reaches_the_mailer_and_confirms_once,
    unusable_challenges_are_refused_alike,
    bad_requests_are_refused,
);
