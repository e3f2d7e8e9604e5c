//! The one mapping from the service's `Error` to a gRPC `Status` (AIP-193).
use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::{Error, FieldViolation, MORE_VIOLATIONS};

/// `google.rpc.ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "partner-contacts";

/// The status travels in HTTP/2 trailers (details base64-encoded), and
/// clients refuse trailers over 16 KiB (hyper's default, counting each field
/// as name + value + 32 bytes): past that a caller would get a protocol error
/// instead of our answer.
pub(crate) const TRAILERS_LIMIT_BYTES: usize = 16 * 1024;
/// These budgets keep the whole status well under [`TRAILERS_LIMIT_BYTES`].
pub(crate) const DETAILS_BUDGET_BYTES: usize = 6 * 1024;
pub(crate) const MESSAGE_BUDGET_BYTES: usize = 1024;
/// The most `Status::details()` takes within those budgets: the encoded
/// `google.rpc.Status` repeats the message beside the details, and protobuf
/// framing adds a little.
pub(crate) const ENCODED_DETAILS_MAX_BYTES: usize =
    DETAILS_BUDGET_BYTES + MESSAGE_BUDGET_BYTES + 512;

/// The violations that fit the details budget, with a closing marker when
/// some had to go.
fn within_budget(violations: Vec<FieldViolation>) -> Vec<FieldViolation> {
    let total = violations.len();
    let mut used = MORE_VIOLATIONS.len() + 8;
    let mut kept = Vec::with_capacity(total);
    for v in violations {
        if v.field.is_empty() && v.description == MORE_VIOLATIONS {
            continue;
        }
        // Field, description and a few bytes of protobuf framing.
        used += v.field.len() + v.description.len() + 8;
        if used > DETAILS_BUDGET_BYTES {
            break;
        }
        kept.push(v);
    }
    if kept.len() < total {
        kept.push(FieldViolation::new("", MORE_VIOLATIONS));
    }
    kept
}

fn truncate(mut message: String) -> String {
    if message.len() > MESSAGE_BUDGET_BYTES {
        let mut end = MESSAGE_BUDGET_BYTES - 3;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    message
}

/// A status whose `ErrorInfo` names `reason`, for callers that branch on it.
fn with_reason(code: Code, message: impl Into<String>, reason: &str) -> Status {
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new()),
    )
}

/// Exhaustive on purpose: a new error variant must decide what callers see.
pub fn to_status(error: Error) -> Status {
    let message = truncate(error.to_string());
    match error {
        Error::InvalidArgument { reason, violations } => {
            let mut details = ErrorDetails::new();
            for v in within_budget(violations) {
                details.add_bad_request_violation(v.field, v.description);
            }
            details.set_error_info(reason.as_str(), ERROR_DOMAIN, HashMap::new());
            Status::with_error_details(Code::InvalidArgument, message, details)
        }
        Error::Unauthenticated { .. } => {
            with_reason(Code::Unauthenticated, message, "UNAUTHENTICATED")
        }
        Error::PermissionDenied { .. } => {
            with_reason(Code::PermissionDenied, message, "PERMISSION_DENIED")
        }
        Error::AlreadyExists { .. } => with_reason(Code::AlreadyExists, message, "ALREADY_EXISTS"),
        Error::FailedPrecondition { violations } => {
            let mut details = ErrorDetails::new();
            let reason = violations.first().map_or("FAILED_PRECONDITION", |v| v.kind);
            for v in violations.iter().take(crate::error::MAX_VIOLATIONS) {
                details.add_precondition_failure_violation(v.kind, &v.subject, &v.description);
            }
            details.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
            Status::with_error_details(Code::FailedPrecondition, message, details)
        }
        Error::NotFound {
            resource_type,
            name,
        } => {
            let description = if resource_type == crate::error::CONTACT_INFO_TYPE {
                "nothing was saved for this name (by the requested time)"
            } else {
                "no such resource"
            };
            let mut details =
                ErrorDetails::with_resource_info(resource_type, name, "", description);
            details.set_error_info("RESOURCE_NOT_FOUND", ERROR_DOMAIN, HashMap::new());
            Status::with_error_details(Code::NotFound, message, details)
        }
        Error::EtagMismatch => with_reason(Code::Aborted, message, "ETAG_MISMATCH"),
        Error::Unavailable { detail } => {
            warn_unavailable(&detail);
            retryable(
                Code::Unavailable,
                "the contact store is unavailable; retry with backoff",
                "STORE_UNAVAILABLE",
                STORE_RETRY,
            )
        }
        Error::Internal { detail } => {
            tracing::error!(%detail, "internal error");
            with_reason(Code::Internal, "internal error", "INTERNAL")
        }
        Error::Overloaded => retryable(Code::ResourceExhausted, message, "OVERLOADED", SHED_RETRY),
        // gRPC's code for an over-size message is RESOURCE_EXHAUSTED, which
        // clients treat as retryable: the RetryInfo is there because every
        // RESOURCE_EXHAUSTED carries one, the reason tells that the same
        // request will be refused again.
        Error::RequestTooLarge { limit_kib } => {
            let mut details = ErrorDetails::with_error_info(
                "REQUEST_TOO_LARGE",
                ERROR_DOMAIN,
                HashMap::from([("limit_kib".to_owned(), limit_kib.to_string())]),
            );
            details.set_retry_info(Some(jittered(SHED_RETRY)));
            Status::with_error_details(Code::ResourceExhausted, message, details)
        }
        Error::DeadlineExceeded => {
            with_reason(Code::DeadlineExceeded, message, "DEADLINE_EXCEEDED")
        }
        Error::WatchConsumerTooSlow => {
            with_reason(Code::Aborted, message, "WATCH_CONSUMER_TOO_SLOW")
        }
        Error::ShuttingDown => retryable(
            Code::Unavailable,
            message,
            "SERVER_SHUTTING_DOWN",
            SHUTDOWN_RETRY,
        ),
    }
}

