//! SendVerification and ConfirmContact through the API: challenges reach
//! the mailer as events, confirm once, and every unusable challenge is
//! refused the same way, however many are tried.
use std::time::Duration;

use partner_contacts::domain::{GatePolicy, VerificationPolicy};
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

/// A server whose challenges last `lifetime`, with `complete_info(PROD)` saved.
async fn saved_with_challenges_lasting(backend: Backend, lifetime: Duration) -> TestServer {
    let settings = ServerSettings {
        verification: VerificationPolicy {
            challenge_lifetime: lifetime,
            ..VerificationPolicy::default()
        },
        ..common::dev_settings()
    };
    let server = TestServer::start_configured(common::store(backend).await, settings).await;
    let mut c = server.client.clone();
    grant_alert_users(&mut c, "acme", None).await;
    save(&mut c, put(complete_info(PROD))).await;
    server
}

async fn unusable_challenges_are_refused_alike(backend: Backend) {
    // Long enough for the 205 refused confirms below to finish well inside
    // it on a slow, busy machine (600 ms once did not, in CI on 2 cores).
    let lifetime = Duration::from_secs(3);
    let server = saved_with_challenges_lasting(backend, lifetime).await;
    let mut c = server.client.clone();

    send(&mut c, &["dev@example.com"]).await.expect("send");
    let replaced = requested(&mut c).await.remove(0).challenge;
    send(&mut c, &["dev@example.com"])
        .await
        .expect("send again");
    let current = requested(&mut c).await.remove(1).challenge;
    send(&mut c, &["merchants@example.com"])
        .await
        .expect("send");
    // The challenge was made before its send returned: past this, it has expired.
    let expired_after = std::time::Instant::now() + lifetime + Duration::from_millis(100);
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
    tokio::time::sleep_until(expired_after.into()).await;
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

fn verifications(info: &pb::ContactInfo) -> Vec<(&str, State)> {
    states(&info.address_verifications)
}

async fn pager_state(c: &mut Client) -> State {
    let r = c
        .resolve_recipients(pb::ResolveRecipientsRequest {
            name: PROD.to_owned(),
            purpose: pb::Purpose::TechnicalEmergency as i32,
            at_time: None,
        })
        .await
        .expect("ResolveRecipients")
        .into_inner();
    assert_eq!(r.recipients.len(), 1, "{r:?}");
    r.recipients[0].verification_state()
}

/// A policy whose `verified-pager` type opens only with a verified pager.
fn verified_pager_policy() -> GatePolicy {
    GatePolicy::from_toml(
        "default_integration_type = \"verified-pager\"\n\
         [integration_types.verified-pager]\n\
         required_fields = [\"technical_emergency_contacts\"]\n\
         verified_fields = [\"technical_emergency_contacts\"]\n",
    )
    .expect("policy")
}

async fn gate_reasons(c: &mut Client) -> Vec<(String, i32)> {
    gate(c, PROD, "")
        .await
        .expect("gate")
        .findings
        .into_iter()
        .map(|f| (f.field, f.reason))
        .collect()
}

/// GetContacts, ResolveRecipients, the gate and the saved resource follow
/// an address from unverified to pending to verified, through the cache.
async fn states_show_wherever_the_address_does(backend: Backend) {
    let server = TestServer::start_with(backend, verified_pager_policy()).await;
    let mut c = server.client.clone();
    grant_alert_users(&mut c, "acme", None).await;
    save(&mut c, put(complete_info(PROD))).await;
    let not_verified = (
        "technical_emergency_contacts".to_owned(),
        pb::GateFindingReason::NotVerified as i32,
    );

    assert!(fetch(&mut c, PROD).await.address_verifications.is_empty());
    assert_eq!(pager_state(&mut c).await, State::Unverified);
    assert_eq!(
        gate_reasons(&mut c).await,
        std::slice::from_ref(&not_verified)
    );

    send(&mut c, &["pager.team@example.com"])
        .await
        .expect("send");
    assert_eq!(
        verifications(&fetch(&mut c, PROD).await),
        [("Pager.Team@Example.COM", State::Pending)]
    );
    assert_eq!(pager_state(&mut c).await, State::Pending);
    assert_eq!(gate_reasons(&mut c).await, [not_verified]);

    let challenge = requested(&mut c).await.remove(0).challenge;
    confirm(&mut c, "partners/acme", &challenge)
        .await
        .expect("confirm");
    let info = fetch(&mut c, PROD).await;
    assert_eq!(
        verifications(&info),
        [("Pager.Team@Example.COM", State::Verified)]
    );
    assert!(info.address_verifications[0].verify_time.is_some());
    // Each contact carries its own: the pager's, none for the others.
    assert_eq!(
        info.technical_emergency_contacts[0]
            .verification
            .as_ref()
            .map(|v| (v.email.as_str(), v.state())),
        Some(("Pager.Team@Example.COM", State::Verified))
    );
    assert!(info.alert_contacts.iter().all(|c| c.verification.is_none()));
    assert_eq!(pager_state(&mut c).await, State::Verified);
    assert!(gate_reasons(&mut c).await.is_empty(), "the gate opens");

    // A save keeps them: the resource it returns, and what is read after.
    // Output only: sent back as read, they are ignored.
    let mut edited = editable(info);
    edited.technical_non_emergency_contacts = vec![contact("dev-2@example.com")];
    let saved = save(&mut c, put(edited)).await;
    assert_eq!(
        verifications(&saved),
        [("Pager.Team@Example.COM", State::Verified)]
    );
    assert_eq!(
        verifications(&fetch(&mut c, PROD).await),
        [("Pager.Team@Example.COM", State::Verified)]
    );
    // Verification is the partner's mailbox's: the sandbox lists it too.
    let mut sandbox = complete_info(SANDBOX);
    sandbox.technical_emergency_contacts = vec![contact("pager.team@example.com")];
    save(&mut c, put(sandbox)).await;
    assert_eq!(
        verifications(&fetch(&mut c, SANDBOX).await),
        [("pager.team@example.com", State::Verified)]
    );
}

/// A challenge that expires unconfirmed reads FAILED.
async fn an_expired_challenge_reads_failed(backend: Backend) {
    let server = saved_with_challenges_lasting(backend, Duration::from_millis(400)).await;
    let mut c = server.client.clone();
    send(&mut c, &["dev@example.com"]).await.expect("send");
    assert_eq!(
        verifications(&fetch(&mut c, PROD).await),
        [("dev@example.com", State::Pending)]
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        verifications(&fetch(&mut c, PROD).await),
        [("dev@example.com", State::Failed)],
        "the cached entry's state follows time"
    );
}

/// A caller limited to the user-facing view sees only the user-facing
/// addresses' states.
async fn the_audience_filter_applies(backend: Backend) {
    let server = TestServer::start_with_auth(backend, common::hs256_authenticator()).await;
    let mut c = server.client.clone();
    let admin = common::full_access_token("setup");
    grant_alert_users(&mut c, "acme", Some(&admin)).await;
    save(&mut c, bearer(&admin, put(complete_info(PROD)))).await;
    c.send_verification(bearer(
        &admin,
        pb::SendVerificationRequest {
            name: PROD.to_owned(),
            emails: vec!["support@example.com".into(), "dev@example.com".into()],
        },
    ))
    .await
    .expect("send");
    let full = c
        .get_contacts(bearer(
            &admin,
            pb::GetContactsRequest {
                name: PROD.to_owned(),
                read_time: None,
            },
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(
        verifications(&full),
        [
            ("dev@example.com", State::Pending),
            ("Support@Example.com", State::Pending)
        ]
    );
    let storefront = common::service_token("storefront", &["contacts.read_user_facing"]);
    let limited = c
        .get_contacts(bearer(
            &storefront,
            pb::GetContactsRequest {
                name: PROD.to_owned(),
                read_time: None,
            },
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(
        verifications(&limited),
        [("Support@Example.com", State::Pending)]
    );
    assert!(
        limited.user_facing_operational_contacts[0]
            .verification
            .is_some()
    );
}

/// A confirmation on one replica reaches what another replica has cached.
async fn another_replica_sees_a_confirmation() {
    let a = TestServer::start(Backend::Postgres).await;
    let b = TestServer::start_on(a.store.another_replica().await, GatePolicy::builtin()).await;
    let (mut ca, mut cb) = (a.client.clone(), b.client.clone());
    grant_alert_users(&mut ca, "acme", None).await;
    save(&mut ca, put(complete_info(PROD))).await;
    send(&mut ca, &["dev@example.com"]).await.expect("send");
    assert_eq!(
        verifications(&fetch(&mut cb, PROD).await),
        [("dev@example.com", State::Pending)],
        "B reads (and caches) the pending state"
    );
    let challenge = requested(&mut ca).await.remove(0).challenge;
    confirm(&mut ca, "partners/acme", &challenge)
        .await
        .expect("confirm");
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while verifications(&fetch(&mut cb, PROD).await) != [("dev@example.com", State::Verified)] {
        assert!(
            std::time::Instant::now() < deadline,
            "replica B still serves the old state"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_follow_confirmations() {
    another_replica_sees_a_confirmation().await;
}

on_both_backends!(
    states_show_wherever_the_address_does,
    an_expired_challenge_reads_failed,
    the_audience_filter_applies,
    a_challenge_reaches_the_mailer_and_confirms_once,
    unusable_challenges_are_refused_alike,
    bad_requests_are_refused,
);
