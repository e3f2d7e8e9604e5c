//! Phone numbers of contacts: E.164, plus the extension when one is given.
//!
//! Parsed and validated with `rlibphonenumber` (Google's libphonenumber
//! metadata) on `regex-lite`. It compiles each region's regular expressions
//! lazily, each in its own `OnceLock`: no process-wide lock, and
//! [`warm_up_validation`] compiles them all once at start so that no request
//! pays for it. Figures and the choice: bench/VALIDATION.md.
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rlibphonenumber::{PHONE_NUMBER_UTIL, PhoneNumberFormat, Region};
use serde::{Deserialize, Serialize};

/// A phone number in E.164 form (`+16502530000`), followed by its extension
/// in RFC 3966 style when it has one (`+16502530000;ext=123`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

super::stored_as_string!(PhoneNumber);

const HINT: &str = "must be a valid international phone number with its country code, e.g. +1 650-253-0000 or +1 650-253-0000 ext. 123";

/// Longest input accepted: a written number with a long extension label
/// fits, and nothing longer reaches the parser.
const MAX_INPUT_BYTES: usize = 64;

/// Separates the extension from the number in the stored form (RFC 3966).
const EXTENSION_SEPARATOR: &str = ";ext=";

impl PhoneNumber {
    /// Accepts common written forms that carry a country code (`+1 650-253-0000`,
    /// `tel:+1-650-253-0000`) and normalises them to E.164. An extension
    /// written in any form libphonenumber recognises (`ext. 123`, `x123`,
    /// `#123`, `,,123`, `;ext=123`, ...) is kept and written `;ext=123`. Input
    /// that the parser would drop silently (an ISDN sub-address `;isub=`, a
    /// second number after `/`) is refused rather than truncated.
    ///
    /// Every output is a fixed point: parsing it again gives it back.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if s.len() > MAX_INPUT_BYTES {
            return Err(HINT);
        }
        if has_dropped_part(s) {
            return Err(
                "must be one phone number, optionally with an extension (e.g. +1 650-253-0000 ext. 123); sub-addresses and second numbers are not kept",
            );
        }
        let number = rlibphonenumber::PhoneNumber::parse(s, None).map_err(|_| HINT)?;
        if !number.is_valid() {
            return Err(HINT);
        }
        let e164 = number.format_as(PhoneNumberFormat::E164);
        let extension = number.extension.as_deref().unwrap_or_default();
        if extension.is_empty() {
            return Ok(Self(e164.into_owned()));
        }
        // The parser captures any Unicode decimal digits (`١٢٣`, `１２３`):
        // stored as ASCII.
        let digits = PHONE_NUMBER_UTIL.normalize_digits_only(extension);
        if digits.len() != extension.chars().count() {
            return Err(HINT);
        }
        Ok(Self(format!("{e164}{EXTENSION_SEPARATOR}{digits}")))
    }

    /// A number read back from storage: only ever written by `parse`, so it
    /// is checked for that form (`+` and 1 to 15 digits, then optionally
    /// `;ext=` and digits) without the cost of validating it again.
    pub fn parse_stored(s: String) -> Result<Self, &'static str> {
        let (number, extension) = match s.split_once(EXTENSION_SEPARATOR) {
            Some((n, e)) => (n, Some(e)),
            None => (s.as_str(), None),
        };
        let digits = |t: &str, max: usize| {
            (1..=max).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit())
        };
        let e164 = number.strip_prefix('+').is_some_and(|d| digits(d, 15));
        if e164 && extension.is_none_or(|e| digits(e, 40)) {
            Ok(Self(s))
        } else {
            Err("stored phone number is not in E.164 form")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Parts of a written number that libphonenumber accepts and then drops
/// without a word: an RFC 3966 sub-address (`;isub=`), and whatever follows
/// `/ x` or `\ x`, which it takes for the start of a second number
/// (`+1 650 253 0000 / x12` would lose what reads as an extension).
fn has_dropped_part(s: &str) -> bool {
    if s.to_ascii_lowercase().contains(";isub=") {
        return true;
    }
    s.char_indices()
        .filter(|&(_, c)| c == '/' || c == '\\')
        .any(|(i, _)| s[i + 1..].trim_start_matches(' ').starts_with('x'))
}

/// Compiles, once per process, the patterns that validating a number of any
/// supported region takes, so that no request compiles a regular expression.
/// Takes about a second of every core (0.8 s on 2 cores; 7 MB of memory):
/// call it on a blocking thread before serving. Later calls return at once.
/// Returns how long the first call took.
pub fn warm_up_validation() -> Duration {
    static WARMED: OnceLock<Duration> = OnceLock::new();
    *WARMED.get_or_init(|| {
        let started = Instant::now();
        let numbers = warm_up();
        let elapsed = started.elapsed();
        tracing::info!(
            numbers,
            elapsed_ms = elapsed.as_millis() as u64,
            "phone number validation warmed up"
        );
        elapsed
    })
}

/// Parses and validates variants of the example number of every type of
/// every region and non-geographic calling code (and of an invalid one per
/// region): cut or lengthened to every national number length, the added
/// digits zeros or pseudo-random. The library matches a number against a
/// type's pattern only when the number passes the region's general pattern
/// and has a length the type allows, so the example numbers alone would leave
/// many patterns for the first request that has such a length. The regions
/// are shared out between one thread per core: nothing else runs yet. Returns
/// how many inputs it validated.
fn warm_up() -> usize {
    let util = &*PHONE_NUMBER_UTIL;
    let regions: Vec<Region> = util.get_supported_regions().collect();
    let non_geographic: Vec<i32> = util.get_supported_global_network_calling_codes().collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let validated = std::thread::scope(|s| {
        let (regions, non_geographic) = (&regions, &non_geographic);
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut validated = 0;
                    for (i, &region) in regions.iter().enumerate().skip(t).step_by(threads) {
                        let examples = util
                            .get_supported_types_for_region(region)
                            .into_iter()
                            .flatten()
                            .filter_map(|number_type| {
                                util.get_example_number_for_type_and_region(region, number_type)
                                    .ok()
                            })
                            .chain(util.get_invalid_example_number(region).ok());
                        validated += validate_variants(examples, i as u64);
                    }
                    for &code in non_geographic.iter().skip(t).step_by(threads) {
                        let example = util.get_example_number_for_non_geo_entity(code).ok();
                        validated += validate_variants(example, code as u64);
                    }
                    validated
                })
            })
            .collect();
        // A worker that panicked left its patterns to the requests.
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or(0))
            .sum::<usize>()
    });
    // The extension patterns, with a label and without.
    for written in [
        "+1 650 253 0000 ext. 1",
        "+1 650 253 0000;ext=1",
        "+1 650 253 0000 x1",
    ] {
        let _ = PhoneNumber::parse(written);
    }
    validated + 3
}