/// Typical pauses before a retry (`google.rpc.RetryInfo`), each sent spread
/// by [`jittered`]: a call shed under load comes back soon; a database
/// outage or failover takes seconds (health's probe needs two pings to see
/// it back); a replica shutting down is left for another one at once.
const SHED_RETRY: Duration = Duration::from_millis(200);
const STORE_RETRY: Duration = Duration::from_secs(1);
const SHUTDOWN_RETRY: Duration = Duration::from_millis(100);

/// `typical` times a random factor in [0.5, 1.5): callers refused together
/// (a shed burst, every call during an outage) come back spread out instead
/// of in one wave.
fn jittered(typical: Duration) -> Duration {
    // Falls back to the middle when the OS has no randomness to give.
    let random = getrandom::u32().unwrap_or(u32::MAX / 2);
    typical.mul_f64(0.5 + f64::from(random) / (f64::from(u32::MAX) + 1.0))
}

/// A status callers may retry: its `ErrorInfo` names `reason`, its
/// `RetryInfo` says after how long.
fn retryable(code: Code, message: impl Into<String>, reason: &str, typical: Duration) -> Status {
    let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new());
    details.set_retry_info(Some(jittered(typical)));
    Status::with_error_details(code, message, details)
}

/// For a status made outside this mapping (tonic's own: a request that does
/// not decode, an unknown method), the details every error here carries: an
/// `ErrorInfo` whose reason is the code's name, and a `RetryInfo` on
/// UNAVAILABLE and RESOURCE_EXHAUSTED.
pub fn with_details(code: Code, message: impl Into<String>) -> Status {
    let reason = crate::telemetry::metrics::code_name(code);
    match code {
        Code::Unavailable => retryable(code, message, reason, STORE_RETRY),
        Code::ResourceExhausted => retryable(code, message, reason, SHED_RETRY),
        _ => with_reason(code, message, reason),
    }
}

