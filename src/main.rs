//! The `partner-contacts` binary: serve (default) or migrate, mint a
//! development token, call a server as a client (`gate`, `get`, `apply`), or
//! print the API's descriptor set (`descriptor`).
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use partner_contacts::config::{Cli, Command};
use partner_contacts::domain::GatePolicy;
use partner_contacts::server::{self, ServerSettings};
use partner_contacts::{auth, client, store, telemetry};

/// mimalloc instead of glibc's malloc: the read cache replaces entries of
/// a few hundred bytes all the time, and glibc spent ~10 % of a read's
/// server time in its free lists (`unlink_chunk`, `malloc_consolidate`) and
/// held freed memory as fragments (RSS 240 MB with a 64 MB cache after the
/// 1 000 000-partner benchmark). See docs/operations.md for the figures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rows per transaction when writing missing ready forms.
const BACKFILL_BATCH: usize = 1000;

/// `migrate`'s statement timeout, at least.
const MIGRATE_STATEMENT_TIMEOUT: Duration = Duration::from_secs(600);

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Descriptor) = cli.command {
        return print_descriptor();
    }
    if let Some(command) = cli.command.as_ref().filter(|c| c.is_client()) {
        return run_client(command, &cli).await;
    }
    // Spans go to an OTLP collector only when the environment names one.
    let telemetry =
        match telemetry::otel::from_env().and_then(|t| telemetry::init(&cli.log.options(), t)) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("partner-contacts: {e}");
                return ExitCode::FAILURE;
            }
        };
    if telemetry.exporting() {
        tracing::info!("exporting traces over OTLP");
    }
    let code = match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("partner-contacts: {e}");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}

/// A client subcommand: it calls a server and opens no database. Its logs
/// go to stderr and no traces are exported, so that stdout holds only its
/// answer (JSON, YAML, TOML) for a pipeline to read.
async fn run_client(command: &Command, cli: &Cli) -> ExitCode {
    let telemetry = match telemetry::init(&cli.log.options(), None) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("partner-contacts: {e}");
            return ExitCode::from(client::Exit::Usage.code());
        }
    };
    let exit = match command {
        Command::Gate(args) => client::gate(args).await,
        Command::Get(args) => client::get(args).await,
        Command::Apply(args) => client::apply(args).await,
        Command::Migrate | Command::Token(_) | Command::Descriptor => client::Exit::Usage,
    };
    let code = ExitCode::from(exit.code());
    telemetry.shutdown();
    code
}

