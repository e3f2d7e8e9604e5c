//! Operational support (always open, or weekly windows) both ways.
use crate::domain::{
    LocalTime, MAX_SUPPORT_WINDOWS, OperationalSupport, SupportWindow, TimeZoneName, Weekday,
};
use crate::error::Violations;
use crate::pb;

pub(super) fn parse_operational_support(
    given: Option<&pb::OperationalSupport>,
    path: &str,
    v: &mut Violations,
) -> Option<OperationalSupport> {
    let os = given?;
    match (os.always_open, os.windows.is_empty()) {
        (true, false) => v.push(
            path,
            "set always_open or give windows, not both",
        ),
        (false, true) => v.push(
            path,
            "set always_open or give at least one window; to clear operational support leave it unset",
        ),
        _ => {}
    }
    if os.windows.len() > MAX_SUPPORT_WINDOWS {
        v.push(
            format!("{path}.windows"),
            format!("must hold at most {MAX_SUPPORT_WINDOWS} windows"),
        );
        return None;
    }
    // Windows are validated even next to always_open: whichever the caller
    // meant to keep, it learns everything that is wrong in one round trip.
    let windows: Vec<SupportWindow> = os
        .windows
        .iter()
        .enumerate()
        .filter_map(|(i, w)| parse_window(w, &format!("{path}.windows[{i}]"), v))
        .collect();
    if os.always_open {
        Some(OperationalSupport::AlwaysOpen)
    } else {
        Some(OperationalSupport::Windows(windows))
    }
}

fn parse_window(w: &pb::SupportWindow, at: &str, v: &mut Violations) -> Option<SupportWindow> {
    let time_zone = TimeZoneName::parse(&w.time_zone)
        .map_err(|d| v.push(format!("{at}.time_zone"), d))
        .ok();

    if w.days.is_empty() {
        v.push(format!("{at}.days"), "must name at least one day");
    }
    let mut days = Vec::with_capacity(w.days.len());
    let mut first_seen: [Option<usize>; 7] = [None; 7];
    for (k, &raw) in w.days.iter().enumerate() {
        let day_at = format!("{at}.days[{k}]");
        let day = match pb::DayOfWeek::try_from(raw) {
            Ok(pb::DayOfWeek::Unspecified) => {
                v.push(day_at, "must not be DAY_OF_WEEK_UNSPECIFIED");
                None
            }
            Ok(d) => weekday_from_pb(d),
            Err(_) => {
                v.push(
                    day_at,
                    "must be a day of the week, DAY_OF_WEEK_MONDAY to DAY_OF_WEEK_SUNDAY",
                );
                None
            }
        };
        let Some(day) = day else {
            continue;
        };
        let slot = &mut first_seen[day as usize];
        match slot {
            Some(first) => {
                v.push(
                    format!("{at}.days[{k}]"),
                    format!("duplicates {at}.days[{first}]"),
                );
            }
            None => {
                *slot = Some(k);
                days.push(day);
            }
        }
    }

    let open_time = LocalTime::parse(&w.open_time, false)
        .map_err(|d| v.push(format!("{at}.open_time"), d))
        .ok();
    let close_time = LocalTime::parse(&w.close_time, true)
        .map_err(|d| v.push(format!("{at}.close_time"), d))
        .ok();
    if let (Some(open), Some(close)) = (open_time, close_time)
        && open == close
    {
        v.push(format!("{at}.close_time"), "must differ from open_time");
    }

    // Like the contacts, the result only matters when no violation was
    // recorded (an empty or all-invalid day list was).
    SupportWindow::new(time_zone?, days, open_time?, close_time?).ok()
}

