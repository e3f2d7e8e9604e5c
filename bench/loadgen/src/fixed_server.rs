//! The framework's limit for `bench/run`: a minimal tonic server that answers
//! `partnerportal.contacts.v1.ContactsService/GetContacts` with one fixed
//! `ContactInfo` held in memory (the bytes of a real answer of the service,
//! fetched by `partner-contacts-loadgen --rpc fetch-get`), and
//! `grpc.health.v1.Health/Check` with tonic-health, as the service does.
//! Every other method is UNIMPLEMENTED. Same tonic (same features), same
//! Tokio runtime (`#[tokio::main]`), same HTTP/2 keepalive settings and
//! TCP_NODELAY as the service, and nothing else: no guard, no metrics, no
//! store. What it serves per second, and the instructions it spends per call,
//! are what any tonic service can do at best for an answer of that size.
//!
//! It prints `partner-contacts listening on ADDR (...)` first, like the
//! service, so the scripts learn its port the same way.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use partner_contacts::pb;
use pb::contacts_service_server::{ContactsService, ContactsServiceServer};
use prost::Message;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;

const SERVICE_NAME: &str = "partnerportal.contacts.v1.ContactsService";

#[derive(Parser, Debug)]
#[command(
    name = "partner-contacts-fixed-server",
    about = "Minimal tonic server answering a fixed GetContacts from memory (bench/run's framework limit)"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The protobuf bytes of one ContactInfo (a real GetContacts answer).
    #[arg(long)]
    response: PathBuf,
}

struct Fixed {
    info: pb::ContactInfo,
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not served by the minimal server"))
}

#[tonic::async_trait]
impl ContactsService for Fixed {
    async fn get_contacts(
        &self,
        _: Request<pb::GetContactsRequest>,
    ) -> Result<Response<pb::ContactInfo>, Status> {
        Ok(Response::new(self.info.clone()))
    }

    async fn update_contacts(
        &self,
        _: Request<pb::UpdateContactsRequest>,
    ) -> Result<Response<pb::ContactInfo>, Status> {
        unimplemented()
    }

    async fn send_verification(
        &self,
        _: Request<pb::SendVerificationRequest>,
    ) -> Result<Response<pb::SendVerificationResponse>, Status> {
        unimplemented()
    }

    async fn confirm_contact(
        &self,
        _: Request<pb::ConfirmContactRequest>,
    ) -> Result<Response<pb::AddressVerification>, Status> {
        unimplemented()
    }

    async fn list_events(
        &self,
        _: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        unimplemented()
    }

    async fn copy_contact_info(
        &self,
        _: Request<pb::CopyContactInfoRequest>,
    ) -> Result<Response<pb::ContactInfo>, Status> {
        unimplemented()
    }

    async fn check_onboarding_gate(
        &self,
        _: Request<pb::CheckOnboardingGateRequest>,
    ) -> Result<Response<pb::CheckOnboardingGateResponse>, Status> {
        unimplemented()
    }

    type WatchContactsStream =
        tonic::codegen::tokio_stream::Empty<Result<pb::WatchContactsResponse, Status>>;

    async fn watch_contacts(
        &self,
        _: Request<pb::WatchContactsRequest>,
    ) -> Result<Response<Self::WatchContactsStream>, Status> {
        unimplemented()
    }

    async fn resolve_recipients(
        &self,
        _: Request<pb::ResolveRecipientsRequest>,
    ) -> Result<Response<pb::ResolveRecipientsResponse>, Status> {
        unimplemented()
    }

    async fn list_contact_info_revisions(
        &self,
        _: Request<pb::ListContactInfoRevisionsRequest>,
    ) -> Result<Response<pb::ListContactInfoRevisionsResponse>, Status> {
        unimplemented()
    }

    async fn list_portal_users(
        &self,
        _: Request<pb::ListPortalUsersRequest>,
    ) -> Result<Response<pb::ListPortalUsersResponse>, Status> {
        unimplemented()
    }

    async fn grant_portal_access(
        &self,
        _: Request<pb::GrantPortalAccessRequest>,
    ) -> Result<Response<pb::PortalUser>, Status> {
        unimplemented()
    }

    async fn update_portal_user_role(
        &self,
        _: Request<pb::UpdatePortalUserRoleRequest>,
    ) -> Result<Response<pb::PortalUser>, Status> {
        unimplemented()
    }

    async fn revoke_portal_access(
        &self,
        _: Request<pb::RevokePortalAccessRequest>,
    ) -> Result<Response<()>, Status> {
        unimplemented()
    }
}

async fn run(args: Args) -> Result<(), String> {
    let bytes = std::fs::read(&args.response)
        .map_err(|e| format!("cannot read {}: {e}", args.response.display()))?;
    let info = pb::ContactInfo::decode(&bytes[..])
        .map_err(|e| format!("{} is not a ContactInfo: {e}", args.response.display()))?;
    if info.encoded_len() != bytes.len() {
        // Same size is what matters for the comparison; say so if it differs.
        eprintln!(
            "fixed-server: note: the answer re-encodes to {} bytes, the file holds {}",
            info.encoded_len(),
            bytes.len()
        );
    }

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(SERVICE_NAME, ServingStatus::Serving)
        .await;

    let incoming = TcpIncoming::bind(args.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?
        .with_nodelay(Some(true));
    let addr = incoming
        .local_addr()
        .map_err(|e| format!("no local address: {e}"))?;
    println!(
        "partner-contacts listening on {addr} (minimal tonic server: GetContacts answers {} bytes from memory)",
        info.encoded_len()
    );
    let _ = std::io::stdout().flush();

    Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(health)
        .add_service(ContactsServiceServer::new(Fixed { info }))
        .serve_with_incoming(incoming)
        .await
        .map_err(|e| format!("server error: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fixed-server: {e}");
            ExitCode::from(1)
        }
    }
}
