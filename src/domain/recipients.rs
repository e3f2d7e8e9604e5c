//! Whom to notify for a purpose (with documented fallbacks), and whether user
//! support is staffed at a given instant.
use chrono::{DateTime, Datelike, Timelike, Utc};

use super::{
    Contact, ContactFields, Field, LocalTime, OperationalSupport, PortalUserEmails, SupportWindow,
    TimeZoneName, Weekday,
};

/// Why the alert dispatcher is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    ProductionAlert,
    TechnicalEmergency,
    TechnicalSupport,
    MerchantIssue,
    /// Platform staff escalating a user problem (platform-facing).
    UserEscalation,
    /// End users asking for help (user-facing).
    UserSupport,
}

impl Purpose {
    /// The fields asked, in order: the first is the purpose's own field,
    /// the others are fallbacks used only when every earlier one is empty.
    ///
    /// `UserSupport` never falls back: the other contacts are not for end
    /// users. `UserEscalation` may fall back to the user-facing contacts,
    /// since platform staff may see those too.
    pub fn fields(self) -> &'static [Field] {
        match self {
            Self::ProductionAlert => &[Field::AlertContacts, Field::TechnicalEmergencyContacts],
            Self::TechnicalEmergency => &[
                Field::TechnicalEmergencyContacts,
                Field::AlertContacts,
                Field::TechnicalNonEmergencyContacts,
            ],
            Self::TechnicalSupport => &[
                Field::TechnicalNonEmergencyContacts,
                Field::TechnicalEmergencyContacts,
            ],
            Self::MerchantIssue => &[
                Field::MerchantIssuesContacts,
                Field::PlatformOperationalContacts,
            ],
            Self::UserEscalation => &[
                Field::PlatformOperationalContacts,
                Field::UserFacingOperationalContacts,
            ],
            Self::UserSupport => &[Field::UserFacingOperationalContacts],
        }
    }
}

/// The answer for one purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution<C> {
    /// Deduplicated by mailbox, first occurrence kept.
    pub recipients: Vec<(C, Field)>,
    /// The field used when it was not the purpose's own one.
    pub fallback: Option<Field>,
}

/// Recipients for `purpose` from `fields` (already through the caller's
/// audience filter), alert contacts that are not among `users` left out.
pub fn resolve<'a>(
    fields: &'a ContactFields,
    purpose: Purpose,
    users: &PortalUserEmails,
) -> Resolution<&'a Contact> {
    resolve_with(
        purpose,
        |field| fields.contacts(field).unwrap_or_default().iter(),
        |c| c.email.comparison_key(),
        |key| users.contains(key),
    )
}

/// The rule of [`resolve`] over any form of contacts: `contacts(field)`
/// lists a field's contacts as the caller may see them (none when hidden),
/// `key` is a contact's mailbox key, `is_user` says whether a key is a
/// portal user's. The first field of the purpose's chain that holds a
/// recipient answers; a revoked portal user keeps its place among the alert
/// contacts but stops receiving production alerts at once, so it does not
/// count.
pub fn resolve_with<C, I, K>(
    purpose: Purpose,
    mut contacts: impl FnMut(Field) -> I,
    key: impl Fn(&C) -> K,
    is_user: impl Fn(&str) -> bool,
) -> Resolution<C>
where
    I: Iterator<Item = C>,
    K: AsRef<str> + PartialEq,
{
    for (i, field) in purpose.fields().iter().enumerate() {
        // The first key apart: most fields hold one contact, and the alert
        // dispatcher's hottest call then allocates nothing for it.
        let mut first: Option<K> = None;
        let mut seen: Vec<K> = Vec::new();
        let mut recipients = Vec::new();
        for c in contacts(*field) {
            let k = key(&c);
            if (*field == Field::AlertContacts && !is_user(k.as_ref()))
                || first.as_ref() == Some(&k)
                || seen.contains(&k)
            {
                continue;
            }
            if first.is_none() {
                first = Some(k);
            } else {
                seen.push(k);
            }
            recipients.push((c, *field));
        }
        if !recipients.is_empty() {
            return Resolution {
                recipients,
                fallback: (i > 0).then_some(*field),
            };
        }
    }
    Resolution {
        recipients: Vec::new(),
        fallback: None,
    }
}