fn weekday_from_pb(d: pb::DayOfWeek) -> Option<Weekday> {
    match d {
        pb::DayOfWeek::Unspecified => None,
        pb::DayOfWeek::Monday => Some(Weekday::Monday),
        pb::DayOfWeek::Tuesday => Some(Weekday::Tuesday),
        pb::DayOfWeek::Wednesday => Some(Weekday::Wednesday),
        pb::DayOfWeek::Thursday => Some(Weekday::Thursday),
        pb::DayOfWeek::Friday => Some(Weekday::Friday),
        pb::DayOfWeek::Saturday => Some(Weekday::Saturday),
        pb::DayOfWeek::Sunday => Some(Weekday::Sunday),
    }
}

fn weekday_to_pb(d: Weekday) -> pb::DayOfWeek {
    match d {
        Weekday::Monday => pb::DayOfWeek::Monday,
        Weekday::Tuesday => pb::DayOfWeek::Tuesday,
        Weekday::Wednesday => pb::DayOfWeek::Wednesday,
        Weekday::Thursday => pb::DayOfWeek::Thursday,
        Weekday::Friday => pb::DayOfWeek::Friday,
        Weekday::Saturday => pb::DayOfWeek::Saturday,
        Weekday::Sunday => pb::DayOfWeek::Sunday,
    }
}

pub(super) fn support_to_pb(os: &OperationalSupport) -> pb::OperationalSupport {
    match os {
        OperationalSupport::AlwaysOpen => pb::OperationalSupport {
            always_open: true,
            windows: Vec::new(),
        },
        OperationalSupport::Windows(ws) => pb::OperationalSupport {
            always_open: false,
            windows: ws.iter().map(window_to_pb).collect(),
        },
    }
}

