//! Contact info as a file a person writes and reviews (YAML or TOML), with
//! the proto's field names: what `get` writes and `apply` reads. The file is
//! the whole resource; an empty field is left out, and a field left out is
//! empty.
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::args::FileFormat;
use crate::pb;

/// `partnerportal.contacts.v1.ContactInfo` as a file. Unknown keys are
/// refused, so that a misspelt field is not silently cleared.
///
/// The scalar fields come first: TOML needs them before its tables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactFile {
    #[serde(default)]
    pub name: String,
    /// Saves only if the stored etag is still this one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub etag: String,
    /// Output only: written by `get`, ignored by `apply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    /// Output only: written by `get`, ignored by `apply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alert_contacts: Vec<FileContact>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub technical_emergency_contacts: Vec<FileContact>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub technical_non_emergency_contacts: Vec<FileContact>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merchant_issues_contacts: Vec<FileContact>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platform_operational_contacts: Vec<FileContact>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_facing_operational_contacts: Vec<FileContact>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operational_support: Option<FileSupport>,
}

/// `partnerportal.contacts.v1.Contact`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileContact {
    #[serde(default)]
    pub email: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phone_number: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub language_code: String,
}

/// `partnerportal.contacts.v1.OperationalSupport`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSupport {
    #[serde(default, skip_serializing_if = "is_false")]
    pub always_open: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<FileWindow>,
}

/// `partnerportal.contacts.v1.SupportWindow`. Days are the proto's enum
/// names (`DAY_OF_WEEK_MONDAY`); `MONDAY` and `monday` are accepted too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileWindow {
    #[serde(default)]
    pub time_zone: String,
    #[serde(default)]
    pub days: Vec<String>,
    #[serde(default)]
    pub open_time: String,
    #[serde(default)]
    pub close_time: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The format of `path`: `--format` when given, else its extension; stdin
/// (`-`) is YAML unless `--format` says otherwise.
pub fn format_of(path: &Path, flag: Option<FileFormat>) -> Result<FileFormat, String> {
    if let Some(format) = flag {
        return Ok(format);
    }
    if path == Path::new("-") {
        return Ok(FileFormat::Yaml);
    }
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("yaml" | "yml") => Ok(FileFormat::Yaml),
        Some("toml") => Ok(FileFormat::Toml),
        _ => Err(format!(
            "cannot tell the format of {} from its extension (.yaml, .yml or .toml): pass --format",
            path.display()
        )),
    }
}

impl ContactFile {
    pub fn parse(text: &str, format: FileFormat) -> Result<Self, String> {
        match format {
            FileFormat::Yaml => serde_norway::from_str(text).map_err(|e| e.to_string()),
            FileFormat::Toml => toml::from_str(text).map_err(|e| e.to_string()),
        }
    }

    /// The file's text, with a comment saying how to use it.
    pub fn render(&self, format: FileFormat) -> Result<String, String> {
        let body = match format {
            FileFormat::Yaml => serde_norway::to_string(self).map_err(|e| e.to_string())?,
            FileFormat::Toml => toml::to_string(self).map_err(|e| e.to_string())?,
        };
        Ok(format!(
            "# Contact information, as `partner-contacts get` read it. Edit, then\n\
             # `partner-contacts apply -f FILE`: the file is the whole resource (a field\n\
             # left out is cleared). etag: save only if nobody saved since;\n\
             # create_time and update_time are ignored.\n{body}"
        ))
    }

