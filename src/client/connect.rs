//! The one channel every client subcommand calls through: plaintext or TLS
//! (optionally mutual) from the server URL, and the bearer token from a file
//! or an environment variable, never from a flag (flags show up in process
//! lists and CI logs).
use std::future::Future;
use std::path::Path;
use std::time::Instant;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};

use super::args::ConnectArgs;
use super::report::Failure;
use super::retry::{self, Policy};
use crate::pb::contacts_service_client::ContactsServiceClient;

pub type Client = ContactsServiceClient<InterceptedService<Channel, Bearer>>;

/// A client, the server it calls (for messages) and the instant the whole
/// command must be done by.
pub struct Connection {
    pub client: Client,
    pub server: String,
    pub deadline: Instant,
}

impl Connection {
    /// One RPC (`rpc` names it in messages), retried as `policy` allows
    /// until the command's deadline; each attempt sends the time left as its
    /// grpc-timeout. `send` makes the call on a client of its own.
    pub async fn call<Req, T, Fut>(
        &self,
        rpc: &str,
        policy: Policy,
        request: &Req,
        send: impl Fn(Client, Request<Req>) -> Fut,
    ) -> Result<T, Status>
    where
        Req: Clone,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        retry::call(
            &format!("{rpc} on {}", self.server),
            self.deadline,
            policy,
            |left| {
                let mut call = Request::new(request.clone());
                call.set_timeout(left);
                send(self.client.clone(), call)
            },
        )
        .await
        .map(tonic::Response::into_inner)
    }
}

/// Adds `authorization: Bearer ...` to every call when there is a token.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The client `args` describe. Nothing is dialled yet: the first call
/// connects, so an unreachable server is retried like an UNAVAILABLE one.
/// Errors here are usage errors (a bad URL, an unreadable file).
pub fn open(args: &ConnectArgs) -> Result<Connection, Failure> {
    let started = Instant::now();
    let token = bearer(args)?;
    let endpoint = Endpoint::from_shared(args.server.clone())
        .map_err(|e| Failure::usage(format!("--server {:?}: {e}", args.server)))?
        .connect_timeout(args.timeout)
        .tcp_nodelay(true);
    let scheme = endpoint.uri().scheme_str().unwrap_or_default().to_owned();
    let endpoint = match scheme.as_str() {
        "http" => {
            if args.ca_file.is_some() || args.client_cert.is_some() {
                return Err(Failure::usage(
                    "--ca-file, --client-cert and --client-key need an https:// --server",
                ));
            }
            endpoint
        }
        "https" => endpoint
            .tls_config(tls(args)?)
            .map_err(|e| Failure::usage(format!("TLS settings: {e}")))?,
        _ => {
            return Err(Failure::usage(format!(
                "--server {:?}: expected http://HOST:PORT or https://HOST:PORT",
                args.server
            )));
        }
    };
    Ok(Connection {
        client: ContactsServiceClient::with_interceptor(endpoint.connect_lazy(), Bearer(token)),
        server: args.server.clone(),
        deadline: started + args.timeout,
    })
}

fn tls(args: &ConnectArgs) -> Result<ClientTlsConfig, Failure> {
    let mut config = match &args.ca_file {
        Some(path) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(path)?)),
        None => ClientTlsConfig::new().with_webpki_roots(),
    };
    if let (Some(cert), Some(key)) = (&args.client_cert, &args.client_key) {
        config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(config)
}

fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))
}

/// The `authorization` value, from --token-file or the --token-env variable.
/// Messages never quote the token.
fn bearer(args: &ConnectArgs) -> Result<Option<MetadataValue<Ascii>>, Failure> {
    let token = match &args.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Failure::usage(format!("cannot read --token-file {}: {e}", path.display()))
            })?;
            let token = text.trim().to_owned();
            if token.is_empty() {
                return Err(Failure::usage(format!(
                    "--token-file {} is empty",
                    path.display()
                )));
            }
            token
        }
        None => match std::env::var(&args.token_env) {
            // Unset or empty (CI systems often define unset variables as
            // empty): no token, as a development server expects.
            Err(std::env::VarError::NotPresent) => return Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(Failure::usage(format!(
                    "the token in {} is not text",
                    args.token_env
                )));
            }
            Ok(value) if value.trim().is_empty() => return Ok(None),
            Ok(value) => value.trim().to_owned(),
        },
    };
    let mut value: MetadataValue<Ascii> = format!("Bearer {token}").parse().map_err(|_| {
        Failure::usage("the token holds characters a header cannot carry (expected a JWT)")
    })?;
    // Keeps it out of any debug output of the request.
    value.set_sensitive(true);
    Ok(Some(value))
}
