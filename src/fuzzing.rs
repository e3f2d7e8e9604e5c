//! Fuzz harness bodies, shared by the cargo-fuzz targets in `fuzz/` and the stable corpus replay test (`tests/fuzz_corpus.rs`); not an API.
#![doc(hidden)]
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;

use crate::api::convert;
use crate::api::status::{
    self, ENCODED_DETAILS_MAX_BYTES, MESSAGE_BUDGET_BYTES, TRAILERS_LIMIT_BYTES,
};
use crate::domain::{
    ContactFields, ContactInfoName, DisplayName, Email, Field, PortalUserName, ReadView, Update,
    parse_partner_parent, partner_segment,
};
use crate::error::{Error, MAX_VIOLATIONS, MORE_VIOLATIONS};
use crate::pb;

/// An error about a resource name explains the expected form; past this it
/// would be repeating the input.
const NAME_ERROR_MAX_BYTES: usize = 512;

/// Bytes as an `UpdateContactsRequest`: validation never panics, an accepted
/// update is a fixed point of encode-and-validate, and a refusal maps to a
/// status that fits in trailers and lists field violations.
pub fn update_request(data: &[u8]) {
    let Ok(req) = pb::UpdateContactsRequest::decode(data) else {
        return;
    };
    match convert::parse_update(&req) {
        Ok(update) => check_accepted(&req, &update),
        Err(err) => check_refused(&req, err),
    }
}

fn check_accepted(req: &pb::UpdateContactsRequest, update: &Update) {
    let info = req
        .contact_info
        .as_ref()
        .expect("accepted without contact_info");
    assert!(!update.mask.is_empty(), "accepted with an empty mask");
    // Names parse only in their one canonical spelling.
    assert_eq!(update.name.to_string(), info.name);
    assert_eq!(
        update.expected_etag.as_deref(),
        (!info.etag.is_empty()).then_some(info.etag.as_str())
    );
    for field in Field::ALL {
        if !update.mask.contains(field) {
            assert!(
                !update.patch.is_provided(field),
                "{} taken although not in the mask",
                field.as_str()
            );
        }
    }
    if update.name.environment == crate::domain::Environment::Sandbox {
        assert!(update.patch.alert_contacts.is_empty());
    }

    // Validation looks only at the masked fields: clearing the others
    // changes nothing.
    let mut only_masked = info.clone();
    clear_unmasked(&mut only_masked, update);
    let again = convert::parse_update(&pb::UpdateContactsRequest {
        contact_info: Some(only_masked),
        ..req.clone()
    });
    assert_eq!(
        again.as_ref(),
        Ok(update),
        "unmasked fields changed the result"
    );

    // The update as the API would echo it, sent again with its mask: the
    // same update (normalised values, such as E.164 phone numbers and time
    // zone names, are fixed points).
    let mut echoed = convert::preview_to_pb(&update.name, &update.patch, None, ReadView::Full);
    echoed.etag.clone_from(&info.etag);
    let resent = pb::UpdateContactsRequest {
        contact_info: Some(echoed),
        update_mask: Some(prost_types::FieldMask {
            paths: update.mask.iter().map(|f| f.as_str().to_owned()).collect(),
        }),
        validate_only: false,
        request_id: String::new(),
    };
    let resent = pb::UpdateContactsRequest::decode(resent.encode_to_vec().as_slice())
        .expect("own encoding decodes");
    assert_eq!(
        convert::parse_update(&resent).as_ref(),
        Ok(update),
        "the echoed update validates differently"
    );

    // The stores keep fields as JSON (`store::encode_fields`; they decode it
    // with serde_json as below).
    let json = crate::store::encode_fields(&update.patch).expect("fields encode");
    let decoded: ContactFields = serde_json::from_str(&json).expect("encoded fields decode");
    assert_eq!(decoded, update.patch, "fields change through JSON");
}

fn clear_unmasked(info: &mut pb::ContactInfo, update: &Update) {
    for field in Field::ALL {
        if update.mask.contains(field) {
            continue;
        }
        match field {
            Field::AlertContacts => info.alert_contacts.clear(),
            Field::TechnicalEmergencyContacts => info.technical_emergency_contacts.clear(),
            Field::TechnicalNonEmergencyContacts => info.technical_non_emergency_contacts.clear(),
            Field::MerchantIssuesContacts => info.merchant_issues_contacts.clear(),
            Field::PlatformOperationalContacts => info.platform_operational_contacts.clear(),
            Field::UserFacingOperationalContacts => info.user_facing_operational_contacts.clear(),
            Field::OperationalSupport => info.operational_support = None,
        }
    }
}

