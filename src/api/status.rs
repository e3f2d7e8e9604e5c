//! The one mapping from the service's `Error` to a gRPC `Status` (AIP-193).
use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::Error;

/// `google.rpc.ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "partner-contacts";

/// Exhaustive on purpose: a new error variant must decide what callers see.
pub fn to_status(error: Error) -> Status {
    let message = error.to_string();
    match error {
        Error::InvalidArgument { reason, violations } => {
            let mut details = ErrorDetails::new();
            for v in violations {
                details.add_bad_request_violation(v.field, v.description);
            }
            details.set_error_info(reason.as_str(), ERROR_DOMAIN, HashMap::new());
            Status::with_error_details(Code::InvalidArgument, message, details)
        }
        Error::NotFound { name } => {
            let mut details = ErrorDetails::with_resource_info(
                "partnerportal.contacts.v1.ContactInfo",
                name,
                "",
                "nothing was saved for this name yet",
            );
            details.set_error_info("RESOURCE_NOT_FOUND", ERROR_DOMAIN, HashMap::new());
            Status::with_error_details(Code::NotFound, message, details)
        }
        Error::EtagMismatch => Status::with_error_details(
            Code::Aborted,
            message,
            ErrorDetails::with_error_info("ETAG_MISMATCH", ERROR_DOMAIN, HashMap::new()),
        ),
        Error::Unavailable { detail } => {
            tracing::warn!(%detail, "store unavailable");
            Status::with_error_details(
                Code::Unavailable,
                "the contact store is unavailable; retry with backoff",
                ErrorDetails::with_error_info("STORE_UNAVAILABLE", ERROR_DOMAIN, HashMap::new()),
            )
        }
        Error::Internal { detail } => {
            tracing::error!(%detail, "internal error");
            Status::with_error_details(
                Code::Internal,
                "internal error",
                ErrorDetails::with_error_info("INTERNAL", ERROR_DOMAIN, HashMap::new()),
            )
        }
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
}
