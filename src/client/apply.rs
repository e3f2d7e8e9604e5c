//! `partner-contacts get` and `apply -f FILE`: contact info as code. `apply`
//! saves a file only when the server's validated form of it differs from
//! what is stored, prints the difference first, and never overwrites a change
//! it has not seen (etag).
use std::io::Read;

use sha2::{Digest, Sha256};
use tonic::Code;

use super::args::{ApplyArgs, GetArgs};
use super::connect::{self, Connection};
use super::file::{ContactFile, day_name, format_of};
use super::report::{Exit, Failure};
use super::retry::Policy;
use crate::pb;

pub async fn get(args: &GetArgs) -> Exit {
    let result = async {
        let connection = connect::open(&args.connect)?;
        let name = args.resource.resource_name();
        let info = read_current(&connection, &name)
            .await?
            .ok_or_else(|| Failure {
                exit: Exit::NotFound,
                code: "NOT_FOUND",
                message: format!("nothing is saved for {name}"),
                field_violations: Vec::new(),
            })?;
        ContactFile::from_proto(&info)
            .render(args.output)
            .map_err(|e| Failure::usage(format!("cannot write the file: {e}")))
    }
    .await;
    match result {
        Ok(text) => {
            print!("{text}");
            Exit::Success
        }
        Err(failure) => {
            failure.print_text("get");
            failure.exit
        }
    }
}

pub async fn apply(args: &ApplyArgs) -> Exit {
    match apply_file(args).await {
        Ok(()) => Exit::Success,
        Err(failure) => {
            failure.print_text("apply");
            failure.exit
        }
    }
}

async fn apply_file(args: &ApplyArgs) -> Result<(), Failure> {
    let (shown, wanted) = read_file(args)?;
    if wanted.name.is_empty() {
        return Err(Failure::usage(format!(
            "{shown}: `name` is missing (partners/P/environments/E/contactInfo)"
        )));
    }
    let name = wanted.name.clone();
    let expected_etag = args.etag.clone().unwrap_or_else(|| wanted.etag.clone());
    let connection = connect::open(&args.connect)?;

    let current = read_current(&connection, &name).await?;
    // The server's own form of the file (phone numbers in E.164, canonical
    // time zones and language tags, days in week order): comparing it, not
    // the file's spelling, with the stored one is what makes a second apply
    // of the same file find nothing to do. Unconditional (no etag): the etag
    // is judged below, after knowing whether anything changes at all.
    let mut check = wanted.clone();
    check.etag.clear();
    let would_be = update(&connection, check, String::new(), true, String::new())
        .await
        .map_err(|f| f.context(&shown))?;

    let changes = diff(current.as_ref(), &would_be);
    if changes.is_empty() {
        println!("{name}: no changes");
        return Ok(());
    }
    let stored_etag = current.as_ref().map(|c| c.etag.clone()).unwrap_or_default();
    if !expected_etag.is_empty() && expected_etag != stored_etag {
        return Err(Failure {
            exit: Exit::Conflict,
            code: "ABORTED",
            message: format!(
                "{name} was saved by someone else since etag {expected_etag:?} (stored: \
                 {stored_etag:?}); nothing was saved. Run `partner-contacts get` again, redo \
                 your edits on its output, and apply that."
            ),
            field_violations: Vec::new(),
        });
    }
    println!(
        "{name}: {} field{} change{}",
        changes.len(),
        if changes.len() == 1 { "" } else { "s" },
        if changes.len() == 1 { "s" } else { "" }
    );
    for change in &changes {
        println!("{change}");
    }
    if args.dry_run {
        println!("dry run: validated by the server, nothing saved");
        return Ok(());
    }
    // Without an etag of its own, the file is saved over the state this
    // command read: a change someone makes between that read and this write
    // is refused rather than overwritten.
    let etag = if expected_etag.is_empty() {
        stored_etag
    } else {
        expected_etag
    };
    let request_id = request_id(&wanted, &etag);
    let saved = update(&connection, wanted, etag, false, request_id)
        .await
        .map_err(|f| match f.exit {
            Exit::Conflict => Failure {
                message: format!(
                    "{name} was saved by someone else while apply ran; nothing was saved. \
                     Run apply again to see the changes against the new state. ({})",
                    f.message
                ),
                ..f
            },
            _ => f.context(&shown),
        })?;
    println!("saved {name}, etag {}", saved.etag);
    Ok(())
}

