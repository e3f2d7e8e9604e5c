//! partner-contacts: keeps partner accounts' contact information and answers the onboarding gate.
pub mod pb {
    //! Code generated from `proto/` (package `partnerportal.contacts.v1`).
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("partnerportal.contacts.v1");

    /// Descriptor set of the API, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("contacts_descriptor");
}

pub mod api;
pub mod auth;
pub mod client;
pub mod config;
pub mod deadline;
pub mod domain;
pub mod error;
pub mod fuzzing;
pub mod relay;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod wire;