fn check_refused(req: &pb::UpdateContactsRequest, err: Error) {
    let Error::InvalidArgument { violations, .. } = &err else {
        panic!("validation failed with something else than INVALID_ARGUMENT: {err:?}");
    };
    assert!(
        !violations.is_empty(),
        "INVALID_ARGUMENT without violations"
    );
    assert!(
        violations.len() <= MAX_VIOLATIONS + 1,
        "{} violations",
        violations.len()
    );
    for (i, v) in violations.iter().enumerate() {
        let marker = v.field.is_empty() && v.description == MORE_VIOLATIONS;
        assert!(
            marker == (i == MAX_VIOLATIONS),
            "the cut-off marker must be last and only after {MAX_VIOLATIONS}: {v:?} at {i}"
        );
        assert!(!v.description.is_empty(), "{v:?}");
    }

    // Descriptions never repeat a contact's address (personal data). Only
    // mask paths are echoed, on purpose, so their violations (and a message
    // that may quote them) are left out.
    let emails = request_emails(req);
    let echoes_mask = violations
        .iter()
        .any(|v| v.field.starts_with("update_mask"));
    let text = err.to_string();
    for email in &emails {
        for v in violations
            .iter()
            .filter(|v| !v.field.starts_with("update_mask"))
        {
            assert!(
                !v.field.contains(email) && !v.description.contains(email),
                "a violation repeats an email: {v:?}"
            );
        }
        assert!(
            echoes_mask || !text.contains(email),
            "the message repeats an email"
        );
    }

    let listed = violations.len();
    let status = status::to_status(err);
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().len() <= MESSAGE_BUDGET_BYTES,
        "message of {} bytes",
        status.message().len()
    );
    assert!(
        status.details().len() <= ENCODED_DETAILS_MAX_BYTES,
        "details of {} bytes",
        status.details().len()
    );
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "FIELD_VIOLATIONS");
    assert_eq!(info.domain, status::ERROR_DOMAIN);
    let bad = details.bad_request().expect("BadRequest");
    assert!(!bad.field_violations.is_empty());
    assert!(bad.field_violations.len() <= listed + 1);
    if bad.field_violations.len() < listed {
        assert_eq!(
            bad.field_violations.last().map(|v| v.description.as_str()),
            Some(MORE_VIOLATIONS),
            "a shortened list must say so"
        );
    }

    let response = status.into_http::<()>();
    // Counted as hyper's client counts a header block.
    let trailers: usize = response
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum();
    assert!(
        trailers <= TRAILERS_LIMIT_BYTES,
        "trailers of {trailers} bytes"
    );
}

/// The contacts' email values long enough to be recognisable.
fn request_emails(req: &pb::UpdateContactsRequest) -> Vec<&str> {
    let Some(info) = &req.contact_info else {
        return Vec::new();
    };
    [
        &info.alert_contacts,
        &info.technical_emergency_contacts,
        &info.technical_non_emergency_contacts,
        &info.merchant_issues_contacts,
        &info.platform_operational_contacts,
        &info.user_facing_operational_contacts,
    ]
    .into_iter()
    .flatten()
    .map(|c| c.email.as_str())
    .filter(|e| e.len() >= 6 && e.contains('@'))
    .collect()
}

