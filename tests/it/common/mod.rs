//! Test fixtures: a fresh store per test on either backend, and a real server on port 0.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use partner_contacts::auth::Authenticator;
use partner_contacts::domain::GatePolicy;
use partner_contacts::pb::contacts_service_client::ContactsServiceClient;
use partner_contacts::server::{self, ServerSettings};
use partner_contacts::store::{self, DynStore, StoreOptions};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tonic::transport::Channel;

pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A store on its own fresh database, removed when dropped.
pub struct TestStore {
    pub store: DynStore,
    pub url: String,
    _cleanup: Cleanup,
}

enum Cleanup {
    Dir(tempfile::TempDir),
    PgDatabase { admin_url: String, name: String },
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Cleanup::PgDatabase { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime: use a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(mut c) = PgConnection::connect(&admin_url).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        )))
                        .execute(&mut c)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

pub fn test_database_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_owned())
}

/// The socket address of the test PostgreSQL server (host and port of
/// `TEST_DATABASE_URL`).
pub fn pg_server_addr() -> std::net::SocketAddr {
    let url = test_database_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    std::net::ToSocketAddrs::to_socket_addrs(&host_port)
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("cannot resolve the PostgreSQL address in {url}"))
}

/// Replaces the database name in a PostgreSQL URL.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{db}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

const PG_PREFIX: &str = "pct_";

async fn fresh_pg_database() -> (String, Cleanup) {
    let admin_url = test_database_url();
    let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is required for the test suite and is not reachable at {admin_url}: {e}\n\
             Start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n\
             or point TEST_DATABASE_URL at a server where the user may CREATE DATABASE."
        )
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Leftovers of crashed runs older than an hour go; newer ones may be a
    // concurrent run's.
    let old: Vec<(String,)> =
        sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'pct\\_%'")
            .fetch_all(&mut admin)
            .await
            .expect("list test databases");
    for (name,) in old {
        let stamp = name
            .strip_prefix(PG_PREFIX)
            .and_then(|r| r.split('_').next())
            .and_then(|s| s.parse::<u64>().ok());
        if stamp.is_some_and(|t| t + 3600 < now) {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await;
        }
    }
    let name = format!("{PG_PREFIX}{now}_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .expect("create test database");
    (
        with_database(&admin_url, &name),
        Cleanup::PgDatabase { admin_url, name },
    )
}

pub async fn store(backend: Backend) -> TestStore {
    store_with(backend, StoreOptions::default(), |url| url.to_owned()).await
}

/// A fresh store opened with `options` through the URL `route` makes of the
/// real one (e.g. through a proxy).
pub async fn store_with(
    backend: Backend,
    options: StoreOptions,
    route: impl FnOnce(&str) -> String,
) -> TestStore {
    let (url, cleanup) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite:{}", dir.path().join("test.sqlite3").display());
            (url, Cleanup::Dir(dir))
        }
        Backend::Postgres => fresh_pg_database().await,
    };
    let url = route(&url);
    let store = store::open(&url, &options)
        .await
        .unwrap_or_else(|e| panic!("open {backend:?} store: {e}"));
    TestStore {
        store,
        url,
        _cleanup: cleanup,
    }
}

/// A server on 127.0.0.1:0 over a fresh store, with a connected client.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub client: ContactsServiceClient<Channel>,
    pub channel: Channel,
    pub store: TestStore,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, GatePolicy::builtin()).await
    }

    pub async fn start_with(backend: Backend, policy: GatePolicy) -> Self {
        Self::start_on(store(backend).await, policy).await
    }

    pub async fn start_on(store: TestStore, policy: GatePolicy) -> Self {
        Self::start_configured(
            store,
            ServerSettings {
                policy: Arc::new(policy),
                auth: Arc::new(Authenticator::disabled()),
                tls: None,
                shutdown_grace: Duration::from_secs(5),
            },
        )
        .await
    }

    /// A server with identity on: every call needs credentials.
    pub async fn start_with_auth(backend: Backend, auth: Authenticator) -> Self {
        Self::start_configured(
            store(backend).await,
            ServerSettings {
                policy: Arc::new(GatePolicy::builtin()),
                auth: Arc::new(auth),
                tls: None,
                shutdown_grace: Duration::from_secs(5),
            },
        )
        .await
    }

    /// `client` and `channel` speak plaintext; with TLS settings, connect
    /// your own channel to `addr`.
    pub async fn start_configured(store: TestStore, settings: ServerSettings) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(server::serve(
            store.store.clone(),
            settings,
            listener,
            async {
                let _ = rx.await;
            },
        ));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect_lazy();
        Self {
            addr,
            client: ContactsServiceClient::new(channel.clone()),
            channel,
            store,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Signals shutdown and waits for the server to stop.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.handle.take() {
            Some(h) => h.await.map_err(|e| e.to_string())?,
            None => Ok(()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Declares one `#[tokio::test]` per backend for each scenario function,
/// in modules `sqlite` and `postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::common::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::common::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// A TCP proxy in front of PostgreSQL that a test can cut, to play a database
/// outage, and restore on the same port.
pub struct TcpProxy {
    pub addr: std::net::SocketAddr,
    target: std::net::SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TcpProxy {
    pub async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let mut proxy = Self {
            addr,
            target,
            task: None,
        };
        proxy.task = Some(tokio::spawn(Self::run(listener, target)));
        proxy
    }

    async fn run(listener: tokio::net::TcpListener, target: std::net::SocketAddr) {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            connections.spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
        // Dropping the JoinSet aborts every open connection.
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// Accepts connections again on the same address.
    pub async fn restore(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("rebind proxy");
        self.task = Some(tokio::spawn(Self::run(listener, self.target)));
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn route(&self, url: &str) -> String {
        let scheme_end = url.find("://").map_or(0, |i| i + 3);
        let rest = &url[scheme_end..];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        let userinfo = authority.rsplit_once('@').map(|(u, _)| u);
        let mut out = url[..scheme_end].to_owned();
        if let Some(u) = userinfo {
            out.push_str(u);
            out.push('@');
        }
        out.push_str(&self.addr.to_string());
        out.push_str(&rest[authority_end..]);
        out
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
    }
}
