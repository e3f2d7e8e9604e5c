//! Integration tests: the storage scenario suite and the end-to-end gRPC suite,
//! each run against both SQLite and PostgreSQL; caller identity (the access
//! matrix, mTLS) and the binary's command line.
mod common;

mod access;
mod api;
mod cli;
mod client_cli;
mod clients;
mod guard;
mod hostile;
mod migrations;
mod mtls;
mod outage;
mod pg_cluster;
mod relay;
mod reload;
mod replicas;
mod rolling_forms;
mod store_scenarios;
