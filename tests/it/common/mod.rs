//! Test fixtures: a fresh store per test on either backend (or PostgreSQL
//! behind the cache), and a real server on port 0.
#![allow(dead_code)]

pub mod pg_cluster;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use partner_contacts::auth::{self, AuthConfig, Authenticator, JwtConfig};
use partner_contacts::domain::{GatePolicy, PartnerId, PortalRole, Principal, Scope};
use partner_contacts::pb::contacts_service_client::ContactsServiceClient;
use partner_contacts::server::{self, ServerSettings};
use partner_contacts::store::{self, CacheOptions, CachedStore, DynStore, StoreOptions};
use sqlx::postgres::PgConnection;
use tonic::transport::Channel;

pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The store a storage scenario runs against: either backend on its own,
/// or PostgreSQL behind the in-process cache, which is the store production
/// calls (`server::serve` wraps whatever it is given in a `CachedStore`, so
/// the gRPC tests go through the cache on both backends already).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
    CachedPostgres,
}

impl StoreKind {
    /// The database behind it, for raw SQL.
    pub fn backend(self) -> Backend {
        match self {
            StoreKind::Sqlite => Backend::Sqlite,
            StoreKind::Postgres | StoreKind::CachedPostgres => Backend::Postgres,
        }
    }

    pub fn is_cached(self) -> bool {
        self == StoreKind::CachedPostgres
    }
}

/// A fresh store of `kind` on its own database, removed when dropped.
pub async fn store_of(kind: StoreKind) -> TestStore {
    let t = store(kind.backend()).await;
    if kind.is_cached() {
        t.behind_cache()
    } else {
        t
    }
}

impl TestStore {
    /// A second store (its own pool) on the same database, as another
    /// replica would open it. The original cleans up.
    pub async fn another_replica(&self) -> TestStore {
        self.another_replica_with(&StoreOptions::default()).await
    }

    /// Behind a cache of its own when this one is behind a cache.
    pub async fn another_replica_with(&self, options: &StoreOptions) -> TestStore {
        let replica = TestStore {
            store: store::open(&self.url, options)
                .await
                .expect("open another replica"),
            url: self.url.clone(),
            cache: None,
            _cleanup: Cleanup::Nothing,
        };
        if self.cache.is_some() {
            replica.behind_cache()
        } else {
            replica
        }
    }

    /// The same database behind a new `CachedStore` with the default
    /// options, as `server::serve` wraps a store: `store` is then the cache.
    pub fn behind_cache(mut self) -> TestStore {
        let cache = CachedStore::new(self.store.clone(), &CacheOptions::default());
        self.store = cache.clone();
        self.cache = Some(cache);
        self
    }
}

/// A store on its own fresh database, removed when dropped.
pub struct TestStore {
    pub store: DynStore,
    pub url: String,
    /// `store` itself when it is behind a cache, typed, for its counters.
    pub cache: Option<Arc<CachedStore>>,
    _cleanup: Cleanup,
}

enum Cleanup {
    /// Another handle on a database someone else cleans up.
    Nothing,
    Dir(tempfile::TempDir),
    PgDatabase {
        admin_url: String,
        name: String,
    },
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
                    if let Ok(mut c) = raw_pg_connection(&admin_url).await {
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

/// A backfill that wrote `n` ready forms and skipped nothing.
pub fn wrote(n: u64) -> partner_contacts::store::Backfill {
    partner_contacts::store::Backfill {
        written: n,
        ..Default::default()
    }
}

/// A connection of the fixtures' own (creating and dropping databases, raw
/// SQL), not the store's: without TLS unless the URL or `PGSSLMODE` asks for
/// it. The test server offers TLS, and its handshake costs about 100 ms in a
/// debug build, twice per PostgreSQL test for the database alone.
pub async fn raw_pg_connection(url: &str) -> Result<PgConnection, sqlx::Error> {
    let mut options: sqlx::postgres::PgConnectOptions = url.parse()?;
    if !url.contains("sslmode=") && std::env::var_os("PGSSLMODE").is_none() {
        options = options.ssl_mode(sqlx::postgres::PgSslMode::Disable);
    }
    sqlx::ConnectOptions::connect(&options).await
}

/// The PostgreSQL server the tests create their databases on, settled once
/// per process: `TEST_DATABASE_URL`, the machine's 127.0.0.1:5432, or a
/// throwaway cluster of this process's own (order and removal: `pg_cluster`).
/// Panics, in every test that needs it, when there is none.
pub fn test_database_url() -> String {
    // The outcome is kept, not only a success: a failed initdb is not
    // retried by every PostgreSQL test.
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    match URL.get_or_init(pg_cluster::resolve_test_database_url) {
        Ok(url) => url.clone(),
        Err(why) => panic!("{why}"),
    }
}

/// The socket address of the test PostgreSQL server (host and port of
/// `test_database_url`, a throwaway cluster's port included).
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
    let mut admin = raw_pg_connection(&admin_url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is required for the test suite and is not reachable at {admin_url}: {e}\n\
             If that is the machine's cluster, start it (Debian: pg_ctlcluster \
             --skip-systemctl-redirect $(ls /etc/postgresql) main start), or point \
             TEST_DATABASE_URL at a server where the user may CREATE DATABASE, or set \
             PARTNER_CONTACTS_TEST_PG=throwaway for a cluster of the tests' own."
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

/// A fresh database that nothing has opened yet (no schema), removed when
/// dropped: for tests that shape it first, e.g. as an older release left it.
pub struct EmptyDatabase {
    pub backend: Backend,
    pub url: String,
    cleanup: Cleanup,
}

pub async fn empty_database(backend: Backend) -> EmptyDatabase {
    let (url, cleanup) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite:{}", dir.path().join("test.sqlite3").display());
            (url, Cleanup::Dir(dir))
        }
        Backend::Postgres => fresh_pg_database().await,
    };
    EmptyDatabase {
        backend,
        url,
        cleanup,
    }
}

/// An empty database migrated only up to `version`: the schema an older
/// release ran on, for rows written the way it wrote them.
pub async fn database_at_schema(backend: Backend, version: i64) -> EmptyDatabase {
    use sqlx::Connection;
    let db = empty_database(backend).await;
    let dir = match backend {
        Backend::Sqlite => "migrations/sqlite",
        Backend::Postgres => "migrations/postgres",
    };
    let migrator = sqlx::migrate::Migrator::new(std::path::Path::new(dir))
        .await
        .expect("read migrations");
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&format!("{}?mode=rwc", db.url))
                .await
                .expect("connect");
            migrator.run_to(version, &mut c).await
        }
        Backend::Postgres => {
            let mut c = PgConnection::connect(&db.url).await.expect("connect");
            migrator.run_to(version, &mut c).await
        }
    }
    .unwrap_or_else(|e| panic!("migrate {backend:?} to schema {version}: {e}"));
    db
}

