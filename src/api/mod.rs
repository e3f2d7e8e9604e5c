//! gRPC handlers: authenticate, authorise, decode, call the domain and store, encode.
mod contacts;
pub mod convert;
mod encoded;
mod events;
pub mod paging;
mod recipients;
pub mod status;
mod users;
mod verification;
mod watch;

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::auth::Authenticator;
use crate::domain::{Action, GatePolicy, Principal, VerificationPolicy, partner_segment};
use crate::pb::{self, contacts_service_server::ContactsService};
use crate::store::CachedStore;
pub use encoded::EncodedRoutes;
use status::to_status;

use crate::wire::Encoded;

/// The `partnerportal.contacts.v1.ContactsService` implementation.
#[derive(Debug, Clone)]
pub struct ContactsApi {
    store: Arc<CachedStore>,
    policy: Arc<GatePolicy>,
    auth: Arc<Authenticator>,
    /// How long confirmations and challenges last.
    verification: VerificationPolicy,
    /// Turns true when the server starts draining: watch streams end then.
    draining: tokio::sync::watch::Receiver<bool>,
}

impl ContactsApi {
    pub fn new(
        store: Arc<CachedStore>,
        policy: Arc<GatePolicy>,
        auth: Arc<Authenticator>,
        verification: VerificationPolicy,
        draining: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Self {
            store,
            policy,
            auth,
            verification,
            draining,
        }
    }

    pub fn into_service(self) -> pb::contacts_service_server::ContactsServiceServer<Self> {
        pb::contacts_service_server::ContactsServiceServer::new(self)
    }

    /// Authenticates the caller and authorises `action` on the partner that
    /// `resource` (a request's name or parent, not yet validated) names:
    /// AIP-211 order, so a refused caller learns nothing from validation.
    fn admit<T>(
        &self,
        request: &Request<T>,
        action: Action,
        resource: &str,
    ) -> Result<Principal, Status> {
        let certs = request.peer_certs();
        let principal = self
            .auth
            .authenticate(request.metadata(), certs.as_deref().map(|c| c.as_slice()))
            .map_err(to_status)?;
        let partner = partner_segment(resource);
        // The call's span (server::observe) names the partner once it is a
        // well-formed id: never arbitrary caller text.
        if let Some(p) = partner.filter(|p| crate::domain::PartnerId::is_valid(p)) {
            tracing::Span::current().record("partner", p);
        }
        principal.authorize(action, partner).map_err(to_status)?;
        Ok(principal)
    }
}

