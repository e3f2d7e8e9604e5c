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
    pb::AddressVerification {
        email: email.to_owned(),
        state: state_pb(v.state) as i32,
        verify_time: v.verify_time.map(super::timestamp_pb),
        expire_time: v.expire_time.map(super::timestamp_pb),
    }
}
