//! `UpdateContactsRequest` -> domain `Update`: the update mask, and the
//! masked fields validated under their request paths.
use super::contact::parse_contacts;
use super::support::parse_operational_support;
use crate::domain::{
    Contact, ContactFields, ContactInfoName, Environment, Field, FieldSet, Update,
};
use crate::error::{Error, Violations};
use crate::pb;

/// Fields a caller may read but never write; naming them in a mask is a
/// mistake worth telling apart from a typo.
const OUTPUT_ONLY_PATHS: [&str; 4] = ["name", "etag", "create_time", "update_time"];

/// Longest mask path echoed back in a description. Paths are not personal data
/// but they are caller-controlled, and error details travel in trailers whose
/// size is limited.
const MAX_ECHOED_PATH_CHARS: usize = 64;

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
        copied_from: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::convert::fixtures::{
        PROD, SANDBOX, contact, fields_of, full_info, only_violation, request, valid_window,
        window, windows,
    };

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
}