fn weekday(d: chrono::Weekday) -> Weekday {
    match d {
        chrono::Weekday::Mon => Weekday::Monday,
        chrono::Weekday::Tue => Weekday::Tuesday,
        chrono::Weekday::Wed => Weekday::Wednesday,
        chrono::Weekday::Thu => Weekday::Thursday,
        chrono::Weekday::Fri => Weekday::Friday,
        chrono::Weekday::Sat => Weekday::Saturday,
        chrono::Weekday::Sun => Weekday::Sunday,
    }
}

impl SupportWindow {
    /// Whether `at` falls in this window, judged by the wall clock of the
    /// window's zone at that instant (so DST shifts move the window in UTC).
    pub fn is_open_at(&self, at: DateTime<Utc>) -> bool {
        let days = self.days();
        window_open_at(
            self.time_zone(),
            |d| days.contains(&d),
            self.open_time(),
            self.close_time(),
            at,
        )
    }
}

/// Whether `at` falls in the weekly window of `zone` open on the days `on`
/// says, from `open` to `close` (`close < open`: until `close` the next day),
/// judged by the zone's wall clock at that instant.
pub fn window_open_at(
    zone: TimeZoneName,
    on: impl Fn(Weekday) -> bool,
    open: LocalTime,
    close: LocalTime,
    at: DateTime<Utc>,
) -> bool {
    let local = at.with_timezone(&zone.tz());
    let minute = u16::try_from(local.hour() * 60 + local.minute()).unwrap_or(u16::MAX);
    let today = weekday(local.weekday());
    let yesterday = weekday(local.weekday().pred());
    let (open, close) = (open.minutes(), close.minutes());
    if open < close {
        on(today) && (open..close).contains(&minute)
    } else {
        // Overnight: the evening part belongs to the listed day, the
        // morning part to the day after it.
        (on(today) && minute >= open) || (on(yesterday) && minute < close)
    }
}

