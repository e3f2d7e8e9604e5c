//! The client subcommands (`gate`, `get`, `apply`): CI pipelines and
//! contacts-as-code call a running server through one tonic client, with the
//! same TLS and bearer-token handling, bounded retries and documented exit
//! codes. Nothing here opens a database.
mod apply;
pub mod args;
mod connect;
mod file;
mod gate;
mod report;
mod retry;

pub use file::{ContactFile, FileContact, FileSupport, FileWindow};
pub use report::{Exit, Failure};

pub use apply::{apply, get};
pub use gate::run as gate;
