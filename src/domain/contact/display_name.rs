//! Display names of contacts.
use serde::{Deserialize, Serialize};

use super::MAX_DISPLAY_NAME_CHARS;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_name_rules() {
        assert!(DisplayName::parse(&"é".repeat(100)).is_ok());
        assert!(DisplayName::parse(&"é".repeat(101)).is_err());
        assert!(DisplayName::parse("Ops\r\nBcc: x").is_err());
    }
}