/// Validates the variants of `examples` that [`warm_up`] describes; `seed`
/// makes the pseudo-random digits the same in every process.
fn validate_variants(
    examples: impl IntoIterator<Item = rlibphonenumber::PhoneNumber>,
    seed: u64,
) -> usize {
    /// libphonenumber's national numbers have 2 to 17 digits.
    const NATIONAL_DIGITS: std::ops::RangeInclusive<usize> = 2..=17;
    /// Pseudo-random fillers per length and kept prefix.
    const RANDOM_FILLS: usize = 2;
    // xorshift64 (its state must not be 0).
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut random_digit = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        char::from(b'0' + (state % 10) as u8)
    };
    let mut validated = 0;
    let mut input = String::new();
    for example in examples {
        let national = example.get_national_significant_number();
        for len in NATIONAL_DIGITS {
            // The example cut or padded with zeros; then its leading digits
            // (all that fit, or only the first 3 or 2) followed by random ones.
            let full = len.min(national.len());
            for (kept, random) in [(full, false)]
                .into_iter()
                .chain([full, 3.min(full), 2.min(full)].map(|k| (k, true)))
            {
                for _ in 0..if random { RANDOM_FILLS } else { 1 } {
                    input.clear();
                    let _ = write!(input, "+{}{}", example.country_code, &national[..kept]);
                    for _ in kept..len {
                        input.push(if random { random_digit() } else { '0' });
                    }
                    let _ = PhoneNumber::parse(&input);
                    validated += 1;
                }
            }
        }
    }
    validated
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(given: &str) -> String {
        PhoneNumber::parse(given)
            .unwrap_or_else(|e| panic!("{given:?} refused: {e}"))
            .as_str()
            .to_owned()
    }

    #[test]
    fn stored_numbers_read_back_only_in_their_stored_form() {
        for stored in ["+16502530000", "+16502530000;ext=123", "+41446681800"] {
            let json = format!("\"{stored}\"");
            let back: PhoneNumber = serde_json::from_str(&json).expect(stored);
            assert_eq!(back.as_str(), stored);
            assert_eq!(PhoneNumber::parse(stored).expect(stored).as_str(), stored);
        }
        for bad in [
            "16502530000",
            "+1 650",
            "+",
            "+16502530000;ext=",
            "+1650x",
            "+1234567890123456",
        ] {
            assert!(
                PhoneNumber::parse_stored(bad.to_owned()).is_err(),
                "{bad:?}"
            );
        }
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
            assert_eq!(ok(given), want, "{given}");
        }
        for bad in ["650-253-0000", "+1 123", "call me", "", "+999 1234567"] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// Numbers of 25 countries as people write them, fixed lines and mobiles.
    const COUNTRIES: [(&str, &str); 30] = [
        ("+1 650-253-0000", "+16502530000"),             // US
        ("+1 416-979-1211", "+14169791211"),             // CA
        ("+44 20 7031 3000", "+442070313000"),           // GB
        ("+44 7400 123456", "+447400123456"),            // GB mobile
        ("+49 30 303986300", "+4930303986300"),          // DE
        ("+49 1512 3456789", "+4915123456789"),          // DE mobile
        ("+33 1 42 68 53 00", "+33142685300"),           // FR
        ("+41 (0)44 668 18 00", "+41446681800"),         // CH, national prefix written
        ("+39 02 3659 4500", "+390236594500"),           // IT, leading zero kept
        ("+34 91 748 64 00", "+34917486400"),            // ES
        ("+31 20 522 8900", "+31205228900"),             // NL
        ("+46 8 519 926 00", "+46851992600"),            // SE
        ("+47 22 99 66 00", "+4722996600"),              // NO
        ("+48 22 207 00 00", "+48222070000"),            // PL
        ("+43 1 360 770", "+431360770"),                 // AT
        ("+81 3-6384-9000", "+81363849000"),             // JP
        ("+86 10 6250 3000", "+861062503000"),           // CN
        ("+91 98765 43210", "+919876543210"),            // IN mobile
        ("+61 2 9374 4000", "+61293744000"),             // AU
        ("+55 11 91234-5678", "+5511912345678"),         // BR mobile
        ("+52 55 5342 8400", "+525553428400"),           // MX
        ("+27 21 446 8000", "+27214468000"),             // ZA
        ("+82 2-531-9000", "+8225319000"),               // KR
        ("+65 6521 8000", "+6565218000"),                // SG
        ("+971 4 450 9500", "+97144509500"),             // AE
        ("+353 1 436 1000", "+35314361000"),             // IE
        ("+64 9 970 0000", "+6499700000"),               // NZ
        ("+54 9 11 1234-5678", "+5491112345678"),        // AR mobile
        ("+7 495 739-70-00", "+74957397000"),            // RU
        ("＋１ ６５０ ２５３ ００００", "+16502530000"), // full-width digits
    ];

    #[test]
    fn numbers_of_many_countries_normalise_to_e164() {
        for (given, want) in COUNTRIES {
            assert_eq!(ok(given), want, "{given}");
        }
    }

    #[test]
    fn extensions_are_kept_in_rfc3966_style() {
        for given in [
            "+1 650 253 0000 ext. 123",
            "+1 650 253 0000 ext 123",
            "+1 650 253 0000 EXT 123",
            "+1 650 253 0000 extension 123",
            "+1 650 253 0000 x123",
            "+1 650 253 0000 x 123",
            "+1 650 253 0000 #123",
            "+1 650 253 0000,,123",
            "+1 650-253-0000;ext=123",
            "+16502530000;ext=123",
            "tel:+1-650-253-0000;ext=123",
            "+1 650 253 0000 ext. ١٢٣",
            "+1 650 253 0000 ext. １２３",
        ] {
            assert_eq!(ok(given), "+16502530000;ext=123", "{given}");
        }
        assert_eq!(ok("+44 20 7031 3000 ext 0042"), "+442070313000;ext=0042");
        assert_eq!(
            ok("+49 30 303986300 ext. 12345678901234567890"),
            "+4930303986300;ext=12345678901234567890"
        );
    }

    #[test]
    fn what_the_parser_would_drop_is_refused() {
        for bad in [
            // a sub-address
            "tel:+1-650-253-0000;isub=12345",
            // a "second number", which reads as an extension
            "+1 650 253 0000 / x12",
            "+1 650 253 0000 \\ x12",
            // too many digits for an `x` extension: they would join the number
            "+1 650 253 0000 x1234567890",
            // a label without digits
            "+1 650 253 0000 ext. ",
            "+1 650 253 0000 ext 12 ext 34",
            "+1 650 253 0000 (home)",
        ] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn invalid_numbers_are_refused() {
        for bad in [
            "+44 20 7031 300",    // too short
            "+1 555 canary-7f3a", // letters
            "+41 44 668 18 00 0", // too long
            "+1650253000012",     // too long
            "+52 1 55 1234 5678", // Mexico's former mobile prefix
            "00 41 44 668 18 00", // an international prefix is not a country code
            "12",
            "+",
            "+1 650 253 0000 ext. 123 and then a long explanation nobody asked for",
        ] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn every_output_reads_back_unchanged() {
        // Stored values (plain E.164, written before extensions were kept, or
        // with one) parse to themselves.
        for stored in [
            "+16502530000",
            "+41446681800",
            "+390236594500",
            "+16502530000;ext=123",
            "+442070313000;ext=0042",
        ] {
            assert_eq!(ok(stored), stored);
        }
        for (given, _) in COUNTRIES {
            let once = ok(given);
            assert_eq!(ok(&once), once, "{given}");
        }
        let json = serde_json::to_string(&PhoneNumber::parse("+16502530000").unwrap()).unwrap();
        assert_eq!(json, "\"+16502530000\"");
        let read: PhoneNumber = serde_json::from_str(&json).unwrap();
        assert_eq!(read.as_str(), "+16502530000");
    }

    #[test]
    fn warm_up_is_done_once() {
        let first = warm_up_validation();
        assert_eq!(warm_up_validation(), first);
        assert_eq!(ok("+41 44 668 18 00 ext. 7"), "+41446681800;ext=7");
    }
}