/// `partner-contacts descriptor`: the descriptor set compiled into the binary,
/// as bytes on stdout, and nothing else (no logs, no newline).
fn print_descriptor() -> ExitCode {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(partner_contacts::pb::FILE_DESCRIPTOR_SET)
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("partner-contacts: cannot write the descriptor set: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    if let Some(Command::Token(args)) = &cli.command {
        println!("{}", auth::mint(args)?);
        return Ok(());
    }
    // Checked before anything touches the database. `migrate` is not a
    // server: it needs neither keys nor a loopback address.
    let migrating = matches!(cli.command, Some(Command::Migrate));
    let (authenticator, tls) = if migrating {
        (auth::Authenticator::disabled(), None)
    } else {
        identity(&cli)?
    };
    let url = cli.database.url();
    store::prepare_sqlite_dir(&url)?;
    // Policy problems are operator errors: refuse to start rather than gate wrongly.
    let policy = match &cli.serve.gate_policy {
        None => GatePolicy::builtin(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read gate policy {}: {e}", path.display()))?;
            GatePolicy::from_toml(&text)
                .map_err(|e| format!("invalid gate policy {}: {e}", path.display()))?
        }
    };
    let limits = cli.limits()?;
    if migrating {
        // A batch job, not a call: its statements (every old email key
        // recomputed at once, ready forms 1 000 rows at a time) may take
        // longer than a call's budget on a large table; the Job's own
        // deadline bounds them.
        let options = store::StoreOptions {
            statement_timeout: cli
                .store_options()
                .statement_timeout
                .max(MIGRATE_STATEMENT_TIMEOUT),
            ..cli.store_options()
        };
        let (store, report) = store::open_reporting(&url, &options).await?;
        println!("migrations applied ({})", store::describe_url(&url));
        // Rows saved before the ready form existed, or by an older release
        // mid-rollout, read correctly without it (from their JSON fields),
        // only slower: written here, before the new release takes traffic.
        let filled = store
            .backfill_ready(BACKFILL_BATCH)
            .await
            .map_err(|e| format!("cannot write the ready forms: {e}"))?;
        if filled.written > 0 {
            println!("ready forms written for {} contact infos", filled.written);
        }
        // Not a failed migration: those rows read no worse than before (they
        // fail either way until repaired), and the deploy must not hang on
        // them. Named, so that someone can.
        if filled.undecodable > 0 {
            println!(
                "warning: {} contact infos skipped, their stored fields do not decode (reads of them fail until they are repaired): {}{}",
                filled.undecodable,
                filled.undecodable_rows.join(", "),
                if filled.undecodable > filled.undecodable_rows.len() as u64 {
                    ", ..."
                } else {
                    ""
                }
            );
        }
        if report.rekeyed > 0 {
            println!("email keys recomputed for {} portal users", report.rekeyed);
        }
        for line in report.lines() {
            println!("warning: {line}");
        }
        return Ok(());
    }
    // Compiles every country's phone number patterns on a blocking thread
    // while the store opens, and before listening, so that no request pays
    // for it (bench/VALIDATION.md).
    let warm_up = tokio::task::spawn_blocking({
        let enabled = cli.serve.warm_up_validation;
        move || enabled.then(partner_contacts::domain::warm_up_validation)
    });
    let store = store::open(&url, &cli.store_options()).await?;
    // The same as `migrate` does, in the background (SKIP LOCKED: replicas
    // starting together share the rows), for deployments that skip the job.
    tokio::spawn({
        let store = store.clone();
        async move {
            match store.backfill_ready(BACKFILL_BATCH).await {
                Ok(report) => {
                    if report.written > 0 {
                        tracing::info!(rows = report.written, "ready forms written");
                    }
                    if report.undecodable > 0 {
                        tracing::warn!(
                            rows = report.undecodable,
                            first = report.undecodable_rows.join(", "),
                            "ready forms not written: stored fields do not decode"
                        );
                    }
                }
                Err(e) => tracing::warn!(
                    "cannot write the ready forms (reads fall back to the fields): {e}"
                ),
            }
        }
    });
    warm_up
        .await
        .map_err(|e| format!("phone number validation warm-up failed: {e}"))?;

    let listener = tokio::net::TcpListener::bind(cli.serve.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cli.serve.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    // Bound before the first line is printed so that line can name both real
    // addresses: with port 0 (tests, benchmarks) it is the only way to learn
    // them without racing another process for a port picked in advance.
    let metrics_listener = match cli.serve.metrics_listen {
        None => None,
        Some(at) => {
            let listener = tokio::net::TcpListener::bind(at)
                .await
                .map_err(|e| format!("cannot listen for metrics on {at}: {e}"))?;
            let bound = listener
                .local_addr()
                .map_err(|e| format!("cannot read the metrics address: {e}"))?;
            Some((listener, bound))
        }
    };
    println!(
        "partner-contacts listening on {addr} (gRPC, {}), store: {}, identity: {}{}",
        if tls.is_some() { "TLS" } else { "plaintext" },
        store::describe_url(&url),
        if authenticator.is_enabled() {
            "required"
        } else {
            "none (development: every caller has full access)"
        },
        match &metrics_listener {
            Some((_, at)) => format!(", metrics: http://{at}/metrics"),
            None => String::new(),
        }
    );
    let metrics = match metrics_listener {
        None => None,
        Some((listener, at)) => {
            let metrics = Arc::new(telemetry::Metrics::new());
            tracing::info!(%at, "Prometheus metrics on http://{at}/metrics");
            let serving = metrics.clone();
            tokio::spawn(async move {
                if let Err(e) =
                    telemetry::metrics::serve(listener, serving, std::future::pending()).await
                {
                    tracing::error!("{e}");
                }
            });
            Some(metrics)
        }
    };
    server::serve(
        store,
        ServerSettings {
            policy: Arc::new(policy),
            auth: Arc::new(authenticator),
            tls,
            cache: cli.cache_options(),
            shutdown_grace: Duration::from_secs(cli.serve.shutdown_grace_seconds),
            limits,
            counters: Default::default(),
            metrics,
            events: cli.relay_options(),
            verification: cli.verification_policy(),
        },
        listener,
        server::shutdown_signal(),
    )
    .await
}

/// The authenticator and TLS settings. Without an auth config the server runs
/// in development mode, which is only safe on loopback.
fn identity(cli: &Cli) -> Result<(auth::Authenticator, Option<auth::ServerTls>), String> {
    let Some(path) = &cli.serve.auth_config else {
        if !cli.serve.listen.ip().is_loopback() {
            return Err(format!(
                "refusing to listen on {} without authentication: every caller would have \
                 full access. Pass --auth-config (see the README, \"Identity\") or listen on \
                 127.0.0.1",
                cli.serve.listen
            ));
        }
        tracing::warn!(
            "no --auth-config: development mode, every caller is treated as a full-access \
             developer; listening on loopback only"
        );
        return Ok((auth::Authenticator::disabled(), None));
    };
    let config = auth::load(path)?;
    let authenticator = auth::Authenticator::from_config(&config)?;
    let tls = auth::tls_config(&config)?;
    Ok((authenticator, tls))
}
