//! Command line and environment: what the operator can set, with defaults that
//! run the service with no setup.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::client::args::{APPLY_ABOUT, ApplyArgs, GATE_ABOUT, GateArgs, GetArgs};
use crate::server::Limits;
use crate::store::StoreOptions;
pub use crate::telemetry::LogFormat;
use crate::telemetry::LogOptions;

/// Where the embedded default keeps its data, relative to the working directory.
pub const DEFAULT_SQLITE_PATH: &str = "data/partner-contacts.sqlite3";

#[derive(Debug, Parser)]
#[command(
    name = "partner-contacts",
    version,
    about = "gRPC service for partner accounts' contact information and onboarding gate",
    long_about = "Serves partnerportal.contacts.v1.ContactsService. With no subcommand it serves; \
                  with no arguments it listens on 127.0.0.1:50051 with an embedded SQLite database \
                  under ./data/."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub serve: ServeArgs,

    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the database migrations and exit (the server also applies them at start).
    Migrate,
    /// Print a development token signed with the auth config's HS256 secret.
    Token(crate::auth::TokenArgs),
    /// Print the API's protobuf descriptor set (a binary FileDescriptorSet of
    /// partnerportal.contacts.v1 and its imports) on stdout, for tools that
    /// need the schema without reflection, e.g.
    /// `grpcurl -protoset <(partner-contacts descriptor) ...`, or
    /// `buf curl --schema api.binpb ...` after `partner-contacts descriptor > api.binpb`.
    Descriptor,
    /// Client: ask the onboarding gate whether contact information is
    /// complete, for CI pipelines. Exit 0 open, 1 closed, 2 usage or invalid
    /// request, 3 server unavailable within --timeout, 4 caller refused,
    /// 5 any other error.
    #[command(long_about = GATE_ABOUT)]
    Gate(GateArgs),
    /// Client: print the saved contact information as a YAML or TOML file
    /// that `apply -f` takes back unchanged.
    Get(GetArgs),
    /// Client: save contact information from a YAML or TOML file, printing
    /// the changes first. The file is the whole resource.
    #[command(long_about = APPLY_ABOUT)]
    Apply(ApplyArgs),
}

impl Command {
    /// Whether this is one of the client subcommands, which call a server and
    /// never open a database.
    pub fn is_client(&self) -> bool {
        matches!(self, Command::Gate(_) | Command::Get(_) | Command::Apply(_))
    }
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address and port to listen on. Port 0 picks a free port; the first
    /// line printed on stdout ("partner-contacts listening on ADDR ...")
    /// names the address bound.
    #[arg(
        long,
        env = "PARTNER_CONTACTS_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    pub listen: SocketAddr,

    /// Onboarding gate policy file (TOML, see deploy/gate-policy.toml). Default: the built-in policy.
    #[arg(long, env = "PARTNER_CONTACTS_GATE_POLICY")]
    pub gate_policy: Option<PathBuf>,

    /// Identity configuration (TOML: JWT keys, mTLS). Without it the server
    /// treats every caller as a full-access developer and listens on loopback only.
    // The path is shown in --help when the variable is set: it is not a
    // secret (the file's contents are, and --help never reads them).
    #[arg(long, env = "PARTNER_CONTACTS_AUTH_CONFIG")]
    pub auth_config: Option<PathBuf>,

    /// Heap megabytes the in-process read cache may hold, contact infos and
    /// portal-user lists together. 0 turns caching off.
    #[arg(long, env = "PARTNER_CONTACTS_CACHE_MAX_MB", default_value_t = 64)]
    pub cache_max_mb: u64,