fn window_to_pb(w: &SupportWindow) -> pb::SupportWindow {
    pb::SupportWindow {
        time_zone: w.time_zone().as_str().to_owned(),
        days: w.days().iter().map(|d| weekday_to_pb(*d) as i32).collect(),
        open_time: w.open_time().to_string(),
        close_time: w.close_time().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::convert::fixtures::{
        PROD, fields_of, full_info, only_violation, request, valid_window, window, windows,
    };
    use crate::api::convert::{parse_update, preview_to_pb};
    use crate::domain::{Field, ReadView};

    #[test]
    fn always_open_round_trips_and_etag_is_kept() {
        let mut info = full_info(PROD);
        info.operational_support = Some(pb::OperationalSupport {
            always_open: true,
            windows: vec![],
        });
        info.etag = "W/abc".into();
        info.create_time = Some(prost_types::Timestamp {
            seconds: -5,
            nanos: -1,
        });
        let update = parse_update(&request(info.clone(), &["*"])).expect("valid");
        assert_eq!(update.expected_etag.as_deref(), Some("W/abc"));
        assert_eq!(
            update.patch.operational_support,
            Some(OperationalSupport::AlwaysOpen)
        );
        let out = preview_to_pb(&update.name, &update.patch, None, ReadView::Full);
        assert_eq!(out.operational_support, info.operational_support);
    }

    #[test]
    fn cleared_operational_support_is_none() {
        let mut info = full_info(PROD);
        info.operational_support = None;
        let update = parse_update(&request(info, &["operational_support"])).expect("valid");
        assert_eq!(update.patch.operational_support, None);
        assert!(update.mask.contains(Field::OperationalSupport));
    }

    #[test]
    fn operational_support_shape() {
        let os = "contact_info.operational_support";
        let mut info = full_info(PROD);
        info.operational_support = windows(vec![]);
        assert_eq!(only_violation(&request(info.clone(), &[])).field, os);

        info.operational_support = Some(pb::OperationalSupport {
            always_open: true,
            windows: vec![valid_window()],
        });
        assert_eq!(only_violation(&request(info.clone(), &[])).field, os);

        // Windows next to always_open are still checked.
        info.operational_support = Some(pb::OperationalSupport {
            always_open: true,
            windows: vec![window(
                "Nowhere/Else",
                &[pb::DayOfWeek::Monday],
                "09:00",
                "17:00",
            )],
        });
        assert_eq!(
            fields_of(&request(info.clone(), &[])),
            [os.to_owned(), format!("{os}.windows[0].time_zone")]
        );

        info.operational_support = windows(vec![valid_window(); MAX_SUPPORT_WINDOWS + 1]);
        assert_eq!(
            only_violation(&request(info.clone(), &[])).field,
            format!("{os}.windows")
        );
        info.operational_support = windows(vec![valid_window(); MAX_SUPPORT_WINDOWS]);
        assert!(parse_update(&request(info, &[])).is_ok());
    }

    #[test]
    fn window_violations() {
        use pb::DayOfWeek::*;
        let w = "contact_info.operational_support.windows[1]";
        let check = |win: pb::SupportWindow| {
            let mut info = full_info(PROD);
            info.operational_support = windows(vec![valid_window(), win]);
            fields_of(&request(info, &["operational_support"]))
        };

        assert_eq!(
            check(window("Mars/Olympus", &[Monday], "09:00", "17:00")),
            [format!("{w}.time_zone")]
        );
        assert_eq!(
            check(window("UTC", &[], "09:00", "17:00")),
            [format!("{w}.days")]
        );
        assert_eq!(
            check(window("UTC", &[Monday, Unspecified], "09:00", "17:00")),
            [format!("{w}.days[1]")]
        );
        assert_eq!(
            check(window("UTC", &[Monday, Tuesday, Monday], "09:00", "17:00")),
            [format!("{w}.days[2]")]
        );
        let mut unknown = window("UTC", &[Monday], "09:00", "17:00");
        unknown.days = vec![99, 1, -1];
        assert_eq!(
            check(unknown),
            [format!("{w}.days[0]"), format!("{w}.days[2]")]
        );
        assert_eq!(
            check(window("UTC", &[Monday], "9:00", "17:00")),
            [format!("{w}.open_time")]
        );
        assert_eq!(
            check(window("UTC", &[Monday], "24:00", "17:00")),
            [format!("{w}.open_time")]
        );
        assert_eq!(
            check(window("UTC", &[Monday], "09:00", "24:01")),
            [format!("{w}.close_time")]
        );
        assert_eq!(
            check(window("UTC", &[Monday], "", "")),
            [format!("{w}.open_time"), format!("{w}.close_time")]
        );
        assert_eq!(
            check(window("UTC", &[Monday], "09:00", "09:00")),
            [format!("{w}.close_time")]
        );
        assert_eq!(
            check(window("UTC", &[Monday], "00:00", "00:00")),
            [format!("{w}.close_time")]
        );

        let bad = window(
            "Mars/Olympus",
            &[Unspecified, Monday, Monday],
            "25:00",
            "ab:cd",
        );
        assert_eq!(
            check(bad),
            [
                format!("{w}.time_zone"),
                format!("{w}.days[0]"),
                format!("{w}.days[2]"),
                format!("{w}.open_time"),
                format!("{w}.close_time"),
            ]
        );
    }

    #[test]
    fn accepted_windows() {
        use pb::DayOfWeek::*;
        let mut info = full_info(PROD);
        info.operational_support = windows(vec![
            window("Asia/Tokyo", &[Friday, Saturday], "22:00", "02:00"),
            window("UTC", &[Sunday], "18:00", "24:00"),
            window("UTC", &[Monday], "00:00", "23:59"),
        ]);
        let update = parse_update(&request(info, &["operational_support"])).expect("valid");
        let Some(OperationalSupport::Windows(ws)) = update.patch.operational_support else {
            panic!("windows expected");
        };
        assert_eq!(ws[0].days(), [Weekday::Friday, Weekday::Saturday]);
        assert_eq!(ws[0].open_time().to_string(), "22:00");
        assert_eq!(ws[0].close_time().to_string(), "02:00");
        assert_eq!(ws[1].close_time().minutes(), LocalTime::MIDNIGHT_END);
    }
}