    /// The resource as the API has it. Days that are not days are refused
    /// with their file path.
    pub fn to_proto(&self) -> Result<pb::ContactInfo, String> {
        let contacts = |list: &[FileContact]| -> Vec<pb::Contact> {
            list.iter()
                .map(|c| pb::Contact {
                    email: c.email.clone(),
                    display_name: c.display_name.clone(),
                    phone_number: c.phone_number.clone(),
                    language_code: c.language_code.clone(),
                    verification: None,
                })
                .collect()
        };
        let operational_support = match &self.operational_support {
            None => None,
            Some(support) => {
                let mut windows = Vec::with_capacity(support.windows.len());
                for (i, w) in support.windows.iter().enumerate() {
                    let mut days = Vec::with_capacity(w.days.len());
                    for (j, day) in w.days.iter().enumerate() {
                        days.push(day_number(day).ok_or_else(|| {
                            format!(
                                "operational_support.windows[{i}].days[{j}]: {day:?} is not a day \
                                 (DAY_OF_WEEK_MONDAY ... DAY_OF_WEEK_SUNDAY, or MONDAY ... SUNDAY)"
                            )
                        })?);
                    }
                    windows.push(pb::SupportWindow {
                        time_zone: w.time_zone.clone(),
                        days,
                        open_time: w.open_time.clone(),
                        close_time: w.close_time.clone(),
                    });
                }
                Some(pb::OperationalSupport {
                    always_open: support.always_open,
                    windows,
                })
            }
        };
        Ok(pb::ContactInfo {
            name: self.name.clone(),
            alert_contacts: contacts(&self.alert_contacts),
            technical_emergency_contacts: contacts(&self.technical_emergency_contacts),
            technical_non_emergency_contacts: contacts(&self.technical_non_emergency_contacts),
            merchant_issues_contacts: contacts(&self.merchant_issues_contacts),
            platform_operational_contacts: contacts(&self.platform_operational_contacts),
            user_facing_operational_contacts: contacts(&self.user_facing_operational_contacts),
            operational_support,
            etag: self.etag.clone(),
            create_time: None,
            update_time: None,
            address_verifications: Vec::new(),
        })
    }

    /// The file `get` writes for `info`.
    pub fn from_proto(info: &pb::ContactInfo) -> Self {
        let contacts = |list: &[pb::Contact]| -> Vec<FileContact> {
            list.iter()
                .map(|c| FileContact {
                    email: c.email.clone(),
                    display_name: c.display_name.clone(),
                    phone_number: c.phone_number.clone(),
                    language_code: c.language_code.clone(),
                })
                .collect()
        };
        ContactFile {
            name: info.name.clone(),
            etag: info.etag.clone(),
            create_time: info.create_time.as_ref().and_then(rfc3339),
            update_time: info.update_time.as_ref().and_then(rfc3339),
            alert_contacts: contacts(&info.alert_contacts),
            technical_emergency_contacts: contacts(&info.technical_emergency_contacts),
            technical_non_emergency_contacts: contacts(&info.technical_non_emergency_contacts),
            merchant_issues_contacts: contacts(&info.merchant_issues_contacts),
            platform_operational_contacts: contacts(&info.platform_operational_contacts),
            user_facing_operational_contacts: contacts(&info.user_facing_operational_contacts),
            operational_support: info.operational_support.as_ref().map(|s| FileSupport {
                always_open: s.always_open,
                windows: s
                    .windows
                    .iter()
                    .map(|w| FileWindow {
                        time_zone: w.time_zone.clone(),
                        days: w.days.iter().map(|d| day_name(*d)).collect(),
                        open_time: w.open_time.clone(),
                        close_time: w.close_time.clone(),
                    })
                    .collect(),
            }),
        }
    }
}

/// The proto enum name of a day number, or the number itself when the
/// server sent one this client does not know.
pub fn day_name(day: i32) -> String {
    match pb::DayOfWeek::try_from(day) {
        Ok(d) => d.as_str_name().to_owned(),
        Err(_) => day.to_string(),
    }
}

fn day_number(name: &str) -> Option<i32> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("DAY_OF_WEEK_") {
        upper
    } else {
        format!("DAY_OF_WEEK_{upper}")
    };
    match pb::DayOfWeek::from_str_name(&full) {
        // The server reports an unspecified day by its path; sending it
        // lets the file's other problems be listed with it.
        Some(day) => Some(day as i32),
        None => name.trim().parse::<i32>().ok(),
    }
}