    /// Unary calls served at once, over all connections; calls beyond it are
    /// refused at once with RESOURCE_EXHAUSTED. WatchContacts streams are
    /// not counted.
    #[arg(
        long,
        env = "PARTNER_CONTACTS_MAX_CONCURRENT_CALLS",
        default_value_t = 512
    )]
    pub max_concurrent_calls: usize,

    /// Deadline in milliseconds of a call that carries no grpc-timeout. The
    /// database's acquire and statement timeouts must be below it.
    #[arg(
        long,
        env = "PARTNER_CONTACTS_DEFAULT_DEADLINE_MS",
        default_value_t = 10_000
    )]
    pub default_deadline_ms: u64,

    /// Largest request message accepted, in KiB; larger ones get
    /// RESOURCE_EXHAUSTED. The largest valid contact info is about 100 KiB.
    #[arg(long, env = "PARTNER_CONTACTS_MAX_REQUEST_KIB", default_value_t = 256)]
    pub max_request_kib: usize,

    /// Seconds after which a client connection is asked to reconnect
    /// (HTTP/2 GOAWAY; calls and streams in flight finish), so clients
    /// balancing over DNS spread onto new replicas. 0: never.
    #[arg(
        long,
        env = "PARTNER_CONTACTS_MAX_CONNECTION_AGE_SECONDS",
        default_value_t = 0
    )]
    pub max_connection_age_seconds: u64,

    /// Address to serve Prometheus metrics on (`GET /metrics`, plain HTTP).
    /// Off unless set. Port 0 picks a free port; the first line printed on
    /// stdout names the address bound.
    #[arg(long, env = "PARTNER_CONTACTS_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// How replicas learn of each other's writes: `notify` (PostgreSQL
    /// LISTEN/NOTIFY; cache entries also expire after 5 minutes as a safety
    /// net) or `ttl` (no LISTEN/NOTIFY, for PgBouncer in transaction mode or
    /// PostgreSQL-compatible databases without it: another replica's write
    /// is seen after at most --cache-ttl-ms). SQLite ignores it.
    #[arg(long, env = "PARTNER_CONTACTS_CHANGE_FEED", value_enum, default_value_t = ChangeFeedMode::Notify)]
    pub change_feed: ChangeFeedMode,

    /// Milliseconds a cached entry may be served before it is read again.
    /// Default: 300000 with `--change-feed notify`, 1000 with `ttl`.
    #[arg(long, env = "PARTNER_CONTACTS_CACHE_TTL_MS")]
    pub cache_ttl_ms: Option<u64>,

    /// Seconds in-flight calls may take to finish after SIGTERM/SIGINT.
    #[arg(
        long,
        env = "PARTNER_CONTACTS_SHUTDOWN_GRACE_SECONDS",
        default_value_t = 10
    )]
    pub shutdown_grace_seconds: u64,

    /// NATS server the events relay publishes the outbox to (JetStream),
    /// e.g. `nats://nats:4222`. Unset (the default): events stay in the
    /// database, listed by ListEvents. Help never prints the variable's
    /// value: the URL may hold credentials.
    #[arg(long, env = "PARTNER_CONTACTS_EVENTS_NATS_URL", hide_env_values = true)]
    pub events_nats_url: Option<String>,

    /// JetStream stream the relay publishes to; created when missing, with
    /// the subjects `{--events-subject-prefix}.>` and a 2-minute duplicate
    /// window.
    #[arg(
        long,
        env = "PARTNER_CONTACTS_EVENTS_NATS_STREAM",
        default_value = "PARTNER_CONTACTS_EVENTS"
    )]
    pub events_nats_stream: String,

    /// Subject prefix: an event of type `contacts.changed` is published on
    /// `{prefix}.contacts.changed`.
    #[arg(
        long,
        env = "PARTNER_CONTACTS_EVENTS_SUBJECT_PREFIX",
        default_value = "partner_contacts.events",
        value_parser = parse_subject_prefix
    )]
    pub events_subject_prefix: String,

    /// Hours a published event stays in the database (for ListEvents)
    /// before it is deleted. Events not yet published are never deleted.
    #[arg(
        long,
        env = "PARTNER_CONTACTS_EVENTS_RETENTION_HOURS",
        default_value_t = 168,
        value_parser = clap::value_parser!(u64).range(1..=87_600)
    )]
    pub events_retention_hours: u64,

    /// Days a confirmed address stays verified; then it must be confirmed
    /// again (SendVerification) to count as verified.
    #[arg(
        long,
        env = "PARTNER_CONTACTS_VERIFICATION_PERIOD_DAYS",
        default_value_t = 365,
        value_parser = clap::value_parser!(u64).range(1..=3650)
    )]
    pub verification_period_days: u64,

    /// Hours a verification challenge can be confirmed after it was sent.
    #[arg(
        long,
        env = "PARTNER_CONTACTS_VERIFICATION_CHALLENGE_HOURS",
        default_value_t = 72,
        value_parser = clap::value_parser!(u64).range(1..=720)
    )]
    pub verification_challenge_hours: u64,

    /// Compile every country's phone number patterns before listening (about
    /// a second of both cores), so that no request pays for it. `false` only
    /// for profiling under valgrind, where it takes minutes: the first number
    /// of each country then compiles its patterns on the request path.
    #[arg(
        long,
        env = "PARTNER_CONTACTS_WARM_UP_VALIDATION",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub warm_up_validation: bool,
}

