//! Resource names from requests, refused on the `name` field.
use crate::domain::ContactInfoName;
use crate::error::Error;

/// Parses a `GetContactsRequest.name`.
pub fn parse_name(name: &str) -> Result<ContactInfoName, Error> {
    ContactInfoName::parse(name).map_err(|d| Error::invalid_field("name", d))
}

/// Parses a `CheckOnboardingGateRequest.name`, which may also be the parent
/// `partners/{p}/environments/{e}`.
pub fn parse_gate_name(name: &str) -> Result<ContactInfoName, Error> {
    ContactInfoName::parse_or_parent(name).map_err(|d| Error::invalid_field("name", d))
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
