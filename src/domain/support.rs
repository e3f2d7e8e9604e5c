//! Operational support hours: always open, or weekly windows in IANA time zones.
//!
//! Windows are kept in one canonical form, so that two ways of writing the same
//! hours save the same value: time zone aliases become their canonical IANA
//! name, days are in week order, and a window closing at midnight closes at
//! `24:00` (`18:00–00:00` and `18:00–24:00` are one window).
use serde::{Deserialize, Serialize};

pub const MAX_SUPPORT_WINDOWS: usize = 50;

/// A day of the week; the proto's `DAY_OF_WEEK_UNSPECIFIED` has no counterpart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

/// Minutes since local midnight, `00:00` to `24:00` (1440, closing times only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct LocalTime(u16);

impl LocalTime {
    pub const MIDNIGHT_END: u16 = 24 * 60;

    /// Parses `"HH:MM"`. `"24:00"` is accepted only when `allow_end_of_day`.
    pub fn parse(s: &str, allow_end_of_day: bool) -> Result<Self, &'static str> {
        const HINT: &str = "must be \"HH:MM\" in 24-hour form, e.g. \"09:00\"";
        let b = s.as_bytes();
        if b.len() != 5 || b[2] != b':' || ![b[0], b[1], b[3], b[4]].iter().all(u8::is_ascii_digit)
        {
            return Err(HINT);
        }
        let hours = u16::from(b[0] - b'0') * 10 + u16::from(b[1] - b'0');
        let minutes = u16::from(b[3] - b'0') * 10 + u16::from(b[4] - b'0');
        if minutes > 59 {
            return Err(HINT);
        }
        let total = hours * 60 + minutes;
        match total {
            t if t < Self::MIDNIGHT_END => Ok(Self(t)),
            Self::MIDNIGHT_END if allow_end_of_day => Ok(Self(total)),
            Self::MIDNIGHT_END => Err("\"24:00\" is only valid as a closing time"),
            _ => Err(HINT),
        }
    }

    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl TryFrom<u16> for LocalTime {
    type Error = &'static str;

    fn try_from(minutes: u16) -> Result<Self, Self::Error> {
        if minutes <= Self::MIDNIGHT_END {
            Ok(Self(minutes))
        } else {
            Err("stored local time is past 24:00")
        }
    }
}

impl From<LocalTime> for u16 {
    fn from(t: LocalTime) -> Self {
        t.0
    }
}

impl std::fmt::Display for LocalTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// An IANA time zone known to the embedded tz database, by its canonical name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZoneName(chrono_tz::Tz);

impl TimeZoneName {
    /// A zone name from a caller, matched without regard to ASCII case;
    /// an alias (`US/Pacific`, `Asia/Calcutta`) becomes its canonical name
    /// (`America/Los_Angeles`, `Asia/Kolkata`), as Unicode CLDR keeps them
    /// (ICU4X's `IanaParserExtended`): one zone per region, so
    /// `Europe/Oslo` stays itself.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        const HINT: &str = "must be an IANA time zone name, e.g. America/Los_Angeles";
        let found = icu_time::zone::iana::IanaParserExtended::new().parse(s);
        if found.time_zone == icu_time::TimeZone::UNKNOWN {
            return Err(HINT);
        }
        // CLDR and the embedded tz database are released apart: prefer the
        // canonical name, else the name as written (case-normalised), so a
        // zone newer on one side than the other still works.
        [found.canonical, found.normalized]
            .into_iter()
            .find_map(|name| name.parse::<chrono_tz::Tz>().ok())
            .map(Self)
            .ok_or(HINT)
    }

    /// A name this release wrote (canonical), looked up in the embedded tz
    /// database alone: the read path's cheap way back.
    pub fn parse_canonical(s: &str) -> Option<Self> {
        s.parse::<chrono_tz::Tz>().ok().map(Self)
    }

    /// A name read back from storage: an earlier release stored aliases as
    /// typed; they read back canonicalised.
    pub fn parse_stored(s: String) -> Result<Self, &'static str> {
        Self::parse(&s).or_else(|e| s.parse::<chrono_tz::Tz>().map(Self).map_err(|_| e))
    }

    pub fn as_str(&self) -> &'static str {
        self.0.name()
    }

    pub fn tz(&self) -> chrono_tz::Tz {
        self.0
    }
}

impl TryFrom<String> for TimeZoneName {
    type Error = &'static str;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse_stored(s)
    }
}

impl From<TimeZoneName> for String {
    fn from(t: TimeZoneName) -> Self {
        t.as_str().to_owned()
    }
}

/// A weekly window in one time zone, in canonical form (the module comment).
/// `close < open` means it ends after midnight, on the next day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredWindow")]
pub struct SupportWindow {
    time_zone: TimeZoneName,
    /// Non-empty, no duplicates, in week order.
    days: Vec<Weekday>,
    open_time: LocalTime,
    close_time: LocalTime,
}