impl Cli {
    /// The guard's limits, refused when a database timeout would outlast the
    /// calls it serves (a call would give up before the store reports why).
    pub fn limits(&self) -> Result<Limits, String> {
        let limits = Limits {
            max_concurrent_calls: self.serve.max_concurrent_calls.max(1),
            default_deadline: Duration::from_millis(self.serve.default_deadline_ms),
            max_request_bytes: self.serve.max_request_kib.max(1).saturating_mul(1024),
            max_connection_age: (self.serve.max_connection_age_seconds > 0)
                .then(|| Duration::from_secs(self.serve.max_connection_age_seconds)),
        };
        let db = self.database.store_options();
        for (name, value) in [
            ("--db-acquire-timeout-ms", db.acquire_timeout),
            ("--db-statement-timeout-ms", db.statement_timeout),
        ] {
            if value >= limits.default_deadline {
                return Err(format!(
                    "{name} ({} ms) must be below --default-deadline-ms ({} ms)",
                    value.as_millis(),
                    limits.default_deadline.as_millis()
                ));
            }
        }
        Ok(limits)
    }
}

/// Environment variables whose value `--help` must never print: they hold, or
/// may hold, a secret. Each flag reading one sets `hide_env_values`, so help
/// names the variable but not its value. Every other variable's value is shown
/// when set (operators like to see what a pod runs with): all of them are
/// addresses, paths, sizes, timeouts and log settings.
pub const SECRET_ENV_VARS: &[&str] = &["DATABASE_URL", "PARTNER_CONTACTS_EVENTS_NATS_URL"];

#[derive(clap::Args)]
pub struct DatabaseArgs {
    /// postgres://... for PostgreSQL, sqlite:PATH for SQLite. Default: sqlite:data/partner-contacts.sqlite3.
    /// Help never prints DATABASE_URL's value: it may hold a password.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,

    /// Largest number of database connections. On PostgreSQL a quarter of
    /// them (at least one) serve reads that miss the cache, the rest (at
    /// least one: a value of 1 opens 2) the pool.
    #[arg(
        long,
        env = "PARTNER_CONTACTS_DB_MAX_CONNECTIONS",
        default_value_t = 16,
        global = true
    )]
    pub db_max_connections: u32,

    /// Milliseconds a call waits for a database connection before failing UNAVAILABLE.
    #[arg(
        long,
        env = "PARTNER_CONTACTS_DB_ACQUIRE_TIMEOUT_MS",
        default_value_t = 3000,
        global = true
    )]
    pub db_acquire_timeout_ms: u64,

    /// PostgreSQL statement_timeout in milliseconds.
    #[arg(
        long,
        env = "PARTNER_CONTACTS_DB_STATEMENT_TIMEOUT_MS",
        default_value_t = 5000,
        global = true
    )]
    pub db_statement_timeout_ms: u64,
}

