//! The one mapping from the service's `Error` to a gRPC `Status` (AIP-193).
use std::collections::HashMap;

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
            with_reason(
                Code::Unavailable,
                "the contact store is unavailable; retry with backoff",
                "STORE_UNAVAILABLE",
            )
        }
        Error::Internal { detail } => {
            tracing::error!(%detail, "internal error");
            with_reason(Code::Internal, "internal error", "INTERNAL")
        }
        // The guard's refusals go out bare, code and message only, as they
        // always have: giving them a reason is a change callers would see,
        // to be made on its own.
        Error::Overloaded | Error::RequestTooLarge { .. } => {
            Status::new(Code::ResourceExhausted, message)
        }
        Error::DeadlineExceeded => Status::new(Code::DeadlineExceeded, message),
        Error::WatchConsumerTooSlow => {
            with_reason(Code::Aborted, message, "WATCH_CONSUMER_TOO_SLOW")
        }
        Error::ShuttingDown => with_reason(Code::Unavailable, message, "SERVER_SHUTTING_DOWN"),
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

    /// What the guard and WatchContacts sent before they came through here,
    /// built as they built it.
    #[test]
    fn serving_refusals_keep_their_codes_messages_and_reasons() {
        let bare = |code, message: &str| Status::new(code, message);
        let with_info = |code, message: &str, reason: &str| {
            Status::with_error_details(
                code,
                message,
                ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new()),
            )
        };
        let cases = [
            (
                Error::Overloaded,
                bare(
                    Code::ResourceExhausted,
                    "the server is at its limit of calls in flight; retry with backoff",
                ),
            ),
            (
                Error::RequestTooLarge { limit_kib: 64 },
                bare(
                    Code::ResourceExhausted,
                    "the request is larger than the 64 KiB this service accepts",
                ),
            ),
            (
                Error::DeadlineExceeded,
                bare(
                    Code::DeadlineExceeded,
                    "the call's deadline passed before it finished; nothing more is done for it",
                ),
            ),
            (
                Error::WatchConsumerTooSlow,
                with_info(
                    Code::Aborted,
                    "the consumer fell behind; resubscribe",
                    "WATCH_CONSUMER_TOO_SLOW",
                ),
            ),
            (
                Error::ShuttingDown,
                with_info(
                    Code::Unavailable,
                    "the server is shutting down; resubscribe",
                    "SERVER_SHUTTING_DOWN",
                ),
            ),
        ];
        for (error, want) in cases {
            let got = to_status(error.clone());
            assert_eq!(got.code(), want.code(), "{error:?}");
            assert_eq!(got.message(), want.message(), "{error:?}");
            assert_eq!(got.details(), want.details(), "{error:?}");
        }
    }
}
