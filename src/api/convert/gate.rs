//! Domain gate result -> `CheckOnboardingGateResponse`, as prost builds it:
//! the reference `wire::gate_answer` (what the server sends) is tested
//! against, byte for byte.
use chrono::{DateTime, Utc};

use super::time::timestamp;
use crate::domain::{FindingReason, GateResult};
use crate::pb;

/// `etag` is `None` when nothing is saved yet.
pub fn gate_to_pb(
    result: &GateResult,
    etag: Option<&str>,
    evaluate_time: DateTime<Utc>,
) -> pb::CheckOnboardingGateResponse {
    pb::CheckOnboardingGateResponse {
        open: result.open(),
        findings: result
            .findings
            .iter()
            .map(|f| pb::GateFinding {
                field: f.field.as_str().to_owned(),
                reason: match f.reason {
                    FindingReason::RequiredFieldMissing => {
                        pb::GateFindingReason::RequiredFieldMissing
                    }
                    FindingReason::NotAPortalUser => pb::GateFindingReason::NotAPortalUser,
                    FindingReason::NotVerified => pb::GateFindingReason::NotVerified,
                } as i32,
                message: f.message.clone(),
            })
            .collect(),
        etag: etag.unwrap_or_default().to_owned(),
        evaluate_time: Some(timestamp(evaluate_time)),
        integration_type: result.integration_type.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Environment;

    #[test]
    fn gate_response() {
        let policy = crate::domain::GatePolicy::builtin();
        let result = policy
            .evaluate("", Environment::Sandbox, None)
            .expect("default type");
        let t = DateTime::from_timestamp(1_700_000_000, 123_000).expect("valid");
        let out = gate_to_pb(&result, None, t);
        assert!(!out.open);
        assert_eq!(out.etag, "");
        assert_eq!(out.integration_type, "reservations-e2e");
        assert_eq!(
            out.evaluate_time,
            Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 123_000
            })
        );
        assert_eq!(out.findings[0].field, "technical_emergency_contacts");
        assert_eq!(
            out.findings[0].reason,
            pb::GateFindingReason::RequiredFieldMissing as i32
        );
        assert_eq!(out.findings[0].message, result.findings[0].message);
        assert_eq!(out.findings.len(), result.findings.len());

        let open = GateResult {
            integration_type: "x",
            findings: vec![],
        };
        let out = gate_to_pb(&open, Some("W/1"), t);
        assert!(out.open);
        assert!(out.findings.is_empty());
        assert_eq!(out.etag, "W/1");
    }
}
