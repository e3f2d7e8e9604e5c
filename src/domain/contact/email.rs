//! Email addresses: what is accepted, and the key two addresses are compared by.
//!
//! The policy (also in the proto comment of `Contact.email`):
//! - a bare address `local@domain`, no display text, no quoted local part, no
//!   domain literal, a dotted domain;
//! - the domain may be internationalised, given in Unicode or as `xn--` labels;
//!   it is compared in its IDNA ASCII form (UTS #46, the `idna` crate). Given in
//!   Unicode it must be NFC, of characters allowed in identifiers and one
//!   script per label: a fullwidth `ａcme` is refused, not silently read as
//!   `acme`;
//! - the local part may hold non-ASCII letters (RFC 6531), provided they are in
//!   NFC, allowed in identifiers by Unicode's General Security Profile (UTS #39:
//!   no invisible, format, control, compatibility or look-alike characters such
//!   as KELVIN SIGN) and all of one script;
//! - two addresses are the same mailbox when their keys are equal: the local
//!   part with ASCII letters lower-cased and every other character kept exactly
//!   (RFC 5321 lets only the receiving system interpret it; ASCII case is the
//!   one folding mail systems share), `@`, the IDNA ASCII domain. No Unicode
//!   case mapping is ever used, so keys do not move with Unicode versions.
use email_address::{EmailAddress, Options};
use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use serde::{Deserialize, Serialize};
use unicode_security::{GeneralSecurityProfile, MixedScript};

use super::MAX_EMAIL_CHARS;

/// RFC 5321's limit on the local part, in octets.
const MAX_LOCAL_PART_OCTETS: usize = 64;

const INVALID: &str = "must be a valid email address";
const LOOK_ALIKE: &str = "must not contain invisible characters, characters that only look like others, or letters of several scripts in one part";

/// Keys of stored non-ASCII addresses that today's rules refuse start with
/// this. It holds a space, which no accepted address's key holds, so such a
/// key never equals the key of an accepted address (and PostgreSQL's text
/// takes it, which it would not a NUL).
const LEGACY_KEY_PREFIX: &str = "refused address: ";

/// An email address, kept as given (it is what the partner typed and what mail
/// is sent to); compared by [`Email::comparison_key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// An address from a caller: today's rules (the module comment).
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        key_of_valid(s)?;
        Ok(Self(s.to_owned()))
    }

    /// An address read back from storage. What today's rules accept, and also
    /// what an earlier release accepted (RFC 5322 syntax only): a value saved
    /// then must stay readable, and its key can never equal an accepted
    /// address's key unless both are the same ASCII address.
    pub fn parse_stored(s: String) -> Result<Self, &'static str> {
        if key_of_valid(&s).is_ok()
            || EmailAddress::parse_with_options(&s, legacy_options()).is_ok()
        {
            Ok(Self(s))
        } else {
            Err(INVALID)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether today's rules accept this address (a stored one may predate them).
    pub fn is_valid(&self) -> bool {
        key_of_valid(&self.0).is_ok()
    }

    /// The mailbox identity: equal keys, same mailbox (the module comment).
    pub fn comparison_key(&self) -> String {
        key_of_stored(&self.0)
    }
}

super::stored_as_string!(Email);

/// The key of any stored address string, valid today or not: the migration
/// that recomputes stored keys uses it as well.
pub fn key_of_stored(s: &str) -> String {
    if s.is_ascii() {
        // An ASCII address's IDNA domain is itself, lower-cased; for one that
        // today's rules refuse (a quoted local part, say) the same lower-casing
        // can only equal an accepted key when both name the same ASCII mailbox.
        return s.to_ascii_lowercase();
    }
    match key_of_valid(s) {
        Ok(key) => key,
        Err(_) => format!("{LEGACY_KEY_PREFIX}{s}"),
    }
}

/// [`key_of_stored`] without a copy when the address is its own key (ASCII
/// without capitals: almost every address), for the read path's lookups.
pub fn key_of_stored_borrowed(s: &str) -> std::borrow::Cow<'_, str> {
    if s.is_ascii() && !s.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(key_of_stored(s))
    }
}

