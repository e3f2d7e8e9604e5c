//! Operational support hours: always open, or weekly windows in IANA time zones.
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
#[serde(transparent)]
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

impl std::fmt::Display for LocalTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// A weekly window in one time zone. `close < open` means it ends after
/// midnight, on the next day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportWindow {
    /// An IANA zone name as known to the embedded tz database.
    pub time_zone: String,
    /// Non-empty, no duplicates, in the order given.
    pub days: Vec<Weekday>,
    pub open_time: LocalTime,
    pub close_time: LocalTime,
}

impl SupportWindow {
    /// Checks an IANA time zone name against the embedded database.
    pub fn parse_time_zone(s: &str) -> Result<String, &'static str> {
        s.parse::<chrono_tz::Tz>()
            .map(|tz| tz.name().to_owned())
            .map_err(|_| "must be an IANA time zone name, e.g. America/Los_Angeles")
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
    fn time_zones() {
        assert_eq!(
            SupportWindow::parse_time_zone("America/Los_Angeles").as_deref(),
            Ok("America/Los_Angeles")
        );
        assert!(SupportWindow::parse_time_zone("UTC").is_ok());
        assert!(SupportWindow::parse_time_zone("Mars/Olympus").is_err());
        assert!(SupportWindow::parse_time_zone("").is_err());
    }
}
