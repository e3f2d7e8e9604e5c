//! Email addresses: what is accepted, and the key two addresses are compared by.
use email_address::{EmailAddress, Options};
use serde::{Deserialize, Serialize};

use super::MAX_EMAIL_CHARS;

/// An email address, kept exactly as given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if s.is_empty() {
            return Err("is required");
        }
        if s.chars().count() > MAX_EMAIL_CHARS {
            return Err("must be at most 254 characters");
        }
        // A bare address with a dotted domain: "Name <a@b.c>" and "a@localhost"
        // are not addresses an alert can be delivered to.
        let options = Options::default()
            .without_display_text()
            .without_domain_literal()
            .with_required_tld();
        EmailAddress::parse_with_options(s, options)
            .map(|_| Self(s.to_owned()))
            .map_err(|_| "must be a valid email address")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form used to compare addresses: they are compared case-insensitively.
    pub fn comparison_key(&self) -> String {
        self.0.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_rules() {
        assert!(Email::parse("ops@example.com").is_ok());
        assert!(Email::parse("Ops.Team+alerts@Example.CO.uk").is_ok());
        for bad in [
            "",
            "ops",
            "ops@",
            "@example.com",
            "ops@localhost",
            "Ops <ops@example.com>",
            "ops@[127.0.0.1]",
            "ops @example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        let local = "a".repeat(64);
        let domain = format!("{}.com", "b".repeat(250 - 64 - 1));
        let just_fits = format!("{local}@{domain}");
        assert!(just_fits.len() <= 254);
        let too_long = format!("{local}@{}.example.com", "c".repeat(200));
        assert!(too_long.len() > 254);
        assert_eq!(
            Email::parse(&too_long),
            Err("must be at most 254 characters")
        );
    }

    #[test]
    fn email_kept_as_given_and_compared_case_insensitively() {
        let a = Email::parse("Ops@Example.com").expect("valid");
        assert_eq!(a.as_str(), "Ops@Example.com");
        let b = Email::parse("ops@example.COM").expect("valid");
        assert_eq!(a.comparison_key(), b.comparison_key());
    }
}