/// The options an earlier release validated with.
fn legacy_options() -> Options {
    Options::default()
        .without_display_text()
        .without_domain_literal()
        .with_required_tld()
}

/// Validates `s` under today's rules and returns its key.
fn key_of_valid(s: &str) -> Result<String, &'static str> {
    if s.is_empty() {
        return Err("is required");
    }
    if s.chars().count() > MAX_EMAIL_CHARS {
        return Err("must be at most 254 characters");
    }
    // RFC 5322 syntax first: display text, comments and domain literals are
    // not addresses an alert can be delivered to.
    EmailAddress::parse_with_options(s, legacy_options()).map_err(|_| INVALID)?;
    let (local, domain) = s.rsplit_once('@').ok_or(INVALID)?;
    let local = local_part_key(local)?;
    let domain = domain_key(domain)?;
    if local.len() + 1 + domain.len() > MAX_EMAIL_CHARS {
        return Err("must be at most 254 characters");
    }
    Ok(format!("{local}@{domain}"))
}

/// A dot-atom (RFC 5322 atext, plus RFC 6531's non-ASCII letters under the
/// module's rules), its key.
fn local_part_key(local: &str) -> Result<String, &'static str> {
    if local.is_empty() || local.len() > MAX_LOCAL_PART_OCTETS {
        return Err(INVALID);
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(INVALID);
    }
    let mut non_ascii = false;
    for c in local.chars() {
        if c.is_ascii() {
            if !is_atext(c) && c != '.' {
                // A quoted local part (`"a b"@x`) lands here: few systems
                // deliver to one, and `"kim@x"@y` reads as another address.
                return Err(INVALID);
            }
        } else {
            non_ascii = true;
            if !c.identifier_allowed() {
                return Err(LOOK_ALIKE);
            }
        }
    }
    if non_ascii {
        if !unicode_normalization::is_nfc(local) {
            return Err(LOOK_ALIKE);
        }
        if !local.is_single_script() {
            return Err(LOOK_ALIKE);
        }
    }
    // Folding ASCII case can make a text composable (`W` + COMBINING RING
    // ABOVE is NFC, `w` + it is not: it composes to `ẘ`), so the folded form
    // would compare as another text than it reads. Found by fuzzing; no
    // real address needs it.
    let folded = local.to_ascii_lowercase();
    if non_ascii && !unicode_normalization::is_nfc(&folded) {
        return Err(LOOK_ALIKE);
    }
    Ok(folded)
}

/// RFC 5322 `atext` in ASCII.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