impl EmptyDatabase {
    /// Opens (and so migrates) it, with what the migration reported.
    pub async fn open(self) -> (TestStore, partner_contacts::domain::RekeyReport) {
        let (store, report) = store::open_reporting(&self.url, &StoreOptions::default())
            .await
            .unwrap_or_else(|e| panic!("open {:?} store: {e}", self.backend));
        (
            TestStore {
                store,
                url: self.url,
                cache: None,
                _cleanup: self.cleanup,
            },
            report,
        )
    }
}

/// Opens `t`'s database again, as a restarted replica would, with what the
/// migration reported this time. `t` cleans up.
pub async fn store_reopened(t: &TestStore) -> (TestStore, partner_contacts::domain::RekeyReport) {
    let (store, report) = store::open_reporting(&t.url, &StoreOptions::default())
        .await
        .expect("reopen");
    (
        TestStore {
            store,
            url: t.url.clone(),
            cache: None,
            _cleanup: Cleanup::Nothing,
        },
        report,
    )
}

/// A fresh store opened with `options` through the URL `route` makes of the
/// real one (e.g. through a proxy).
pub async fn store_with(
    backend: Backend,
    options: StoreOptions,
    route: impl FnOnce(&str) -> String,
) -> TestStore {
    let db = empty_database(backend).await;
    let url = route(&db.url);
    let store = store::open(&url, &options)
        .await
        .unwrap_or_else(|e| panic!("open {backend:?} store: {e}"));
    TestStore {
        store,
        url,
        cache: None,
        _cleanup: db.cleanup,
    }
}

