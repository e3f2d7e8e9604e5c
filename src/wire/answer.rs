//! Answers encoded straight from the ready form's borrowed strings:
//! ResolveRecipients' and CheckOnboardingGate's responses are written once,
//! where building a message of owned strings (five per recipient) and
//! encoding it cost the hottest calls a dozen allocations. Byte-identical to
//! prost's encoding of the same message (tested).
use chrono::{DateTime, Utc};

use super::{ContactView, Stamp, put_str};
use crate::domain::{Field, FindingReason, GateResult, VerificationState};
use prost::bytes::{BufMut, Bytes};
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

// Field numbers of contacts_service.proto.
const RESPONSE_RECIPIENTS: u32 = 1;
const RESPONSE_FALLBACK: u32 = 2;
const RESPONSE_SUPPORT_OPEN: u32 = 3;
const RESPONSE_AT_TIME: u32 = 4;
const RESPONSE_ETAG: u32 = 5;
const RECIPIENT_EMAIL: u32 = 1;
const RECIPIENT_DISPLAY_NAME: u32 = 2;
const RECIPIENT_LANGUAGE_CODE: u32 = 3;
const RECIPIENT_PHONE_NUMBER: u32 = 4;
const RECIPIENT_FIELD: u32 = 5;
const RECIPIENT_VERIFICATION_STATE: u32 = 6;
const FALLBACK_REQUESTED_FIELD: u32 = 1;
const FALLBACK_USED_FIELD: u32 = 2;
const FALLBACK_RULE: u32 = 3;
const GATE_OPEN: u32 = 1;
const GATE_FINDINGS: u32 = 2;
const GATE_ETAG: u32 = 3;
const GATE_EVALUATE_TIME: u32 = 4;
const GATE_INTEGRATION_TYPE: u32 = 5;
const FINDING_FIELD: u32 = 1;
const FINDING_REASON: u32 = 2;
const FINDING_MESSAGE: u32 = 3;

/// `GateFindingReason`'s numbers.
fn reason_number(r: FindingReason) -> u64 {
    match r {
        FindingReason::RequiredFieldMissing => 1,
        FindingReason::NotAPortalUser => 2,
        FindingReason::NotVerified => 3,
    }
}

/// A `CheckOnboardingGateResponse`: the verdict, the etag of what was judged
/// (empty when nothing is saved) and when.
pub fn gate_answer(result: &GateResult, etag: &str, evaluate_time: DateTime<Utc>) -> Bytes {
    let evaluate_time = Stamp::of(evaluate_time);
    let finding_len = |f: &crate::domain::Finding| {
        str_len(FINDING_FIELD, f.field.as_str())
            + 1
            + encoded_len_varint(reason_number(f.reason))
            + str_len(FINDING_MESSAGE, &f.message)
    };
    let open = result.open();
    let len = if open { 2 } else { 0 }
        + result
            .findings
            .iter()
            .map(|f| message_len(GATE_FINDINGS, finding_len(f)))
            .sum::<usize>()
        + str_len(GATE_ETAG, etag)
        + message_len(GATE_EVALUATE_TIME, evaluate_time.len())
        + str_len(GATE_INTEGRATION_TYPE, result.integration_type);
    let mut buf = Vec::with_capacity(len);
    if open {
        encode_key(GATE_OPEN, WireType::Varint, &mut buf);
        encode_varint(1, &mut buf);
    }
    for f in &result.findings {
        message_head(GATE_FINDINGS, finding_len(f), &mut buf);
        put_str(FINDING_FIELD, f.field.as_str(), &mut buf);
        encode_key(FINDING_REASON, WireType::Varint, &mut buf);
        encode_varint(reason_number(f.reason), &mut buf);
        put_str(FINDING_MESSAGE, &f.message, &mut buf);
    }
    put_str(GATE_ETAG, etag, &mut buf);
    message_head(GATE_EVALUATE_TIME, evaluate_time.len(), &mut buf);
    evaluate_time.put(&mut buf);
    put_str(GATE_INTEGRATION_TYPE, result.integration_type, &mut buf);
    Bytes::from(buf)
}

