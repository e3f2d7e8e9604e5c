//! The requests conversion tests start from: a valid, complete contact info
//! to spoil one part at a time, and readers of the violations it gets.
use super::parse_update;
use crate::error::{Error, FieldViolation};
use crate::pb;

pub(super) const PROD: &str = "partners/acme/environments/production/contactInfo";
pub(super) const SANDBOX: &str = "partners/acme/environments/sandbox/contactInfo";

pub(super) fn contact(email: &str) -> pb::Contact {
    pb::Contact {
        email: email.to_owned(),
        ..Default::default()
    }
}

pub(super) fn window(
    tz: &str,
    days: &[pb::DayOfWeek],
    open: &str,
    close: &str,
) -> pb::SupportWindow {
    pb::SupportWindow {
        time_zone: tz.to_owned(),
        days: days.iter().map(|d| *d as i32).collect(),
        open_time: open.to_owned(),
        close_time: close.to_owned(),
    }
}

pub(super) fn windows(ws: Vec<pb::SupportWindow>) -> Option<pb::OperationalSupport> {
    Some(pb::OperationalSupport {
        always_open: false,
        windows: ws,
    })
}

pub(super) fn valid_window() -> pb::SupportWindow {
    window("Europe/Zurich", &[pb::DayOfWeek::Monday], "09:00", "17:00")
}

pub(super) fn full_info(name: &str) -> pb::ContactInfo {
    use pb::DayOfWeek::*;
    pb::ContactInfo {
        name: name.to_owned(),
        alert_contacts: vec![pb::Contact {
            email: "Alerts@Example.com".into(),
            display_name: "Alert Desk".into(),
            phone_number: "+1 650-253-0000".into(),
            language_code: "en".into(),
            verification: None,
        }],
        technical_emergency_contacts: vec![
            contact("pager@example.com"),
            contact("oncall@example.com"),
        ],
        technical_non_emergency_contacts: vec![pb::Contact {
            email: "dev@example.com".into(),
            display_name: "Développeurs".into(),
            phone_number: "+41 44 668 18 00".into(),
            language_code: "pt-BR".into(),
            verification: None,
        }],
        merchant_issues_contacts: vec![contact("merchants@example.com")],
        platform_operational_contacts: vec![contact("escalations@example.com")],
        user_facing_operational_contacts: vec![contact("support@example.com")],
        operational_support: windows(vec![
            window(
                "America/Los_Angeles",
                &[Monday, Tuesday, Friday],
                "09:00",
                "17:30",
            ),
            window("Europe/Zurich", &[Sunday, Saturday], "22:00", "02:00"),
            window("UTC", &[Wednesday], "00:00", "24:00"),
        ]),
        etag: String::new(),
        create_time: None,
        update_time: None,
        address_verifications: Vec::new(),
    }
}

pub(super) fn request(info: pb::ContactInfo, paths: &[&str]) -> pb::UpdateContactsRequest {
    pb::UpdateContactsRequest {
        contact_info: Some(info),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
        validate_only: false,
        request_id: String::new(),
    }
}

pub(super) fn violations(req: &pb::UpdateContactsRequest) -> Vec<FieldViolation> {
    match parse_update(req) {
        Err(Error::InvalidArgument { violations, .. }) => violations,
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
}

pub(super) fn fields_of(req: &pb::UpdateContactsRequest) -> Vec<String> {
    violations(req).into_iter().map(|v| v.field).collect()
}

pub(super) fn only_violation(req: &pb::UpdateContactsRequest) -> FieldViolation {
    let mut vs = violations(req);
    assert_eq!(vs.len(), 1, "{vs:?}");
    vs.remove(0)
}
