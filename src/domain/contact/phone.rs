//! Phone numbers of contacts, normalised to E.164.
use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