/// A `ResolveRecipientsResponse`, borrowed. `fallback` is the requested and
/// the used field; the rule's text is derived from them.
#[derive(Debug, Clone)]
pub struct ResolutionOut<'a> {
    /// Each contact with the field it was found in.
    pub recipients: &'a [(ContactView<'a>, Field)],
    /// Each recipient's verification state, in the same order; `None`:
    /// every one is UNVERIFIED (the partner has no verification facts).
    pub verification: Option<&'a [VerificationState]>,
    pub fallback: Option<(&'a str, &'a str)>,
    pub support_open: bool,
    pub at_time: DateTime<Utc>,
    pub etag: &'a str,
}

const RULE_MIDDLE: &str = " is empty: using ";

impl ResolutionOut<'_> {
    /// The encoded length, computed before writing (one allocation).
    pub fn encoded_len(&self) -> usize {
        self.len_with(Stamp::of(self.at_time))
    }

    fn len_with(&self, at_time: Stamp) -> usize {
        self.recipients
            .iter()
            .map(|(c, f)| message_len(RESPONSE_RECIPIENTS, recipient_len(c, *f)))
            .sum::<usize>()
            + self.fallback.map_or(0, |(r, u)| {
                message_len(RESPONSE_FALLBACK, fallback_len(r, u))
            })
            + if self.support_open { 2 } else { 0 }
            + message_len(RESPONSE_AT_TIME, at_time.len())
            + str_len(RESPONSE_ETAG, self.etag)
    }

    pub fn encode(&self) -> Bytes {
        let at_time = Stamp::of(self.at_time);
        let mut buf = Vec::with_capacity(self.len_with(at_time));
        for (i, (r, field)) in self.recipients.iter().enumerate() {
            message_head(RESPONSE_RECIPIENTS, recipient_len(r, *field), &mut buf);
            put_str(RECIPIENT_EMAIL, r.email, &mut buf);
            put_str(RECIPIENT_DISPLAY_NAME, r.display_name, &mut buf);
            put_str(RECIPIENT_LANGUAGE_CODE, r.language_code, &mut buf);
            put_str(RECIPIENT_PHONE_NUMBER, r.phone_number, &mut buf);
            put_str(RECIPIENT_FIELD, field.as_str(), &mut buf);
            let state = self
                .verification
                .and_then(|states| states.get(i))
                .copied()
                .unwrap_or(VerificationState::Unverified);
            encode_key(RECIPIENT_VERIFICATION_STATE, WireType::Varint, &mut buf);
            encode_varint(state_number(state), &mut buf);
        }
        if let Some((requested, used)) = self.fallback {
            message_head(RESPONSE_FALLBACK, fallback_len(requested, used), &mut buf);
            put_str(FALLBACK_REQUESTED_FIELD, requested, &mut buf);
            put_str(FALLBACK_USED_FIELD, used, &mut buf);
            encode_key(FALLBACK_RULE, WireType::LengthDelimited, &mut buf);
            encode_varint(rule_len(requested, used) as u64, &mut buf);
            buf.put_slice(requested.as_bytes());
            buf.put_slice(RULE_MIDDLE.as_bytes());
            buf.put_slice(used.as_bytes());
        }
        if self.support_open {
            encode_key(RESPONSE_SUPPORT_OPEN, WireType::Varint, &mut buf);
            encode_varint(1, &mut buf);
        }
        message_head(RESPONSE_AT_TIME, at_time.len(), &mut buf);
        at_time.put(&mut buf);
        put_str(RESPONSE_ETAG, self.etag, &mut buf);
        Bytes::from(buf)
    }
}

fn str_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        key_len(tag) + encoded_len_varint(s.len() as u64) + s.len()
    }
}

fn message_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// `AddressVerification.State`'s numbers (each a one-byte varint).
fn state_number(s: VerificationState) -> u64 {
    match s {
        VerificationState::Unverified => 1,
        VerificationState::Pending => 2,
        VerificationState::Verified => 3,
        VerificationState::Failed => 4,
    }
}

fn recipient_len(r: &ContactView<'_>, field: Field) -> usize {
    // The verification state: its key and a one-byte value, always written
    // (UNVERIFIED is not the enum's zero).
    2 + str_len(RECIPIENT_EMAIL, r.email)
        + str_len(RECIPIENT_DISPLAY_NAME, r.display_name)
        + str_len(RECIPIENT_LANGUAGE_CODE, r.language_code)
        + str_len(RECIPIENT_PHONE_NUMBER, r.phone_number)
        + str_len(RECIPIENT_FIELD, field.as_str())
}

fn rule_len(requested: &str, used: &str) -> usize {
    requested.len() + RULE_MIDDLE.len() + used.len()
}