// Hand-written so the URL's password never reaches a log line through `{:?}`.
impl std::fmt::Debug for DatabaseArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseArgs")
            .field(
                "database_url",
                &self.database_url.as_deref().map(crate::store::describe_url),
            )
            .field("db_max_connections", &self.db_max_connections)
            .field("db_acquire_timeout_ms", &self.db_acquire_timeout_ms)
            .field("db_statement_timeout_ms", &self.db_statement_timeout_ms)
            .finish()
    }
}

impl DatabaseArgs {
    /// The URL to open: the one given, or the embedded default.
    pub fn url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite:{DEFAULT_SQLITE_PATH}"))
    }

    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            max_connections: self.db_max_connections.max(1),
            acquire_timeout: Duration::from_millis(self.db_acquire_timeout_ms),
            statement_timeout: Duration::from_millis(self.db_statement_timeout_ms),
            ..StoreOptions::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChangeFeedMode {
    /// PostgreSQL LISTEN/NOTIFY: another replica's write reaches this cache
    /// within milliseconds.
    Notify,
    /// No notifications: cached entries expire after the cache TTL.
    Ttl,
}

/// NATS subject tokens: letters, digits, `_` and `-`, separated by dots.
fn parse_subject_prefix(s: &str) -> Result<String, String> {
    let token_ok = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if s.split('.').all(token_ok) {
        Ok(s.to_owned())
    } else {
        Err(
            "must be dot-separated tokens of letters, digits, '_' and '-' (no wildcards)"
                .to_owned(),
        )
    }
}

impl Cli {
    /// The events relay's settings; `None` without `--events-nats-url`.
    pub fn relay_options(&self) -> Option<crate::relay::RelayOptions> {
        let url = self.serve.events_nats_url.clone()?;
        Some(crate::relay::RelayOptions {
            stream: self.serve.events_nats_stream.clone(),
            subject_prefix: self.serve.events_subject_prefix.clone(),
            retention: Duration::from_secs(self.serve.events_retention_hours * 3600),
            ..crate::relay::RelayOptions::new(url)
        })
    }

    pub fn verification_policy(&self) -> crate::domain::VerificationPolicy {
        crate::domain::VerificationPolicy {
            period: Duration::from_secs(self.serve.verification_period_days * 24 * 3600),
            challenge_lifetime: Duration::from_secs(self.serve.verification_challenge_hours * 3600),
        }
    }

    /// The read cache's settings.
    pub fn cache_options(&self) -> crate::store::CacheOptions {
        let default_ttl = match self.serve.change_feed {
            ChangeFeedMode::Notify => 300_000,
            ChangeFeedMode::Ttl => 1_000,
        };
        crate::store::CacheOptions {
            max_bytes: self.serve.cache_max_mb.saturating_mul(1024 * 1024),
            time_to_live: Duration::from_millis(
                self.serve.cache_ttl_ms.unwrap_or(default_ttl).max(1),
            ),
        }
    }

    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            notify: self.serve.change_feed == ChangeFeedMode::Notify,
            ..self.database.store_options()
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// Log filter, e.g. `info` or `partner_contacts=debug,info` (tracing EnvFilter syntax).
    /// This flag wins, then PARTNER_CONTACTS_LOG, then RUST_LOG; `info` when none is set.
    #[arg(long, env = "PARTNER_CONTACTS_LOG", global = true)]
    pub log_level: Option<String>,

    /// Log line format.
    #[arg(long, env = "PARTNER_CONTACTS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// The log filter when neither `--log-level`, `PARTNER_CONTACTS_LOG` nor
/// `RUST_LOG` says otherwise.
const DEFAULT_LOG_FILTER: &str = "info";

impl LogArgs {
    pub fn options(&self) -> LogOptions {
        self.options_with(std::env::var("RUST_LOG").ok())
    }