/// A protobuf timestamp as RFC 3339 in UTC, e.g. `2026-12-01T09:30:00.123456Z`.
pub fn rfc3339(t: &prost_types::Timestamp) -> Option<String> {
    let nanos = u32::try_from(t.nanos).ok()?;
    chrono::DateTime::from_timestamp(t.seconds, nanos)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> pb::ContactInfo {
        pb::ContactInfo {
            name: "partners/acme/environments/production/contactInfo".to_owned(),
            alert_contacts: vec![pb::Contact {
                email: "oncall@acme.example".to_owned(),
                display_name: "Acme on-call: no".to_owned(),
                ..Default::default()
            }],
            technical_emergency_contacts: vec![pb::Contact {
                email: "pager@acme.example".to_owned(),
                phone_number: "+16502530000;ext=12".to_owned(),
                language_code: "no".to_owned(),
                ..Default::default()
            }],
            operational_support: Some(pb::OperationalSupport {
                always_open: false,
                windows: vec![pb::SupportWindow {
                    time_zone: "Europe/Zurich".to_owned(),
                    days: vec![1, 7],
                    open_time: "08:00".to_owned(),
                    close_time: "24:00".to_owned(),
                }],
            }),
            etag: "W/\"3\"".to_owned(),
            create_time: Some(prost_types::Timestamp {
                seconds: 1_780_000_000,
                nanos: 5_000,
            }),
            update_time: None,
            ..Default::default()
        }
    }

    #[test]
    fn both_formats_read_back_what_they_write() {
        let info = sample();
        let file = ContactFile::from_proto(&info);
        for format in [FileFormat::Yaml, FileFormat::Toml] {
            let text = file.render(format).expect("render");
            let back = ContactFile::parse(&text, format)
                .unwrap_or_else(|e| panic!("{format:?} does not read back: {e}\n{text}"));
            assert_eq!(back, file, "{format:?}:\n{text}");
            let mut expected = info.clone();
            expected.create_time = None;
            expected.update_time = None;
            assert_eq!(back.to_proto().expect("proto"), expected);
        }
    }

    #[test]
    fn a_person_may_write_short_day_names_and_plain_scalars() {
        let yaml = "name: partners/acme/environments/sandbox/contactInfo\n\
                    technical_emergency_contacts:\n  - email: pager@acme.example\n    language_code: no\n\
                    operational_support:\n  windows:\n    - time_zone: Europe/Oslo\n      days: [monday, SUNDAY]\n      open_time: 08:00\n      close_time: 17:30\n";
        let file = ContactFile::parse(yaml, FileFormat::Yaml).expect("parse");
        let info = file.to_proto().expect("proto");
        assert_eq!(info.technical_emergency_contacts[0].language_code, "no");
        let w = &info.operational_support.expect("support").windows[0];
        assert_eq!(w.days, vec![1, 7]);
        assert_eq!(
            (w.open_time.as_str(), w.close_time.as_str()),
            ("08:00", "17:30")
        );
    }

    #[test]
    fn misspelt_fields_and_unknown_days_are_refused() {
        let err = ContactFile::parse(
            "name: x\ntechnical_emergency_contact: []\n",
            FileFormat::Yaml,
        )
        .expect_err("unknown field");
        assert!(err.contains("technical_emergency_contact"), "{err}");
        let file = ContactFile::parse(
            "name = \"x\"\n[operational_support]\n[[operational_support.windows]]\ndays = [\"funday\"]\n",
            FileFormat::Toml,
        )
        .expect("parse");
        let err = file.to_proto().expect_err("funday");
        assert!(
            err.contains("operational_support.windows[0].days[0]"),
            "{err}"
        );
    }

    #[test]
    fn the_format_comes_from_the_flag_or_the_extension() {
        assert_eq!(format_of(Path::new("a.yml"), None), Ok(FileFormat::Yaml));
        assert_eq!(format_of(Path::new("a.YAML"), None), Ok(FileFormat::Yaml));
        assert_eq!(format_of(Path::new("a.toml"), None), Ok(FileFormat::Toml));
        assert_eq!(format_of(Path::new("-"), None), Ok(FileFormat::Yaml));
        assert_eq!(
            format_of(Path::new("a.txt"), Some(FileFormat::Toml)),
            Ok(FileFormat::Toml)
        );
        assert!(format_of(Path::new("a.txt"), None).is_err());
    }
}
