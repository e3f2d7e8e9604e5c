//! Replicas sharing one PostgreSQL: a write on one reaches the others' caches
//! through LISTEN/NOTIFY, also when the listener lost its connection meanwhile.
//! PostgreSQL only: SQLite is never shared between processes.
use std::time::{Duration, Instant};

use partner_contacts::domain::GatePolicy;
use partner_contacts::pb;
use partner_contacts::server::ServerSettings;
use partner_contacts::store::{CacheOptions, StoreOptions};
use sqlx::Connection;

use crate::api::{
    Client, PROD, complete_info, contact, fetch, grant_alert_users, named, put, put_masked, save,
};
use crate::common::{self, Backend, TestServer};

fn emergency(email: &str) -> pb::UpdateContactsRequest {
    put_masked(
        pb::ContactInfo {
            technical_emergency_contacts: vec![contact(email)],
            ..named(PROD)
        },
        &["technical_emergency_contacts"],
    )
}

/// Two servers, A and B, on one fresh database.
async fn two_replicas() -> (TestServer, TestServer) {
    let store = common::store(Backend::Postgres).await;
    let other = store.another_replica().await;
    let a = TestServer::start_on(store, GatePolicy::builtin()).await;
    let b = TestServer::start_on(other, GatePolicy::builtin()).await;
    (a, b)
}

/// Polls `c` until GetContacts shows `etag`; returns how long it took.
async fn until_visible(c: &mut Client, etag: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if fetch(c, PROD).await.etag == etag {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "not visible after {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_replica_reaches_the_others_cache() {
    let (a, b) = two_replicas().await;
    let (mut ca, mut cb) = (a.client.clone(), b.client.clone());
    grant_alert_users(&mut ca, "acme", None).await;
    let first = save(&mut ca, put(complete_info(PROD))).await;
    // B caches the first state...
    assert_eq!(fetch(&mut cb, PROD).await, first);
    assert_eq!(fetch(&mut cb, PROD).await, first);
    // ...and sees the second soon after A acknowledges it.
    for i in 0..10 {
        let saved = save(&mut ca, emergency(&format!("p{i}@example.com"))).await;
        // A always reads its own writes.
        assert_eq!(fetch(&mut ca, PROD).await, saved);
        let took = until_visible(&mut cb, &saved.etag, Duration::from_secs(2)).await;
        assert!(took < Duration::from_secs(1), "{took:?}");
    }
    // Portal-user changes travel too: the gate on B notices a revoked alert contact.
    let users = ca
        .list_portal_users(pb::ListPortalUsersRequest {
            parent: "partners/acme".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .portal_users;
    let gate = |c: &mut Client| {
        let mut c = c.clone();
        async move {
            c.check_onboarding_gate(pb::CheckOnboardingGateRequest {
                name: PROD.into(),
                integration_type: String::new(),
            })
            .await
            .expect("gate")
            .into_inner()
        }
    };
    assert!(gate(&mut cb).await.open);
    ca.revoke_portal_access(pb::RevokePortalAccessRequest {
        name: users[1].name.clone(),
    })
    .await
    .expect("revoke");
    let started = Instant::now();
    while gate(&mut cb).await.open {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "B's gate stayed open"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_lost_its_connection_resynchronises() {
    let (a, b) = two_replicas().await;
    let (mut ca, mut cb) = (a.client.clone(), b.client.clone());
    let first = save(&mut ca, emergency("first@example.com")).await;
    assert_eq!(
        fetch(&mut cb, PROD).await,
        first,
        "B caches the first state"
    );

    // Cut every listener's connection (A's and B's), then write while they
    // reconnect: that notification may be lost, the change must not be.
    let mut admin = sqlx::PgConnection::connect(&a.store.url)
        .await
        .expect("connect");
    let terminated: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await
    .expect("terminate listeners");
    assert_eq!(terminated.len(), 2, "one listener per replica");
    let second = save(&mut ca, emergency("second@example.com")).await;
    until_visible(&mut cb, &second.etag, Duration::from_secs(10)).await;

    // And the reconnected listener carries later changes as before.
    let third = save(&mut ca, emergency("third@example.com")).await;
    let took = until_visible(&mut cb, &third.etag, Duration::from_secs(2)).await;
    assert!(took < Duration::from_secs(1), "{took:?}");
}

/// `--change-feed ttl`: no NOTIFY is sent or listened for (databases and
/// poolers without LISTEN/NOTIFY), and another replica's write is seen once
/// the cache's time to live has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_notifications_writes_are_seen_after_the_cache_ttl() {
    let quiet = StoreOptions {
        notify: false,
        ..StoreOptions::default()
    };
    let store = common::store_with(Backend::Postgres, quiet.clone(), |u| u.to_owned()).await;
    let mut listener = sqlx::postgres::PgListener::connect(&store.url)
        .await
        .expect("listener");
    listener
        .listen(partner_contacts::store::changes::CHANNEL)
        .await
        .expect("listen");
    let other = store.another_replica_with(&quiet).await;
    let ttl = Duration::from_millis(400);
    let settings = || ServerSettings {
        cache: CacheOptions {
            time_to_live: ttl,
            ..CacheOptions::default()
        },
        ..common::dev_settings()
    };
    let a = TestServer::start_configured(store, settings()).await;
    let b = TestServer::start_configured(other, settings()).await;
    let (mut ca, mut cb) = (a.client.clone(), b.client.clone());
    let first = save(&mut ca, emergency("first@example.com")).await;
    assert_eq!(fetch(&mut cb, PROD).await, first);
    let mut watching = cb
        .watch_contacts(pb::WatchContactsRequest { name: PROD.into() })
        .await
        .expect("watch on B")
        .into_inner();
    let current = watching.message().await.expect("state").expect("open");
    assert_eq!(current.contact_info.as_ref(), Some(&first));
    let second = save(&mut ca, emergency("second@example.com")).await;
    assert_eq!(fetch(&mut ca, PROD).await, second, "A reads its own write");
    let took = until_visible(&mut cb, &second.etag, Duration::from_secs(3)).await;
    assert!(took <= ttl + Duration::from_millis(300), "{took:?}");
    // A watch on B follows A's write too, once B's entry has expired.
    let next = tokio::time::timeout(Duration::from_secs(3), watching.message())
        .await
        .expect("the watch on B sees A's write")
        .expect("state")
        .expect("open");
    assert_eq!(next.contact_info, Some(second));
    let heard = tokio::time::timeout(Duration::from_millis(300), listener.recv()).await;
    assert!(heard.is_err(), "a notification was sent: {heard:?}");
}
