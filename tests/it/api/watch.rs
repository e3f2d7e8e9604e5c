//! WatchContacts: current state then every save in order, the audience
//! filter, slow consumers, and shutdown.
use std::time::{Duration, Instant};

use tonic::Code;
use tonic::codec::Streaming;

use super::*;
use crate::common::{Backend, TestServer, hs256_authenticator, service_token};
use crate::on_both_backends;

async fn watch(c: &mut Client, name: &str) -> Streaming<pb::WatchContactsResponse> {
    c.watch_contacts(pb::WatchContactsRequest {
        name: name.to_owned(),
    })
    .await
    .expect("watch")
    .into_inner()
}

/// The next state on the stream, within a few seconds.
async fn next(stream: &mut Streaming<pb::WatchContactsResponse>) -> pb::ContactInfo {
    let item = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("a state within 5 s")
        .expect("no error")
        .expect("stream still open");
    item.contact_info.expect("contact_info")
}

fn emergency(email: &str) -> pb::UpdateContactsRequest {
    put_masked(
        pb::ContactInfo {
            technical_emergency_contacts: vec![contact(email)],
            ..named(PROD)
        },
        &["technical_emergency_contacts"],
    )
}

async fn current_state_then_every_save_in_order(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    // A watch opened before anything is saved waits for the first save.
    let mut early = watch(&mut c, PROD).await;
    let first = save(&mut c, put(complete_info(PROD))).await;
    assert_eq!(next(&mut early).await, first);

    let mut late = watch(&mut c, PROD).await;
    assert_eq!(next(&mut late).await, first, "current state first");
    for i in 0..5 {
        let saved = save(&mut c, emergency(&format!("p{i}@example.com"))).await;
        assert_eq!(next(&mut late).await, saved);
        assert_eq!(next(&mut early).await, saved);
    }
    // Saves elsewhere do not reach this stream.
    save(
        &mut c,
        put(named("partners/other/environments/production/contactInfo")),
    )
    .await;
    let last = save(&mut c, emergency("last@example.com")).await;
    assert_eq!(next(&mut late).await, last);
}

async fn watch_goes_through_the_audience_filter(backend: Backend) {
    let server = TestServer::start_with_auth(backend, hs256_authenticator()).await;
    let mut c = server.client.clone();
    let admin = crate::common::full_access_token("setup");
    grant_alert_users(&mut c, "acme", Some(&admin)).await;
    c.update_contacts(bearer(&admin, put(complete_info(PROD))))
        .await
        .expect("save");
    let site = service_token("help-center", &["contacts.read_user_facing"]);
    let mut stream = c
        .watch_contacts(bearer(
            &site,
            pb::WatchContactsRequest { name: PROD.into() },
        ))
        .await
        .expect("allowed")
        .into_inner();
    let seen = next(&mut stream).await;
    assert!(!seen.user_facing_operational_contacts.is_empty());
    assert!(seen.operational_support.is_some());
    assert!(seen.alert_contacts.is_empty());
    assert!(seen.technical_emergency_contacts.is_empty());
    assert!(seen.platform_operational_contacts.is_empty());
    let denied = c
        .watch_contacts(bearer(
            &service_token("writer", &["contacts.write"]),
            pb::WatchContactsRequest { name: PROD.into() },
        ))
        .await;
    expect_code(denied, Code::PermissionDenied);
    assert_invalid(
        c.watch_contacts(bearer(
            &site,
            pb::WatchContactsRequest {
                name: "partners/acme".into(),
            },
        ))
        .await,
        &["name"],
    );
}

/// A big state, so that the transport's buffers fill after a few messages.
fn bulky(i: usize) -> pb::UpdateContactsRequest {
    let contacts = (0..20)
        .map(|k| pb::Contact {
            email: format!("c{k}-{i}@example.com"),
            display_name: "x".repeat(100),
            ..Default::default()
        })
        .collect::<Vec<_>>();
    put_masked(
        pb::ContactInfo {
            technical_non_emergency_contacts: contacts.clone(),
            merchant_issues_contacts: contacts.clone(),
            platform_operational_contacts: contacts,
            ..named(PROD)
        },
        &[
            "technical_non_emergency_contacts",
            "merchant_issues_contacts",
            "platform_operational_contacts",
        ],
    )
}

async fn a_slow_consumer_is_cut_off_without_holding_others_up(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    save(&mut c, put(complete_info(PROD))).await;
    // The slow consumer's own connection has small HTTP/2 windows, as a
    // congested client would, so its transport buffers fill after a few states.
    let narrow = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .expect("connect");
    let mut slow = watch(&mut Client::new(narrow), PROD).await;
    next(&mut slow).await;
    let mut prompt = watch(&mut c, PROD).await;
    next(&mut prompt).await;

    let started = Instant::now();
    let mut last = None;
    for i in 0..150 {
        last = Some(save(&mut c, bulky(i)).await);
        // The prompt consumer keeps up; the slow one reads nothing.
        assert_eq!(Some(next(&mut prompt).await), last);
    }
    // Writes never waited for the slow stream.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );

    // The slow stream holds what it buffered, then ends asking to resubscribe.
    let mut buffered = 0;
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(5), slow.message()).await {
            Ok(Ok(Some(_))) => {
                buffered += 1;
                continue;
            }
            Ok(Err(status)) => break status,
            Ok(Ok(None)) => panic!("stream ended without a status"),
            Err(_) => panic!("slow stream neither delivered nor ended after {buffered} states"),
        }
    };
    assert_eq!(ended.code(), Code::Aborted, "{ended:?}");
    assert!(
        buffered < 150,
        "the slow stream got everything ({buffered})"
    );
    assert_eq!(error_reason(&ended), "WATCH_CONSUMER_TOO_SLOW");

    // A fresh subscription starts from the latest state.
    let mut again = watch(&mut c, PROD).await;
    assert_eq!(Some(next(&mut again).await), last);
}

async fn shutdown_ends_open_streams(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    save(&mut c, put(complete_info(PROD))).await;
    let mut stream = watch(&mut c, PROD).await;
    next(&mut stream).await;
    let started = Instant::now();
    let stopping = tokio::spawn(server.stop());
    let ended = tokio::time::timeout(Duration::from_secs(3), stream.message())
        .await
        .expect("the stream ends promptly");
    let status = ended.expect_err("ends with a status");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(error_reason(&status), "SERVER_SHUTTING_DOWN");
    stopping
        .await
        .expect("join")
        .expect("server stopped cleanly");
    // Well inside the 5 s grace period: the stream did not hold it up.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

on_both_backends!(
    current_state_then_every_save_in_order,
    watch_goes_through_the_audience_filter,
    a_slow_consumer_is_cut_off_without_holding_others_up,
    shutdown_ends_open_streams,
);
