//! A contact (email, name, phone, language) and the validated newtypes it is made of.
use email_address::{EmailAddress, Options};
use serde::{Deserialize, Serialize};

pub const MAX_EMAIL_CHARS: usize = 254;
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;
pub const MAX_CONTACTS_PER_FIELD: usize = 20;

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

/// A display name: at most 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if s.chars().count() > MAX_DISPLAY_NAME_CHARS {
            return Err("must be at most 100 characters");
        }
        // Names end up in email headers and pages: control characters there
        // are at best noise and at worst header injection.
        if s.chars().any(char::is_control) {
            return Err("must not contain control characters");
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number in E.164 form (`+16502530000`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Accepts common written forms that carry a country code and normalises
    /// them to E.164.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        const HINT: &str = "must be a valid international phone number with its country code, e.g. +1 650-253-0000";
        if s.len() > 64 {
            return Err(HINT);
        }
        let number = phonenumber::parse(None, s).map_err(|_| HINT)?;
        if !number.is_valid() {
            return Err(HINT);
        }
        Ok(Self(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A BCP-47 language tag (`en`, `pt-BR`), kept as given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LanguageCode(String);

impl LanguageCode {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        language_tags::LanguageTag::parse(s)
            .map_err(|_| "must be a BCP-47 language tag, e.g. en or pt-BR")?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One person or alias to contact. Optional parts are `None` when not given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub email: Email,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<DisplayName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<PhoneNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<LanguageCode>,
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

    #[test]
    fn phone_normalised_to_e164() {
        for (given, want) in [
            ("+1 650-253-0000", "+16502530000"),
            ("+1 (650) 253-0000", "+16502530000"),
            ("+41 44 668 18 00", "+41446681800"),
            ("+44 20 7031 3000", "+442070313000"),
            ("+16502530000", "+16502530000"),
        ] {
            assert_eq!(
                PhoneNumber::parse(given).expect(given).as_str(),
                want,
                "{given}"
            );
        }
        for bad in ["650-253-0000", "+1 123", "call me", "", "+999 1234567"] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn display_name_and_language() {
        assert!(DisplayName::parse(&"é".repeat(100)).is_ok());
        assert!(DisplayName::parse(&"é".repeat(101)).is_err());
        assert!(DisplayName::parse("Ops\r\nBcc: x").is_err());
        assert!(LanguageCode::parse("en").is_ok());
        assert!(LanguageCode::parse("pt-BR").is_ok());
        assert!(LanguageCode::parse("zh-Hant-TW").is_ok());
        assert!(LanguageCode::parse("english please").is_err());
        assert!(LanguageCode::parse("").is_err());
    }
}
