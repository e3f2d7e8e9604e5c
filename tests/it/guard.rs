//! Overload, deadlines, request size and drain: what callers see when the
//! service is pushed past its limits, and that health keeps answering.
//!
//! Slow calls are real ones: UpdateContacts waiting on a row lock that the
//! test holds from its own PostgreSQL connection.
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use partner_contacts::pb;
use partner_contacts::server::{GuardCounters, Limits, ServerSettings};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::common::{self, Backend, TestServer};

const NAME: &str = "partners/acme/environments/production/contactInfo";

fn settings(limits: Limits, grace: Duration, counters: Arc<GuardCounters>) -> ServerSettings {
    ServerSettings {
        shutdown_grace: grace,
        limits,
        counters,
        ..common::dev_settings()
    }
}

fn update(email: &str) -> pb::UpdateContactsRequest {
    pb::UpdateContactsRequest {
        contact_info: Some(pb::ContactInfo {
            name: NAME.into(),
            technical_emergency_contacts: vec![pb::Contact {
                email: email.into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["technical_emergency_contacts".into()],
        }),
        ..Default::default()
    }
}

fn get() -> pb::GetContactsRequest {
    pb::GetContactsRequest {
        name: NAME.into(),
        ..Default::default()
    }
}

/// The saved row, locked from a connection of the test's own until
/// `release`: every UpdateContacts of it waits meanwhile.
struct RowLock {
    conn: PgConnection,
}

impl RowLock {
    async fn hold(url: &str) -> Self {
        let mut conn = PgConnection::connect(url).await.expect("connect");
        sqlx::query("BEGIN")
            .execute(&mut conn)
            .await
            .expect("begin");
        let locked = sqlx::query(
            "SELECT 1 FROM contact_info WHERE partner = 'acme' AND environment = 'production' \
             FOR UPDATE",
        )
        .execute(&mut conn)
        .await
        .expect("lock");
        assert_eq!(locked.rows_affected(), 1, "the row must exist");
        Self { conn }
    }

    /// The service's statements of this database now waiting on a lock.
    async fn waiting(&mut self) -> i64 {
        // Inside a transaction the activity view is a snapshot taken at its
        // first read: take a new one each time.
        sqlx::query("SELECT pg_stat_clear_snapshot()")
            .execute(&mut self.conn)
            .await
            .expect("clear snapshot");
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = 'partner-contacts' AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut self.conn)
        .await
        .expect("pg_stat_activity")
    }

    /// Waits until `n` of the service's statements wait on the lock.
    async fn until_waiting(&mut self, n: i64) {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let waiting = self.waiting().await;
            if waiting == n {
                break;
            }
            assert!(
                Instant::now() < until,
                "never saw {n} waiting statements (last: {waiting})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn release(mut self) {
        sqlx::query("ROLLBACK")
            .execute(&mut self.conn)
            .await
            .expect("rollback");
    }
}

/// The `ErrorInfo` reason of `status`, if it carries one of this service.
fn reason(status: &tonic::Status) -> Option<String> {
    use tonic_types::StatusExt;
    let details = status.get_error_details();
    let info = details.error_info()?;
    (info.domain == "partner-contacts").then(|| info.reason.clone())
}

/// The refusal names its reason and says when to retry.
fn assert_reason_and_retry(status: &tonic::Status, want: &str) {
    use tonic_types::StatusExt;
    assert_eq!(reason(status).as_deref(), Some(want), "{status:?}");
    let delay = status
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay);
    assert!(
        delay.is_some_and(|d| d > Duration::ZERO && d < Duration::from_secs(5)),
        "{status:?}: RetryInfo {delay:?}"
    );
}

async fn health(server: &TestServer) -> Result<i32, tonic::Status> {
    HealthClient::new(server.channel.clone())
        .check(HealthCheckRequest {
            service: partner_contacts::server::SERVICE_NAME.into(),
        })
        .await
        .map(|r| r.into_inner().status)
}

/// A server on a fresh PostgreSQL database with one saved contact info. The
/// database lives as long as the returned `TestStore`, not the server, so a
/// test can time a server's stop without the database's removal in it.
async fn started(
    limits: Limits,
    grace: Duration,
) -> (TestServer, Arc<GuardCounters>, common::TestStore) {
    let counters = Arc::new(GuardCounters::default());
    let database = common::store(Backend::Postgres).await;
    let server = TestServer::start_configured(
        database.another_replica().await,
        settings(limits, grace, counters.clone()),
    )
    .await;
    let mut client = server.client.clone();
    client
        .update_contacts(update("first@example.com"))
        .await
        .expect("first save");
    (server, counters, database)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_limit_are_shed_at_once_while_health_answers() {
    let limits = Limits {
        max_concurrent_calls: 4,
        ..Limits::default()
    };
    let (server, counters, _database) = started(limits, Duration::from_secs(5)).await;
    let mut lock = RowLock::hold(&server.store.url).await;
    let in_flight: Vec<_> = (0..4)
        .map(|i| {
            let mut c = server.client.clone();
            tokio::spawn(async move {
                c.update_contacts(update(&format!("p{i}@example.com")))
                    .await
            })
        })
        .collect();
    lock.until_waiting(4).await;

    for _ in 0..3 {
        let asked = Instant::now();
        let shed = server
            .client
            .clone()
            .get_contacts(get())
            .await
            .expect_err("over the limit");
        assert_eq!(shed.code(), Code::ResourceExhausted, "{shed:?}");
        assert!(shed.message().contains("limit"), "{shed:?}");
        assert_reason_and_retry(&shed, "OVERLOADED");
        assert!(
            asked.elapsed() < Duration::from_millis(500),
            "{:?}",
            asked.elapsed()
        );
    }
    let asked = Instant::now();
    assert_eq!(
        health(&server).await.expect("health"),
        ServingStatus::Serving as i32
    );
    assert!(asked.elapsed() < Duration::from_millis(500));
    assert_eq!(counters.shed.load(Ordering::Relaxed), 3);

    lock.release().await;
    for call in in_flight {
        call.await.expect("join").expect("admitted calls finish");
    }
    // Permits come back: the service takes calls again.
    server
        .client
        .clone()
        .get_contacts(get())
        .await
        .expect("after the burst");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_call_is_deadline_exceeded_and_its_query_stops() {
    let (server, counters, _database) = started(Limits::default(), Duration::from_secs(5)).await;
    let before = server
        .client
        .clone()
        .get_contacts(get())
        .await
        .expect("get")
        .into_inner();
    let mut lock = RowLock::hold(&server.store.url).await;

    let mut request = tonic::Request::new(update("late@example.com"));
    request.set_timeout(Duration::from_millis(300));
    let asked = Instant::now();
    let mut client = server.client.clone();
    let call = tokio::spawn(async move { client.update_contacts(request).await });
    lock.until_waiting(1).await;
    let err = call
        .await
        .expect("join")
        .expect_err("the row stays locked past the deadline");
    // tonic's client enforces the deadline it sends as well, and reports its
    // own expiry as CANCELLED when it sees it before the server's answer.
    assert!(
        err.code() == Code::DeadlineExceeded
            || (err.code() == Code::Cancelled && err.message() == "Timeout expired"),
        "{err:?}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    // The server gave up on the call at the deadline.
    let until = Instant::now() + Duration::from_secs(1);
    while counters.deadline_exceeded.load(Ordering::Relaxed) != 1 {
        assert!(Instant::now() < until, "the server did not end the call");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // PostgreSQL itself stopped the waiting statement at the deadline; the
    // session's own statement_timeout (5 s) would have kept it far longer.
    let until = asked + Duration::from_millis(1500);
    while lock.waiting().await != 0 {
        assert!(
            Instant::now() < until,
            "the expired call's query is still running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lock.release().await;
    let after = server
        .client
        .clone()
        .get_contacts(get())
        .await
        .expect("get")
        .into_inner();
    assert_eq!(after, before, "the expired write was not saved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_a_deadline_gets_the_default_one() {
    let limits = Limits {
        default_deadline: Duration::from_millis(400),
        ..Limits::default()
    };
    let (server, _, _database) = started(limits, Duration::from_secs(5)).await;
    let mut lock = RowLock::hold(&server.store.url).await;
    let asked = Instant::now();
    let err = server
        .client
        .clone()
        .update_contacts(update("late@example.com"))
        .await
        .expect_err("past the default deadline");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert_eq!(
        reason(&err).as_deref(),
        Some("DEADLINE_EXCEEDED"),
        "{err:?}"
    );
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(2),
        "{took:?}"
    );
    lock.until_waiting(0).await;
    lock.release().await;
}

async fn an_oversize_request_is_resource_exhausted(backend: Backend) {
    let store = common::store(backend).await;
    let limits = Limits {
        max_request_bytes: 64 * 1024,
        ..Limits::default()
    };
    let server = TestServer::start_configured(
        store,
        settings(limits, Duration::from_secs(5), Default::default()),
    )
    .await;
    let mut client = server.client.clone();
    let huge = pb::GetContactsRequest {
        name: "x".repeat(65 * 1024),
        ..Default::default()
    };
    let err = client.get_contacts(huge).await.expect_err("too large");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("64 KiB"), "{err:?}");
    assert_reason_and_retry(&err, "REQUEST_TOO_LARGE");
    // Just under the limit it is an ordinary (invalid) request.
    let big = pb::GetContactsRequest {
        name: "x".repeat(63 * 1024),
        ..Default::default()
    };
    let err = client.get_contacts(big).await.expect_err("invalid name");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_request_is_resource_exhausted_on_sqlite() {
    an_oversize_request_is_resource_exhausted(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_request_is_resource_exhausted_on_postgres() {
    an_oversize_request_is_resource_exhausted(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_calls_finish_and_ends_streams() {
    let (server, _, _database) = started(Limits::default(), Duration::from_secs(5)).await;
    let mut stream = server
        .client
        .clone()
        .watch_contacts(pb::WatchContactsRequest { name: NAME.into() })
        .await
        .expect("watch")
        .into_inner();
    stream.message().await.expect("first state").expect("open");
    let mut lock = RowLock::hold(&server.store.url).await;
    let in_flight: Vec<_> = (0..3)
        .map(|i| {
            let mut c = server.client.clone();
            tokio::spawn(async move {
                c.update_contacts(update(&format!("d{i}@example.com")))
                    .await
            })
        })
        .collect();
    lock.until_waiting(3).await;

    let stopping = Instant::now();
    let stop = tokio::spawn(server.stop());
    // The open stream ends at once, telling the consumer to go elsewhere.
    let ended = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without a status"),
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("the stream ends at shutdown");
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");

    // The calls in flight still finish, and OK.
    tokio::time::sleep(Duration::from_millis(300)).await;
    lock.release().await;
    for call in in_flight {
        call.await
            .expect("join")
            .expect("in-flight call finishes during the drain");
    }
    tokio::time::timeout(Duration::from_secs(5), stop)
        .await
        .expect("stopped within the grace period")
        .expect("join")
        .expect("clean stop");
    assert!(stopping.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_within_the_grace_period_when_a_call_hangs() {
    let (server, _, _database) = started(Limits::default(), Duration::from_millis(800)).await;
    let mut lock = RowLock::hold(&server.store.url).await;
    let mut c = server.client.clone();
    let hung = tokio::spawn(async move { c.update_contacts(update("hung@example.com")).await });
    lock.until_waiting(1).await;

    let stopping = Instant::now();
    tokio::time::timeout(Duration::from_secs(3), server.stop())
        .await
        .expect("the grace period bounds the stop")
        .expect("stop");
    let took = stopping.elapsed();
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_millis(2000),
        "{took:?}"
    );
    let outcome = hung.await.expect("join");
    assert!(outcome.is_err(), "a call cut by the grace period is not OK");
    lock.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_connections_are_asked_to_reconnect() {
    let counters = Arc::new(GuardCounters::default());
    let limits = Limits {
        max_connection_age: Some(Duration::from_millis(500)),
        ..Limits::default()
    };
    let server = TestServer::start_configured(
        common::store(Backend::Sqlite).await,
        settings(limits, Duration::from_secs(5), counters.clone()),
    )
    .await;
    let mut client = server.client.clone();
    client.get_contacts(get()).await.expect_err("nothing saved");
    assert_eq!(counters.connections.load(Ordering::Relaxed), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The channel was told to go away and reconnects by itself.
    client.get_contacts(get()).await.expect_err("nothing saved");
    assert_eq!(counters.connections.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_its_caller_abandons_is_still_counted() {
    let metrics = Arc::new(partner_contacts::telemetry::Metrics::new());
    let database = common::store(Backend::Postgres).await;
    let server = TestServer::start_configured(
        database.another_replica().await,
        ServerSettings {
            metrics: Some(metrics.clone()),
            ..common::dev_settings()
        },
    )
    .await;
    let mut c = server.client.clone();
    c.update_contacts(update("first@example.com"))
        .await
        .expect("first save");
    let mut lock = RowLock::hold(&server.store.url).await;
    let mut c = server.client.clone();
    let call = tokio::spawn(async move { c.update_contacts(update("gone@example.com")).await });
    lock.until_waiting(1).await;
    // The caller gives up: its stream is reset and the server drops the call.
    call.abort();
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let text = metrics.render().expect("render");
        let cancelled = text.contains(
            r#"grpc_server_handled_total{grpc_service="partnerportal.contacts.v1.ContactsService",grpc_method="UpdateContacts",grpc_type="unary",grpc_code="Canceled"} 1"#,
        );
        if cancelled && text.contains("grpc_server_in_flight 0") {
            break;
        }
        assert!(
            Instant::now() < until,
            "the abandoned call was not counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lock.release().await;
}

/// Errors tonic makes itself, before any handler of ours runs, carry the
/// same details as ours: a request body that is not the method's message,
/// and a method the service does not have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_tonic_makes_carry_error_info_too() {
    let server = TestServer::start(Backend::Sqlite).await;
    let mut grpc = tonic::client::Grpc::new(server.channel.clone());
    for (path, body) in [
        // Field 1 as a varint where a string is expected, then a truncated
        // length-delimited field: not a GetContactsRequest.
        (
            "/partnerportal.contacts.v1.ContactsService/GetContacts",
            vec![0x08, 0x01, 0x0a, 0x7f],
        ),
        (
            "/partnerportal.contacts.v1.ContactsService/DropTables",
            vec![],
        ),
    ] {
        grpc.ready().await.expect("ready");
        let err = grpc
            .unary::<_, prost::bytes::Bytes, _>(
                tonic::Request::new(prost::bytes::Bytes::from(body)),
                tonic::codegen::http::uri::PathAndQuery::from_static(path),
                RawCodec,
            )
            .await
            .expect_err("refused");
        assert!(
            matches!(err.code(), Code::Internal | Code::Unimplemented),
            "{path}: {err:?}"
        );
        let want = if err.code() == Code::Unimplemented {
            "UNIMPLEMENTED"
        } else {
            "INTERNAL"
        };
        assert_eq!(reason(&err).as_deref(), Some(want), "{path}: {err:?}");
    }
}

/// Sends and receives message bytes as they are, to send what no generated
/// client would.
#[derive(Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = prost::bytes::Bytes;
    type Decode = prost::bytes::Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = prost::bytes::Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Self::Item,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Self::Error> {
        prost::bytes::BufMut::put(dst, item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = prost::bytes::Bytes;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Self::Item>, Self::Error> {
        let n = prost::bytes::Buf::remaining(src);
        Ok(Some(prost::bytes::Buf::copy_to_bytes(src, n)))
    }
}
