//! Health, server reflection (v1 and v1alpha) and graceful shutdown.
use std::time::{Duration, Instant};

use prost::Message;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use super::*;
use crate::common::{Backend, TestServer};
use crate::on_both_backends;

const SERVICE: &str = "partnerportal.contacts.v1.ContactsService";

async fn health_status(channel: &Channel, service: &str) -> Result<i32, Status> {
    HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .map(|r| r.into_inner().status)
}

async fn health_reports_serving(backend: Backend) {
    let server = TestServer::start(backend).await;
    for service in ["", SERVICE, partner_contacts::server::LIVENESS_SERVICE_NAME] {
        // The first store probe flips it to SERVING right after start.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let status = health_status(&server.channel, service)
                .await
                .unwrap_or_else(|s| panic!("health check {service:?}: {s:?}"));
            if status == ServingStatus::Serving as i32 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{service:?} not SERVING after 2 s: {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let unknown = health_status(&server.channel, "no.such.Service").await;
    expect_code(unknown, Code::NotFound);
}

/// Asks one reflection version for its services and for the file that
/// defines the contacts service; returns (services, descriptors).
macro_rules! reflect {
    ($version:ident, $channel:expr) => {{
        use tonic_reflection::pb::$version::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let mut client = ServerReflectionClient::new($channel.clone());
        let requests = [
            MessageRequest::ListServices(String::new()),
            MessageRequest::FileContainingSymbol(SERVICE.to_owned()),
        ]
        .map(|m| ServerReflectionRequest {
            host: String::new(),
            message_request: Some(m),
        });
        let mut responses = client
            .server_reflection_info(tokio_stream::iter(requests))
            .await
            .expect("reflection stream")
            .into_inner();
        let mut services = Vec::new();
        let mut files = Vec::new();
        while let Some(r) = responses.message().await.expect("reflection response") {
            match r.message_response.expect("a response") {
                MessageResponse::ListServicesResponse(l) => {
                    services.extend(l.service.into_iter().map(|s| s.name));
                }
                MessageResponse::FileDescriptorResponse(f) => {
                    files.extend(f.file_descriptor_proto);
                }
                other => panic!("unexpected reflection response: {other:?}"),
            }
        }
        (services, files)
    }};
}

/// The descriptor for the contacts service is among `files`.
fn assert_describes_service(files: &[Vec<u8>]) {
    assert!(!files.is_empty(), "no descriptor returned");
    let decoded: Vec<prost_types::FileDescriptorProto> = files
        .iter()
        .map(|b| prost_types::FileDescriptorProto::decode(b.as_slice()).expect("descriptor"))
        .collect();
    let defines = decoded.iter().any(|f| {
        f.package() == "partnerportal.contacts.v1"
            && f.service.iter().any(|s| {
                s.name() == "ContactsService"
                    && ["GetContacts", "UpdateContacts", "CheckOnboardingGate"]
                        .iter()
                        .all(|m| s.method.iter().any(|x| x.name() == *m))
            })
    });
    assert!(defines, "no descriptor defines {SERVICE}: {decoded:?}");
}

async fn reflection_v1_lists_and_describes_the_service(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (services, files) = reflect!(v1, server.channel);
    assert!(services.iter().any(|s| s == SERVICE), "{services:?}");
    assert!(
        services.iter().any(|s| s == "grpc.health.v1.Health"),
        "{services:?}"
    );
    assert_describes_service(&files);
}

async fn reflection_v1alpha_lists_and_describes_the_service(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (services, files) = reflect!(v1alpha, server.channel);
    assert!(services.iter().any(|s| s == SERVICE), "{services:?}");
    assert_describes_service(&files);
}

async fn graceful_shutdown_stops_serving(backend: Backend) {
    let server = server(backend).await;
    let addr = server.addr;
    let mut c = server.client.clone();
    save(&mut c, put(complete_info(PROD))).await;

    tokio::time::timeout(Duration::from_secs(10), server.stop())
        .await
        .expect("stopped within the grace period")
        .expect("clean stop");

    // The old connection no longer answers, and no new one is accepted.
    let err = get(&mut c, PROD).await.expect_err("call after shutdown");
    assert!(
        matches!(
            err.code(),
            Code::Unavailable | Code::Unknown | Code::Cancelled
        ),
        "{err:?}"
    );
    let reconnect = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await;
    assert!(reconnect.is_err(), "port {addr} still accepts connections");
}

on_both_backends!(
    health_reports_serving,
    reflection_v1_lists_and_describes_the_service,
    reflection_v1alpha_lists_and_describes_the_service,
    graceful_shutdown_stops_serving,
);
