//! `google.protobuf.Timestamp` <-> time, within the range a Timestamp may hold.
use chrono::{DateTime, Utc};

use crate::error::Error;

/// `0001-01-01T00:00:00Z`, the first second a `google.protobuf.Timestamp` may hold.
pub const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
/// `9999-12-31T23:59:59Z`, the last second a `google.protobuf.Timestamp` may hold.
pub const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

/// A request timestamp as a time; violations on `field`. Only the protobuf
/// Timestamp range (years 1 to 9999) is a time: chrono holds far more, and
/// PostgreSQL refuses some of it (SQLSTATE 22008) where SQLite would quietly
/// compare it.
pub fn parse_time(t: &prost_types::Timestamp, field: &str) -> Result<DateTime<Utc>, Error> {
    time_of(t).ok_or_else(|| Error::invalid_field(field, TIMESTAMP_HINT))
}

pub const TIMESTAMP_HINT: &str =
    "must be a valid timestamp from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z";

/// The time a Timestamp holds, if it is one (see `parse_time`).
pub fn time_of(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    u32::try_from(t.nanos)
        .ok()
        .filter(|_| t.nanos < 1_000_000_000)
        .filter(|_| seconds_in_range(t.seconds))
        .and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos))
}

/// Whether `t` lies in the protobuf Timestamp range (for times decoded from
/// page tokens, which a caller can forge).
pub fn in_timestamp_range(t: DateTime<Utc>) -> bool {
    seconds_in_range(t.timestamp())
}

fn seconds_in_range(seconds: i64) -> bool {
    (MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&seconds)
}

/// A time as a response Timestamp.
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    // chrono represents a leap second as nanos >= 1e9; a Timestamp must keep
    // nanos below 1e9, so the leap second folds into its last nanosecond.
    let nanos = t.timestamp_subsec_nanos().min(999_999_999);
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(nanos).unwrap_or(999_999_999),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leap_second_timestamp_stays_valid() {
        let t = DateTime::from_timestamp(1_483_228_799, 1_500_000_000).expect("leap second");
        let ts = timestamp(t);
        assert_eq!(ts.seconds, 1_483_228_799);
        assert_eq!(ts.nanos, 999_999_999);
    }
}
