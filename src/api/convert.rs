//! Proto <-> domain conversion, and request validation that reports every violation at once by field path.
use chrono::{DateTime, Utc};

use crate::{
    domain::{
        Contact, ContactFields, ContactInfo, ContactInfoName, DisplayName, Email, Environment,
        Field, FieldSet, FindingReason, GateResult, LanguageCode, LocalTime,
        MAX_CONTACTS_PER_FIELD, MAX_SUPPORT_WINDOWS, OperationalSupport, PhoneNumber, ReadView,
        Revision, SupportWindow, TimeZoneName, Update, Weekday,
    },
    error::{Error, Violations},
    pb,
};

/// Fields a caller may read but never write; naming them in a mask is a
/// mistake worth telling apart from a typo.
const OUTPUT_ONLY_PATHS: [&str; 4] = ["name", "etag", "create_time", "update_time"];

/// Longest mask path echoed back in a description. Paths are not personal data
/// but they are caller-controlled, and error details travel in trailers whose
/// size is limited.
const MAX_ECHOED_PATH_CHARS: usize = 64;

/// Parses a `GetContactsRequest.name`.
pub fn parse_name(name: &str) -> Result<ContactInfoName, Error> {
    ContactInfoName::parse(name).map_err(|d| Error::invalid_field("name", d))
}

/// Parses a `CheckOnboardingGateRequest.name`, which may also be the parent
/// `partners/{p}/environments/{e}`.
pub fn parse_gate_name(name: &str) -> Result<ContactInfoName, Error> {
    ContactInfoName::parse_or_parent(name).map_err(|d| Error::invalid_field("name", d))
}

/// Validates a whole `UpdateContactsRequest` (except `request_id`, which the
/// handler owns) and returns the domain update.
///
/// Only the fields named by the mask are validated: AIP-134 says the others
/// are ignored, so a stale or half-filled value there must not block a save.
pub fn parse_update(req: &pb::UpdateContactsRequest) -> Result<Update, Error> {
    let mut v = Violations::default();
    // The mask is checked even when contact_info is missing so that one round
    // trip reports both mistakes.
    let mask = parse_mask(req.update_mask.as_ref(), &mut v);

    let Some(info) = req.contact_info.as_ref() else {
        v.push("contact_info", "is required");
        return Err(v.finish(()).err().unwrap_or_else(missing_violation));
    };

    let name = match ContactInfoName::parse(&info.name) {
        Ok(name) => Some(name),
        Err(d) => {
            v.push("contact_info.name", d);
            None
        }
    };
    let environment = name.as_ref().map(|n| n.environment);

    let mut patch = ContactFields::default();
    for field in mask.iter() {
        let path = format!("contact_info.{}", field.as_str());
        if field == Field::OperationalSupport {
            patch.operational_support =
                parse_operational_support(info.operational_support.as_ref(), &path, &mut v);
            continue;
        }
        let given = pb_contacts(info, field);
        if field == Field::AlertContacts
            && environment == Some(Environment::Sandbox)
            && !given.is_empty()
        {
            // The whole field must go, so the problems of its contacts would
            // only be noise.
            v.push(
                path,
                "alert contacts exist only in the production environment",
            );
            continue;
        }
        if let Some(slot) = contacts_mut(&mut patch, field) {
            *slot = parse_contacts(given, &path, &mut v);
        }
    }

    let expected_etag = (!info.etag.is_empty()).then(|| info.etag.clone());
    let name = v.finish(name)?;
    // finish() succeeded, so the name parsed: a failed parse records a violation.
    let name = name.ok_or_else(missing_violation)?;
    Ok(Update {
        name,
        patch,
        mask,
        expected_etag,
    })
}

/// Stands in for a violation that must have been recorded; reaching it is a bug
/// in this module, not the caller's fault.
fn missing_violation() -> Error {
    Error::Internal {
        detail: "update validation failed without recording a violation".to_owned(),
    }
}

/// An absent or empty mask, or the single path `*`, means every field.
/// On violations returns the valid paths seen, so their fields are still
/// validated and reported in the same response.
fn parse_mask(mask: Option<&prost_types::FieldMask>, v: &mut Violations) -> FieldSet {
    let paths = mask.map_or(&[][..], |m| m.paths.as_slice());
    if paths.is_empty() || (paths.len() == 1 && paths[0] == "*") {
        return FieldSet::all();
    }
    let mut set = FieldSet::EMPTY;
    // Index of the first occurrence of each field, for the duplicate message.
    let mut first_seen: [Option<usize>; Field::ALL.len()] = [None; Field::ALL.len()];
    for (i, path) in paths.iter().enumerate() {
        let at = format!("update_mask.paths[{i}]");
        let shown = echo_path(path);
        if path == "*" {
            v.push(at, "\"*\" must be the only path when it is used");
        } else if OUTPUT_ONLY_PATHS.contains(&path.as_str()) {
            v.push(at, format!("{shown} is output only and cannot be updated"));
        } else if path.contains('.') {
            v.push(
                at,
                format!(
                    "{shown} is a nested path; paths name top-level fields of contact_info: {}",
                    valid_paths()
                ),
            );
        } else if let Some(field) = Field::parse(path) {
            let slot = &mut first_seen[field as usize];
            match slot {
                Some(first) => v.push(at, format!("{shown} duplicates update_mask.paths[{first}]")),
                None => {
                    *slot = Some(i);
                    set.insert(field);
                }
            }
        } else {
            v.push(
                at,
                format!(
                    "{shown} is not a known path; valid paths: {}",
                    valid_paths()
                ),
            );
        }
    }
    set
}