fn fallback_len(requested: &str, used: &str) -> usize {
    let rule = rule_len(requested, used);
    str_len(FALLBACK_REQUESTED_FIELD, requested)
        + str_len(FALLBACK_USED_FIELD, used)
        + key_len(FALLBACK_RULE)
        + encoded_len_varint(rule as u64)
        + rule
}

fn message_head(tag: u32, len: usize, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::pb;

    fn prost_of(out: &ResolutionOut<'_>) -> Vec<u8> {
        pb::ResolveRecipientsResponse {
            recipients: out
                .recipients
                .iter()
                .enumerate()
                .map(|(i, (r, field))| pb::Recipient {
                    email: r.email.into(),
                    display_name: r.display_name.into(),
                    language_code: r.language_code.into(),
                    phone_number: r.phone_number.into(),
                    field: field.as_str().into(),
                    verification_state: state_number(
                        out.verification
                            .and_then(|s| s.get(i))
                            .copied()
                            .unwrap_or(VerificationState::Unverified),
                    ) as i32,
                })
                .collect(),
            fallback: out.fallback.map(|(requested, used)| pb::Fallback {
                requested_field: requested.into(),
                used_field: used.into(),
                rule: format!("{requested} is empty: using {used}"),
            }),
            support_open: out.support_open,
            at_time: Some(crate::api::convert::timestamp(out.at_time)),
            etag: out.etag.into(),
        }
        .encode_to_vec()
    }

    #[test]
    fn byte_identical_to_prost() {
        let long = "x".repeat(200);
        let recipients = [
            (
                ContactView {
                    email: "alerts@example.com",
                    display_name: "Ops — 日本",
                    language_code: "pt-BR",
                    phone_number: "+41446681800",
                },
                Field::AlertContacts,
            ),
            (
                ContactView {
                    email: "b@example.com",
                    display_name: "",
                    language_code: "",
                    phone_number: "",
                },
                Field::AlertContacts,
            ),
            (
                ContactView {
                    email: &long,
                    display_name: &long,
                    language_code: "",
                    phone_number: "",
                },
                Field::TechnicalEmergencyContacts,
            ),
        ];
        let times = [
            DateTime::from_timestamp(1_700_000_000, 123_000).expect("time"),
            DateTime::from_timestamp(1_700_000_000, 0).expect("time"),
            DateTime::from_timestamp(0, 5).expect("time"),
            DateTime::from_timestamp(-62_135_596_800, 0).expect("time"),
        ];
        for at_time in times {
            for n in [0, 1, 3] {
                for fallback in [
                    None,
                    Some(("alert_contacts", "technical_emergency_contacts")),
                ] {
                    for support_open in [false, true] {
                        for etag in ["", "W/\"abc\""] {
                            let states = [
                                VerificationState::Verified,
                                VerificationState::Pending,
                                VerificationState::Failed,
                            ];
                            for verification in [None, Some(&states[..n])] {
                                let out = ResolutionOut {
                                    recipients: &recipients[..n],
                                    verification,
                                    fallback,
                                    support_open,
                                    at_time,
                                    etag,
                                };
                                let ours = out.encode();
                                assert_eq!(ours.as_ref(), prost_of(&out).as_slice(), "{out:?}");
                                assert_eq!(ours.len(), out.encoded_len());
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn gate_answer_byte_identical_to_prost() {
        let policy = crate::domain::GatePolicy::builtin();
        let t = DateTime::from_timestamp(1_700_000_000, 123_000).expect("time");
        let closed = policy
            .evaluate("", crate::domain::Environment::Production, None)
            .expect("default type");
        assert!(!closed.open() && closed.findings.len() > 1);
        let not_user = GateResult {
            integration_type: "x",
            findings: vec![crate::domain::Finding {
                field: crate::domain::Field::AlertContacts,
                reason: FindingReason::NotAPortalUser,
                message: "m".into(),
            }],
        };
        let open = GateResult {
            integration_type: "reservations-e2e",
            findings: vec![],
        };
        for result in [&closed, &not_user, &open] {
            for etag in [None, Some("W/\"1\"")] {
                let ours = gate_answer(result, etag.unwrap_or_default(), t);
                let theirs = crate::api::convert::gate_to_pb(result, etag, t).encode_to_vec();
                assert_eq!(ours.as_ref(), theirs.as_slice(), "{result:?} {etag:?}");
            }
        }
    }
}
