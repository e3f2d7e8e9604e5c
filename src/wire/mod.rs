//! The API's messages as bytes: a saved contact info encoded once (its ready
//! form, which the stores keep and the cache holds), read back in place, and
//! sent as it is through a tonic codec. Below the API and the stores, above
//! the domain; the only place besides the API that knows the proto's field
//! numbers.
mod answer;
mod codec;
mod event;
mod ready;
mod verification;
mod view;

pub use answer::{ResolutionOut, gate_answer};
pub use codec::{Encoded, EncodedCodec};
pub use event::{encode_event, portal_user_pb, with_sequence};
pub use ready::{Ready, STORED_FORMAT_V1};
pub use verification::address_verification_pb;
pub use view::{ContactInfoView, ContactView, Malformed, SupportView, WindowView};

use prost::bytes::BufMut;
use prost::encoding::{WireType, encode_key, encode_varint};

use chrono::{DateTime, Utc};

use crate::domain::{Field, Weekday};

/// The `ContactInfo` field number of a top-level field.
pub fn field_number(field: Field) -> u32 {
    match field {
        Field::AlertContacts => 2,
        Field::TechnicalEmergencyContacts => 3,
        Field::TechnicalNonEmergencyContacts => 4,
        Field::MerchantIssuesContacts => 5,
        Field::PlatformOperationalContacts => 6,
        Field::UserFacingOperationalContacts => 7,
        Field::OperationalSupport => 8,
    }
}

/// The top-level field a `ContactInfo` field number is, if it is one of the
/// editable fields (name, etag and times are not).
pub fn field_of(number: u32) -> Option<Field> {
    Field::ALL.into_iter().find(|f| field_number(*f) == number)
}

/// `DayOfWeek`'s numbers: Monday 1 to Sunday 7, each a one-byte varint.
fn day_number(d: Weekday) -> u8 {
    match d {
        Weekday::Monday => 1,
        Weekday::Tuesday => 2,
        Weekday::Wednesday => 3,
        Weekday::Thursday => 4,
        Weekday::Friday => 5,
        Weekday::Saturday => 6,
        Weekday::Sunday => 7,
    }
}

/// A proto3 string field; empty is the default and is not written.
fn put_str(tag: u32, s: &str, buf: &mut impl BufMut) {
    if s.is_empty() {
        return;
    }
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(s.len() as u64, buf);
    buf.put_slice(s.as_bytes());
}

/// `google.protobuf.Timestamp`'s two fields, as `api::convert::timestamp`
/// sets them (a leap second folds into its last nanosecond). Read out of a
/// `DateTime` once per answer: each reading counts days from the calendar.
#[derive(Debug, Clone, Copy)]
struct Stamp {
    seconds: i64,
    nanos: u32,
}

impl Stamp {
    fn of(t: DateTime<Utc>) -> Self {
        Self {
            seconds: t.timestamp(),
            nanos: t.timestamp_subsec_nanos().min(999_999_999),
        }
    }

    /// Its encoded length (without the message's key and length).
    fn len(self) -> usize {
        let mut len = 0;
        if self.seconds != 0 {
            len += 1 + prost::encoding::encoded_len_varint(self.seconds as u64);
        }
        if self.nanos != 0 {
            len += 1 + prost::encoding::encoded_len_varint(u64::from(self.nanos));
        }
        len
    }

    /// Its fields (the caller writes the message's key and length).
    fn put(self, buf: &mut impl BufMut) {
        if self.seconds != 0 {
            encode_key(1, WireType::Varint, buf);
            encode_varint(self.seconds as u64, buf);
        }
        if self.nanos != 0 {
            encode_key(2, WireType::Varint, buf);
            encode_varint(u64::from(self.nanos), buf);
        }
    }
}

/// A time as the generated `Timestamp` message, for the messages `wire`
/// builds with prost (events, verification states).
fn timestamp_pb(t: DateTime<Utc>) -> prost_types::Timestamp {
    let stamp = Stamp::of(t);
    prost_types::Timestamp {
        seconds: stamp.seconds,
        nanos: i32::try_from(stamp.nanos).unwrap_or(999_999_999),
    }
}

/// A `Timestamp`'s fields (the caller writes the message's key and length).
fn put_timestamp(t: DateTime<Utc>, buf: &mut impl BufMut) {
    Stamp::of(t).put(buf);
}