/// At most one WARN line a second for an unreachable store, with how many
/// calls since then failed the same way: during an outage every call fails
/// alike, and a line per call would bury everything else.
fn warn_unavailable(detail: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_SECOND: AtomicU64 = AtomicU64::new(0);
    static SINCE: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST_SECOND.load(Ordering::Relaxed);
    if now > last
        && LAST_SECOND
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let also = SINCE.swap(0, Ordering::Relaxed);
        tracing::warn!(%detail, failed_alike_since_last_line = also, "store unavailable");
    } else {
        SINCE.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%detail, "store unavailable");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{FieldViolation, InvalidReason};

    #[test]
    fn invalid_argument_carries_one_bad_request_and_error_info() {
        let status = to_status(Error::InvalidArgument {
            reason: InvalidReason::FieldViolations,
            violations: vec![
                FieldViolation::new("a", "bad a"),
                FieldViolation::new("b", "bad b"),
            ],
        });
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad = details.bad_request().expect("BadRequest");
        assert_eq!(bad.field_violations.len(), 2);
        let info = details.error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "FIELD_VIOLATIONS");
        assert_eq!(info.domain, ERROR_DOMAIN);
    }

    #[test]
    fn big_answers_fit_in_trailers() {
        let violations: Vec<_> = (0..100)
            .map(|i| {
                FieldViolation::new(format!("contact_info.f[{i}].phone_number"), "x".repeat(300))
            })
            .collect();
        let status = to_status(Error::invalid(violations));
        assert!(
            status.message().len() <= MESSAGE_BUDGET_BYTES,
            "{}",
            status.message().len()
        );
        // The encoded google.rpc.Status repeats the message beside the details.
        let encoded = status.details().len();
        assert!(encoded <= ENCODED_DETAILS_MAX_BYTES, "{encoded}");
        let details = status.get_error_details();
        let listed = &details.bad_request().expect("BadRequest").field_violations;
        assert!(listed.len() > 10 && listed.len() < 100, "{}", listed.len());
        assert_eq!(
            listed.last().map(|v| v.description.as_str()),
            Some(MORE_VIOLATIONS)
        );
    }

    #[test]
    fn store_failures_hide_their_detail() {
        let s = to_status(Error::Unavailable {
            detail: "read contact info failed (08006)".into(),
        });
        assert_eq!(s.code(), Code::Unavailable);
        assert!(!s.message().contains("08006"));
        let s = to_status(Error::Internal {
            detail: "stored contact fields do not decode".into(),
        });
        assert_eq!(s.code(), Code::Internal);
        assert_eq!(s.message(), "internal error");
        assert_eq!(to_status(Error::EtagMismatch).code(), Code::Aborted);
    }

    /// The guard's and WatchContacts' refusals keep the codes and messages
    /// they always had, and now name their reason too.
    #[test]
    fn serving_refusals_keep_their_codes_and_messages_and_name_a_reason() {
        let cases = [
            (
                Error::Overloaded,
                Code::ResourceExhausted,
                "the server is at its limit of calls in flight; retry with backoff",
                "OVERLOADED",
            ),
            (
                Error::RequestTooLarge { limit_kib: 64 },
                Code::ResourceExhausted,
                "the request is larger than the 64 KiB this service accepts",
                "REQUEST_TOO_LARGE",
            ),
            (
                Error::DeadlineExceeded,
                Code::DeadlineExceeded,
                "the call's deadline passed before it finished; nothing more is done for it",
                "DEADLINE_EXCEEDED",
            ),
            (
                Error::WatchConsumerTooSlow,
                Code::Aborted,
                "the consumer fell behind; resubscribe",
                "WATCH_CONSUMER_TOO_SLOW",
            ),
            (
                Error::ShuttingDown,
                Code::Unavailable,
                "the server is shutting down; resubscribe",
                "SERVER_SHUTTING_DOWN",
            ),
        ];
        for (error, code, message, reason) in cases {
            let got = to_status(error.clone());
            assert_eq!(got.code(), code, "{error:?}");
            assert_eq!(got.message(), message, "{error:?}");
            let details = got.get_error_details();
            let info = details.error_info().expect("ErrorInfo");
            assert_eq!(
                (info.reason.as_str(), info.domain.as_str()),
                (reason, ERROR_DOMAIN)
            );
        }
        let too_large = to_status(Error::RequestTooLarge { limit_kib: 64 });
        let info = too_large.get_error_details();
        assert_eq!(
            info.error_info()
                .map(|i| i.metadata.get("limit_kib").cloned()),
            Some(Some("64".to_owned()))
        );
    }

    /// Every UNAVAILABLE and RESOURCE_EXHAUSTED says when to retry, spread
    /// around a typical pause so that callers refused together do not come
    /// back together; no other code does.
    #[test]
    fn retryable_codes_carry_a_spread_retry_delay() {
        let errors = [
            (Error::Overloaded, SHED_RETRY),
            (Error::RequestTooLarge { limit_kib: 1 }, SHED_RETRY),
            (Error::ShuttingDown, SHUTDOWN_RETRY),
            (Error::Unavailable { detail: "x".into() }, STORE_RETRY),
        ];
        for (error, typical) in errors {
            let delays: Vec<Duration> = (0..50)
                .map(|_| {
                    let status = to_status(error.clone());
                    assert!(
                        matches!(status.code(), Code::Unavailable | Code::ResourceExhausted),
                        "{error:?}"
                    );
                    let retry = status.get_error_details().retry_info().cloned();
                    retry
                        .and_then(|r| r.retry_delay)
                        .expect("RetryInfo with a delay")
                })
                .collect();
            for d in &delays {
                assert!(
                    *d >= typical / 2 && *d < typical * 3 / 2,
                    "{error:?}: {d:?}"
                );
            }
            let (min, max) = (delays.iter().min(), delays.iter().max());
            assert!(
                max.zip(min).is_some_and(|(a, b)| *a - *b > typical / 10),
                "{error:?}: not spread {delays:?}"
            );
        }
        for error in [
            Error::EtagMismatch,
            Error::DeadlineExceeded,
            Error::WatchConsumerTooSlow,
        ] {
            assert!(to_status(error).get_error_details().retry_info().is_none());
        }
        let tonics = with_details(Code::Unavailable, "h2 protocol error");
        assert!(tonics.get_error_details().retry_info().is_some());
        let unimplemented = with_details(Code::Unimplemented, "");
        let details = unimplemented.get_error_details();
        assert_eq!(
            details.error_info().map(|i| i.reason.as_str()),
            Some("UNIMPLEMENTED")
        );
        assert!(details.retry_info().is_none());
    }
}
