//! What stands between the network and ContactsService: a service-wide limit
//! on calls in flight (excess calls are shed at once), the call's deadline
//! (the caller's `grpc-timeout`, else a default), and the status an
//! over-size request gets. Health and reflection are not behind it, so
//! probes keep answering under any load.
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;

use crate::api::status::{to_status, with_details};
use crate::deadline;
use crate::error::Error;
use crate::telemetry::GuardCounters;

/// Limits of the guard; see the README's configuration table.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Unary calls served at once, over every connection. Streams are not
    /// counted: they last as long as their consumer.
    pub max_concurrent_calls: usize,
    /// The deadline of a call whose caller sent no `grpc-timeout`.
    pub default_deadline: Duration,
    /// The largest request message accepted (decoded size).
    pub max_request_bytes: usize,
    /// Connections older than this are asked to go away (GOAWAY; calls and
    /// streams in flight finish), so that clients balancing over DNS
    /// re-resolve and spread over new replicas. `None`: connections live on.
    pub max_connection_age: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent_calls: 512,
            default_deadline: Duration::from_secs(10),
            max_request_bytes: 256 * 1024,
            max_connection_age: None,
        }
    }
}

/// Our deadline fires this much before the caller's (a tenth of short
/// ones), so that our DEADLINE_EXCEEDED reaches the caller before its own
/// timer fires: the caller's clock started before the request crossed the
/// network and waited for a loaded core, and a tonic client reports its own
/// expiry as CANCELLED.
const AHEAD_OF_CALLER: Duration = Duration::from_millis(20);

fn ahead_of_caller(timeout: Duration) -> Duration {
    timeout.saturating_sub(AHEAD_OF_CALLER.min(timeout / 10))
}

const STREAMING_METHODS: &[&str] = &["/partnerportal.contacts.v1.ContactsService/WatchContacts"];

#[derive(Debug, Clone)]
pub struct Guarded<S> {
    inner: S,
    permits: Arc<Semaphore>,
    limits: Limits,
    counters: Arc<GuardCounters>,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, limits: Limits, counters: Arc<GuardCounters>) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(limits.max_concurrent_calls.max(1))),
            limits,
            counters,
        }
    }
}

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

/// A trailers-only response carrying `status`.
fn refuse(status: Status) -> http::Response<Body> {
    status.into_http()
}

/// tonic answers an over-size message with OUT_OF_RANGE; the gRPC spec says
/// RESOURCE_EXHAUSTED. No handler of ours returns OUT_OF_RANGE, so every one
/// that reaches here is tonic's size check.
fn over_size(response: &http::Response<Body>) -> bool {
    response
        .headers()
        .get(super::GRPC_STATUS)
        .is_some_and(|v| v.as_bytes() == b"11")
}

/// An error answer tonic made itself (a request that does not decode, an
/// unknown method) carries no details: it gets those every error of this
/// service carries (`ErrorInfo`, and `RetryInfo` where a retry may help).
/// Ours always have them; a successful answer has no status in its headers.
fn detailed(response: http::Response<Body>) -> http::Response<Body> {
    let headers = response.headers();
    let bare = headers
        .get(super::GRPC_STATUS)
        .is_some_and(|code| code.as_bytes() != b"0")
        && !headers.contains_key(GRPC_STATUS_DETAILS);
    if !bare {
        return response;
    }
    match Status::from_header_map(headers) {
        Some(status) => with_details(status.code(), status.message().to_owned()).into_http(),
        None => response,
    }
}

const GRPC_STATUS_DETAILS: &str = "grpc-status-details-bin";

impl<S> Service<http::Request<Body>> for Guarded<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if STREAMING_METHODS.contains(&request.uri().path()) {
            let opened = self.inner.call(request);
            return Box::pin(async move {
                let Ok(response) = opened.await;
                Ok(detailed(response))
            });
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.counters.shed.fetch_add(1, Ordering::Relaxed);
            return Box::pin(std::future::ready(Ok(refuse(to_status(Error::Overloaded)))));
        };
        let caller = request
            .headers()
            .get(super::GRPC_TIMEOUT)
            .and_then(|v| v.to_str().ok())
            .and_then(deadline::parse_grpc_timeout);
        let budget = match caller {
            Some(t) => ahead_of_caller(t),
            None => self.limits.default_deadline,
        };
        // From the request's arrival, not from when the future is first
        // polled: on a loaded core that can be much later.
        let ends = Instant::now() + budget;
        let limit_kib = self.limits.max_request_bytes / 1024;
        let counters = self.counters.clone();
        // Called here, on the instance `poll_ready` readied (tower's
        // contract), rather than on a clone moved into the future: the inner
        // services only build their future in `call`, and run it, under the
        // deadline's scope, when it is polled.
        let served = self.inner.call(request);
        Box::pin(async move {
            let _permit = permit;
            let served = tokio::time::timeout_at(ends.into(), deadline::scope(ends, served)).await;
            Ok(match served {
                Ok(Ok(response)) if over_size(&response) => {
                    counters.too_large.fetch_add(1, Ordering::Relaxed);
                    refuse(to_status(Error::RequestTooLarge { limit_kib }))
                }
                Ok(Ok(response)) => detailed(response),
                Ok(Err(never)) => match never {},
                Err(_) => {
                    counters.deadline_exceeded.fetch_add(1, Ordering::Relaxed);
                    refuse(to_status(Error::DeadlineExceeded))
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_deadlines_keep_most_of_their_time() {
        assert_eq!(
            ahead_of_caller(Duration::from_secs(2)),
            Duration::from_millis(1980)
        );
        assert_eq!(
            ahead_of_caller(Duration::from_millis(50)),
            Duration::from_millis(45)
        );
        assert_eq!(ahead_of_caller(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn over_size_is_recognised_by_its_status_only() {
        assert!(over_size(&refuse(Status::out_of_range("too big"))));
        assert!(!over_size(&refuse(Status::invalid_argument("bad"))));
        assert!(!over_size(&http::Response::new(Body::default())));
    }
}