impl SupportWindow {
    /// Builds the canonical form; `days` must be non-empty and `open` must
    /// differ from `close` (both are the caller's validation to report).
    pub fn new(
        time_zone: TimeZoneName,
        mut days: Vec<Weekday>,
        open_time: LocalTime,
        close_time: LocalTime,
    ) -> Result<Self, &'static str> {
        days.sort_unstable();
        days.dedup();
        if days.is_empty() {
            return Err("must name at least one day");
        }
        let close_time = if close_time.minutes() == 0 {
            LocalTime(LocalTime::MIDNIGHT_END)
        } else {
            close_time
        };
        if open_time.minutes() >= LocalTime::MIDNIGHT_END || open_time == close_time {
            return Err("must close at another time than it opens");
        }
        Ok(Self {
            time_zone,
            days,
            open_time,
            close_time,
        })
    }

    pub fn time_zone(&self) -> TimeZoneName {
        self.time_zone
    }

    pub fn days(&self) -> &[Weekday] {
        &self.days
    }

    pub fn open_time(&self) -> LocalTime {
        self.open_time
    }

    pub fn close_time(&self) -> LocalTime {
        self.close_time
    }

    pub(crate) fn shrink_to_fit(&mut self) {
        self.days.shrink_to_fit();
    }
}

/// The stored shape of a window, canonicalised on the way in.
#[derive(Deserialize)]
struct StoredWindow {
    time_zone: TimeZoneName,
    days: Vec<Weekday>,
    open_time: LocalTime,
    close_time: LocalTime,
}

impl TryFrom<StoredWindow> for SupportWindow {
    type Error = &'static str;

    fn try_from(w: StoredWindow) -> Result<Self, Self::Error> {
        Self::new(w.time_zone, w.days, w.open_time, w.close_time)
    }
}

/// When user support is staffed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationalSupport {
    AlwaysOpen,
    /// At least one window.
    Windows(Vec<SupportWindow>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> LocalTime {
        LocalTime::parse(s, true).expect(s)
    }

    fn tz(s: &str) -> TimeZoneName {
        TimeZoneName::parse(s).expect(s)
    }

    #[test]
    fn local_time_parsing() {
        assert_eq!(
            LocalTime::parse("00:00", false).map(LocalTime::minutes),
            Ok(0)
        );
        assert_eq!(
            LocalTime::parse("09:30", false).map(LocalTime::minutes),
            Ok(570)
        );
        assert_eq!(
            LocalTime::parse("23:59", false).map(LocalTime::minutes),
            Ok(1439)
        );
        assert_eq!(
            LocalTime::parse("24:00", true).map(LocalTime::minutes),
            Ok(1440)
        );
        assert!(LocalTime::parse("24:00", false).is_err());
        for bad in [
            "9:00", "09:60", "24:01", "25:00", "0900", "09:00 ", "", "ab:cd", "+9:00",
        ] {
            assert!(LocalTime::parse(bad, true).is_err(), "{bad:?} accepted");
        }
        assert_eq!(LocalTime(570).to_string(), "09:30");
    }

    #[test]
    fn time_zones_are_canonical() {
        assert_eq!(tz("America/Los_Angeles").as_str(), "America/Los_Angeles");
        assert_eq!(tz("US/Pacific").as_str(), "America/Los_Angeles");
        assert_eq!(tz("us/pacific").as_str(), "America/Los_Angeles");
        assert_eq!(tz("Asia/Calcutta").as_str(), "Asia/Kolkata");
        assert_eq!(tz("Europe/Kiev").as_str(), "Europe/Kyiv");
        assert_eq!(
            tz("America/Buenos_Aires").as_str(),
            "America/Argentina/Buenos_Aires"
        );
        assert_eq!(tz("Europe/Oslo").as_str(), "Europe/Oslo");
        assert_eq!(tz("UTC").as_str(), "Etc/UTC");
        for bad in [
            "Mars/Olympus",
            "",
            "Etc/Unknown",
            "America/San_Francisco",
            "PST",
        ] {
            assert!(TimeZoneName::parse(bad).is_err(), "{bad:?} accepted");
        }
        let stored: TimeZoneName = serde_json::from_str("\"US/Pacific\"").expect("stored");
        assert_eq!(stored.as_str(), "America/Los_Angeles");
    }

    #[test]
    fn equal_windows_have_one_form() {
        let zurich = tz("Europe/Zurich");
        let a = SupportWindow::new(
            zurich,
            vec![Weekday::Tuesday, Weekday::Monday],
            t("18:00"),
            t("00:00"),
        )
        .expect("valid");
        let b = SupportWindow::new(
            zurich,
            vec![Weekday::Monday, Weekday::Tuesday],
            t("18:00"),
            t("24:00"),
        )
        .expect("valid");
        assert_eq!(a, b);
        assert_eq!(a.close_time().to_string(), "24:00");
        assert_eq!(a.days(), [Weekday::Monday, Weekday::Tuesday]);
        let alias = SupportWindow::new(
            tz("Europe/Busingen"),
            vec![Weekday::Monday],
            t("09:00"),
            t("17:00"),
        );
        assert!(alias.is_ok());
        assert!(SupportWindow::new(zurich, vec![], t("09:00"), t("17:00")).is_err());
        assert!(SupportWindow::new(zurich, vec![Weekday::Monday], t("00:00"), t("24:00")).is_ok());
        assert!(SupportWindow::new(zurich, vec![Weekday::Monday], t("09:00"), t("09:00")).is_err());
        let stored: SupportWindow = serde_json::from_str(
            r#"{"time_zone":"US/Pacific","days":["tuesday","monday"],"open_time":1080,"close_time":0}"#,
        )
        .expect("stored");
        assert_eq!(stored.time_zone().as_str(), "America/Los_Angeles");
        assert_eq!(
            stored,
            SupportWindow::new(
                tz("America/Los_Angeles"),
                vec![Weekday::Monday, Weekday::Tuesday],
                t("18:00"),
                t("24:00")
            )
            .expect("valid")
        );
    }
}
