//! Address verification states as the proto's `AddressVerification`.

use crate::domain::{Verification, VerificationState};
use crate::pb;

fn state_pb(s: VerificationState) -> pb::address_verification::State {
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