/// The IDNA ASCII form of a domain given in Unicode (NFC, identifier
/// characters, one script per label) or as A-labels.
fn domain_key(domain: &str) -> Result<String, &'static str> {
    let uts46 = Uts46::new();
    let ascii = uts46
        .to_ascii(
            domain.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::Check,
            DnsLength::Verify,
        )
        .map_err(|_| INVALID)?;
    let (unicode, checked) =
        uts46.to_unicode(ascii.as_bytes(), AsciiDenyList::STD3, Hyphens::Check);
    checked.map_err(|_| INVALID)?;
    // UTS #46 maps many characters onto others (fullwidth letters, KELVIN
    // SIGN, ligatures, ideographic full stops). Accepting those would store
    // one text and mean another: the given form must be NFC and made of
    // characters allowed in identifiers, so that the only mapping left is
    // letter case, which IDNA folds by its own rules.
    if !domain.is_ascii()
        && (!unicode_normalization::is_nfc(domain)
            || !domain
                .chars()
                .all(|c| c == '.' || c.is_ascii() || c.identifier_allowed()))
    {
        return Err(LOOK_ALIKE);
    }
    let mut labels = 0;
    for label in unicode.split('.') {
        labels += 1;
        if !label.is_ascii()
            && (!label
                .chars()
                .all(|c| c.is_ascii() || c.identifier_allowed())
                || !label.is_single_script())
        {
            return Err(LOOK_ALIKE);
        }
    }
    let tld_is_numeric = ascii
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()));
    if labels < 2 || tld_is_numeric {
        return Err(INVALID);
    }
    Ok(ascii.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> String {
        Email::parse(s).expect(s).comparison_key()
    }

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
            "\"ops team\"@example.com",
            "\"kim@acme.example\"@evil.example",
            ".ops@example.com",
            "ops.@example.com",
            "o..ps@example.com",
            "ops@example.123",
            "ops@-example.com",
            "ops@exa_mple.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        let local = "a".repeat(64);
        let domain = format!("{}.com", "b".repeat(60));
        assert!(Email::parse(&format!("{local}@{domain}")).is_ok());
        assert!(Email::parse(&format!("{local}a@{domain}")).is_err());
        let too_long = format!("{local}@{}.example.com", "c".repeat(200));
        assert!(too_long.len() > 254);
        assert_eq!(
            Email::parse(&too_long),
            Err("must be at most 254 characters")
        );
    }

    #[test]
    fn email_kept_as_given_and_compared_by_ascii_case_only() {
        let a = Email::parse("Ops@Example.com").expect("valid");
        assert_eq!(a.as_str(), "Ops@Example.com");
        assert_eq!(a.comparison_key(), key("ops@example.COM"));
        // Non-ASCII letters are kept exactly: no Unicode case folding.
        assert_ne!(key("Åsa@acme.example"), key("åsa@acme.example"));
        assert_ne!(key("ÉRIC@acme.example"), key("éric@acme.example"));
    }

    #[test]
    fn look_alikes_of_portal_users_are_refused() {
        for attack in [
            "\u{212A}im@acme.example",  // KELVIN SIGN for K
            "\u{212B}sa@acme.example",  // ANGSTROM SIGN for Å
            "A\u{30A}sa@acme.example",  // decomposed Å (not NFC)
            "k\u{200B}im@acme.example", // ZERO WIDTH SPACE
            "kim\u{200D}@acme.example", // ZERO WIDTH JOINER
            "k\u{202E}mi@acme.example", // RIGHT-TO-LEFT OVERRIDE
            "k\u{85}im@acme.example",   // C1 control NEXT LINE
            "k\u{AD}im@acme.example",   // SOFT HYPHEN
            "\u{FF4B}im@acme.example",  // FULLWIDTH k
            "\u{43A}im@acme.example",   // Cyrillic к among Latin letters
            "kim@\u{FF41}cme.example",  // FULLWIDTH a in the domain
            "kim@\u{212A}.example",     // KELVIN SIGN in the domain
            "kim@a\u{441}me.example",   // Cyrillic с among Latin letters
            "kim@acme\u{3002}example",  // IDEOGRAPHIC FULL STOP as a dot
            "kim@\u{2603}.example",     // a symbol, not a letter
        ] {
            assert!(Email::parse(attack).is_err(), "{attack:?} accepted");
        }
    }

    #[test]
    fn internationalised_domains_compare_in_ascii_form() {
        let unicode = key("info@bücher.example");
        assert_eq!(unicode, "info@xn--bcher-kva.example");
        assert_eq!(key("INFO@xn--BCHER-kva.example"), unicode);
        assert_eq!(key("info@BÜCHER.example"), unicode);
        // A key is always in NFC: W + ring, which folds to a composable
        // w + ring, is refused.
        assert!(Email::parse("W\u{30A}@acme.example").is_err());
        // Non-ASCII local parts of one script are addresses of their own.
        assert!(key("δοκιμή@παράδειγμα.δοκιμή").starts_with("δοκιμή@xn--"));
        assert!(Email::parse("用户@例子.广告").is_ok());
    }

    #[test]
    fn stored_addresses_stay_readable_with_keys_that_match_nothing_accepted() {
        let legacy = Email::parse_stored("\u{212A}im@acme.example".to_owned()).expect("legacy");
        assert_ne!(legacy.comparison_key(), key("kim@acme.example"));
        assert!(!legacy.is_valid());
        let quoted = Email::parse_stored("\"kim\"@acme.example".to_owned()).expect("legacy");
        assert_ne!(quoted.comparison_key(), key("kim@acme.example"));
        assert!(Email::parse_stored("not an address".to_owned()).is_err());
        let json = serde_json::to_string(&legacy).expect("encode");
        let back: Email = serde_json::from_str(&json).expect("decode");
        assert_eq!(back, legacy);
        assert!(serde_json::from_str::<Email>("\"nope\"").is_err());
    }
}