/// The file's name for messages, and its contents.
fn read_file(args: &ApplyArgs) -> Result<(String, pb::ContactInfo), Failure> {
    let format = format_of(&args.file, args.format).map_err(Failure::usage)?;
    let (shown, text) = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::usage(format!("cannot read stdin: {e}")))?;
        ("stdin".to_owned(), text)
    } else {
        let shown = args.file.display().to_string();
        let text = std::fs::read_to_string(&args.file)
            .map_err(|e| Failure::usage(format!("cannot read {shown}: {e}")))?;
        (shown, text)
    };
    let info = ContactFile::parse(&text, format)
        .and_then(|file| file.to_proto())
        .map_err(|e| Failure::usage(format!("{shown}: {e}")))?;
    Ok((shown, info))
}

/// The stored contact info, or `None` when nothing is saved.
async fn read_current(
    connection: &Connection,
    name: &str,
) -> Result<Option<pb::ContactInfo>, Failure> {
    let request = pb::GetContactsRequest {
        name: name.to_owned(),
        read_time: None,
    };
    let result = connection
        .call(
            "GetContacts",
            Policy::Read,
            &request,
            |mut c, r| async move { c.get_contacts(r).await },
        )
        .await;
    match result {
        Ok(info) => Ok(Some(info)),
        Err(status) if status.code() == Code::NotFound => Ok(None),
        Err(status) => Err(Failure::of_status(&status)),
    }
}

/// UpdateContacts replacing every field (mask `*`): the file is the whole
/// resource.
async fn update(
    connection: &Connection,
    mut info: pb::ContactInfo,
    etag: String,
    validate_only: bool,
    request_id: String,
) -> Result<pb::ContactInfo, Failure> {
    info.etag = etag;
    let request = pb::UpdateContactsRequest {
        contact_info: Some(info),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["*".to_owned()],
        }),
        validate_only,
        request_id,
    };
    // A validation saves nothing and a save carries a request_id: both are
    // safe to send again.
    connection
        .call(
            "UpdateContacts",
            Policy::Write,
            &request,
            |mut c, r| async move { c.update_contacts(r).await },
        )
        .await
        .map_err(|status| Failure::of_status(&status))
}

/// A request_id derived from what is saved and over which etag: the same
/// file applied over the same state (e.g. a retry after a lost answer) is
/// the same request, which the server saves once; anything else is another.
fn request_id(info: &pb::ContactInfo, etag: &str) -> String {
    let mut canonical = info.clone();
    canonical.etag = etag.to_owned();
    canonical.create_time = None;
    canonical.update_time = None;
    let mut hash = Sha256::new();
    hash.update(b"partner-contacts apply v1\0");
    hash.update(prost::Message::encode_to_vec(&canonical));
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// One top-level field that changes, old then new.
struct Change {
    field: &'static str,
    old: Vec<String>,
    new: Vec<String>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}:", self.field)?;
        for line in &self.old {
            writeln!(f, "  - {line}")?;
        }
        for (i, line) in self.new.iter().enumerate() {
            if i + 1 == self.new.len() {
                write!(f, "  + {line}")?;
            } else {
                writeln!(f, "  + {line}")?;
            }
        }
        Ok(())
    }
}

/// Reads one contact field of a contact info.
type ContactsOf = fn(&pb::ContactInfo) -> &Vec<pb::Contact>;

