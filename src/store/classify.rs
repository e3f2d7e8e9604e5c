//! Turns sqlx errors into the service's error: retryable ones become
//! UNAVAILABLE, the rest INTERNAL, and nothing of the SQL or its values leaks.
use crate::error::Error;

/// What the backends need to know about a database error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Another transaction got there first (unique violation): try again.
    Conflict,
    /// Serialization failure, deadlock, lock timeout: try again.
    Contention,
    /// The database is unreachable, shutting down, or out of connections.
    Unavailable,
    Other,
}

pub(crate) fn classify(e: &sqlx::Error) -> Class {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => Class::Unavailable,
        sqlx::Error::Database(db) => {
            let code = db.code();
            match code.as_deref() {
                // PostgreSQL SQLSTATEs.
                Some("23505") => Class::Conflict,
                Some("40001" | "40P01" | "55P03") => Class::Contention,
                Some(c)
                    if c.starts_with("08")
                        || c.starts_with("53")
                        || c.starts_with("57P")
                        || c == "57014" =>
                {
                    Class::Unavailable
                }
                // SQLite extended result codes: BUSY and LOCKED families,
                // UNIQUE constraint (2067) and PRIMARY KEY (1555).
                Some(c)
                    if db.kind() == sqlx::error::ErrorKind::UniqueViolation
                        || c == "2067"
                        || c == "1555" =>
                {
                    Class::Conflict
                }
                Some(c) if is_sqlite_busy(c) => Class::Contention,
                _ => Class::Other,
            }
        }
        _ => Class::Other,
    }
}

fn is_sqlite_busy(code: &str) -> bool {
    // Primary code is the low byte: 5 = SQLITE_BUSY, 6 = SQLITE_LOCKED.
    code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
}

/// The error a caller sees; `what` names the operation for the log.
pub(crate) fn to_error(e: &sqlx::Error, what: &'static str) -> Error {
    let code = match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    };
    let class = classify(e);
    // Only the kind and SQLSTATE are logged: database messages can quote
    // row values, which are personal data here.
    tracing::warn!(
        operation = what,
        ?class,
        sqlstate = code.as_deref().unwrap_or(""),
        kind = error_kind(e),
        "store error"
    );
    let detail = format!(
        "{what} failed ({})",
        code.as_deref().unwrap_or(error_kind(e))
    );
    match class {
        Class::Unavailable | Class::Contention => Error::Unavailable { detail },
        Class::Conflict | Class::Other => Error::Internal { detail },
    }
}

fn error_kind(e: &sqlx::Error) -> &'static str {
    match e {
        sqlx::Error::PoolTimedOut => "pool timed out",
        sqlx::Error::PoolClosed => "pool closed",
        sqlx::Error::Io(_) => "i/o error",
        sqlx::Error::Tls(_) => "tls error",
        sqlx::Error::WorkerCrashed => "sqlite worker crashed",
        sqlx::Error::Database(_) => "database error",
        sqlx::Error::RowNotFound => "row not found",
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => "decode error",
        sqlx::Error::Protocol(_) => "protocol error",
        sqlx::Error::Migrate(_) => "migration error",
        _ => "other error",
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    /// A database error as a driver would report it; the message quotes a
    /// value, as PostgreSQL's constraint messages do.
    #[derive(Debug)]
    struct FakeDbError(&'static str);

    impl std::fmt::Display for FakeDbError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Key (email)=(secret@example.com) already exists")
        }
    }

    impl std::error::Error for FakeDbError {}

    impl sqlx::error::DatabaseError for FakeDbError {
        fn message(&self) -> &str {
            "Key (email)=(secret@example.com) already exists"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn db(code: &'static str) -> sqlx::Error {
        sqlx::Error::Database(Box::new(FakeDbError(code)))
    }

    #[test]
    fn retryable_failures_are_unavailable() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        for e in [
            sqlx::Error::PoolTimedOut,
            io,
            db("08006"),
            db("57P01"),
            db("53300"),
            db("40001"),
            db("40P01"),
            db("5"),
            db("517"),
        ] {
            assert!(
                matches!(to_error(&e, "op"), Error::Unavailable { .. }),
                "{e:?}"
            );
        }
    }

    #[test]
    fn other_failures_are_internal_and_quote_nothing() {
        for e in [
            db("23505"),
            db("42601"),
            db("2067"),
            sqlx::Error::RowNotFound,
        ] {
            let err = to_error(&e, "write contact info");
            let Error::Internal { detail } = &err else {
                panic!("{e:?} gave {err:?}");
            };
            assert!(!detail.contains("secret@example.com"), "{detail}");
            assert!(detail.starts_with("write contact info failed"), "{detail}");
        }
    }
}
