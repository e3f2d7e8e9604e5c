//! Resource names: `partners/{partner}/environments/{environment}/contactInfo`.
use std::fmt;

use serde::{Deserialize, Serialize};

/// A partner account id: 1 to 63 of `a-z0-9-`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PartnerId(String);

impl TryFrom<String> for PartnerId {
    type Error = &'static str;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<PartnerId> for String {
    fn from(p: PartnerId) -> Self {
        p.0
    }
}

impl PartnerId {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if Self::is_valid(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(
                "partner id must be 1 to 63 characters of a-z, 0-9 and '-', starting with a letter or digit",
            )
        }
    }

    /// Whether `parse` would take `s` (without allocating).
    pub fn is_valid(s: &str) -> bool {
        let valid_len = (1..=63).contains(&s.len());
        let valid_chars = s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let valid_start = s.bytes().next().is_some_and(|b| b != b'-');
        valid_len && valid_chars && valid_start
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Each environment has its own contact information.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Sandbox,
    Production,
}

impl Environment {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sandbox" => Some(Self::Sandbox),
            "production" => Some(Self::Production),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Production => "production",
        }
    }
}

/// The name of one partner's contact information in one environment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContactInfoName {
    pub partner: PartnerId,
    pub environment: Environment,
}

const FORMAT_HINT: &str =
    "must be partners/{partner}/environments/{sandbox|production}/contactInfo";
const PARENT_FORMAT_HINT: &str = "must be partners/{partner}/environments/{sandbox|production}/contactInfo or partners/{partner}/environments/{sandbox|production}";

impl ContactInfoName {
    pub fn new(partner: PartnerId, environment: Environment) -> Self {
        Self {
            partner,
            environment,
        }
    }

    /// Parses the full resource name. The error explains the expected form
    /// without repeating the input.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::parse_inner(s, false)
    }

    /// Also accepts the parent form `partners/{p}/environments/{e}`.
    pub fn parse_or_parent(s: &str) -> Result<Self, String> {
        Self::parse_inner(s, true)
    }

    fn parse_inner(s: &str, allow_parent: bool) -> Result<Self, String> {
        let hint = if allow_parent {
            PARENT_FORMAT_HINT
        } else {
            FORMAT_HINT
        };
        if s.is_empty() {
            return Err(format!("is required; {hint}"));
        }
        // Segment by segment, without collecting them: every read RPC parses one.
        let segments = s
            .strip_prefix("partners/")
            .and_then(|rest| rest.split_once('/'))
            .and_then(|(p, rest)| Some((p, rest.strip_prefix("environments/")?)))
            .and_then(|(p, rest)| match rest.split_once('/') {
                Some((e, "contactInfo")) => Some((p, e)),
                None if allow_parent => Some((p, rest)),
                _ => None,
            });
        let Some((partner, environment)) = segments else {
            return Err(hint.to_owned());
        };
        let partner = PartnerId::parse(partner).map_err(|e| format!("{e}; {hint}"))?;
        let environment = Environment::parse(environment)
            .ok_or_else(|| format!("environment must be sandbox or production; {hint}"))?;
        Ok(Self::new(partner, environment))
    }
}

impl fmt::Display for ContactInfoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "partners/{}/environments/{}/contactInfo",
            self.partner.as_str(),
            self.environment.as_str()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partner_ids_read_back_only_through_parse() {
        let id: PartnerId = serde_json::from_str("\"acme-1\"").expect("valid");
        assert_eq!(id.as_str(), "acme-1");
        assert_eq!(serde_json::to_string(&id).expect("encode"), "\"acme-1\"");
        for bad in ["\"Acme\"", "\"-acme\"", "\"\"", "\"a/b\""] {
            assert!(serde_json::from_str::<PartnerId>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_full_names() {
        let n = ContactInfoName::parse("partners/acme-1/environments/production/contactInfo")
            .expect("valid");
        assert_eq!(n.partner.as_str(), "acme-1");
        assert_eq!(n.environment, Environment::Production);
        assert_eq!(
            n.to_string(),
            "partners/acme-1/environments/production/contactInfo"
        );
        assert!(ContactInfoName::parse("partners/12345/environments/sandbox/contactInfo").is_ok());
        let max = "a".repeat(63);
        assert!(
            ContactInfoName::parse(&format!("partners/{max}/environments/sandbox/contactInfo"))
                .is_ok()
        );
    }

    #[test]
    fn rejects_bad_names() {
        let long = "a".repeat(64);
        for bad in [
            "",
            "partners/acme/environments/production",
            "partners/Acme/environments/production/contactInfo",
            "partners/-acme/environments/production/contactInfo",
            "partners//environments/production/contactInfo",
            "partners/acme/environments/staging/contactInfo",
            "partners/acme/environments/production/contactinfo",
            "partners/acme/environments/production/contactInfo/",
            "/partners/acme/environments/production/contactInfo",
            "partners/ac_me/environments/production/contactInfo",
            "partners/acmé/environments/production/contactInfo",
            &format!("partners/{long}/environments/production/contactInfo"),
        ] {
            let err = ContactInfoName::parse(bad).expect_err(bad);
            assert!(!err.is_empty());
        }
    }

    #[test]
    fn parent_form_only_when_allowed() {
        let parent = "partners/acme/environments/sandbox";
        assert!(ContactInfoName::parse(parent).is_err());
        let n = ContactInfoName::parse_or_parent(parent).expect("parent accepted");
        assert_eq!(
            n.to_string(),
            "partners/acme/environments/sandbox/contactInfo"
        );
        assert!(ContactInfoName::parse_or_parent("partners/acme").is_err());
    }
}
