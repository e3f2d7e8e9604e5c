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

    let (head, body) = scrape(addr).await;
    assert!(
        head.contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    let handled = |method: &str, code: &str| {
        sample(
            &body,
            &format!("grpc_server_handled_total{{grpc_method=\"{method}\",grpc_code=\"{code}\"}}"),
        )
    };
    assert_eq!(handled("UpdateContacts", "OK"), 1.0);
    assert_eq!(handled("GetContacts", "OK"), 2.0);
    assert_eq!(handled("GetContacts", "NOT_FOUND"), 1.0);
    assert_eq!(
        sample(
            &body,
            "grpc_server_handling_seconds_count{grpc_method=\"GetContacts\"}"
        ),
        3.0
    );
    assert_eq!(sample(&body, "grpc_server_in_flight"), 0.0);
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