fn echo_path(path: &str) -> String {
    if path.chars().count() <= MAX_ECHOED_PATH_CHARS {
        format!("{path:?}")
    } else {
        let head: String = path.chars().take(MAX_ECHOED_PATH_CHARS).collect();
        format!("{head:?}...")
    }
}

fn valid_paths() -> String {
    Field::ALL.map(Field::as_str).join(", ")
}

fn pb_contacts(info: &pb::ContactInfo, field: Field) -> &[pb::Contact] {
    match field {
        Field::AlertContacts => &info.alert_contacts,
        Field::TechnicalEmergencyContacts => &info.technical_emergency_contacts,
        Field::TechnicalNonEmergencyContacts => &info.technical_non_emergency_contacts,
        Field::MerchantIssuesContacts => &info.merchant_issues_contacts,
        Field::PlatformOperationalContacts => &info.platform_operational_contacts,
        Field::UserFacingOperationalContacts => &info.user_facing_operational_contacts,
        Field::OperationalSupport => &[],
    }
}

fn contacts_mut(fields: &mut ContactFields, field: Field) -> Option<&mut Vec<Contact>> {
    match field {
        Field::AlertContacts => Some(&mut fields.alert_contacts),
        Field::TechnicalEmergencyContacts => Some(&mut fields.technical_emergency_contacts),
        Field::TechnicalNonEmergencyContacts => Some(&mut fields.technical_non_emergency_contacts),
        Field::MerchantIssuesContacts => Some(&mut fields.merchant_issues_contacts),
        Field::PlatformOperationalContacts => Some(&mut fields.platform_operational_contacts),
        Field::UserFacingOperationalContacts => Some(&mut fields.user_facing_operational_contacts),
        Field::OperationalSupport => None,
    }
}

/// Returns the contacts that parsed; the result only matters when no
/// violation was recorded, in which case all of them did.
fn parse_contacts(given: &[pb::Contact], path: &str, v: &mut Violations) -> Vec<Contact> {
    if given.len() > MAX_CONTACTS_PER_FIELD {
        // Checking each of thousands of contacts would only bury this one fix.
        v.push(
            path,
            format!("must hold at most {MAX_CONTACTS_PER_FIELD} contacts"),
        );
        return Vec::new();
    }
    let mut out = Vec::with_capacity(given.len());
    // (comparison key, index of first occurrence). Linear search: at most a
    // few dozen entries in any request worth answering.
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (i, c) in given.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let email = match Email::parse(&c.email) {
            Ok(email) => {
                let key = email.comparison_key();
                if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                    // Points at the first occurrence instead of repeating the
                    // address: it may be personal data.
                    v.push(
                        format!("{at}.email"),
                        format!("duplicates {path}[{first}].email"),
                    );
                } else {
                    seen.push((key, i));
                }
                Some(email)
            }
            Err(d) => {
                v.push(format!("{at}.email"), d);
                None
            }
        };
        let display_name = optional(&c.display_name, DisplayName::parse, &at, "display_name", v);
        let phone_number = optional(&c.phone_number, PhoneNumber::parse, &at, "phone_number", v);
        let language_code = optional(
            &c.language_code,
            LanguageCode::parse,
            &at,
            "language_code",
            v,
        );
        if let (Some(email), Some(display_name), Some(phone_number), Some(language_code)) =
            (email, display_name, phone_number, language_code)
        {
            out.push(Contact {
                email,
                display_name,
                phone_number,
                language_code,
            });
        }
    }
    out
}

/// Parses an optional string part: empty means not given (`Some(None)`); a
/// parse failure is recorded and yields `None`.
fn optional<T>(
    s: &str,
    parse: fn(&str) -> Result<T, &'static str>,
    at: &str,
    part: &str,
    v: &mut Violations,
) -> Option<Option<T>> {
    if s.is_empty() {
        return Some(None);
    }
    match parse(s) {
        Ok(t) => Some(Some(t)),
        Err(d) => {
            v.push(format!("{at}.{part}"), d);
            None
        }
    }
}