impl ContactsApi {
    /// GetContacts, answered with the encoded ready form (see `encoded`).
    pub async fn get_contacts_encoded(
        &self,
        request: Request<pb::GetContactsRequest>,
    ) -> Result<Response<Encoded>, Status> {
        let action = if request.get_ref().read_time.is_some() {
            Action::ReadHistory
        } else {
            Action::ReadContacts
        };
        let principal = self.admit(&request, action, &request.get_ref().name)?;
        contacts::get(self, &principal, request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    pub async fn resolve_recipients_encoded(
        &self,
        request: Request<pb::ResolveRecipientsRequest>,
    ) -> Result<Response<Encoded>, Status> {
        let principal = self.admit(&request, Action::ReadContacts, &request.get_ref().name)?;
        recipients::resolve_recipients(self, &principal, request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    pub async fn check_onboarding_gate_encoded(
        &self,
        request: Request<pb::CheckOnboardingGateRequest>,
    ) -> Result<Response<Encoded>, Status> {
        self.admit(&request, Action::CheckGate, &request.get_ref().name)?;
        contacts::check_gate(self, request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    /// The service to serve: the generated one, with the methods that answer
    /// from encoded bytes routed around it.
    pub fn into_routes(self, max_decoding_message_size: usize) -> EncodedRoutes {
        EncodedRoutes::new(self, max_decoding_message_size)
    }
}

/// An encoded answer as the generated service's message type.
fn decoded<T: prost::Message + Default>(encoded: Response<Encoded>) -> Result<Response<T>, Status> {
    T::decode(encoded.into_inner().0)
        .map(Response::new)
        .map_err(|_| {
            to_status(crate::error::Error::Internal {
                detail: "an encoded answer did not decode".to_owned(),
            })
        })
}

#[tonic::async_trait]
impl ContactsService for ContactsApi {
    async fn get_contacts(
        &self,
        request: Request<pb::GetContactsRequest>,
    ) -> Result<Response<pb::ContactInfo>, Status> {
        // The server answers GetContacts through `get_contacts_encoded`,
        // without this decode; it is here for the generated service alone.
        decoded(self.get_contacts_encoded(request).await?)
    }

    async fn update_contacts(
        &self,
        request: Request<pb::UpdateContactsRequest>,
    ) -> Result<Response<pb::ContactInfo>, Status> {
        let name = request
            .get_ref()
            .contact_info
            .as_ref()
            .map_or("", |c| c.name.as_str());
        let principal = self.admit(&request, Action::UpdateContacts, name)?;
        contacts::update(self, &principal, request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn copy_contact_info(
        &self,
        request: Request<pb::CopyContactInfoRequest>,
    ) -> Result<Response<pb::ContactInfo>, Status> {
        // Authorised as the update it is; the source is the same partner's
        // (checked with the request), so no other partner's data is read.
        let principal = self.admit(&request, Action::UpdateContacts, &request.get_ref().name)?;
        contacts::copy(self, &principal, request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn check_onboarding_gate(
        &self,
        request: Request<pb::CheckOnboardingGateRequest>,
    ) -> Result<Response<pb::CheckOnboardingGateResponse>, Status> {
        // Served through `check_onboarding_gate_encoded`; here for the
        // generated service alone.
        decoded(self.check_onboarding_gate_encoded(request).await?)
    }

    type WatchContactsStream = watch::WatchStream;

    async fn watch_contacts(
        &self,
        request: Request<pb::WatchContactsRequest>,
    ) -> Result<Response<Self::WatchContactsStream>, Status> {
        let principal = self.admit(&request, Action::ReadContacts, &request.get_ref().name)?;
        let name = convert::parse_name(&request.get_ref().name).map_err(to_status)?;
        Ok(Response::new(watch::start(
            self,
            name,
            principal.read_view(),
        )))
    }

    async fn resolve_recipients(
        &self,
        request: Request<pb::ResolveRecipientsRequest>,
    ) -> Result<Response<pb::ResolveRecipientsResponse>, Status> {
        // Served through `resolve_recipients_encoded`; here for the
        // generated service alone.
        decoded(self.resolve_recipients_encoded(request).await?)
    }

    async fn list_contact_info_revisions(
        &self,
        request: Request<pb::ListContactInfoRevisionsRequest>,
    ) -> Result<Response<pb::ListContactInfoRevisionsResponse>, Status> {
        let principal = self.admit(&request, Action::ReadHistory, &request.get_ref().name)?;
        contacts::list_revisions(self, &principal, request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn list_portal_users(
        &self,
        request: Request<pb::ListPortalUsersRequest>,
    ) -> Result<Response<pb::ListPortalUsersResponse>, Status> {
        self.admit(&request, Action::ListPortalUsers, &request.get_ref().parent)?;
        users::list(self, request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn grant_portal_access(
        &self,
        request: Request<pb::GrantPortalAccessRequest>,
    ) -> Result<Response<pb::PortalUser>, Status> {
        let principal = self.admit(
            &request,
            Action::ManagePortalUsers,
            &request.get_ref().parent,
        )?;
        users::grant(self, &principal, request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn update_portal_user_role(
        &self,
        request: Request<pb::UpdatePortalUserRoleRequest>,
    ) -> Result<Response<pb::PortalUser>, Status> {
        let principal = self.admit(&request, Action::ManagePortalUsers, &request.get_ref().name)?;
        users::update_role(self, &principal, request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn send_verification(
        &self,
        request: Request<pb::SendVerificationRequest>,
    ) -> Result<Response<pb::SendVerificationResponse>, Status> {
        // Who may change the contacts may ask their addresses to confirm.
        let principal = self.admit(&request, Action::UpdateContacts, &request.get_ref().name)?;
        verification::send(self, &principal, request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn confirm_contact(
        &self,
        request: Request<pb::ConfirmContactRequest>,
    ) -> Result<Response<pb::AddressVerification>, Status> {
        self.admit(&request, Action::ConfirmContact, &request.get_ref().parent)?;
        verification::confirm(self, request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        self.admit(&request, Action::ListEvents, &request.get_ref().parent)?;
        events::list(self, request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn revoke_portal_access(
        &self,
        request: Request<pb::RevokePortalAccessRequest>,
    ) -> Result<Response<()>, Status> {
        let principal = self.admit(&request, Action::ManagePortalUsers, &request.get_ref().name)?;
        users::revoke(self, &principal, request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }
}
