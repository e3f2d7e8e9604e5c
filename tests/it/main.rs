//! Integration tests: the storage scenario suite and the end-to-end gRPC suite,
//! each run against both SQLite and PostgreSQL.
mod common;

mod api;
mod outage;
mod store_scenarios;
