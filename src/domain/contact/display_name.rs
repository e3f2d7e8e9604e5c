//! Display names of contacts.
//!
//! A portal and an email header show them as text, so a name must not be able
//! to hide, reorder or overlay what is shown: no control, format (bidi
//! overrides, zero-width joiners and spaces), line or paragraph separator,
//! private-use, unassigned or default-ignorable characters (HANGUL FILLER and
//! kin), no space other than U+0020, no runs of more than
//! [`MAX_COMBINING_MARKS`] combining marks. Names are stored in NFC.
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use unicode_security::GeneralSecurityProfile;
use unicode_security::general_security_profile::IdentifierType;

use super::MAX_DISPLAY_NAME_CHARS;

/// Longest run of combining marks on one base character: enough for any
/// written language, too few to draw over neighbouring text.
pub const MAX_COMBINING_MARKS: usize = 4;

const INVISIBLE: &str = "must not contain control, invisible, formatting (such as right-to-left override) or line separator characters";

/// A display name: at most 100 characters, visible text only (the module comment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

impl DisplayName {
    /// A name from a caller, in NFC.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let nfc: String = s.nfc().collect();
        if nfc.chars().count() > MAX_DISPLAY_NAME_CHARS {
            return Err("must be at most 100 characters");
        }
        if nfc.trim_matches(' ').is_empty() {
            return Err("must not be blank; leave it empty when there is no name");
        }
        if nfc.starts_with(' ') || nfc.ends_with(' ') {
            return Err("must not start or end with a space");
        }
        let mut marks = 0;
        for c in nfc.chars() {
            if !visible(c) {
                return Err(INVISIBLE);
            }
            if c.general_category() == GeneralCategory::SpaceSeparator && c != ' ' {
                return Err("must use the plain space (U+0020) between words");
            }
            if is_mark(c) {
                marks += 1;
                if marks > MAX_COMBINING_MARKS {
                    return Err("must not stack more than 4 combining marks on one character");
                }
            } else {
                marks = 0;
            }
        }
        Ok(Self(nfc))
    }

    /// A name read back from storage: today's rules, or those of an earlier
    /// release (no control characters, at most 100 characters), so that a name
    /// saved then stays readable until it is next edited.
    pub fn parse_stored(s: String) -> Result<Self, &'static str> {
        match Self::parse(&s) {
            Ok(name) => Ok(name),
            Err(_)
                if s.chars().count() <= MAX_DISPLAY_NAME_CHARS
                    && !s.chars().any(char::is_control) =>
            {
                Ok(Self(s))
            }
            Err(e) => Err(e),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

super::stored_as_string!(DisplayName);

fn visible(c: char) -> bool {
    !matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::PrivateUse
            | GeneralCategory::Surrogate
            | GeneralCategory::Unassigned
    ) && !matches!(
        c.identifier_type(),
        Some(IdentifierType::Default_Ignorable | IdentifierType::Not_Character)
    )
}

fn is_mark(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::NonspacingMark
            | GeneralCategory::EnclosingMark
            | GeneralCategory::SpacingMark
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_name_rules() {
        assert!(DisplayName::parse(&"é".repeat(100)).is_ok());
        assert!(DisplayName::parse(&"é".repeat(101)).is_err());
        assert!(DisplayName::parse("Ops\r\nBcc: x").is_err());
        for ok in [
            "Acme Support",
            "Zoë O'Brien-Łukasz",
            "山田 太郎",
            "Tiếng Việt",
            "Ops (24/7) 🚨",
        ] {
            assert!(DisplayName::parse(ok).is_ok(), "{ok:?} refused");
        }
    }

    #[test]
    fn names_cannot_hide_or_reorder_text() {
        for attack in [
            "Acme\u{202E}troppuS",                         // RIGHT-TO-LEFT OVERRIDE
            "Acme\u{2066}x\u{2069}",                       // isolates
            "Ac\u{200B}me",                                // ZERO WIDTH SPACE
            "Ac\u{200D}me",                                // ZERO WIDTH JOINER
            "Ac\u{FEFF}me",                                // BOM
            "Ac\u{AD}me",                                  // SOFT HYPHEN
            "Acme\u{2028}Bcc",                             // LINE SEPARATOR
            "Acme\u{2029}Bcc",                             // PARAGRAPH SEPARATOR
            "Acme\u{85}Bcc",                               // NEXT LINE (C1)
            "Acme\u{E000}",                                // private use
            "Acme\u{3164}",                                // HANGUL FILLER
            "Acme\u{115F}",                                // HANGUL CHOSEONG FILLER
            "Acme\u{E0041}",                               // TAG LATIN CAPITAL A
            "Acme\u{A0}Support",                           // NO-BREAK SPACE
            "Acme\u{2003}Support",                         // EM SPACE
            "A\u{301}\u{300}\u{302}\u{303}\u{304}\u{306}", // a tower of marks
            " Acme",
            "Acme ",
            "   ",
        ] {
            assert!(DisplayName::parse(attack).is_err(), "{attack:?} accepted");
        }
    }

    #[test]
    fn names_are_stored_in_nfc_and_old_ones_stay_readable() {
        let decomposed = DisplayName::parse("Zoe\u{308}").expect("valid");
        assert_eq!(decomposed.as_str(), "Zoë");
        let old = DisplayName::parse_stored("Acme\u{202E}x".to_owned()).expect("stored");
        assert_eq!(old.as_str(), "Acme\u{202E}x");
        assert!(DisplayName::parse_stored("a\nb".to_owned()).is_err());
    }
}
