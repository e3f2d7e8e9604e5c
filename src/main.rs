//! The `partner-contacts` binary: serve (default) or migrate.
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use partner_contacts::config::{Cli, Command};
use partner_contacts::domain::GatePolicy;
use partner_contacts::server::{self, ServerSettings};
use partner_contacts::{store, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = telemetry::init(&cli.log) {
        eprintln!("partner-contacts: {e}");
        return ExitCode::FAILURE;
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("partner-contacts: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
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
    let store = store::open(&url, &cli.database.store_options()).await?;
    if let Some(Command::Migrate) = cli.command {
        println!("migrations applied ({})", store::describe_url(&url));
        return Ok(());
    }

    let listener = tokio::net::TcpListener::bind(cli.serve.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cli.serve.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    println!(
        "partner-contacts listening on {addr} (gRPC, plaintext), store: {}",
        store::describe_url(&url)
    );
    server::serve(
        store,
        ServerSettings {
            policy: Arc::new(policy),
            shutdown_grace: Duration::from_secs(cli.serve.shutdown_grace_seconds),
        },
        listener,
        server::shutdown_signal(),
    )
    .await
}
