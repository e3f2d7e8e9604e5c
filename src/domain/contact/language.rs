//! Language tags (BCP 47) of contacts.
use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_rules() {
        assert!(LanguageCode::parse("en").is_ok());
        assert!(LanguageCode::parse("pt-BR").is_ok());
        assert!(LanguageCode::parse("zh-Hant-TW").is_ok());
        assert!(LanguageCode::parse("english please").is_err());
        assert!(LanguageCode::parse("").is_err());
    }
}
