//! Assembles the gRPC server: contacts API behind its guard, health,
//! reflection, graceful shutdown.
mod guard;
mod io;
mod observe;

pub use crate::telemetry::GuardCounters;
pub use guard::Limits;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::api::ContactsApi;

/// Header names the layers read on every call, as constants: a lookup by a
/// string parses the name each time.
const GRPC_STATUS: tonic::codegen::http::HeaderName =
    tonic::codegen::http::HeaderName::from_static("grpc-status");
const GRPC_TIMEOUT: tonic::codegen::http::HeaderName =
    tonic::codegen::http::HeaderName::from_static("grpc-timeout");
use crate::auth::Authenticator;
use crate::domain::GatePolicy;
use crate::pb;
use crate::store::{CacheOptions, CachedStore, ContactStore, DynStore, REQUEST_ID_RETENTION};

/// The fully-qualified service name health reports on.
pub const SERVICE_NAME: &str = "partnerportal.contacts.v1.ContactsService";

/// A health name that reports only whether the process serves gRPC: SERVING
/// whatever the database does, for as long as the server takes calls (from
/// SIGTERM on it takes none, so it is not asked). For liveness probes: a
/// probe on `""` or [`SERVICE_NAME`] would restart every replica in a
/// database outage, throwing away caches that still answer reads, and a TCP
/// probe cannot tell a wedged process from a live one (the kernel accepts
/// connections for it).
pub const LIVENESS_SERVICE_NAME: &str = "liveness";

/// How often health re-checks that the store answers: also how soon after
/// the database returns the service is SERVING and calls go to it again,
/// and how long calls may wait out the pool's acquire timeout before they
/// fail at once.
const STORE_PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// A ping slower than this counts as the database being unreachable (a
/// network that drops packets never refuses anything).
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often expired request ids are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub policy: Arc<GatePolicy>,
    /// Who callers are; `Authenticator::disabled()` in development.
    pub auth: Arc<Authenticator>,
    /// TLS (and mTLS when it names a client CA); plaintext when `None`.
    /// Its files, and the authenticator's JWKS file, are reloaded when they change.
    pub tls: Option<crate::auth::ServerTls>,
    /// The read cache in front of the store.
    pub cache: CacheOptions,
    /// After a shutdown signal, how long in-flight calls may take before the
    /// server stops anyway.
    pub shutdown_grace: Duration,
    /// Calls in flight, deadlines, request size.
    pub limits: Limits,
    /// Where the guard counts what it refused.
    pub counters: Arc<GuardCounters>,
    /// Where calls are counted and timed; `None`: not measured.
    pub metrics: Option<Arc<crate::telemetry::Metrics>>,
    /// Where the events relay publishes; `None`: events stay in the outbox.
    pub events: Option<crate::relay::RelayOptions>,
    /// How long address confirmations and challenges last.
    pub verification: crate::domain::VerificationPolicy,
}

