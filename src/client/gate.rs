//! `partner-contacts gate`: asks CheckOnboardingGate and turns the answer
//! into an exit code a CI pipeline can branch on, with the findings as text
//! or as one JSON object.
use serde::Serialize;

use super::args::{GateArgs, GateOutput};
use super::connect;
use super::report::{Exit, Failure};
use super::retry::Policy;
use crate::pb;

/// The `--output json` answer. Its fields are documented in the README:
/// add fields if needed, never rename or remove one.
#[derive(Debug, Serialize)]
struct GateJson<'a> {
    open: bool,
    name: &'a str,
    integration_type: &'a str,
    etag: &'a str,
    /// RFC 3339, UTC; null if the server sent none.
    evaluate_time: Option<String>,
    findings: Vec<FindingJson<'a>>,
}

#[derive(Debug, Serialize)]
struct FindingJson<'a> {
    field: &'a str,
    /// The proto enum name, e.g. GATE_FINDING_REASON_REQUIRED_FIELD_MISSING.
    reason: &'a str,
    message: &'a str,
}

pub async fn run(args: &GateArgs) -> Exit {
    let name = args.resource.resource_name();
    match check(args, &name).await {
        Ok(answer) => {
            match args.output {
                GateOutput::Text => print_text(&name, &answer),
                GateOutput::Json => print_json(&name, &answer),
            }
            if answer.open {
                Exit::Success
            } else {
                Exit::GateClosed
            }
        }
        Err(failure) => {
            match args.output {
                GateOutput::Text => failure.print_text("gate"),
                GateOutput::Json => failure.print_json(),
            }
            failure.exit
        }
    }
}

async fn check(args: &GateArgs, name: &str) -> Result<pb::CheckOnboardingGateResponse, Failure> {
    let connection = connect::open(&args.connect)?;
    let request = pb::CheckOnboardingGateRequest {
        name: name.to_owned(),
        integration_type: args.integration_type.clone().unwrap_or_default(),
    };
    connection
        .call(
            "CheckOnboardingGate",
            Policy::Read,
            &request,
            |mut c, r| async move { c.check_onboarding_gate(r).await },
        )
        .await
        .map_err(|status| Failure::of_status(&status))
}

fn reason_name(reason: i32) -> &'static str {
    pb::GateFindingReason::try_from(reason)
        .unwrap_or(pb::GateFindingReason::Unspecified)
        .as_str_name()
}

fn print_text(name: &str, answer: &pb::CheckOnboardingGateResponse) {
    let verdict = if answer.open { "OPEN" } else { "CLOSED" };
    println!(
        "gate {verdict}: {name} (integration type {})",
        answer.integration_type
    );
    for finding in &answer.findings {
        let reason = reason_name(finding.reason);
        println!(
            "  {}: {}: {}",
            finding.field,
            reason
                .strip_prefix("GATE_FINDING_REASON_")
                .unwrap_or(reason),
            finding.message
        );
    }
}

fn print_json(name: &str, answer: &pb::CheckOnboardingGateResponse) {
    let json = GateJson {
        open: answer.open,
        name,
        integration_type: &answer.integration_type,
        etag: &answer.etag,
        evaluate_time: answer.evaluate_time.as_ref().and_then(super::file::rfc3339),
        findings: answer
            .findings
            .iter()
            .map(|f| FindingJson {
                field: &f.field,
                reason: reason_name(f.reason),
                message: &f.message,
            })
            .collect(),
    };
    match serde_json::to_string(&json) {
        Ok(line) => println!("{line}"),
        Err(e) => eprintln!("partner-contacts gate: cannot write JSON: {e}"),
    }
}