fn parse_operational_support(
    given: Option<&pb::OperationalSupport>,
    path: &str,
    v: &mut Violations,
) -> Option<OperationalSupport> {
    let os = given?;
    match (os.always_open, os.windows.is_empty()) {
        (true, false) => v.push(
            path,
            "set always_open or give windows, not both",
        ),
        (false, true) => v.push(
            path,
            "set always_open or give at least one window; to clear operational support leave it unset",
        ),
        _ => {}
    }
    if os.windows.len() > MAX_SUPPORT_WINDOWS {
        v.push(
            format!("{path}.windows"),
            format!("must hold at most {MAX_SUPPORT_WINDOWS} windows"),
        );
        return None;
    }
    // Windows are validated even next to always_open: whichever the caller
    // meant to keep, it learns everything that is wrong in one round trip.
    let windows: Vec<SupportWindow> = os
        .windows
        .iter()
        .enumerate()
        .filter_map(|(i, w)| parse_window(w, &format!("{path}.windows[{i}]"), v))
        .collect();
    if os.always_open {
        Some(OperationalSupport::AlwaysOpen)
    } else {
        Some(OperationalSupport::Windows(windows))
    }
}

fn parse_window(w: &pb::SupportWindow, at: &str, v: &mut Violations) -> Option<SupportWindow> {
    let time_zone = TimeZoneName::parse(&w.time_zone)
        .map_err(|d| v.push(format!("{at}.time_zone"), d))
        .ok();

    if w.days.is_empty() {
        v.push(format!("{at}.days"), "must name at least one day");
    }
    let mut days = Vec::with_capacity(w.days.len());
    let mut first_seen: [Option<usize>; 7] = [None; 7];
    for (k, &raw) in w.days.iter().enumerate() {
        let day_at = format!("{at}.days[{k}]");
        let day = match pb::DayOfWeek::try_from(raw) {
            Ok(pb::DayOfWeek::Unspecified) => {
                v.push(day_at, "must not be DAY_OF_WEEK_UNSPECIFIED");
                None
            }
            Ok(d) => weekday_from_pb(d),
            Err(_) => {
                v.push(
                    day_at,
                    "must be a day of the week, DAY_OF_WEEK_MONDAY to DAY_OF_WEEK_SUNDAY",
                );
                None
            }
        };
        let Some(day) = day else {
            continue;
        };
        let slot = &mut first_seen[day as usize];
        match slot {
            Some(first) => {
                v.push(
                    format!("{at}.days[{k}]"),
                    format!("duplicates {at}.days[{first}]"),
                );
            }
            None => {
                *slot = Some(k);
                days.push(day);
            }
        }
    }

    let open_time = LocalTime::parse(&w.open_time, false)
        .map_err(|d| v.push(format!("{at}.open_time"), d))
        .ok();
    let close_time = LocalTime::parse(&w.close_time, true)
        .map_err(|d| v.push(format!("{at}.close_time"), d))
        .ok();
    if let (Some(open), Some(close)) = (open_time, close_time)
        && open == close
    {
        v.push(format!("{at}.close_time"), "must differ from open_time");
    }

    // Like the contacts, the result only matters when no violation was
    // recorded (an empty or all-invalid day list was).
    SupportWindow::new(time_zone?, days, open_time?, close_time?).ok()
}

fn weekday_from_pb(d: pb::DayOfWeek) -> Option<Weekday> {
    match d {
        pb::DayOfWeek::Unspecified => None,
        pb::DayOfWeek::Monday => Some(Weekday::Monday),
        pb::DayOfWeek::Tuesday => Some(Weekday::Tuesday),
        pb::DayOfWeek::Wednesday => Some(Weekday::Wednesday),
        pb::DayOfWeek::Thursday => Some(Weekday::Thursday),
        pb::DayOfWeek::Friday => Some(Weekday::Friday),
        pb::DayOfWeek::Saturday => Some(Weekday::Saturday),
        pb::DayOfWeek::Sunday => Some(Weekday::Sunday),
    }
}

fn weekday_to_pb(d: Weekday) -> pb::DayOfWeek {
    match d {
        Weekday::Monday => pb::DayOfWeek::Monday,
        Weekday::Tuesday => pb::DayOfWeek::Tuesday,
        Weekday::Wednesday => pb::DayOfWeek::Wednesday,
        Weekday::Thursday => pb::DayOfWeek::Thursday,
        Weekday::Friday => pb::DayOfWeek::Friday,
        Weekday::Saturday => pb::DayOfWeek::Saturday,
        Weekday::Sunday => pb::DayOfWeek::Sunday,
    }
}

/// Domain -> proto, through the caller's audience filter: there is no way to
/// encode contact fields without naming who will see them.
pub fn contact_info_to_pb(info: &ContactInfo, view: ReadView) -> pb::ContactInfo {
    resource_to_pb(
        &info.name,
        &visible(&info.fields, view),
        &info.etag,
        Some(info.create_time),
        Some(info.update_time),
    )
}