impl OperationalSupport {
    pub fn is_open_at(&self, at: DateTime<Utc>) -> bool {
        match self {
            Self::AlwaysOpen => true,
            Self::Windows(ws) => ws.iter().any(|w| w.is_open_at(at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Email, LocalTime, TimeZoneName};

    fn contact(e: &str) -> Contact {
        Contact {
            email: Email::parse(e).expect("email"),
            display_name: None,
            phone_number: None,
            language_code: None,
        }
    }

    fn window(tz: &str, days: &[Weekday], open: &str, close: &str) -> SupportWindow {
        SupportWindow::new(
            TimeZoneName::parse(tz).expect("zone"),
            days.to_vec(),
            LocalTime::parse(open, false).expect("open"),
            LocalTime::parse(close, true).expect("close"),
        )
        .expect("window")
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn own_field_first_then_fallbacks() {
        let mut f = ContactFields {
            technical_emergency_contacts: vec![contact("pager@example.com")],
            ..Default::default()
        };
        let users: PortalUserEmails = ["a@example.com".to_owned(), "b@example.com".to_owned()]
            .into_iter()
            .collect();
        let r = resolve(&f, Purpose::ProductionAlert, &users);
        assert_eq!(r.fallback, Some(Field::TechnicalEmergencyContacts));
        assert_eq!(r.recipients.len(), 1);
        f.alert_contacts = vec![
            contact("a@example.com"),
            contact("A@Example.com"),
            contact("b@example.com"),
            contact("revoked@example.com"),
        ];
        let r = resolve(&f, Purpose::ProductionAlert, &users);
        assert_eq!(r.fallback, None);
        let emails: Vec<_> = r.recipients.iter().map(|(c, _)| c.email.as_str()).collect();
        assert_eq!(emails, ["a@example.com", "b@example.com"]);
        assert!(r.recipients.iter().all(|(_, f)| *f == Field::AlertContacts));
        // Every alert contact revoked: the fallback answers.
        let r = resolve(&f, Purpose::ProductionAlert, &PortalUserEmails::default());
        assert_eq!(r.fallback, Some(Field::TechnicalEmergencyContacts));
    }

    #[test]
    fn user_support_never_reaches_platform_contacts() {
        let f = ContactFields {
            platform_operational_contacts: vec![contact("staff-only@example.com")],
            ..Default::default()
        };
        let r = resolve(&f, Purpose::UserSupport, &PortalUserEmails::default());
        assert!(r.recipients.is_empty());
        assert_eq!(r.fallback, None);
        let r = resolve(&f, Purpose::UserEscalation, &PortalUserEmails::default());
        assert_eq!(r.recipients.len(), 1);
    }

    #[test]
    fn same_day_and_overnight_windows() {
        use Weekday::*;
        // 2026-11-27 is a Friday.
        let w = window("UTC", &[Friday], "09:00", "17:00");
        assert!(w.is_open_at(utc("2026-11-27T09:00:00Z")));
        assert!(w.is_open_at(utc("2026-11-27T16:59:59Z")));
        assert!(!w.is_open_at(utc("2026-11-27T17:00:00Z")));
        assert!(!w.is_open_at(utc("2026-11-28T10:00:00Z")));
        let night = window("UTC", &[Friday], "22:00", "02:00");
        assert!(night.is_open_at(utc("2026-11-27T23:00:00Z")));
        assert!(
            night.is_open_at(utc("2026-11-28T01:59:00Z")),
            "Saturday morning belongs to Friday's window"
        );
        assert!(!night.is_open_at(utc("2026-11-28T02:00:00Z")));
        assert!(
            !night.is_open_at(utc("2026-11-27T01:00:00Z")),
            "Friday morning belongs to Thursday"
        );
        let to_midnight = window("UTC", &[Friday], "18:00", "24:00");
        assert!(to_midnight.is_open_at(utc("2026-11-27T23:59:59Z")));
        assert!(!to_midnight.is_open_at(utc("2026-11-28T00:00:00Z")));
        assert!(OperationalSupport::AlwaysOpen.is_open_at(utc("2026-11-28T03:00:00Z")));
    }

    #[test]
    fn windows_follow_daylight_saving_time() {
        use Weekday::*;
        // Los Angeles: PST (UTC-8) until 2026-03-08 02:00, then PDT (UTC-7).
        let la = window("America/Los_Angeles", &[Friday, Monday], "09:00", "17:00");
        // Friday 2026-03-06, PST: 09:00 local is 17:00 UTC.
        assert!(!la.is_open_at(utc("2026-03-06T16:30:00Z")));
        assert!(la.is_open_at(utc("2026-03-06T17:00:00Z")));
        // Monday 2026-03-09, PDT: 09:00 local is 16:00 UTC.
        assert!(la.is_open_at(utc("2026-03-09T16:30:00Z")));
        assert!(!la.is_open_at(utc("2026-03-09T00:30:00Z")));
        assert!(
            !la.is_open_at(utc("2026-03-10T00:00:00Z")),
            "17:00 PDT is closed"
        );
        // Back to PST on 2026-11-01: Monday 2026-11-02 09:00 is 17:00 UTC again.
        assert!(!la.is_open_at(utc("2026-11-02T16:30:00Z")));
        assert!(la.is_open_at(utc("2026-11-02T17:30:00Z")));

        // A window over the spring-forward gap, Sunday 2026-03-08 01:00-04:00:
        // the local hour 02:xx does not exist, the window is three UTC hours
        // minus one.
        let gap = window("America/Los_Angeles", &[Sunday], "01:00", "04:00");
        assert!(gap.is_open_at(utc("2026-03-08T09:30:00Z")), "01:30 PST");
        assert!(gap.is_open_at(utc("2026-03-08T10:30:00Z")), "03:30 PDT");
        assert!(!gap.is_open_at(utc("2026-03-08T11:00:00Z")), "04:00 PDT");
        // The fall-back day repeats 01:xx: both instants are inside.
        let repeat = window("America/Los_Angeles", &[Sunday], "01:00", "02:00");
        assert!(repeat.is_open_at(utc("2026-11-01T08:30:00Z")), "01:30 PDT");
        assert!(repeat.is_open_at(utc("2026-11-01T09:30:00Z")), "01:30 PST");
        assert!(!repeat.is_open_at(utc("2026-11-01T10:00:00Z")), "02:00 PST");

        // Zurich overnight window across the autumn switch (2026-10-25 03:00 CEST -> 02:00 CET).
        let zh = window("Europe/Zurich", &[Saturday], "22:00", "06:00");
        assert!(
            zh.is_open_at(utc("2026-10-24T20:00:00Z")),
            "22:00 CEST Saturday"
        );
        assert!(
            zh.is_open_at(utc("2026-10-25T04:59:00Z")),
            "05:59 CET Sunday"
        );
        assert!(
            !zh.is_open_at(utc("2026-10-25T05:00:00Z")),
            "06:00 CET Sunday"
        );
    }
}