/// Bytes (lossily) as a resource name, through every name parser: none
/// panics, what parses prints back to the same value, and the partner that
/// authorisation reads from the raw name is the one validation accepts.
pub fn resource_name(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let s = s.as_ref();
    let segment = partner_segment(s);
    if let Some(seg) = segment {
        assert!(!seg.contains('/'));
        assert!(s.starts_with("partners/") && s["partners/".len()..].starts_with(seg));
    } else {
        assert!(!s.starts_with("partners/"));
    }

    let full = ContactInfoName::parse(s);
    match &full {
        Ok(name) => {
            assert_eq!(name.to_string(), s, "a full name parses only as printed");
            assert_eq!(segment, Some(name.partner.as_str()));
        }
        Err(e) => check_name_error(e),
    }

    match ContactInfoName::parse_or_parent(s) {
        Ok(name) => {
            let printed = name.to_string();
            assert_eq!(ContactInfoName::parse(&printed).as_ref(), Ok(&name));
            assert_eq!(
                ContactInfoName::parse_or_parent(&printed).as_ref(),
                Ok(&name)
            );
            assert!(printed == s || printed == format!("{s}/contactInfo"));
            assert_eq!(segment, Some(name.partner.as_str()));
            if let Ok(full) = &full {
                assert_eq!(full, &name);
            }
        }
        Err(e) => {
            assert!(
                full.is_err(),
                "a full name must also parse as name-or-parent"
            );
            check_name_error(&e);
        }
    }

    match PortalUserName::parse(s) {
        Ok(name) => {
            let printed = name.to_string();
            assert_eq!(PortalUserName::parse(&printed).as_ref(), Ok(&name));
            assert!(printed.eq_ignore_ascii_case(s), "{printed} from {s:?}");
            assert_eq!(segment, Some(name.partner.as_str()));
        }
        Err(e) => check_name_error(&e),
    }

    match parse_partner_parent(s) {
        Ok(partner) => {
            let printed = format!("partners/{}", partner.as_str());
            assert_eq!(printed, s);
            assert_eq!(parse_partner_parent(&printed).as_ref(), Ok(&partner));
            assert_eq!(segment, Some(partner.as_str()));
        }
        Err(e) => check_name_error(&e),
    }
}

fn check_name_error(e: &str) {
    assert!(!e.is_empty());
    assert!(
        e.len() <= NAME_ERROR_MAX_BYTES,
        "error of {} bytes",
        e.len()
    );
}

/// Bytes (lossily) as an email address and as a display name: neither parser
/// panics, what they accept is in the form they promise, and no accepted
/// address shares its mailbox key with a look-alike.
pub fn contact_text(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let s = s.as_ref();
    check_email(s);
    check_display_name(s);
}

fn check_email(s: &str) {
    let stored = Email::parse_stored(s.to_owned());
    let Ok(email) = Email::parse(s) else {
        // Refused today: if an older release's rules let it in, its key still
        // matches no accepted address (ASCII lower-casing of an all-ASCII
        // text, or a refused-address key).
        if let Ok(old) = stored {
            let key = old.comparison_key();
            assert!(
                s.is_ascii() || !key.contains('@') || key.contains(' '),
                "{s:?} has key {key:?}"
            );
            assert!(!old.is_valid());
        }
        return;
    };
    assert_eq!(email.as_str(), s, "addresses are kept as given");
    assert!(stored.is_ok(), "an accepted address must read back");
    let key = email.comparison_key();
    // Only ASCII letters fold, the key is in NFC and is its own key
    // (comparing is transitive), and it holds no character an address may not.
    assert!(!key.chars().any(|c| c.is_ascii_uppercase()), "{key:?}");
    assert!(key.is_ascii() || !s.is_ascii());
    assert!(unicode_normalization::is_nfc(&key), "{key:?} of {s:?}");
    let again = Email::parse(&key).unwrap_or_else(|e| panic!("key {key:?} of {s:?}: {e}"));
    assert_eq!(again.comparison_key(), key);
    assert!(
        !key.chars()
            .any(|c| c.is_control() || c.is_whitespace() || ('\u{200B}'..='\u{200F}').contains(&c)),
        "{key:?}"
    );
    assert_eq!(
        crate::domain::email_key_of_stored(s),
        key,
        "stored and parsed keys differ"
    );
}

fn check_display_name(s: &str) {
    let Ok(name) = DisplayName::parse(s) else {
        return;
    };
    let shown = name.as_str();
    assert!(shown.chars().count() <= 100);
    assert!(!shown.chars().any(char::is_control), "{shown:?}");
    assert!(
        !shown.chars().any(|c| matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2028}' | '\u{2029}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')),
        "{shown:?}"
    );
    assert!(!shown.starts_with(' ') && !shown.ends_with(' '));
    // Stored in NFC, and the stored form is a fixed point.
    let again = DisplayName::parse(shown).expect("an accepted name parses again");
    assert_eq!(again.as_str(), shown);
    let json = serde_json::to_string(&name).expect("encode");
    let back: DisplayName = serde_json::from_str(&json).expect("decode");
    assert_eq!(back, name);
}