/// The top-level fields whose value differs, in the order of the proto.
fn diff(current: Option<&pb::ContactInfo>, next: &pb::ContactInfo) -> Vec<Change> {
    let empty = pb::ContactInfo::default();
    let old = current.unwrap_or(&empty);
    let mut changes = Vec::new();
    let contact_fields: [(&'static str, ContactsOf); 6] = [
        ("alert_contacts", |c| &c.alert_contacts),
        ("technical_emergency_contacts", |c| {
            &c.technical_emergency_contacts
        }),
        ("technical_non_emergency_contacts", |c| {
            &c.technical_non_emergency_contacts
        }),
        ("merchant_issues_contacts", |c| &c.merchant_issues_contacts),
        ("platform_operational_contacts", |c| {
            &c.platform_operational_contacts
        }),
        ("user_facing_operational_contacts", |c| {
            &c.user_facing_operational_contacts
        }),
    ];
    for (field, get) in contact_fields {
        if !same_contacts(get(old), get(next)) {
            changes.push(Change {
                field,
                old: contact_lines(get(old)),
                new: contact_lines(get(next)),
            });
        }
    }
    if old.operational_support != next.operational_support {
        changes.push(Change {
            field: "operational_support",
            old: support_lines(old.operational_support.as_ref()),
            new: support_lines(next.operational_support.as_ref()),
        });
    }
    changes
}

/// The same contacts, as a file can say them: output-only parts (an
/// address's verification state, which the stored form carries and the
/// file's validated form does not) are not a difference.
fn same_contacts(a: &[pb::Contact], b: &[pb::Contact]) -> bool {
    let editable = |c: &pb::Contact| pb::Contact {
        verification: None,
        ..c.clone()
    };
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| editable(x) == editable(y))
}

fn contact_lines(contacts: &[pb::Contact]) -> Vec<String> {
    if contacts.is_empty() {
        return vec!["(none)".to_owned()];
    }
    contacts
        .iter()
        .map(|c| {
            let mut line = c.email.clone();
            for (label, value) in [
                ("display_name", &c.display_name),
                ("phone_number", &c.phone_number),
                ("language_code", &c.language_code),
            ] {
                if !value.is_empty() {
                    line.push_str(&format!(" {label}={value:?}"));
                }
            }
            line
        })
        .collect()
}

fn support_lines(support: Option<&pb::OperationalSupport>) -> Vec<String> {
    match support {
        None => vec!["(not provided)".to_owned()],
        Some(s) if s.always_open && s.windows.is_empty() => vec!["always open".to_owned()],
        Some(s) => {
            let mut lines: Vec<String> = s
                .windows
                .iter()
                .map(|w| {
                    let days: Vec<String> = w
                        .days
                        .iter()
                        .map(|d| {
                            let name = day_name(*d);
                            name.strip_prefix("DAY_OF_WEEK_")
                                .map(str::to_owned)
                                .unwrap_or(name)
                        })
                        .collect();
                    format!(
                        "{} {} {}-{}",
                        w.time_zone,
                        days.join(","),
                        w.open_time,
                        w.close_time
                    )
                })
                .collect();
            if s.always_open {
                lines.insert(0, "always open".to_owned());
            }
            lines
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(emails: &[&str]) -> pb::ContactInfo {
        pb::ContactInfo {
            name: "partners/acme/environments/sandbox/contactInfo".to_owned(),
            technical_emergency_contacts: emails
                .iter()
                .map(|e| pb::Contact {
                    email: (*e).to_owned(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_diff_names_each_changed_field_with_old_and_new_contacts() {
        let old = info(&["a@example.com"]);
        let mut new = info(&["a@example.com", "b@example.com"]);
        new.operational_support = Some(pb::OperationalSupport {
            always_open: true,
            windows: Vec::new(),
        });
        let changes = diff(Some(&old), &new);
        let text: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "technical_emergency_contacts:\n  - a@example.com\n  + a@example.com\n  + b@example.com",
                "operational_support:\n  - (not provided)\n  + always open",
            ]
        );
        assert!(diff(Some(&new), &new).is_empty());
        // A stored address's verification state is no difference.
        let mut verified = new.clone();
        for c in &mut verified.technical_emergency_contacts {
            c.verification = Some(pb::AddressVerification {
                email: c.email.clone(),
                state: pb::address_verification::State::Verified as i32,
                ..Default::default()
            });
        }
        assert!(diff(Some(&verified), &new).is_empty());
        assert_eq!(diff(None, &old).len(), 1);
    }

    #[test]
    fn the_request_id_is_a_uuid_of_the_content_and_the_etag() {
        let a = request_id(&info(&["a@example.com"]), "1");
        assert_eq!(a, request_id(&info(&["a@example.com"]), "1"));
        assert_ne!(a, request_id(&info(&["a@example.com"]), "2"));
        assert_ne!(a, request_id(&info(&["b@example.com"]), "1"));
        assert!(uuid::Uuid::try_parse(&a).is_ok(), "{a}");
    }
}