/// Serves on `listener` until `shutdown` resolves, then drains in-flight
/// calls for at most `shutdown_grace`. The store must already be migrated.
pub async fn serve(
    store: DynStore,
    settings: ServerSettings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    // tonic-health starts "" as SERVING; nothing is until the store answers.
    set_health(&reporter, ServingStatus::NotServing).await;
    reporter
        .set_service_status(LIVENESS_SERVICE_NAME, ServingStatus::Serving)
        .await;

    let reflection_v1 = reflection(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| format!("reflection v1: {e}"))?;
    let reflection_v1alpha = reflection(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| format!("reflection v1alpha: {e}"))?;

    let cached = CachedStore::new(store, &settings.cache);
    let store: DynStore = cached.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let api = ContactsApi::new(
        cached.clone(),
        settings.policy.clone(),
        settings.auth.clone(),
        settings.verification,
        stop_rx.clone(),
    )
    .into_routes(settings.limits.max_request_bytes);
    let api = guard::Guarded::new(api, settings.limits.clone(), settings.counters.clone());
    // Outermost, so the guard's refusals are counted and traced too.
    let api = observe::Observed::new(api, settings.metrics.clone());
    let relay_stats = settings
        .events
        .as_ref()
        .map(|_| Arc::new(crate::relay::RelayStats::default()));
    if let Some(metrics) = &settings.metrics {
        metrics.attach(
            cached.clone(),
            settings.counters.clone(),
            relay_stats.clone(),
        );
    }
    let relay = match (settings.events.clone(), relay_stats) {
        (Some(options), Some(stats)) => Some(crate::relay::spawn(
            store.clone(),
            options,
            stats,
            stop_rx.clone(),
        )),
        _ => None,
    };

    // Health writes go through one lock so the probe can never report
    // SERVING again once draining has begun.
    let health = Arc::new(tokio::sync::Mutex::new(Health {
        reporter,
        draining: false,
    }));
    let probe = tokio::spawn(probe_store(cached, health.clone()));
    let purge = tokio::spawn(purge_request_ids(store));

    let signalled = async move {
        shutdown.await;
        // Load balancers stop routing here before connections close.
        let mut h = health.lock().await;
        h.draining = true;
        set_health(&h.reporter, ServingStatus::NotServing).await;
        drop(h);
        probe.abort();
        let _ = stop_tx.send(true);
    };

    // Keepalive pings find connections whose client vanished without a FIN
    // (a pod killed, a NAT timing out), so their calls and streams end.
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)));
    if let Some(age) = settings.limits.max_connection_age {
        // No max_connection_age_grace: with it, tonic 0.14 skips the GOAWAY
        // at `age` and closes the connection hard at `age + grace`.
        builder = builder.max_connection_age(age);
    }
    // Stops re-reading key and certificate files when serving ends.
    let _reload = crate::auth::watch_files(&settings.auth, settings.tls.as_ref());
    let router = builder
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(api);
    let connections = incoming(listener, settings.counters.clone());
    // TLS is done by auth::ServerTls, not tonic's tls_config, whose
    // certificates could not change without a restart.
    let server: std::pin::Pin<Box<dyn Future<Output = _> + Send>> =
        match &settings.tls {
            Some(tls) => Box::pin(router.serve_with_incoming_shutdown(
                tls.accept(connections).map(|c| c.map(io::WholeWrites)),
                signalled,
            )),
            None => Box::pin(router.serve_with_incoming_shutdown(
                connections.map(|c| c.map(io::WholeWrites)),
                signalled,
            )),
        };

    let grace = settings.shutdown_grace;
    let mut stop_rx = stop_rx;
    let deadline = async move {
        // Resolves only after the signal, `grace` later.
        let _ = stop_rx.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(grace).await;
    };
    let result = tokio::select! {
        r = server => r.map_err(|e| format!("server error: {e}")),
        () = deadline => {
            tracing::warn!(grace_seconds = grace.as_secs_f64(), "shutdown grace period over; dropping calls still in flight");
            Ok(())
        }
    };
    purge.abort();
    if let Some(relay) = relay {
        // It stops at the signal, after the publish in hand.
        let _ = tokio::time::timeout(Duration::from_secs(5), relay).await;
    }
    result
}

/// Reflection describes everything served here, whichever of its two
/// versions a client speaks: each version's builder adds its own
/// descriptors, and `other_version` are the other's.
fn reflection(other_version: &'static [u8]) -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // Lets grpcurl decode the google.rpc error details we send.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(other_version)
}

/// Accepted connections with Nagle's algorithm off. Responses larger than one
/// segment would otherwise wait for the client's delayed ACK (about 40 ms on
/// Linux) before their last bytes leave.
fn incoming(
    listener: TcpListener,
    counters: Arc<GuardCounters>,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    TcpListenerStream::new(listener).map(move |accepted| {
        let stream = accepted?;
        counters
            .connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = stream.set_nodelay(true) {
            // Still a working connection, only a slower one.
            tracing::warn!(error = %e, "cannot disable Nagle's algorithm on a connection");
        }
        Ok(stream)
    })
}

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter.set_service_status(SERVICE_NAME, status).await;
}

struct Health {
    reporter: HealthReporter,
    draining: bool,
}

/// Keeps health, and the store's fail-fast switch, in step with the
/// database's reachability.
async fn probe_store(store: Arc<CachedStore>, health: Arc<tokio::sync::Mutex<Health>>) {
    let mut last = None;
    let mut failures = 0u32;
    loop {
        let answered = matches!(
            tokio::time::timeout(STORE_PROBE_TIMEOUT, store.ping()).await,
            Ok(Ok(()))
        );
        failures = if answered { 0 } else { failures + 1 };
        // One slow or failed ping may be a hiccup (a loaded machine, a
        // database checkpoint); two in a row, 250 ms apart, are an outage.
        let reachable = failures < 2;
        store.set_reachable(reachable);
        let status = if answered || (reachable && last == Some(ServingStatus::Serving)) {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if last != Some(status) {
            let h = health.lock().await;
            if h.draining {
                return;
            }
            tracing::info!(?status, backend = store.backend(), "health changed");
            set_health(&h.reporter, status).await;
            last = Some(status);
        }
        tokio::time::sleep(STORE_PROBE_INTERVAL).await;
    }
}

async fn purge_request_ids(store: DynStore) {
    loop {
        let before = chrono::Utc::now() - REQUEST_ID_RETENTION;
        match store.purge_request_ids(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "expired request ids purged"),
            Err(e) => tracing::warn!(error = %e, "purging request ids failed"),
        }
        tokio::time::sleep(PURGE_INTERVAL).await;
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received; shutting down"),
        () = term => tracing::info!("SIGTERM received; shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_do_not_delay_small_writes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut accepted = Box::pin(incoming(listener, Default::default()));
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let server_side = accepted
            .next()
            .await
            .expect("a connection")
            .expect("accepted");
        assert!(server_side.nodelay().expect("nodelay"));
    }
}
