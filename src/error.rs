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

/// Every way a call can fail. Closed on purpose: adding a variant forces the
/// status mapping to decide what callers see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{}", describe_violations(.violations))]
    InvalidArgument {
        reason: InvalidReason,
        violations: Vec<FieldViolation>,
    },
    #[error("{name} not found")]
    NotFound { name: String },
    #[error("the etag does not match the stored one: the resource was changed since it was read")]
    EtagMismatch,
    /// The store could not be reached or timed out; a retry may succeed.
    /// `detail` is safe to log (no SQL text, no values).
    #[error("storage unavailable: {detail}")]
    Unavailable { detail: String },
    /// A fault a retry will not fix. `detail` is safe to log.
    #[error("internal error: {detail}")]
    Internal { detail: String },
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

fn describe_violations(violations: &[FieldViolation]) -> String {
    let mut out = String::from("invalid request");
    for (i, v) in violations.iter().enumerate() {
        out.push_str(if i == 0 { ": " } else { "; " });
        out.push_str(&v.field);
        out.push_str(": ");
        out.push_str(&v.description);
    }
    out
}

/// Collects violations so a request reports all its problems at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn push(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keeps `Some(value)` only when no violation was recorded.
    pub fn finish<T>(self, value: T) -> Result<T, Error> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(Error::invalid(self.0))
        }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}
