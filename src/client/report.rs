//! Exit codes of the client subcommands and how a failure is told: a line
//! (and the field paths of the file) on stderr, or one JSON object on stdout.
use serde::Serialize;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The documented exit codes (README, "Pipelines and contacts as code").
/// Scripts branch on these numbers: never renumber one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Gate open; `get` printed; `apply` saved, found nothing to change, or
    /// its dry run passed.
    Success = 0,
    /// `gate`: the gate is closed.
    GateClosed = 1,
    /// Bad flags, an unreadable or malformed file, or INVALID_ARGUMENT.
    Usage = 2,
    /// No answer within `--timeout`: unreachable, UNAVAILABLE, overloaded or
    /// out of time, after retries.
    Unavailable = 3,
    /// UNAUTHENTICATED or PERMISSION_DENIED.
    Refused = 4,
    /// Anything else (FAILED_PRECONDITION, INTERNAL, ...).
    Failed = 5,
    /// `apply`: the stored contact info changed since the etag (ABORTED).
    Conflict = 6,
    /// `get`: nothing is saved under that name (NOT_FOUND).
    NotFound = 7,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The exit code of a call that failed with `code`.
    pub fn of(code: Code) -> Exit {
        match code {
            Code::InvalidArgument | Code::OutOfRange => Exit::Usage,
            Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => {
                Exit::Unavailable
            }
            Code::Unauthenticated | Code::PermissionDenied => Exit::Refused,
            Code::Aborted => Exit::Conflict,
            Code::NotFound => Exit::NotFound,
            Code::Ok
            | Code::Cancelled
            | Code::Unknown
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::Unimplemented
            | Code::Internal
            | Code::DataLoss => Exit::Failed,
        }
    }
}

/// The canonical name of a gRPC code, as the JSON output and messages say it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Why a subcommand did not succeed, and its exit code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    #[serde(skip)]
    pub exit: Exit,
    /// A gRPC code name; local problems (flags, files) are INVALID_ARGUMENT.
    pub code: &'static str,
    pub message: String,
    /// The server's field violations (BadRequest, PreconditionFailure), with
    /// paths as the file names them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub field_violations: Vec<Violation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub field: String,
    pub description: String,
}

impl Failure {
    /// A problem with the command line or a local file.
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            exit: Exit::Usage,
            code: code_name(Code::InvalidArgument),
            message: message.into(),
            field_violations: Vec::new(),
        }
    }

    /// A refused or failed call, with the server's field paths mapped to the
    /// file's (`contact_info.x[0].email` is `x[0].email` in the file).
    pub fn of_status(status: &Status) -> Self {
        let mut field_violations = Vec::new();
        if let Some(bad) = status.get_details_bad_request() {
            field_violations.extend(bad.field_violations.into_iter().map(|v| Violation {
                field: file_path(&v.field),
                description: v.description,
            }));
        }
        if let Some(failure) = status.get_details_precondition_failure() {
            field_violations.extend(failure.violations.into_iter().map(|v| Violation {
                field: file_path(&v.subject),
                description: v.description,
            }));
        }
        Failure {
            exit: Exit::of(status.code()),
            code: code_name(status.code()),
            message: status.message().to_owned(),
            field_violations,
        }
    }

    /// The same failure with `context` before its message.
    pub fn context(mut self, context: impl std::fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// Tells it on stderr: `partner-contacts COMMAND: CODE: message`, then one
    /// line per field violation.
    pub fn print_text(&self, command: &str) {
        eprintln!(
            "partner-contacts {command}: {}: {}",
            self.code, self.message
        );
        for v in &self.field_violations {
            let field = if v.field.is_empty() {
                "(request)"
            } else {
                &v.field
            };
            eprintln!("  {field}: {}", v.description);
        }
    }

    /// Tells it on stdout as `{"error": {...}}`, for `--output json`.
    pub fn print_json(&self) {
        #[derive(Serialize)]
        struct Wrapped<'a> {
            error: ErrorJson<'a>,
        }
        #[derive(Serialize)]
        struct ErrorJson<'a> {
            #[serde(flatten)]
            failure: &'a Failure,
            exit_code: u8,
        }
        let wrapped = Wrapped {
            error: ErrorJson {
                failure: self,
                exit_code: self.exit.code(),
            },
        };
        match serde_json::to_string(&wrapped) {
            Ok(line) => println!("{line}"),
            // Only strings and numbers: serialising cannot fail, but say so
            // rather than print nothing.
            Err(e) => eprintln!("partner-contacts: cannot write JSON: {e}"),
        }
    }
}

/// A server field path as the contact info file names it.
pub fn file_path(server_path: &str) -> String {
    server_path
        .strip_prefix("contact_info.")
        .unwrap_or(server_path)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_paths_become_file_paths() {
        assert_eq!(
            file_path("contact_info.technical_emergency_contacts[0].email"),
            "technical_emergency_contacts[0].email"
        );
        assert_eq!(file_path("request_id"), "request_id");
    }

    #[test]
    fn exit_codes_are_the_documented_numbers() {
        let table = [
            (Exit::Success, 0),
            (Exit::GateClosed, 1),
            (Exit::Usage, 2),
            (Exit::Unavailable, 3),
            (Exit::Refused, 4),
            (Exit::Failed, 5),
            (Exit::Conflict, 6),
            (Exit::NotFound, 7),
        ];
        for (exit, code) in table {
            assert_eq!(exit.code(), code, "{exit:?}");
        }
        assert_eq!(Exit::of(Code::InvalidArgument), Exit::Usage);
        assert_eq!(Exit::of(Code::Unavailable), Exit::Unavailable);
        assert_eq!(Exit::of(Code::PermissionDenied), Exit::Refused);
        assert_eq!(Exit::of(Code::Unauthenticated), Exit::Refused);
        assert_eq!(Exit::of(Code::Aborted), Exit::Conflict);
        assert_eq!(Exit::of(Code::Internal), Exit::Failed);
    }
}
