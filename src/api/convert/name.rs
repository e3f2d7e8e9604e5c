//! Resource names from requests, refused under the request field that held them.
use crate::domain::{ContactInfoName, check_copy_source};
use crate::error::{Error, Violations};

/// Parses a `GetContactsRequest.name`.
pub fn parse_name(name: &str) -> Result<ContactInfoName, Error> {
    ContactInfoName::parse(name).map_err(|d| Error::invalid_field("name", d))
}

/// Parses a `CheckOnboardingGateRequest.name`, which may also be the parent
/// `partners/{p}/environments/{e}`.
pub fn parse_gate_name(name: &str) -> Result<ContactInfoName, Error> {
    ContactInfoName::parse_or_parent(name).map_err(|d| Error::invalid_field("name", d))
}

/// Parses `CopyContactInfoRequest.name` and `.source` (target, source),
/// both reported at once, and checks that the source may be copied.
pub fn parse_copy_names(
    name: &str,
    source: &str,
) -> Result<(ContactInfoName, ContactInfoName), Error> {
    let mut v = Violations::default();
    let target = ContactInfoName::parse(name)
        .map_err(|d| v.push("name", d))
        .ok();
    let from = ContactInfoName::parse(source)
        .map_err(|d| v.push("source", d))
        .ok();
    if let (Some(target), Some(from)) = (&target, &from)
        && let Err(violation) = check_copy_source(target, from)
    {
        v.push(violation.field, violation.description);
    }
    match v.finish((target, from))? {
        (Some(target), Some(from)) => Ok((target, from)),
        _ => Err(Error::Internal {
            detail: "copy names failed without recording a violation".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::convert::fixtures::{PROD, SANDBOX};

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
}
