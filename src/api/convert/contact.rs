//! One `Contact` both ways: the contacts of one field validated, and a
//! domain contact as the proto spells it.
use crate::domain::{
    Contact, DisplayName, Email, LanguageCode, MAX_CONTACTS_PER_FIELD, PhoneNumber,
};
use crate::error::Violations;
use crate::pb;

/// Returns the contacts that parsed; the result only matters when no
/// violation was recorded, in which case all of them did.
pub(super) fn parse_contacts(
    given: &[pb::Contact],
    path: &str,
    v: &mut Violations,
) -> Vec<Contact> {
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

/// A contact as every response spells it (a contact info's fields, and each
/// recipient of `ResolveRecipients`): proto3 strings cannot be absent, so an
/// absent part is the empty string, which `parse_contacts` reads back as absent.
pub(crate) fn contact_to_pb(c: &Contact) -> pb::Contact {
    pb::Contact {
        email: c.email.as_str().to_owned(),
        display_name: c
            .display_name
            .as_ref()
            .map_or("", |d| d.as_str())
            .to_owned(),
        phone_number: c
            .phone_number
            .as_ref()
            .map_or("", |p| p.as_str())
            .to_owned(),
        language_code: c
            .language_code
            .as_ref()
            .map_or("", |l| l.as_str())
            .to_owned(),
        verification: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::convert::fixtures::{
        PROD, contact, full_info, only_violation, request, violations,
    };
    use crate::api::convert::parse_update;
    use crate::error::Error;

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
                verification: None,
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
                verification: None,
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
}
