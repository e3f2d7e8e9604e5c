//! Language tags (BCP 47) of contacts.
//!
//! A tag names the language to write to a contact in: a registered language,
//! optionally with script, region and variants (`en`, `pt-BR`, `zh-Hant-TW`).
//! It is stored and returned in its RFC 5646 canonical form (`EN-us` becomes
//! `en-US`, deprecated subtags their preferred values, `iw` becomes `he`, a
//! suppressed script goes: `en-Latn` becomes `en`). Private-use tags and
//! subtags (`x-…`, `qaa`–`qtz`, `Qaaa`–`Qabx`, `QM`–`QZ`, `XA`–`XZ`),
//! extensions, irregular grandfathered tags and subtags missing from the IANA
//! registry are refused: no sender could act on them.
use language_tags::LanguageTag;
use serde::{Deserialize, Serialize};

const HINT: &str = "must be a registered BCP 47 language tag, e.g. en or pt-BR";
const PRIVATE: &str = "must not be a private-use language tag or hold private-use subtags";

/// A BCP-47 language tag in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LanguageCode(String);

impl LanguageCode {
    /// A tag from a caller, canonicalised (the module comment).
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let tag = LanguageTag::parse(s).map_err(|_| HINT)?;
        if tag.as_str().starts_with("x-") || tag.private_use().is_some() {
            return Err(PRIVATE);
        }
        let tag = tag.canonicalize().map_err(|_| HINT)?;
        // Canonicalising replaces regular grandfathered tags (`art-lojban`)
        // by their preferred value; what still has no language subtag of the
        // registry's shape is irregular (`i-klingon`).
        let primary = tag.primary_language();
        if !(2..=3).contains(&primary.len()) || !primary.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(HINT);
        }
        if tag.extension().is_some() {
            return Err(
                "must not hold extensions; give language, script, region and variants only",
            );
        }
        if is_private_use(&tag) {
            return Err(PRIVATE);
        }
        tag.validate().map_err(|_| HINT)?;
        Ok(Self(tag.into_string()))
    }

    /// A tag read back from storage: an earlier release kept tags as typed
    /// (any well-formed tag), so those stay readable as they are.
    pub fn parse_stored(s: String) -> Result<Self, &'static str> {
        match Self::parse(&s) {
            Ok(tag) => Ok(tag),
            Err(_) if LanguageTag::parse(&s).is_ok() => Ok(Self(s)),
            Err(e) => Err(e),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

super::stored_as_string!(LanguageCode);

/// RFC 5646 section 2.2: the ranges reserved for private use.
fn is_private_use(tag: &LanguageTag) -> bool {
    let within = |s: &str, lo: &str, hi: &str| {
        s.len() == lo.len()
            && s.to_ascii_lowercase() >= lo.to_ascii_lowercase()
            && s.to_ascii_lowercase() <= hi.to_ascii_lowercase()
    };
    within(tag.primary_language(), "qaa", "qtz")
        || tag.script().is_some_and(|s| within(s, "Qaaa", "Qabx"))
        || tag.region().is_some_and(|r| {
            within(r, "QM", "QZ")
                || within(r, "XA", "XZ")
                || r.eq_ignore_ascii_case("AA")
                || r.eq_ignore_ascii_case("ZZ")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(s: &str) -> String {
        LanguageCode::parse(s).expect(s).as_str().to_owned()
    }

    #[test]
    fn language_rules() {
        assert!(LanguageCode::parse("en").is_ok());
        assert!(LanguageCode::parse("pt-BR").is_ok());
        assert!(LanguageCode::parse("zh-Hant-TW").is_ok());
        assert!(LanguageCode::parse("english please").is_err());
        assert!(LanguageCode::parse("").is_err());
    }

    #[test]
    fn tags_are_canonicalised() {
        assert_eq!(canonical("EN-us"), "en-US");
        assert_eq!(canonical("en-us"), "en-US");
        assert_eq!(canonical("ZH-hant-tw"), "zh-Hant-TW");
        assert_eq!(canonical("iw"), "he");
        assert_eq!(canonical("en-Latn"), "en");
        assert_eq!(canonical("art-lojban"), "jbo");
        assert_eq!(canonical("sgn-BR"), "bzs");
        assert_eq!(canonical("i-klingon"), "tlh");
        assert_eq!(canonical("de-CH-1996"), "de-CH-1996");
    }

    #[test]
    fn private_use_and_unregistered_tags_are_refused() {
        for bad in [
            "x-klingon",
            "en-x-internal",
            "qaa",
            "qtz-US",
            "en-Qaaa",
            "en-QM",
            "en-XA",
            "en-ZZ",
            "i-default",
            "i-mingo",
            "zz",
            "en-Abcd",
            "en-u-ca-gregory",
            "en-US-u-nu-thai",
        ] {
            assert!(LanguageCode::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn stored_tags_stay_readable() {
        let old = LanguageCode::parse_stored("EN-us".to_owned()).expect("stored");
        assert_eq!(old.as_str(), "en-US");
        let private = LanguageCode::parse_stored("x-klingon".to_owned()).expect("stored");
        assert_eq!(private.as_str(), "x-klingon");
        assert!(LanguageCode::parse_stored("not a tag".to_owned()).is_err());
    }
}
