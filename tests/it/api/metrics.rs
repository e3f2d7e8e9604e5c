//! Prometheus metrics, scraped over HTTP as Prometheus would: calls by
//! method and code, latency, calls in flight, cache and pool.
use std::sync::Arc;

use partner_contacts::server::ServerSettings;
use partner_contacts::telemetry::{self, Metrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::on_both_backends;

async fn scrape(addr: std::net::SocketAddr) -> (String, String) {
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut raw = String::new();
    conn.read_to_string(&mut raw).await.expect("response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    (head.to_lowercase(), body.to_owned())
}

/// The value of the sample named exactly `series` (name and labels).
fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in:\n{body}"))
}

async fn calls_cache_and_pool_are_measured(backend: Backend) {
    let metrics = Arc::new(Metrics::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(telemetry::metrics::serve(
        listener,
        metrics.clone(),
        std::future::pending(),
    ));
    let server = TestServer::start_configured(
        crate::common::store(backend).await,
        ServerSettings {
            metrics: Some(metrics),
            ..crate::common::dev_settings()
        },
    )
    .await;
    let mut c = server.client.clone();
    grant_alert_users(&mut c, "acme", None).await;
    save(&mut c, put(complete_info(PROD))).await;
    get(&mut c, PROD).await.expect("get");
    get(&mut c, PROD).await.expect("get");
    get(&mut c, SANDBOX).await.expect_err("nothing saved there");
    // A stream that sends the current state and one save, then ends when
    // its consumer goes away.
    let mut stream = c
        .watch_contacts(pb::WatchContactsRequest {
            name: PROD.to_owned(),
        })
        .await
        .expect("watch")
        .into_inner();
    stream.message().await.expect("state").expect("open");
    save(&mut c, put(complete_info(PROD))).await;
    stream.message().await.expect("save").expect("open");
    drop(stream);
    let (_, mut body) = scrape(addr).await;
    for _ in 0..100 {
        if body.contains("partner_contacts_stream_duration_seconds_count{") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        body = scrape(addr).await.1;
    }

    let (head, body) = scrape(addr).await;
    assert!(
        head.contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    // go-grpc-prometheus's names, labels and code names, which stock
    // dashboards and alert rules match on.
    const SERVICE: &str = "grpc_service=\"partnerportal.contacts.v1.ContactsService\"";
    let labels = |method: &str, kind: &str| {
        format!("{{{SERVICE},grpc_method=\"{method}\",grpc_type=\"{kind}\"")
    };
    let handled = |method: &str, code: &str| {
        sample(
            &body,
            &format!(
                "grpc_server_handled_total{},grpc_code=\"{code}\"}}",
                labels(method, "unary")
            ),
        )
    };
    let unary = |series: &str, method: &str| {
        sample(&body, &format!("{series}{}}}", labels(method, "unary")))
    };
    let stream = |series: &str| {
        sample(
            &body,
            &format!("{series}{}}}", labels("WatchContacts", "server_stream")),
        )
    };
    assert_eq!(handled("UpdateContacts", "OK"), 2.0);
    assert_eq!(handled("GetContacts", "OK"), 2.0);
    assert_eq!(handled("GetContacts", "NotFound"), 1.0);
    assert_eq!(unary("grpc_server_started_total", "GetContacts"), 3.0);
    assert_eq!(
        unary("grpc_server_handling_seconds_count", "GetContacts"),
        3.0
    );
    assert_eq!(unary("grpc_server_msg_received_total", "GetContacts"), 3.0);
    // Nothing is sent back but the error when a call fails.
    assert_eq!(unary("grpc_server_msg_sent_total", "GetContacts"), 2.0);
    // The stream: started, ended (its consumer went away), its lifetime
    // measured apart from unary latency, every message it sent counted.
    assert_eq!(stream("grpc_server_started_total"), 1.0);
    assert_eq!(
        sample(
            &body,
            &format!(
                "grpc_server_handled_total{},grpc_code=\"Canceled\"}}",
                labels("WatchContacts", "server_stream")
            )
        ),
        1.0
    );
    assert_eq!(stream("grpc_server_msg_received_total"), 1.0);
    assert!(stream("grpc_server_msg_sent_total") >= 2.0, "{body}");
    assert_eq!(
        sample(
            &body,
            &format!(
                "partner_contacts_stream_duration_seconds_count{{{SERVICE},grpc_method=\"WatchContacts\"}}"
            )
        ),
        1.0
    );
    assert!(
        !body.contains("grpc_server_handling_seconds_count{grpc_service=\"partnerportal.contacts.v1.ContactsService\",grpc_method=\"WatchContacts\""),
        "streams stay out of the unary latency histogram:\n{body}"
    );
    assert_eq!(sample(&body, "grpc_server_in_flight"), 0.0);
    // The build and the process.
    assert_eq!(
        sample(
            &body,
            &format!(
                "partner_contacts_build_info{{version=\"{}\",revision=\"{}\"}}",
                env!("CARGO_PKG_VERSION"),
                telemetry::metrics::REVISION
            )
        ),
        1.0
    );
    assert!(
        sample(&body, "process_resident_memory_bytes") > 1e6,
        "{body}"
    );
    assert!(sample(&body, "process_open_fds") >= 3.0, "{body}");
    assert!(sample(&body, "process_max_fds") >= sample(&body, "process_open_fds"));
    assert!(sample(&body, "process_cpu_seconds_total") > 0.0, "{body}");
    assert!(
        sample(&body, "process_start_time_seconds") > 1.7e9,
        "{body}"
    );
    assert!(
        sample(&body, "process_virtual_memory_bytes") > 1e6,
        "{body}"
    );
    assert_eq!(sample(&body, "partner_contacts_database_up"), 1.0);
    // The save filled the cache, so both reads of it were hits.
    assert!(
        sample(&body, "partner_contacts_cache_hits_total") >= 2.0,
        "{body}"
    );
    assert!(
        sample(&body, "partner_contacts_cache_misses_total") >= 1.0,
        "{body}"
    );
    // PostgreSQL's change listener empties the cache once when it first
    // connects (a resync), which on a slow machine can land after the reads
    // above: then a read after it fills the cache again.
    let mut cached = body.clone();
    for _ in 0..100 {
        if sample(&cached, "partner_contacts_cache_bytes") > 0.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        get(&mut c, PROD).await.expect("get");
        cached = scrape(addr).await.1;
    }
    assert!(
        sample(&cached, "partner_contacts_cache_bytes") > 0.0,
        "{cached}"
    );
    assert!(
        sample(&cached, "partner_contacts_cache_entries") >= 1.0,
        "{cached}"
    );
    assert!(
        sample(&body, "partner_contacts_db_pool_max") >= 1.0,
        "{body}"
    );
    assert!(
        sample(&body, "partner_contacts_db_pool_size") >= 1.0,
        "{body}"
    );
    assert_eq!(sample(&body, "partner_contacts_db_pool_waiters"), 0.0);
    assert_eq!(
        sample(&body, "partner_contacts_change_listener_reconnects_total"),
        0.0
    );
    assert_eq!(sample(&body, "partner_contacts_calls_shed_total"), 0.0);
    assert_eq!(
        sample(&body, "partner_contacts_connections_accepted_total"),
        1.0
    );
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
}

on_both_backends!(calls_cache_and_pool_are_measured);

/// The series a scrape shows are exactly those `deploy/prometheus/metrics.txt`
/// lists, which the alert rules and the dashboard are checked against: a
/// renamed metric fails here, not silently in production's alerts.
#[tokio::test]
async fn the_metrics_are_those_the_alerts_and_dashboard_use() {
    use partner_contacts::relay::RelayStats;
    use partner_contacts::server::GuardCounters;
    use partner_contacts::store::{CacheOptions, CachedStore};
    use partner_contacts::telemetry::metrics::CallKind;

    let listed: std::collections::BTreeSet<String> = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/prometheus/metrics.txt"
    ))
    .expect("metrics.txt")
    .lines()
    .map(str::trim)
    .filter(|l| !l.is_empty() && !l.starts_with('#'))
    .map(str::to_owned)
    .collect();
    let metrics = Metrics::new();
    let store = crate::common::store(Backend::Sqlite).await;
    metrics.attach(
        CachedStore::new(store.store.clone(), &CacheOptions::default()),
        Arc::new(GuardCounters::default()),
        Some(Arc::new(RelayStats::default())),
    );
    for grpc_type in [CallKind::UNARY, CallKind::SERVER_STREAM] {
        let kind = CallKind {
            grpc_service: "partnerportal.contacts.v1.ContactsService",
            grpc_method: "GetContacts",
            grpc_type,
        };
        metrics.call_started(kind);
        metrics.call_finished(
            kind,
            tonic::Code::Ok,
            std::time::Duration::from_millis(1),
            1,
            1,
        );
    }
    let text = metrics.render().expect("render");
    let shown: std::collections::BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or(l).to_owned())
        .collect();
    assert_eq!(
        shown,
        listed,
        "exposed but not listed: {:?}; listed but not exposed: {:?}",
        shown.difference(&listed).collect::<Vec<_>>(),
        listed.difference(&shown).collect::<Vec<_>>()
    );
}
