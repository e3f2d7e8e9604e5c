//! The client subcommands (`gate`, `get`, `apply`): CI pipelines and
//! contacts-as-code call a running server through one tonic client, with the
//! same TLS and bearer-token handling, bounded retries and documented exit
//! codes. Nothing here opens a database.
mod apply;
mod connect;
mod file;
mod gate;
mod report;
mod retry;

pub use file::{ContactFile, FileContact, FileSupport, FileWindow};
pub use report::{Exit, Failure};

use crate::config::Command;

/// Runs a client subcommand and returns the process exit code. `None` when
/// `command` is not a client subcommand.
pub async fn run(command: &Command) -> Option<u8> {
    let exit = match command {
        Command::Gate(args) => gate::run(args).await,
        Command::Get(args) => apply::get(args).await,
        Command::Apply(args) => apply::apply(args).await,
        Command::Migrate | Command::Token(_) => return None,
    };
    Some(exit.code())
}
