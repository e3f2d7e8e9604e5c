//! The service's one closed error type; `api::status` maps it to `tonic::Status`.
use std::fmt;

/// One invalid field of a request, named by its path in the request message.
///
/// `description` never repeats the offending value: values may be personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Resource types named in NOT_FOUND details.
pub const CONTACT_INFO_TYPE: &str = "partnerportal.contacts.v1.ContactInfo";
pub const PORTAL_USER_TYPE: &str = "partnerportal.contacts.v1.PortalUser";

/// Machine-readable reason of an INVALID_ARGUMENT, sent as `ErrorInfo.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidReason {
    /// One or more fields failed validation.
    FieldViolations,
    /// A `request_id` was reused with a different request.
    RequestIdReused,
    /// The gate was asked about an integration type the policy does not know.
    UnknownIntegrationType,
}

impl InvalidReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FieldViolations => "FIELD_VIOLATIONS",
            Self::RequestIdReused => "REQUEST_ID_REUSED",
            Self::UnknownIntegrationType => "UNKNOWN_INTEGRATION_TYPE",
        }
    }
}

/// One unmet precondition (AIP-193 `PreconditionFailure.Violation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreconditionViolation {
    /// UPPER_SNAKE kind, e.g. `NOT_A_PORTAL_USER`.
    pub kind: &'static str,
    /// What it concerns, e.g. a field path. Never a personal value.
    pub subject: String,
    pub description: String,
}

/// Every way a call can fail. Closed on purpose: adding a variant forces the
/// status mapping to decide what callers see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{}", describe_violations(.violations))]
    InvalidArgument {
        reason: InvalidReason,
        violations: Vec<FieldViolation>,
    },
    /// No credentials, or credentials that do not verify.
    #[error("{message}")]
    Unauthenticated { message: String },
    /// The caller may not do this; the message never tells whether the
    /// resource exists.
    #[error("{message}")]
    PermissionDenied { message: String },
    /// `resource_type` is the proto message, e.g.
    /// `partnerportal.contacts.v1.ContactInfo`.
    #[error("{name} not found")]
    NotFound {
        resource_type: &'static str,
        name: String,
    },
    #[error("{name} already exists")]
    AlreadyExists { name: String },
    /// The request is valid but the system is not in a state that allows it.
    #[error("{}", describe_preconditions(.violations))]
    FailedPrecondition {
        violations: Vec<PreconditionViolation>,
    },
    #[error("the etag does not match the stored one: the resource was changed since it was read")]
    EtagMismatch,
    /// The store could not be reached or timed out; a retry may succeed.
    /// `detail` is safe to log (no SQL text, no values).
    #[error("storage unavailable: {detail}")]
    Unavailable { detail: String },
    /// A fault a retry will not fix. `detail` is safe to log.
    #[error("internal error: {detail}")]
    Internal { detail: String },
    /// The server is at its limit of calls in flight: the call was shed
    /// before it started.
    #[error("the server is at its limit of calls in flight; retry with backoff")]
    Overloaded,
    /// The request message is larger than the server accepts.
    #[error("the request is larger than the {limit_kib} KiB this service accepts")]
    RequestTooLarge { limit_kib: usize },
    /// The call's deadline passed while it was being served.
    #[error("the call's deadline passed before it finished; nothing more is done for it")]
    DeadlineExceeded,
    /// A WatchContacts consumer fell further behind than its stream buffers.
    #[error("the consumer fell behind; resubscribe")]
    WatchConsumerTooSlow,
    /// The server is draining: open streams end with this, while unary calls
    /// in flight finish.
    #[error("the server is shutting down; resubscribe")]
    ShuttingDown,
}

impl Error {
    pub fn invalid(violations: Vec<FieldViolation>) -> Self {
        Self::InvalidArgument {
            reason: InvalidReason::FieldViolations,
            violations,
        }
    }

    pub fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::invalid(vec![FieldViolation::new(field, description)])
    }
}

/// How many violations the status message spells out; the `BadRequest`
/// details list more.
const MESSAGE_VIOLATIONS: usize = 5;

/// At most this many violations are collected from one request: a request
/// can hold many thousands of mistakes, and nobody fixes them from one list.
pub const MAX_VIOLATIONS: usize = 100;

/// The last entry of a list that was cut short.
pub const MORE_VIOLATIONS: &str = "further violations not listed";

fn describe_preconditions(violations: &[PreconditionViolation]) -> String {
    let mut out = String::from("failed precondition");
    for (i, v) in violations.iter().take(MESSAGE_VIOLATIONS).enumerate() {
        out.push_str(if i == 0 { ": " } else { "; " });
        out.push_str(&v.subject);
        out.push_str(": ");
        out.push_str(&v.description);
    }
    out
}

fn describe_violations(violations: &[FieldViolation]) -> String {
    let mut out = String::from("invalid request");
    for (i, v) in violations.iter().take(MESSAGE_VIOLATIONS).enumerate() {
        out.push_str(if i == 0 { ": " } else { "; " });
        out.push_str(&v.field);
        out.push_str(": ");
        out.push_str(&v.description);
    }
    if violations.len() > MESSAGE_VIOLATIONS {
        out.push_str("; more in the BadRequest details");
    }
    out
}

/// Joins a parsed value with one more field check, so that a request with
/// problems in both reports them together.
pub fn join_checks<T, U>(
    first: Result<T, Error>,
    second: Result<U, FieldViolation>,
) -> Result<(T, U), Error> {
    match (first, second) {
        (Ok(t), Ok(u)) => Ok((t, u)),
        (
            Err(Error::InvalidArgument {
                reason,
                mut violations,
            }),
            Err(v),
        ) => {
            violations.push(v);
            Err(Error::InvalidArgument { reason, violations })
        }
        (Err(e), _) => Err(e),
        (Ok(_), Err(v)) => Err(Error::invalid(vec![v])),
    }
}

/// Collects violations so a request reports all its problems at once.
#[derive(Debug, Default)]
pub struct Violations {
    kept: Vec<FieldViolation>,
    cut: bool,
}

impl Violations {
    pub fn push(&mut self, field: impl Into<String>, description: impl Into<String>) {
        if self.kept.len() < MAX_VIOLATIONS {
            self.kept.push(FieldViolation::new(field, description));
        } else {
            self.cut = true;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// Keeps `value` only when no violation was recorded.
    pub fn finish<T>(mut self, value: T) -> Result<T, Error> {
        if self.is_empty() {
            return Ok(value);
        }
        if self.cut {
            self.kept.push(FieldViolation::new("", MORE_VIOLATIONS));
        }
        Err(Error::invalid(self.kept))
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_are_capped() {
        let mut v = Violations::default();
        for i in 0..250 {
            v.push(format!("f{i}"), "bad");
        }
        let Err(Error::InvalidArgument { violations, .. }) = v.finish(()) else {
            panic!("violations must fail");
        };
        assert_eq!(violations.len(), MAX_VIOLATIONS + 1);
        assert_eq!(violations[MAX_VIOLATIONS].description, MORE_VIOLATIONS);
        let message = Error::invalid(violations).to_string();
        assert!(
            message.contains("f4: bad; more in the BadRequest details"),
            "{message}"
        );
        assert!(!message.contains("f5:"), "{message}");
    }
}
