//! Database outages reach callers as UNAVAILABLE, quickly, and the service
//! recovers by itself when the database returns.
use std::time::{Duration, Instant};

use partner_contacts::domain::GatePolicy;
use partner_contacts::pb;
use partner_contacts::store::StoreOptions;
use tonic::Code;

use tonic_health::pb::health_check_response::ServingStatus;

use crate::common::{self, Backend, TcpProxy, TestServer};

const NAME: &str = "partners/acme/environments/production/contactInfo";

fn get_request() -> pb::GetContactsRequest {
    pb::GetContactsRequest {
        name: NAME.into(),
        ..Default::default()
    }
}

fn update_request() -> pb::UpdateContactsRequest {
    pb::UpdateContactsRequest {
        contact_info: Some(pb::ContactInfo {
            name: NAME.into(),
            technical_emergency_contacts: vec![pb::Contact {
                email: "pager@example.com".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_is_unavailable_and_recovers() {
    let mut proxy = TcpProxy::start(common::pg_server_addr()).await;
    let options = StoreOptions {
        acquire_timeout: Duration::from_millis(500),
        ..StoreOptions::default()
    };
    let store = common::store_with(Backend::Postgres, options, |url| proxy.route(url)).await;
    let server = TestServer::start_on(store, GatePolicy::builtin()).await;
    // Started, the server is not yet ready for this test. Health reports
    // SERVING once its probe has reached the database: an outage before that
    // reads as the start, not as an outage (one failed probe is not yet
    // one). And the change listener, once it listens, drops the cache (what
    // was saved before went unseen); it starts connecting when the store
    // opens, before the probe's first ping. So the save below, which the
    // outage's reads are answered from, comes after both.
    assert!(
        server
            .await_health(ServingStatus::Serving, Duration::from_secs(5))
            .await,
        "never SERVING before the outage"
    );
    let mut client = server.client.clone();
    let saved = client
        .update_contacts(update_request())
        .await
        .expect("save before the outage")
        .into_inner();

    proxy.cut();
    // What this replica has cached is still answered: the last state it saw.
    let cached = client
        .get_contacts(get_request())
        .await
        .expect("cached read during the outage")
        .into_inner();
    assert_eq!(cached, saved);
    for attempt in 0..2 {
        let started = Instant::now();
        let get = client
            .get_contacts(pb::GetContactsRequest {
                name: "partners/uncached/environments/production/contactInfo".into(),
                ..Default::default()
            })
            .await
            .expect_err("database is down");
        assert_eq!(get.code(), Code::Unavailable, "attempt {attempt}: {get:?}");
        assert!(!get.message().to_lowercase().contains("select"), "{get:?}");
        let update = client
            .update_contacts(update_request())
            .await
            .expect_err("database is down");
        assert_eq!(update.code(), Code::Unavailable, "{update:?}");
        // Fails fast: about the acquire timeout, not sqlx's 30 s default.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    // Once health has seen the outage, calls that need the database fail
    // at once instead of each waiting out the acquire timeout.
    assert!(
        server
            .await_health(ServingStatus::NotServing, Duration::from_secs(5))
            .await,
        "health never reported NOT_SERVING"
    );
    // Liveness probes must not restart a replica for its database's outage.
    assert_eq!(
        server
            .health_of(partner_contacts::server::LIVENESS_SERVICE_NAME)
            .await,
        ServingStatus::Serving as i32,
        "liveness follows the database"
    );
    let asked = Instant::now();
    let fast = client
        .update_contacts(update_request())
        .await
        .expect_err("database is down");
    assert_eq!(fast.code(), Code::Unavailable, "{fast:?}");
    assert!(
        asked.elapsed() < Duration::from_millis(200),
        "{:?}",
        asked.elapsed()
    );

    proxy.restore().await;
    assert!(
        server
            .await_health(ServingStatus::Serving, Duration::from_secs(5))
            .await,
        "not SERVING within 5 s of the database returning"
    );
    client
        .update_contacts(update_request())
        .await
        .expect("writes work again within 5 s of the database returning");
    let deadline = Instant::now() + Duration::from_secs(10);
    let back = loop {
        match client.get_contacts(get_request()).await {
            Ok(r) => break r.into_inner(),
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.code(), Code::Unavailable, "{e:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("did not recover: {e:?}"),
        }
    };
    assert_eq!(
        back.technical_emergency_contacts, saved.technical_emergency_contacts,
        "nothing acknowledged was lost"
    );
}

/// The read path's own connections (outside the pool) outlive a database
/// restart or an idle timeout unnoticed until used: a read that meets one
/// closed is retried once on a new connection, and the caller sees nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_survive_their_connections_being_closed_while_idle() {
    use partner_contacts::domain::{ContactInfoName, Environment, PartnerId};
    use sqlx::Executor;

    let t = common::store(Backend::Postgres).await;
    let name = ContactInfoName::new(
        PartnerId::parse("acme").expect("partner"),
        Environment::Production,
    );
    // Enough reads, one after another, that every read worker has opened
    // its connection (the workers take turns).
    for _ in 0..16 {
        assert_eq!(t.store.get_ready(&name).await.expect("read"), None);
    }
    let mut admin = common::raw_pg_connection(&t.url)
        .await
        .expect("admin connection");
    let closed = admin
        .fetch_all(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND application_name = 'partner-contacts'",
        )
        .await
        .expect("terminate the store's connections");
    assert!(closed.len() >= 4, "the read workers' connections were open");
    for i in 0..16 {
        assert_eq!(
            t.store
                .get_ready(&name)
                .await
                .unwrap_or_else(|e| panic!("read {i} after the restart: {e}")),
            None
        );
    }
}
