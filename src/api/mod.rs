//! gRPC handlers: decode, call the domain and store, encode.
pub mod convert;
pub mod status;

use std::sync::Arc;

use prost::Message;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::domain::{GatePolicy, now_micros};
use crate::error::{Error, FieldViolation};
use crate::pb::{self, contacts_service_server::ContactsService};
use crate::store::{DynStore, RequestKey};
use status::to_status;

/// The `partnerportal.contacts.v1.ContactsService` implementation.
#[derive(Debug, Clone)]
pub struct ContactsApi {
    store: DynStore,
    policy: Arc<GatePolicy>,
}

impl ContactsApi {
    pub fn new(store: DynStore, policy: Arc<GatePolicy>) -> Self {
        Self { store, policy }
    }

    pub fn into_service(self) -> pb::contacts_service_server::ContactsServiceServer<Self> {
        pb::contacts_service_server::ContactsServiceServer::new(self)
    }
}

/// A present `request_id` must be a UUID in its usual hyphenated form (either
/// case); the key also fingerprints the whole request so a reused id can be
/// told from a retry.
fn request_key(req: &pb::UpdateContactsRequest) -> Result<Option<RequestKey>, FieldViolation> {
    if req.request_id.is_empty() || req.validate_only {
        return Ok(None);
    }
    let id = uuid::Uuid::try_parse(&req.request_id)
        .ok()
        .filter(|_| req.request_id.len() == 36)
        .ok_or_else(|| {
            FieldViolation::new(
                "request_id",
                "must be a UUID in hyphenated form, e.g. 2f1e9a9c-2d43-4b0e-9a4e-8c1f3b7d5e60",
            )
        })?;
    // Fingerprint the request as if the id were written in lowercase, so a
    // retry that changes only the id's case is still the same request.
    let mut canonical = req.clone();
    canonical.request_id = id.hyphenated().to_string();
    let fingerprint = Sha256::digest(canonical.encode_to_vec()).into();
    Ok(Some(RequestKey { id, fingerprint }))
}

#[tonic::async_trait]
impl ContactsService for ContactsApi {
    #[instrument(skip_all, fields(rpc = "GetContacts"))]
    async fn get_contacts(
        &self,
        request: Request<pb::GetContactsRequest>,
    ) -> Result<Response<pb::ContactInfo>, Status> {
        let req = request.into_inner();
        let name = convert::parse_name(&req.name).map_err(to_status)?;
        match self.store.get(&name).await.map_err(to_status)? {
            Some(info) => Ok(Response::new(convert::contact_info_to_pb(&info))),
            None => Err(to_status(Error::NotFound {
                name: name.to_string(),
            })),
        }
    }

    #[instrument(skip_all, fields(rpc = "UpdateContacts"))]
    async fn update_contacts(
        &self,
        request: Request<pb::UpdateContactsRequest>,
    ) -> Result<Response<pb::ContactInfo>, Status> {
        let req = request.into_inner();
        // Report every problem at once: the request id is checked beside the body.
        let (update, key) = match (convert::parse_update(&req), request_key(&req)) {
            (Ok(update), Ok(key)) => (update, key),
            (
                Err(Error::InvalidArgument {
                    reason,
                    mut violations,
                }),
                Err(v),
            ) => {
                violations.push(v);
                return Err(to_status(Error::InvalidArgument { reason, violations }));
            }
            (Err(e), _) => return Err(to_status(e)),
            (Ok(_), Err(v)) => return Err(to_status(Error::invalid(vec![v]))),
        };
        if req.validate_only {
            let current = self.store.get(&update.name).await.map_err(to_status)?;
            let fields = update.merge_onto(current.as_ref()).map_err(to_status)?;
            return Ok(Response::new(convert::preview_to_pb(
                &update.name,
                &fields,
                current.as_ref(),
            )));
        }
        let saved = self
            .store
            .update(&update, key.as_ref())
            .await
            .map_err(to_status)?;
        Ok(Response::new(convert::contact_info_to_pb(&saved)))
    }

    #[instrument(skip_all, fields(rpc = "CheckOnboardingGate"))]
    async fn check_onboarding_gate(
        &self,
        request: Request<pb::CheckOnboardingGateRequest>,
    ) -> Result<Response<pb::CheckOnboardingGateResponse>, Status> {
        let req = request.into_inner();
        // Both inputs are checked before any lookup, and reported together.
        let name = match convert::parse_gate_name(&req.name) {
            Ok(name) => name,
            Err(Error::InvalidArgument { mut violations, .. }) => {
                if let Err(Error::InvalidArgument {
                    violations: more, ..
                }) = self.policy.check_type(&req.integration_type)
                {
                    violations.extend(more);
                }
                return Err(to_status(Error::invalid(violations)));
            }
            Err(e) => return Err(to_status(e)),
        };
        self.policy
            .check_type(&req.integration_type)
            .map_err(to_status)?;
        let current = self.store.get(&name).await.map_err(to_status)?;
        let result = self
            .policy
            .evaluate(
                &req.integration_type,
                name.environment,
                current.as_ref().map(|c| &c.fields),
            )
            .map_err(to_status)?;
        Ok(Response::new(convert::gate_to_pb(
            &result,
            current.as_ref().map(|c| c.etag.as_str()),
            now_micros(),
        )))
    }
}
