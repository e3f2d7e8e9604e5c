//! Address verification states as the proto's `AddressVerification`: as a
//! message for the RPCs that build one, and as `ContactInfo` field 12
//! entries appended to a ready form's bytes (a repeated field may be
//! extended by concatenation), so GetContacts adds them without re-encoding
//! what was encoded when the contact info was saved.
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint};

use crate::domain::{Verification, VerificationState};
use crate::pb;

/// `ContactInfo.address_verifications`' field number.
const ADDRESS_VERIFICATIONS_FIELD: u32 = 12;

pub fn state_pb(s: VerificationState) -> pb::address_verification::State {
    use pb::address_verification::State;
    match s {
        VerificationState::Unverified => State::Unverified,
        VerificationState::Pending => State::Pending,
        VerificationState::Verified => State::Verified,
        VerificationState::Failed => State::Failed,
    }
}

pub fn address_verification_pb(email: &str, v: &Verification) -> pb::AddressVerification {
    let stamp = |t: chrono::DateTime<chrono::Utc>| {
        let s = super::Stamp::of(t);
        prost_types::Timestamp {
            seconds: s.seconds,
            nanos: i32::try_from(s.nanos).unwrap_or(999_999_999),
        }
    };
    pb::AddressVerification {
        email: email.to_owned(),
        state: state_pb(v.state) as i32,
        verify_time: v.verify_time.map(stamp),
        expire_time: v.expire_time.map(stamp),
    }
}

/// Appends `entries` to an encoded `ContactInfo` as its
/// `address_verifications`.
pub fn append_verifications<'a>(
    encoded: &mut Vec<u8>,
    entries: impl IntoIterator<Item = (&'a str, Verification)>,
) {
    for (email, v) in entries {
        let entry = address_verification_pb(email, &v);
        encode_key(
            ADDRESS_VERIFICATIONS_FIELD,
            WireType::LengthDelimited,
            encoded,
        );
        encode_varint(entry.encoded_len() as u64, encoded);
        entry.encode_raw(encoded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_entries_decode_as_the_field() {
        let mut bytes = pb::ContactInfo {
            name: "partners/acme/environments/sandbox/contactInfo".to_owned(),
            ..Default::default()
        }
        .encode_to_vec();
        let verified = Verification {
            state: VerificationState::Verified,
            verify_time: Some(chrono::DateTime::UNIX_EPOCH),
            expire_time: Some(chrono::DateTime::UNIX_EPOCH + chrono::Duration::days(365)),
        };
        append_verifications(
            &mut bytes,
            [
                ("a@acme.example", verified),
                ("b@acme.example", Verification::UNVERIFIED),
            ],
        );
        let info = pb::ContactInfo::decode(bytes.as_slice()).expect("decode");
        assert_eq!(info.name, "partners/acme/environments/sandbox/contactInfo");
        let got: Vec<_> = info
            .address_verifications
            .iter()
            .map(|v| (v.email.as_str(), v.state()))
            .collect();
        use pb::address_verification::State;
        assert_eq!(
            got,
            [
                ("a@acme.example", State::Verified),
                ("b@acme.example", State::Unverified)
            ]
        );
        assert_eq!(
            info.address_verifications[0].expire_time.map(|t| t.seconds),
            Some(365 * 24 * 3600)
        );
    }
}