    /// `options` with `RUST_LOG`'s value given, for tests. Our own flag and
    /// variable win over RUST_LOG: a deployment that sets
    /// `PARTNER_CONTACTS_LOG` must not be overridden by a RUST_LOG inherited
    /// from a base image or a developer's shell.
    fn options_with(&self, rust_log: Option<String>) -> LogOptions {
        let filter = self
            .log_level
            .clone()
            .or(rust_log.filter(|v| !v.trim().is_empty()))
            .unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned());
        LogOptions {
            filter,
            format: self.log_format,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_serve_embedded() {
        let cli = Cli::try_parse_from(["partner-contacts"]).expect("no arguments is valid");
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.listen.to_string(), "127.0.0.1:50051");
        if std::env::var_os("DATABASE_URL").is_none() {
            assert_eq!(cli.database.url(), "sqlite:data/partner-contacts.sqlite3");
        }
    }

    #[test]
    fn database_timeouts_must_be_below_the_default_deadline() {
        let defaults = Cli::try_parse_from(["partner-contacts"]).expect("valid");
        let limits = defaults.limits().expect("the defaults are consistent");
        assert!(defaults.database.store_options().statement_timeout < limits.default_deadline);
        let slow = Cli::try_parse_from([
            "partner-contacts",
            "--default-deadline-ms",
            "2000",
            "--db-acquire-timeout-ms",
            "500",
        ])
        .expect("valid");
        let err = slow.limits().expect_err("statement timeout 5000 >= 2000");
        assert!(err.contains("--db-statement-timeout-ms"), "{err}");
    }

    #[test]
    fn the_ttl_change_feed_sends_no_notifications_and_expires_entries_quickly() {
        let notify = Cli::try_parse_from(["partner-contacts"]).expect("valid");
        assert!(notify.store_options().notify);
        assert_eq!(
            notify.cache_options().time_to_live,
            Duration::from_secs(300)
        );
        let ttl = Cli::try_parse_from(["partner-contacts", "--change-feed", "ttl"]).expect("valid");
        assert!(!ttl.store_options().notify);
        assert_eq!(ttl.cache_options().time_to_live, Duration::from_secs(1));
        let set = Cli::try_parse_from([
            "partner-contacts",
            "--change-feed",
            "ttl",
            "--cache-ttl-ms",
            "250",
        ])
        .expect("valid");
        assert_eq!(set.cache_options().time_to_live, Duration::from_millis(250));
    }

