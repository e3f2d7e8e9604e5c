//! Bounded retries of one call: exponential backoff with jitter (backon),
//! every attempt and every pause inside the command's `--timeout`, so a
//! pipeline step ends when it says it will.
use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use tonic::{Code, Status};

use super::report::code_name;

/// The first pause; each next one doubles, up to [`MAX_DELAY`], plus up to as
/// much again of jitter so that many pipelines retrying together spread out.
const MIN_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(2);

/// The least time worth a last attempt: a pause that would leave less before
/// the deadline is cut short so that this much is left, and with less than
/// this left no pause is taken and the last failure stands.
const LAST_ATTEMPT: Duration = Duration::from_millis(100);

/// Which failures are worth another attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// A read: UNAVAILABLE (unreachable server, database outage, shutdown)
    /// and RESOURCE_EXHAUSTED (the server shed the call under load; a small
    /// request is never too large).
    Read,
    /// A write: UNAVAILABLE only, since RESOURCE_EXHAUSTED may mean the
    /// request is too large and would be refused again. Retrying a write is
    /// safe only with a request_id, which `apply` always sends.
    Write,
}

impl Policy {
    fn retries(self, status: &Status) -> bool {
        match status.code() {
            Code::Unavailable => true,
            Code::ResourceExhausted => self == Policy::Read,
            _ => false,
        }
    }
}

/// Calls `attempt` with the time left until `deadline` (which it should send
/// as the call's grpc-timeout) until it succeeds, fails in a way a retry
/// would not fix, or the next pause would end after `deadline`. `what`
/// names the call in the retry notices (stderr) and the final error.
pub async fn call<T, F, Fut>(
    what: &str,
    deadline: Instant,
    policy: Policy,
    mut attempt: F,
) -> Result<T, Status>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let attempts = Cell::new(0u32);
    let started = Instant::now();
    let one = || {
        attempts.set(attempts.get() + 1);
        let left = deadline.saturating_duration_since(Instant::now());
        let call = attempt(left);
        async move {
            if left.is_zero() {
                return Err(Status::deadline_exceeded("--timeout reached"));
            }
            match tokio::time::timeout(left, call).await {
                Ok(result) => result,
                Err(_) => Err(Status::deadline_exceeded(
                    "no answer before --timeout was reached",
                )),
            }
        }
    };
    let backoff = ExponentialBuilder::default()
        .with_min_delay(MIN_DELAY)
        .with_max_delay(MAX_DELAY)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    let result = one
        .retry(backoff)
        .when(|status: &Status| policy.retries(status))
        .adjust(|_, pause| {
            let left = deadline.saturating_duration_since(Instant::now());
            let longest = left.checked_sub(LAST_ATTEMPT).filter(|d| !d.is_zero())?;
            pause.map(|pause| pause.min(longest))
        })
        .notify(|status: &Status, pause: Duration| {
            tracing::warn!(
                "{what}: {} ({}), retrying in {} ms",
                code_name(status.code()),
                status.message(),
                pause.as_millis()
            );
        })
        .await;
    result.map_err(|status| {
        let n = attempts.get();
        if policy.retries(&status) || status.code() == Code::DeadlineExceeded {
            Status::new(
                status.code(),
                format!(
                    "{what}: {} after {n} attempt{} in {:.1} s",
                    status.message(),
                    if n == 1 { "" } else { "s" },
                    started.elapsed().as_secs_f64()
                ),
            )
        } else {
            status
        }
    })
}