/// Development-mode settings (no identity, plaintext, built-in policy,
/// default limits and cache), for a test to adjust.
pub fn dev_settings() -> ServerSettings {
    ServerSettings {
        policy: Arc::new(GatePolicy::builtin()),
        auth: Arc::new(Authenticator::disabled()),
        tls: None,
        cache: Default::default(),
        shutdown_grace: Duration::from_secs(5),
        limits: Default::default(),
        counters: Default::default(),
        metrics: None,
        events: None,
        verification: Default::default(),
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
    /// What health reports for `service` (-1: the check itself failed).
    pub async fn health_of(&self, service: &str) -> i32 {
        use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
        HealthClient::new(self.channel.clone())
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .map_or(-1, |r| r.into_inner().status)
    }

    /// What health reports for the contacts service.
    pub async fn health(&self) -> i32 {
        self.health_of(server::SERVICE_NAME).await
    }

    /// Polls the contacts service's health until it reports `status`; false
    /// if it did not within `within`. Health starts NOT_SERVING until its
    /// first probe answers, so a test that cuts the database waits for
    /// SERVING first, or it may take the start for the outage.
    pub async fn await_health(
        &self,
        status: tonic_health::pb::health_check_response::ServingStatus,
        within: Duration,
    ) -> bool {
        let until = std::time::Instant::now() + within;
        while self.health().await != status as i32 {
            if std::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

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
                ..dev_settings()
            },
        )
        .await
    }

    /// A server with identity on: every call needs credentials.
    pub async fn start_with_auth(backend: Backend, auth: Authenticator) -> Self {
        Self::start_configured(
            store(backend).await,
            ServerSettings {
                auth: Arc::new(auth),
                ..dev_settings()
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

/// Declares one `#[tokio::test]` per store for each scenario function, in
/// modules `sqlite`, `postgres` and `cached` (PostgreSQL behind the cache):
/// the storage scenario suite, which production runs through the cache.
#[macro_export]
macro_rules! on_every_store {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::common::StoreKind::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::common::StoreKind::Postgres).await;
                }
            )*
        }
        mod cached {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::common::StoreKind::CachedPostgres).await;
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

// ---------------------------------------------------------------- identity

/// `iss` of the test tokens.
pub const TEST_ISSUER: &str = "https://auth.test.partnerportal.example";
/// `aud` of the test tokens.
pub const TEST_AUDIENCE: &str = "partner-contacts";
/// The shared HS256 secret of the test auth config (at least 32 bytes).
pub const TEST_HS256_SECRET: &str = "integration-tests-only-hs256-secret-7c1e";

/// An auth config that accepts HS256 tokens signed with [`TEST_HS256_SECRET`]
/// for [`TEST_ISSUER`] and [`TEST_AUDIENCE`], with no clock leeway.
pub fn hs256_config() -> AuthConfig {
    AuthConfig {
        jwt: Some(JwtConfig {
            issuer: TEST_ISSUER.to_owned(),
            audience: TEST_AUDIENCE.to_owned(),
            hs256_secret: Some(TEST_HS256_SECRET.to_owned()),
            hs256_secret_file: None,
            jwks_file: None,
            leeway_seconds: 0,
            max_token_lifetime_seconds: auth::DEFAULT_MAX_TOKEN_LIFETIME_SECONDS,
        }),
        mtls: None,
    }
}

/// The authenticator of [`hs256_config`].
pub fn hs256_authenticator() -> Authenticator {
    Authenticator::from_config(&hs256_config()).expect("test auth config")
}

/// A token the server of [`hs256_authenticator`] turns back into `principal`.
pub fn token_for(principal: &Principal) -> String {
    auth::mint_hs256(
        TEST_HS256_SECRET.as_bytes(),
        TEST_ISSUER,
        TEST_AUDIENCE,
        principal,
        600,
    )
    .expect("mint test token")
}

/// A platform service `sub` with the scopes named (by their claim names).
pub fn service_token(sub: &str, scopes: &[&str]) -> String {
    token_for(&Principal::Service {
        sub: sub.to_owned(),
        scopes: scopes
            .iter()
            .map(|s| Scope::parse(s).unwrap_or_else(|| panic!("unknown scope {s}")))
            .collect(),
    })
}

/// A service holding every scope.
pub fn full_access_token(sub: &str) -> String {
    token_for(&Principal::Service {
        sub: sub.to_owned(),
        scopes: Scope::ALL.into_iter().collect(),
    })
}

/// A portal user `sub` of `partner` with `role`.
pub fn portal_token(sub: &str, partner: &str, role: PortalRole) -> String {
    token_for(&Principal::PortalUser {
        sub: sub.to_owned(),
        partner: PartnerId::parse(partner).expect("partner id"),
        role,
    })
}

/// `message` as a request from `token`'s bearer (`authorization: Bearer ...`),
/// or without credentials when `None`.
pub fn as_caller<T>(token: Option<&str>, message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Some(token) = token {
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ASCII token"),
        );
    }
    req
}

/// A well-formed token for a full-access service, signed with another secret.
pub fn wrong_secret_token() -> String {
    auth::mint_hs256(
        b"some-other-secret-of-at-least-32-bytes!!",
        TEST_ISSUER,
        TEST_AUDIENCE,
        &Principal::Service {
            sub: "impostor".to_owned(),
            scopes: Scope::ALL.into_iter().collect(),
        },
        600,
    )
    .expect("mint")
}

/// A full-access service token, correctly signed, whose claims are `claims`
/// (with `iss`, `aud`, `sub`, `scope` and times filled in unless given).
pub fn signed_claims(overrides: serde_json::Value) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut claims = serde_json::json!({
        "iss": TEST_ISSUER,
        "aud": TEST_AUDIENCE,
        "sub": "crafted",
        "scope": Scope::ALL.map(Scope::as_str).join(" "),
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    });
    if let (Some(base), Some(extra)) = (claims.as_object_mut(), overrides.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(TEST_HS256_SECRET.as_bytes()).expect("key"),
    )
    .expect("encode")
}

/// A full-access service token, correctly signed, that expired an hour ago.
pub fn expired_token() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    signed_claims(serde_json::json!({ "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600 }))
}

/// A full-access service token, correctly signed, for another audience.
pub fn wrong_audience_token() -> String {
    signed_claims(serde_json::json!({ "aud": "some-other-service" }))
}