    /// Every argument of every (sub)command that reads an environment variable,
    /// as (command path, variable name, value hidden from help).
    fn env_args() -> Vec<(String, String, bool)> {
        fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String, bool)>) {
            for arg in cmd.get_arguments() {
                if let Some(env) = arg.get_env() {
                    out.push((
                        path.to_owned(),
                        env.to_string_lossy().into_owned(),
                        arg.is_hide_env_values_set(),
                    ));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), out);
            }
        }
        let mut cmd = <Cli as clap::CommandFactory>::command();
        // Propagates the global arguments into the subcommands.
        cmd.build();
        let mut out = Vec::new();
        walk(&cmd, cmd.get_name(), &mut out);
        out
    }

    #[test]
    fn help_hides_the_value_of_every_secret_environment_variable() {
        let args = env_args();
        for secret in SECRET_ENV_VARS {
            assert!(
                args.iter().any(|(_, env, _)| env == secret),
                "{secret} is listed as secret but no flag reads it"
            );
        }
        // A new variable whose name suggests a credential must be listed too.
        let looks_secret = |env: &str| {
            [
                "URL",
                "DSN",
                "PASSWORD",
                "PASSWD",
                "TOKEN",
                "SECRET",
                "KEY",
                "CREDENTIAL",
            ]
            .iter()
            .any(|word| env.contains(word))
        };
        for (path, env, hidden) in &args {
            let secret = SECRET_ENV_VARS.contains(&env.as_str());
            assert!(
                secret || !looks_secret(env),
                "{path}: {env} looks like it holds a secret: add it to SECRET_ENV_VARS"
            );
            assert_eq!(
                *hidden, secret,
                "{path}: {env}: hide_env_values must be set exactly for SECRET_ENV_VARS"
            );
        }
        // The subcommands inherit the global --database-url, hidden as well.
        for path in ["partner-contacts migrate", "partner-contacts token"] {
            assert!(
                args.iter()
                    .any(|(p, env, hidden)| p == path && env == "DATABASE_URL" && *hidden),
                "{path} has no hidden DATABASE_URL: {args:?}"
            );
        }
    }

    #[test]
    fn client_subcommands_name_their_resource_and_bound_their_time() {
        let cli = Cli::try_parse_from([
            "partner-contacts",
            "gate",
            "--partner",
            "acme",
            "--environment",
            "sandbox",
            "--timeout",
            "2.5",
        ])
        .expect("valid");
        let Some(Command::Gate(gate)) = &cli.command else {
            panic!("not gate: {cli:?}");
        };
        assert!(cli.command.as_ref().is_some_and(Command::is_client));
        assert_eq!(
            gate.resource.resource_name(),
            "partners/acme/environments/sandbox/contactInfo"
        );
        assert_eq!(gate.connect.timeout, Duration::from_millis(2500));
        assert_eq!(gate.connect.token_env, "PARTNER_CONTACTS_TOKEN");
        for bad in [
            &["partner-contacts", "gate"][..],
            &["partner-contacts", "gate", "--partner", "acme"],
            &["partner-contacts", "gate", "--name", "x", "--timeout", "0"],
            &[
                "partner-contacts",
                "gate",
                "--name",
                "x",
                "--timeout",
                "soon",
            ],
            &["partner-contacts", "apply"],
            &[
                "partner-contacts",
                "gate",
                "--name",
                "x",
                "--client-cert",
                "c.pem",
            ],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
        let migrate = Cli::try_parse_from(["partner-contacts", "migrate"]).expect("valid");
        assert!(!migrate.command.as_ref().is_some_and(Command::is_client));
    }

    #[test]
    fn debug_output_omits_the_database_password() {
        let cli = Cli::try_parse_from([
            "partner-contacts",
            "--database-url",
            "postgres://app:s3cret-canary@db.internal:5432/contacts",
        ])
        .expect("valid");
        let debug = format!("{cli:?}");
        assert!(!debug.contains("s3cret-canary"), "{debug}");
        assert!(debug.contains("db.internal:5432/contacts"), "{debug}");
    }

    #[test]
    fn flags_without_subcommand_serve() {
        let cli = Cli::try_parse_from([
            "partner-contacts",
            "--listen",
            "127.0.0.1:7000",
            "--database-url",
            "postgres://postgres@127.0.0.1/x",
        ])
        .expect("valid");
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.listen.port(), 7000);
        assert_eq!(cli.database.url(), "postgres://postgres@127.0.0.1/x");
        let cli = Cli::try_parse_from([
            "partner-contacts",
            "migrate",
            "--database-url",
            "sqlite:x.db",
        ])
        .expect("valid");
        assert!(matches!(cli.command, Some(Command::Migrate)));
        assert_eq!(cli.database.url(), "sqlite:x.db");
    }

    /// `--log-level` (or PARTNER_CONTACTS_LOG, which clap reads into the
    /// same field) beats RUST_LOG; RUST_LOG beats the default; an empty
    /// RUST_LOG is as good as none.
    #[test]
    fn log_filter_precedence() {
        let filter = |log_level: Option<&str>, rust_log: Option<&str>| {
            LogArgs {
                log_level: log_level.map(str::to_owned),
                log_format: LogFormat::Json,
            }
            .options_with(rust_log.map(str::to_owned))
            .filter
        };
        assert_eq!(filter(None, None), "info");
        assert_eq!(filter(None, Some("debug")), "debug");
        assert_eq!(filter(None, Some(" ")), "info");
        assert_eq!(filter(Some("warn"), Some("debug")), "warn");
        let cli = Cli::try_parse_from(["partner-contacts", "--log-level", "warn"]).expect("valid");
        assert_eq!(cli.log.log_level.as_deref(), Some("warn"));
    }
}