fn visible(fields: &ContactFields, view: ReadView) -> std::borrow::Cow<'_, ContactFields> {
    view.filter(fields)
}

/// One revision, through the caller's audience filter (its changed fields
/// too: a hidden field's name is not for this caller either).
pub fn revision_to_pb(revision: &Revision, view: ReadView) -> pb::ContactInfoRevision {
    pb::ContactInfoRevision {
        name: format!(
            "{}/revisions/{}",
            revision.info.name, revision.info.revision
        ),
        actor: revision.actor.clone(),
        create_time: Some(timestamp(revision.info.update_time)),
        request_id: revision
            .request_id
            .map_or_else(String::new, |id| id.hyphenated().to_string()),
        changed_fields: revision
            .changed
            .iter()
            .filter(|f| view.shows(*f))
            .map(|f| f.as_str().to_owned())
            .collect(),
        contact_info: Some(contact_info_to_pb(&revision.info, view)),
    }
}

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
        .filter(|_| (MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&t.seconds))
        .and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos))
}

/// Whether `t` lies in the protobuf Timestamp range (for times decoded from
/// page tokens, which a caller can forge).
pub fn in_timestamp_range(t: DateTime<Utc>) -> bool {
    (MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&t.timestamp())
}

/// The would-be resource for `validate_only`: `fields` under `name`, with the
/// output-only fields of `current` (empty when nothing is stored yet), because
/// nothing was saved and so nothing about them changed.
pub fn preview_to_pb(
    name: &ContactInfoName,
    fields: &ContactFields,
    current: Option<&ContactInfo>,
    view: ReadView,
) -> pb::ContactInfo {
    resource_to_pb(
        name,
        &visible(fields, view),
        current.map_or("", |c| c.etag.as_str()),
        current.map(|c| c.create_time),
        current.map(|c| c.update_time),
    )
}

fn resource_to_pb(
    name: &ContactInfoName,
    fields: &ContactFields,
    etag: &str,
    create_time: Option<DateTime<Utc>>,
    update_time: Option<DateTime<Utc>>,
) -> pb::ContactInfo {
    let contacts = |cs: &[Contact]| cs.iter().map(contact_to_pb).collect::<Vec<_>>();
    pb::ContactInfo {
        name: name.to_string(),
        alert_contacts: contacts(&fields.alert_contacts),
        technical_emergency_contacts: contacts(&fields.technical_emergency_contacts),
        technical_non_emergency_contacts: contacts(&fields.technical_non_emergency_contacts),
        merchant_issues_contacts: contacts(&fields.merchant_issues_contacts),
        platform_operational_contacts: contacts(&fields.platform_operational_contacts),
        user_facing_operational_contacts: contacts(&fields.user_facing_operational_contacts),
        operational_support: fields.operational_support.as_ref().map(support_to_pb),
        etag: etag.to_owned(),
        create_time: create_time.map(timestamp),
        update_time: update_time.map(timestamp),
    }
}

fn contact_to_pb(c: &Contact) -> pb::Contact {
    pb::Contact {
        email: c.email.as_str().to_owned(),
        display_name: c
            .display_name
            .as_ref()
            .map_or_else(String::new, |d| d.as_str().to_owned()),
        phone_number: c
            .phone_number
            .as_ref()
            .map_or_else(String::new, |p| p.as_str().to_owned()),
        language_code: c
            .language_code
            .as_ref()
            .map_or_else(String::new, |l| l.as_str().to_owned()),
    }
}

fn support_to_pb(os: &OperationalSupport) -> pb::OperationalSupport {
    match os {
        OperationalSupport::AlwaysOpen => pb::OperationalSupport {
            always_open: true,
            windows: Vec::new(),
        },
        OperationalSupport::Windows(ws) => pb::OperationalSupport {
            always_open: false,
            windows: ws.iter().map(window_to_pb).collect(),
        },
    }
}

