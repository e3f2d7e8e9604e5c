//! The routes answered with bytes already encoded (`wire::EncodedCodec`):
//! GetContacts sends the ready form as saved, ResolveRecipients and
//! CheckOnboardingGate answers written from it. In front of the generated
//! service, which answers every other method; the wire format is the
//! proto's either way.
use std::convert::Infallible;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use super::ContactsApi;
use crate::pb::{self, contacts_service_server::ContactsServiceServer};
use crate::wire::{Encoded, EncodedCodec};

const GET_CONTACTS: &str = "/partnerportal.contacts.v1.ContactsService/GetContacts";
const RESOLVE_RECIPIENTS: &str = "/partnerportal.contacts.v1.ContactsService/ResolveRecipients";
const CHECK_ONBOARDING_GATE: &str =
    "/partnerportal.contacts.v1.ContactsService/CheckOnboardingGate";

/// The generated service, with the read path's three methods answered from
/// encoded bytes.
#[derive(Debug, Clone)]
pub struct EncodedRoutes {
    api: ContactsApi,
    generated: ContactsServiceServer<ContactsApi>,
    max_decoding_message_size: usize,
}

impl EncodedRoutes {
    pub fn new(api: ContactsApi, max_decoding_message_size: usize) -> Self {
        Self {
            generated: api
                .clone()
                .into_service()
                .max_decoding_message_size(max_decoding_message_size),
            api,
            max_decoding_message_size,
        }
    }
}

impl NamedService for EncodedRoutes {
    const NAME: &'static str = <ContactsServiceServer<ContactsApi> as NamedService>::NAME;
}

/// The method an encoded route calls: the handler's future runs inside the
/// route's own (one allocation per call, not two).
struct Method<F>(ContactsApi, F);

impl<Req, F, Fut> UnaryService<Req> for Method<F>
where
    F: FnMut(ContactsApi, Request<Req>) -> Fut,
    Fut: Future<Output = Result<Response<Encoded>, Status>>,
{
    type Response = Encoded;
    type Future = Fut;

    fn call(&mut self, request: Request<Req>) -> Self::Future {
        (self.1)(self.0.clone(), request)
    }
}

/// Serves one encoded route: `Req` decoded with prost, the answer as it is.
fn unary<Req, F, Fut>(
    method: Method<F>,
    limit: usize,
    request: http::Request<Body>,
) -> BoxFuture<http::Response<Body>, Infallible>
where
    Req: prost::Message + Default + Send + 'static,
    F: FnMut(ContactsApi, Request<Req>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Response<Encoded>, Status>> + Send + 'static,
{
    Box::pin(async move {
        let mut grpc = Grpc::new(EncodedCodec::<Req>::default())
            .apply_max_message_size_config(Some(limit), None);
        Ok(grpc.unary(method, request).await)
    })
}

impl Service<http::Request<Body>> for EncodedRoutes {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        <ContactsServiceServer<ContactsApi> as Service<http::Request<Body>>>::poll_ready(
            &mut self.generated,
            cx,
        )
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let limit = self.max_decoding_message_size;
        match request.uri().path() {
            GET_CONTACTS => {
                let handler = |api: ContactsApi, r: Request<pb::GetContactsRequest>| async move {
                    api.get_contacts_encoded(r).await
                };
                unary(Method(self.api.clone(), handler), limit, request)
            }
            RESOLVE_RECIPIENTS => {
                let handler = |api: ContactsApi, r: Request<pb::ResolveRecipientsRequest>| async move {
                    api.resolve_recipients_encoded(r).await
                };
                unary(Method(self.api.clone(), handler), limit, request)
            }
            CHECK_ONBOARDING_GATE => {
                let handler = |api: ContactsApi, r: Request<pb::CheckOnboardingGateRequest>| async move {
                    api.check_onboarding_gate_encoded(r).await
                };
                unary(Method(self.api.clone(), handler), limit, request)
            }
            _ => self.generated.call(request),
        }
    }
}