fn window_to_pb(w: &SupportWindow) -> pb::SupportWindow {
    pb::SupportWindow {
        time_zone: w.time_zone().as_str().to_owned(),
        days: w.days().iter().map(|d| weekday_to_pb(*d) as i32).collect(),
        open_time: w.open_time().to_string(),
        close_time: w.close_time().to_string(),
    }
}

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
                } as i32,
                message: f.message.clone(),
            })
            .collect(),
        etag: etag.unwrap_or_default().to_owned(),
        evaluate_time: Some(timestamp(evaluate_time)),
        integration_type: result.integration_type.clone(),
    }
}

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
    use crate::{domain::now_micros, error::FieldViolation};

    const PROD: &str = "partners/acme/environments/production/contactInfo";
    const SANDBOX: &str = "partners/acme/environments/sandbox/contactInfo";

    fn contact(email: &str) -> pb::Contact {
        pb::Contact {
            email: email.to_owned(),
            ..Default::default()
        }
    }

    fn window(tz: &str, days: &[pb::DayOfWeek], open: &str, close: &str) -> pb::SupportWindow {
        pb::SupportWindow {
            time_zone: tz.to_owned(),
            days: days.iter().map(|d| *d as i32).collect(),
            open_time: open.to_owned(),
            close_time: close.to_owned(),
        }
    }

    fn windows(ws: Vec<pb::SupportWindow>) -> Option<pb::OperationalSupport> {
        Some(pb::OperationalSupport {
            always_open: false,
            windows: ws,
        })
    }

    fn valid_window() -> pb::SupportWindow {
        window("Europe/Zurich", &[pb::DayOfWeek::Monday], "09:00", "17:00")
    }

    fn full_info(name: &str) -> pb::ContactInfo {
        use pb::DayOfWeek::*;
        pb::ContactInfo {
            name: name.to_owned(),
            alert_contacts: vec![pb::Contact {
                email: "Alerts@Example.com".into(),
                display_name: "Alert Desk".into(),
                phone_number: "+1 650-253-0000".into(),
                language_code: "en".into(),
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
        }
    }

    fn request(info: pb::ContactInfo, paths: &[&str]) -> pb::UpdateContactsRequest {
        pb::UpdateContactsRequest {
            contact_info: Some(info),
            update_mask: Some(prost_types::FieldMask {
                paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            }),
            validate_only: false,
            request_id: String::new(),
        }
    }

    fn violations(req: &pb::UpdateContactsRequest) -> Vec<FieldViolation> {
        match parse_update(req) {
            Err(Error::InvalidArgument { violations, .. }) => violations,
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    fn fields_of(req: &pb::UpdateContactsRequest) -> Vec<String> {
        violations(req).into_iter().map(|v| v.field).collect()
    }

    fn only_violation(req: &pb::UpdateContactsRequest) -> FieldViolation {
        let mut vs = violations(req);
        assert_eq!(vs.len(), 1, "{vs:?}");
        vs.remove(0)
    }

    #[test]
    fn names() {
        assert_eq!(parse_name(PROD).expect("valid").to_string(), PROD);
        let err = parse_name("partners/acme/environments/production").expect_err("parent");
        assert!(
            matches!(&err, Error::InvalidArgument { violations, .. } if violations[0].field == "name")
        );
        let gate = parse_gate_name("partners/acme/environments/sandbox").expect("parent");
        assert_eq!(gate.to_string(), SANDBOX);
        assert_eq!(parse_gate_name(PROD).expect("full").to_string(), PROD);
        let err = parse_gate_name("partners/acme").expect_err("bad");
        assert!(
            matches!(&err, Error::InvalidArgument { violations, .. } if violations[0].field == "name")
        );
    }

    #[test]
    fn full_request_round_trips() {
        let input = full_info(PROD);
        let update = parse_update(&request(input.clone(), &[])).expect("valid");
        assert_eq!(update.mask, FieldSet::all());
        assert_eq!(update.expected_etag, None);
        let now = now_micros();
        let saved = update.apply(None, now).expect("apply");
        let out = contact_info_to_pb(&saved, ReadView::Full);

        // What comes back is the canonical form: E.164 phones, days in week
        // order, zone aliases by their canonical name.
        let mut want = input;
        want.alert_contacts[0].phone_number = "+16502530000".into();
        want.technical_non_emergency_contacts[0].phone_number = "+41446681800".into();
        let windows = &mut want.operational_support.as_mut().expect("support").windows;
        windows[1].days = vec![pb::DayOfWeek::Saturday as i32, pb::DayOfWeek::Sunday as i32];
        windows[2].time_zone = "Etc/UTC".into();
        want.etag = saved.etag.clone();
        want.create_time = Some(timestamp(now));
        want.update_time = Some(timestamp(now));
        assert_eq!(out, want);

        let preview = preview_to_pb(&saved.name, &saved.fields, None, ReadView::Full);
        assert_eq!(preview.etag, "");
        assert_eq!(preview.create_time, None);
        assert_eq!(preview.update_time, None);
        let preview = preview_to_pb(&saved.name, &saved.fields, Some(&saved), ReadView::Full);
        assert_eq!(preview, want);
    }

    #[test]
    fn always_open_round_trips_and_etag_is_kept() {
        let mut info = full_info(PROD);
        info.operational_support = Some(pb::OperationalSupport {
            always_open: true,
            windows: vec![],
        });
        info.etag = "W/abc".into();
        info.create_time = Some(prost_types::Timestamp {
            seconds: -5,
            nanos: -1,
        });
        let update = parse_update(&request(info.clone(), &["*"])).expect("valid");
        assert_eq!(update.expected_etag.as_deref(), Some("W/abc"));
        assert_eq!(
            update.patch.operational_support,
            Some(OperationalSupport::AlwaysOpen)
        );
        let out = preview_to_pb(&update.name, &update.patch, None, ReadView::Full);
        assert_eq!(out.operational_support, info.operational_support);
    }

    #[test]
    fn cleared_operational_support_is_none() {
        let mut info = full_info(PROD);
        info.operational_support = None;
        let update = parse_update(&request(info, &["operational_support"])).expect("valid");
        assert_eq!(update.patch.operational_support, None);
        assert!(update.mask.contains(Field::OperationalSupport));
    }

    #[test]
    fn missing_contact_info_and_bad_name() {
        let req = pb::UpdateContactsRequest {
            contact_info: None,
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["etag".into()],
            }),
            ..Default::default()
        };
        assert_eq!(fields_of(&req), ["update_mask.paths[0]", "contact_info"]);
        let req = request(full_info("partners/acme/contactInfo"), &[]);
        assert_eq!(fields_of(&req), ["contact_info.name"]);
    }

    #[test]
    fn mask_rules() {
        let info = || full_info(PROD);
        // Absent, empty and "*" mean everything.
        let mut absent = request(info(), &[]);
        absent.update_mask = None;
        assert_eq!(parse_update(&absent).expect("valid").mask, FieldSet::all());
        assert_eq!(
            parse_update(&request(info(), &[])).expect("valid").mask,
            FieldSet::all()
        );
        assert_eq!(
            parse_update(&request(info(), &["*"])).expect("valid").mask,
            FieldSet::all()
        );

        let some = parse_update(&request(info(), &["operational_support", "alert_contacts"]))
            .expect("valid");
        assert_eq!(
            some.mask.iter().collect::<Vec<_>>(),
            [Field::AlertContacts, Field::OperationalSupport]
        );

        let v = only_violation(&request(info(), &["alert_contacts", "*"]));
        assert_eq!(v.field, "update_mask.paths[1]");
        assert_eq!(
            fields_of(&request(info(), &["*", "*"])),
            ["update_mask.paths[0]", "update_mask.paths[1]"]
        );

        let v = only_violation(&request(info(), &["alert_contacts", "alert_contact"]));
        assert_eq!(v.field, "update_mask.paths[1]");
        assert!(
            v.description.contains("\"alert_contact\""),
            "{}",
            v.description
        );
        for f in Field::ALL {
            assert!(v.description.contains(f.as_str()), "{}", v.description);
        }

        for output_only in ["name", "etag", "create_time", "update_time"] {
            let v = only_violation(&request(info(), &[output_only]));
            assert_eq!(v.field, "update_mask.paths[0]");
            assert!(v.description.contains(output_only));
            assert!(v.description.contains("output only"), "{}", v.description);
        }

        let v = only_violation(&request(info(), &["operational_support.windows"]));
        assert_eq!(v.field, "update_mask.paths[0]");
        assert!(v.description.contains("nested"), "{}", v.description);
        let v = only_violation(&request(info(), &["contact_info.alert_contacts"]));
        assert_eq!(v.field, "update_mask.paths[0]");

        let v = only_violation(&request(
            info(),
            &[
                "merchant_issues_contacts",
                "alert_contacts",
                "merchant_issues_contacts",
            ],
        ));
        assert_eq!(v.field, "update_mask.paths[2]");
        assert!(
            v.description.contains("update_mask.paths[0]"),
            "{}",
            v.description
        );

        let long = "x".repeat(10_000);
        let v = only_violation(&request(info(), &[&long]));
        assert!(v.description.len() < 500, "{}", v.description.len());
    }

    #[test]
    fn invalid_mask_still_validates_its_valid_paths() {
        let mut info = full_info(PROD);
        info.alert_contacts = vec![contact("bad")];
        let req = request(info, &["alert_contacts", "bogus"]);
        assert_eq!(
            fields_of(&req),
            [
                "update_mask.paths[1]",
                "contact_info.alert_contacts[0].email"
            ]
        );
    }

    #[test]
    fn unmasked_fields_are_not_validated_or_taken() {
        let mut info = full_info(SANDBOX);
        info.alert_contacts = vec![contact("not an email")];
        info.technical_emergency_contacts = vec![contact("bad"); 30];
        info.operational_support = windows(vec![window("Mars/Olympus", &[], "9", "9")]);
        let update = parse_update(&request(info, &["merchant_issues_contacts"])).expect("valid");
        assert_eq!(update.patch.merchant_issues_contacts.len(), 1);
        assert!(update.patch.alert_contacts.is_empty());
        assert!(update.patch.technical_emergency_contacts.is_empty());
        assert_eq!(update.patch.operational_support, None);
    }

    #[test]
    fn contact_violations_name_each_part() {
        let mut info = full_info(PROD);
        info.platform_operational_contacts = vec![
            contact("ok@example.com"),
            pb::Contact {
                email: String::new(),
                display_name: "a\u{0}b".into(),
                phone_number: "650-253-0000".into(),
                language_code: "not a tag".into(),
            },
        ];
        let vs = violations(&request(info, &["platform_operational_contacts"]));
        let got: Vec<(&str, &str)> = vs
            .iter()
            .map(|v| (v.field.as_str(), v.description.as_str()))
            .collect();
        let p = "contact_info.platform_operational_contacts[1]";
        assert_eq!(
            got,
            [
                (
                    &*format!("{p}.email"),
                    Email::parse("").expect_err("invalid")
                ),
                (
                    &*format!("{p}.display_name"),
                    DisplayName::parse("\0").expect_err("invalid")
                ),
                (
                    &*format!("{p}.phone_number"),
                    PhoneNumber::parse("1").expect_err("invalid")
                ),
                (
                    &*format!("{p}.language_code"),
                    LanguageCode::parse("").expect_err("invalid")
                ),
            ]
        );
    }

    #[test]
    fn too_many_contacts() {
        let mut info = full_info(PROD);
        info.user_facing_operational_contacts = (0..=MAX_CONTACTS_PER_FIELD)
            .map(|i| contact(&format!("u{i}@example.com")))
            .collect();
        let v = only_violation(&request(info.clone(), &[]));
        assert_eq!(v.field, "contact_info.user_facing_operational_contacts");
        info.user_facing_operational_contacts.pop();
        assert!(parse_update(&request(info, &[])).is_ok());
    }

    #[test]
    fn duplicate_emails_point_at_the_first() {
        let mut info = full_info(PROD);
        info.technical_emergency_contacts = vec![
            contact("canary-7f3a@example.com"),
            contact("other@example.com"),
            contact("CANARY-7F3A@example.COM"),
        ];
        // The same address in another field is fine.
        info.technical_non_emergency_contacts = vec![contact("canary-7f3a@example.com")];
        let v = only_violation(&request(info, &[]));
        assert_eq!(
            v.field,
            "contact_info.technical_emergency_contacts[2].email"
        );
        assert_eq!(
            v.description,
            "duplicates contact_info.technical_emergency_contacts[0].email"
        );
    }

    #[test]
    fn sandbox_refuses_alert_contacts() {
        let v = only_violation(&request(full_info(SANDBOX), &[]));
        assert_eq!(v.field, "contact_info.alert_contacts");
        assert_eq!(
            v.description,
            "alert contacts exist only in the production environment"
        );

        let mut info = full_info(SANDBOX);
        info.alert_contacts.clear();
        let update = parse_update(&request(info, &[])).expect("empty alert contacts are fine");
        assert!(update.mask.contains(Field::AlertContacts));

        // Not in the mask: ignored.
        assert!(
            parse_update(&request(
                full_info(SANDBOX),
                &["technical_emergency_contacts"]
            ))
            .is_ok()
        );
    }

    #[test]
    fn operational_support_shape() {
        let os = "contact_info.operational_support";
        let mut info = full_info(PROD);
        info.operational_support = windows(vec![]);
        assert_eq!(only_violation(&request(info.clone(), &[])).field, os);

        info.operational_support = Some(pb::OperationalSupport {
            always_open: true,
            windows: vec![valid_window()],
        });
        assert_eq!(only_violation(&request(info.clone(), &[])).field, os);

        // Windows next to always_open are still checked.
        info.operational_support = Some(pb::OperationalSupport {
            always_open: true,
            windows: vec![window(
                "Nowhere/Else",
                &[pb::DayOfWeek::Monday],
                "09:00",
                "17:00",
            )],
        });
        assert_eq!(
            fields_of(&request(info.clone(), &[])),
            [os.to_owned(), format!("{os}.windows[0].time_zone")]
        );

        info.operational_support = windows(vec![valid_window(); MAX_SUPPORT_WINDOWS + 1]);
        assert_eq!(
            only_violation(&request(info.clone(), &[])).field,
            format!("{os}.windows")
        );
        info.operational_support = windows(vec![valid_window(); MAX_SUPPORT_WINDOWS]);
        assert!(parse_update(&request(info, &[])).is_ok());
    }

    #[test]
    fn window_violations() {
        use pb::DayOfWeek::*;
        let w = "contact_info.operational_support.windows[1]";
        let check = |win: pb::SupportWindow| {
            let mut info = full_info(PROD);
            info.operational_support = windows(vec![valid_window(), win]);
            fields_of(&request(info, &["operational_support"]))
        };

        assert_eq!(
            check(window("Mars/Olympus", &[Monday], "09:00", "17:00")),
            [format!("{w}.time_zone")]
        );
        assert_eq!(
            check(window("UTC", &[], "09:00", "17:00")),
            [format!("{w}.days")]
        );
        assert_eq!(
            check(window("UTC", &[Monday, Unspecified], "09:00", "17:00")),
            [format!("{w}.days[1]")]
        );
        assert_eq!(
            check(window("UTC", &[Monday, Tuesday, Monday], "09:00", "17:00")),
            [format!("{w}.days[2]")]
        );
        let mut unknown = window("UTC", &[Monday], "09:00", "17:00");
        unknown.days = vec![99, 1, -1];
        assert_eq!(
            check(unknown),
            [format!("{w}.days[0]"), format!("{w}.days[2]")]
        );
        assert_eq!(
            check(window("UTC", &[Monday], "9:00", "17:00")),
            [format!("{w}.open_time")]
        );
        assert_eq!(
            check(window("UTC", &[Monday], "24:00", "17:00")),
            [format!("{w}.open_time")]
        );
        assert_eq!(
            check(window("UTC", &[Monday], "09:00", "24:01")),
            [format!("{w}.close_time")]
        );
        assert_eq!(
            check(window("UTC", &[Monday], "", "")),
            [format!("{w}.open_time"), format!("{w}.close_time")]
        );
        assert_eq!(
            check(window("UTC", &[Monday], "09:00", "09:00")),
            [format!("{w}.close_time")]
        );
        assert_eq!(
            check(window("UTC", &[Monday], "00:00", "00:00")),
            [format!("{w}.close_time")]
        );

        let bad = window(
            "Mars/Olympus",
            &[Unspecified, Monday, Monday],
            "25:00",
            "ab:cd",
        );
        assert_eq!(
            check(bad),
            [
                format!("{w}.time_zone"),
                format!("{w}.days[0]"),
                format!("{w}.days[2]"),
                format!("{w}.open_time"),
                format!("{w}.close_time"),
            ]
        );
    }

    #[test]
    fn accepted_windows() {
        use pb::DayOfWeek::*;
        let mut info = full_info(PROD);
        info.operational_support = windows(vec![
            window("Asia/Tokyo", &[Friday, Saturday], "22:00", "02:00"),
            window("UTC", &[Sunday], "18:00", "24:00"),
            window("UTC", &[Monday], "00:00", "23:59"),
        ]);
        let update = parse_update(&request(info, &["operational_support"])).expect("valid");
        let Some(OperationalSupport::Windows(ws)) = update.patch.operational_support else {
            panic!("windows expected");
        };
        assert_eq!(ws[0].days(), [Weekday::Friday, Weekday::Saturday]);
        assert_eq!(ws[0].open_time().to_string(), "22:00");
        assert_eq!(ws[0].close_time().to_string(), "02:00");
        assert_eq!(ws[1].close_time().minutes(), LocalTime::MIDNIGHT_END);
    }

    #[test]
    fn all_violations_reported_together() {
        let mut info = full_info(PROD);
        info.technical_emergency_contacts[0].email = "nope".into();
        info.merchant_issues_contacts[0].phone_number = "12".into();
        let mut unknown_day = valid_window();
        unknown_day.days = vec![9];
        info.operational_support = windows(vec![unknown_day]);
        assert_eq!(
            fields_of(&request(info, &[])),
            [
                "contact_info.technical_emergency_contacts[0].email",
                "contact_info.merchant_issues_contacts[0].phone_number",
                "contact_info.operational_support.windows[0].days[0]",
            ]
        );
    }

    #[test]
    fn descriptions_never_repeat_personal_values() {
        let mut info = full_info(PROD);
        info.alert_contacts = vec![
            contact("canary-7f3a@example.com"),
            contact("Canary-7F3A@example.com"),
            pb::Contact {
                email: "canary-7f3a@example".into(),
                display_name: format!("canary-7f3a\n{}", "x".repeat(100)),
                phone_number: "+1 555 canary-7f3a".into(),
                language_code: "canary-7f3a!".into(),
            },
            pb::Contact {
                email: format!("canary-7f3a{}@example.com", "y".repeat(300)),
                ..Default::default()
            },
        ];
        let err = parse_update(&request(info, &["alert_contacts"])).expect_err("invalid");
        let Error::InvalidArgument { violations, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(violations.len(), 6, "{violations:?}");
        for v in violations {
            let d = v.description.to_lowercase();
            assert!(!d.contains("canary") && !d.contains("7f3a"), "{v}");
        }
        let text = err.to_string().to_lowercase();
        assert!(!text.contains("canary") && !text.contains("7f3a"), "{text}");
    }

    #[test]
    fn gate_response() {
        let policy = crate::domain::GatePolicy::builtin();
        let result = policy
            .evaluate("", Environment::Sandbox, None, &Default::default())
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
            integration_type: "x".into(),
            findings: vec![],
        };
        let out = gate_to_pb(&open, Some("W/1"), t);
        assert!(out.open);
        assert!(out.findings.is_empty());
        assert_eq!(out.etag, "W/1");
    }

    #[test]
    fn leap_second_timestamp_stays_valid() {
        let t = DateTime::from_timestamp(1_483_228_799, 1_500_000_000).expect("leap second");
        let ts = timestamp(t);
        assert_eq!(ts.seconds, 1_483_228_799);
        assert_eq!(ts.nanos, 999_999_999);
    }
}
