//! The ready form of a saved contact info: its protobuf `ContactInfo` as
//! GetContacts sends it with the full view, encoded once when it is saved,
//! then stored beside the JSON fields, cached, and sent as it is.
//!
//! Encoded here straight from the domain value (field numbers of
//! `proto/partnerportal/contacts/v1/contact_info.proto`), in the same bytes
//! prost writes for the generated `pb::ContactInfo` (a test holds the two
//! equal), so that neither a save nor a read builds the message struct.
use chrono::{DateTime, Utc};
use prost::bytes::{BufMut, Bytes};
use prost::encoding::{WireType, encode_key, encode_varint};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::view::{ContactInfoView, Layout, WindowView};
use super::{day_number, put_str, put_timestamp};
use crate::domain::{
    Contact, ContactInfo, OperationalSupport, PartnerVerifications, ReadView, SupportWindow,
    window_open_at,
};

/// The stored form's first byte: which layout follows. A release reads the
/// versions it knows and falls back to the JSON fields for any other, so
/// that releases side by side in a rolling deploy read each other's rows.
pub const STORED_FORMAT_V1: u8 = 1;

/// A saved contact info, encoded for the full view.
#[derive(Debug, Clone)]
pub struct Ready {
    revision: i64,
    encoded: Bytes,
    layout: Layout,
    support: SupportHours,
    /// The partner's address verification facts as read with the row
    /// (never stored in the blob: they change without a save, and their
    /// states with time). `None`: not read (a form just encoded); readers
    /// then know of none.
    verifications: Option<Arc<PartnerVerifications>>,
}

/// Two ready forms are equal when they encode the same saved state; the
/// verification facts read beside them are not part of it.
impl PartialEq for Ready {
    fn eq(&self, other: &Self) -> bool {
        self.revision == other.revision
            && self.encoded == other.encoded
            && self.layout == other.layout
            && self.support == other.support
    }
}

impl Eq for Ready {}

/// Shared by every ready form of a partner without verification facts, so
/// that most cache entries hold a pointer and nothing more.
static NO_VERIFICATIONS: std::sync::LazyLock<Arc<PartnerVerifications>> =
    std::sync::LazyLock::new(|| Arc::new(PartnerVerifications::default()));

/// Support hours, read out of the bytes once per ready form: each
/// ResolveRecipients asks whether they are open, and reading the windows'
/// time zones and times per call cost more than the rest of its answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct SupportHours {
    always_open: bool,
    /// The windows that read back (as a read of the bytes would skip one
    /// that does not); `None` when there are none. Shared by every copy of
    /// the ready form, and so is its last answer.
    windows: Option<Arc<Windows>>,
}

/// Windows and their last answer. Whether a window is open changes at most
/// once a second (its times are minutes, a zone's offset whole seconds), so
/// the answer for one second holds for every instant in it: the alert
/// dispatcher's bursts ask about the same partners within the same second,
/// and converting to a zone's wall clock cost more than the rest of a
/// ResolveRecipients answer.
#[derive(Debug)]
struct Windows {
    list: Box<[WindowView]>,
    /// `second << 2 | 0b10 | open`; 0 when nothing was asked yet.
    last: AtomicU64,
}

impl PartialEq for Windows {
    fn eq(&self, other: &Self) -> bool {
        self.list == other.list
    }
}

impl Eq for Windows {}

impl Windows {
    fn open_at(&self, at: DateTime<Utc>) -> bool {
        let second = at.timestamp();
        let last = self.last.load(Ordering::Relaxed);
        // Seconds from year 1 to 9999 fit in 38 bits: shifting by 2 loses
        // nothing, and the arithmetic shift back restores the sign.
        if last & 0b10 != 0 && (last as i64) >> 2 == second {
            return last & 1 == 1;
        }
        let open = self
            .list
            .iter()
            .any(|w| window_open_at(w.time_zone, |d| w.on(d), w.open_time, w.close_time, at));
        self.last.store(
            ((second as u64) << 2) | 0b10 | u64::from(open),
            Ordering::Relaxed,
        );
        open
    }
}

impl SupportHours {
    fn of(view: ContactInfoView<'_>) -> Self {
        let Some(support) = view.support() else {
            return Self::default();
        };
        let list: Box<[WindowView]> = support.windows().filter_map(Result::ok).collect();
        Self {
            always_open: support.always_open(),
            windows: (!list.is_empty()).then(|| {
                Arc::new(Windows {
                    list,
                    last: AtomicU64::new(0),
                })
            }),
        }
    }
}

impl Ready {
    /// Encodes a saved contact info.
    pub fn of(info: &ContactInfo) -> Self {
        let mut buf = Vec::with_capacity(640);
        encode_contact_info(info, &mut buf);
        // Exactly its length: the cache keeps it for long and counts it so.
        buf.shrink_to_fit();
        // What this release encodes always reads back (tests hold it for
        // every field); were it ever not to, GetContacts still answers the
        // bytes, and the gate and ResolveRecipients see nothing provided.
        let layout = Layout::of(&buf).unwrap_or_else(|_| {
            tracing::error!(
                revision = info.revision,
                "an encoded contact info does not read back"
            );
            Layout::EMPTY
        });
        Self::with_layout(info.revision, Bytes::from(buf), layout)
    }

    fn with_layout(revision: i64, encoded: Bytes, layout: Layout) -> Self {
        let support = SupportHours::of(ContactInfoView::new(&encoded, &layout));
        Self {
            revision,
            encoded,
            layout,
            support,
            verifications: None,
        }
    }

    /// With the partner's verification facts, as read with it.
    pub fn with_verifications(mut self, facts: PartnerVerifications) -> Self {
        self.verifications = Some(if facts.is_empty() {
            NO_VERIFICATIONS.clone()
        } else {
            Arc::new(facts)
        });
        self
    }

    /// The partner's verification facts; none when not read with them.
    pub fn verifications(&self) -> &PartnerVerifications {
        self.verifications.as_deref().unwrap_or(&NO_VERIFICATIONS)
    }

    /// The stored blob: the format byte, the revision (big endian), the
    /// encoded message.
    pub fn to_stored(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + self.encoded.len());
        out.push(STORED_FORMAT_V1);
        out.extend_from_slice(&self.revision.to_be_bytes());
        out.extend_from_slice(&self.encoded);
        out
    }

    /// A stored blob read back with its row's revision. `None` when it is of
    /// a format this release does not know, or of another revision than the
    /// row (an older release saved the row without rewriting the blob): the
    /// caller then encodes the JSON fields instead.
    pub fn from_stored(blob: &[u8], row_revision: i64) -> Option<Self> {
        let (&format, rest) = blob.split_first()?;
        if format != STORED_FORMAT_V1 || rest.len() < 8 {
            return None;
        }
        let (revision, encoded) = rest.split_at(8);
        let revision = i64::from_be_bytes(revision.try_into().ok()?);
        if revision != row_revision {
            return None;
        }
        // Checked once here, so that every later read of it can trust it.
        let layout = Layout::of(encoded).ok()?;
        Some(Self::with_layout(
            revision,
            Bytes::copy_from_slice(encoded),
            layout,
        ))
    }

    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The encoded `ContactInfo` with the full view.
    pub fn encoded(&self) -> &Bytes {
        &self.encoded
    }

    /// What `view` may see of it, encoded: the full bytes themselves (shared,
    /// nothing copied), or a copy without the fields the view hides.
    pub fn encoded_for(&self, view: ReadView) -> Bytes {
        match view {
            ReadView::Full => self.encoded.clone(),
            ReadView::UserFacing => Bytes::from(self.view().filtered(view)),
        }
    }

    /// A zero-copy reader over it.
    pub fn view(&self) -> ContactInfoView<'_> {
        ContactInfoView::new(&self.encoded, &self.layout)
    }

    /// Whether support is open at `at` (always open, or `at` falls in a
    /// window); false when no support hours are saved.
    pub fn support_open_at(&self, at: DateTime<Utc>) -> bool {
        self.support.always_open
            || self
                .support
                .windows
                .as_ref()
                .is_some_and(|ws| ws.open_at(at))
    }

    /// Heap bytes it holds, for the cache's weigher.
    pub fn heap_bytes(&self) -> usize {
        let facts = self
            .verifications
            .as_ref()
            .filter(|f| !f.is_empty())
            .map_or(0, |f| {
                2 * std::mem::size_of::<usize>()
                    + f.0
                        .iter()
                        .map(|v| std::mem::size_of_val(v) + v.key.len())
                        .sum::<usize>()
            });
        facts
            + self.encoded.len()
            + self.support.windows.as_ref().map_or(0, |ws| {
                // The `Arc` (its two counts and `Windows`), then the list.
                2 * std::mem::size_of::<usize>()
                    + std::mem::size_of::<Windows>()
                    + std::mem::size_of_val::<[WindowView]>(&ws.list)
            })
    }
}

// Field numbers of contact_info.proto.
const CI_NAME: u32 = 1;
const CI_ETAG: u32 = 9;
const CI_CREATE_TIME: u32 = 10;
const CI_UPDATE_TIME: u32 = 11;
const CI_OPERATIONAL_SUPPORT: u32 = 8;
const CONTACT_EMAIL: u32 = 1;
const CONTACT_DISPLAY_NAME: u32 = 2;
const CONTACT_PHONE_NUMBER: u32 = 3;
const CONTACT_LANGUAGE_CODE: u32 = 4;
const SUPPORT_ALWAYS_OPEN: u32 = 1;
const SUPPORT_WINDOWS: u32 = 2;
const WINDOW_TIME_ZONE: u32 = 1;
const WINDOW_DAYS: u32 = 2;
const WINDOW_OPEN_TIME: u32 = 3;
const WINDOW_CLOSE_TIME: u32 = 4;

fn encode_contact_info(info: &ContactInfo, buf: &mut Vec<u8>) {
    put_str(CI_NAME, &info.name.to_string(), buf);
    for field in crate::domain::Field::ALL {
        if let Some(contacts) = info.fields.contacts(field) {
            for c in contacts {
                put_message(super::field_number(field), buf, |b| encode_contact(c, b));
            }
        }
    }
    if let Some(support) = &info.fields.operational_support {
        put_message(CI_OPERATIONAL_SUPPORT, buf, |b| encode_support(support, b));
    }
    put_str(CI_ETAG, &info.etag, buf);
    put_message(CI_CREATE_TIME, buf, |b| put_timestamp(info.create_time, b));
    put_message(CI_UPDATE_TIME, buf, |b| put_timestamp(info.update_time, b));
}

fn encode_contact(c: &Contact, buf: &mut Vec<u8>) {
    put_str(CONTACT_EMAIL, c.email.as_str(), buf);
    if let Some(d) = &c.display_name {
        put_str(CONTACT_DISPLAY_NAME, d.as_str(), buf);
    }
    if let Some(p) = &c.phone_number {
        put_str(CONTACT_PHONE_NUMBER, p.as_str(), buf);
    }
    if let Some(l) = &c.language_code {
        put_str(CONTACT_LANGUAGE_CODE, l.as_str(), buf);
    }
}

fn encode_support(support: &OperationalSupport, buf: &mut Vec<u8>) {
    match support {
        OperationalSupport::AlwaysOpen => {
            encode_key(SUPPORT_ALWAYS_OPEN, WireType::Varint, buf);
            encode_varint(1, buf);
        }
        OperationalSupport::Windows(windows) => {
            for w in windows {
                put_message(SUPPORT_WINDOWS, buf, |b| encode_window(w, b));
            }
        }
    }
}

fn encode_window(w: &SupportWindow, buf: &mut Vec<u8>) {
    put_str(WINDOW_TIME_ZONE, w.time_zone().as_str(), buf);
    // proto3 packs repeated enums: one length-delimited run of varints.
    if !w.days().is_empty() {
        encode_key(WINDOW_DAYS, WireType::LengthDelimited, buf);
        encode_varint(w.days().len() as u64, buf);
        for d in w.days() {
            encode_varint(u64::from(day_number(*d)), buf);
        }
    }
    put_str(WINDOW_OPEN_TIME, &w.open_time().to_string(), buf);
    put_str(WINDOW_CLOSE_TIME, &w.close_time().to_string(), buf);
}

/// An embedded message, written whatever its length (a present message
/// field is written even when empty, as prost does).
fn put_message(tag: u32, buf: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    body(&mut inner);
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(inner.len() as u64, buf);
    buf.put_slice(&inner);
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::api::convert::contact_info_to_pb;
    use crate::domain::{
        ContactFields, ContactInfoName, DisplayName, Email, Environment, Field, LanguageCode,
        LocalTime, PartnerId, PhoneNumber, TimeZoneName, Weekday,
    };
    use crate::pb;

    pub(crate) fn sample(support: Option<OperationalSupport>) -> ContactInfo {
        let contact =
            |e: &str, name: Option<&str>, phone: Option<&str>, lang: Option<&str>| Contact {
                email: Email::parse(e).expect("email"),
                display_name: name.map(|n| DisplayName::parse(n).expect("name")),
                phone_number: phone.map(|p| PhoneNumber::parse(p).expect("phone")),
                language_code: lang.map(|l| LanguageCode::parse(l).expect("lang")),
            };
        ContactInfo {
            name: ContactInfoName::new(
                PartnerId::parse("acme").expect("partner"),
                Environment::Production,
            ),
            fields: ContactFields {
                alert_contacts: vec![contact(
                    "oncall@acme.example",
                    Some("Acme on-call"),
                    None,
                    Some("en"),
                )],
                technical_emergency_contacts: vec![
                    contact(
                        "pager@acme.example",
                        None,
                        Some("+1 650-253-0000 ext. 12"),
                        None,
                    ),
                    contact(
                        "Pager-2@bücher.example",
                        Some("Zoë — 日本"),
                        None,
                        Some("pt-BR"),
                    ),
                ],
                technical_non_emergency_contacts: vec![],
                merchant_issues_contacts: vec![contact("m@acme.example", None, None, None)],
                platform_operational_contacts: vec![contact(
                    "esc@acme.example",
                    None,
                    Some("+41446681800"),
                    None,
                )],
                user_facing_operational_contacts: vec![contact(
                    "help@acme.example",
                    Some("Help"),
                    None,
                    None,
                )],
                operational_support: support,
            },
            revision: 7,
            etag: "W/0123456789abcdef".to_owned(),
            create_time: DateTime::from_timestamp(1_700_000_000, 123_000).expect("time"),
            update_time: DateTime::from_timestamp(1_800_000_000, 0).expect("time"),
        }
    }

    pub(crate) fn windows() -> OperationalSupport {
        let w = |tz: &str, days: Vec<Weekday>, open: &str, close: &str| {
            SupportWindow::new(
                TimeZoneName::parse(tz).expect("tz"),
                days,
                LocalTime::parse(open, false).expect("open"),
                LocalTime::parse(close, true).expect("close"),
            )
            .expect("window")
        };
        OperationalSupport::Windows(vec![
            w(
                "America/Los_Angeles",
                vec![Weekday::Monday, Weekday::Friday],
                "08:00",
                "20:00",
            ),
            w("Europe/Zurich", vec![Weekday::Saturday], "22:00", "02:00"),
        ])
    }

    #[test]
    fn the_ready_form_is_what_prost_writes_for_the_full_view() {
        for support in [None, Some(OperationalSupport::AlwaysOpen), Some(windows())] {
            let info = sample(support);
            let ready = Ready::of(&info);
            assert_eq!(
                ready.encoded().as_ref(),
                contact_info_to_pb(&info, ReadView::Full)
                    .encode_to_vec()
                    .as_slice()
            );
            for view in [ReadView::Full, ReadView::UserFacing] {
                let decoded = pb::ContactInfo::decode(ready.encoded_for(view)).expect("decodes");
                assert_eq!(decoded, contact_info_to_pb(&info, view), "{view:?}");
            }
        }
    }

    #[test]
    fn support_hours_answer_for_the_instant_asked_whatever_was_asked_before() {
        // One ready form asked in turn (as the cache's shared copy is) about
        // instants on both sides of opening and closing, within one second,
        // across seconds, and back in time: each answer is the domain's.
        let support = windows();
        let ready = Ready::of(&sample(Some(support.clone())));
        let copy = ready.clone();
        // Friday 2026-12-04 08:00 in Los Angeles is 16:00 UTC; 20:00 is 04:00.
        let open = DateTime::parse_from_rfc3339("2026-12-04T16:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let second = chrono::Duration::seconds(1);
        let instants = [
            open - second,
            open,
            open + chrono::Duration::milliseconds(999),
            open - second + chrono::Duration::milliseconds(999),
            open,
            open + chrono::Duration::hours(12) - second,
            open + chrono::Duration::hours(12),
            open - chrono::Duration::days(1),
            open,
            // Sunday 00:30 in Zurich: Saturday's window runs past midnight.
            open + chrono::Duration::hours(31) + chrono::Duration::minutes(30),
            open + chrono::Duration::hours(31) + chrono::Duration::minutes(30),
        ];
        let mut seen = [false, false];
        for (i, at) in instants.into_iter().enumerate() {
            let expected = support.is_open_at(at);
            seen[usize::from(expected)] = true;
            assert_eq!(ready.support_open_at(at), expected, "#{i} {at}");
            assert_eq!(copy.support_open_at(at), expected, "copy #{i} {at}");
        }
        assert_eq!(seen, [true, true], "both answers were asked for");
    }

    #[test]
    fn stored_blobs_are_read_only_in_a_known_format_and_of_the_row_revision() {
        let ready = Ready::of(&sample(Some(windows())));
        let stored = ready.to_stored();
        assert_eq!(Ready::from_stored(&stored, 7), Some(ready.clone()));
        // An older release saved revision 8 without rewriting the blob.
        assert_eq!(Ready::from_stored(&stored, 8), None);
        let mut newer = stored.clone();
        newer[0] = 2;
        assert_eq!(Ready::from_stored(&newer, 7), None);
        assert_eq!(Ready::from_stored(&stored[..5], 7), None);
        let mut broken = stored;
        let last = broken.len() - 3;
        broken.truncate(last);
        assert_eq!(Ready::from_stored(&broken, 7), None);
        assert_eq!(Ready::from_stored(&[], 7), None);
    }

    #[test]
    fn views_read_each_field_from_its_place_in_the_layout() {
        let info = sample(Some(windows()));
        let ready = Ready::of(&info);
        let view = ready.view();
        let provided: crate::domain::FieldSet = Field::ALL
            .into_iter()
            .filter(|f| match info.fields.contacts(*f) {
                Some(c) => !c.is_empty(),
                None => info.fields.operational_support.is_some(),
            })
            .collect();
        assert_eq!(view.provided(), provided);
        for field in Field::ALL {
            let expected: Vec<&str> = info
                .fields
                .contacts(field)
                .unwrap_or_default()
                .iter()
                .map(|c| c.email.as_str())
                .collect();
            let read: Vec<&str> = view.contacts(field).map(|c| c.email).collect();
            assert_eq!(read, expected, "{field:?}");
        }
        assert_eq!(view.etag(), info.etag);
        let windows: Vec<_> = view
            .support()
            .expect("support")
            .windows()
            .map(|w| w.expect("window"))
            .collect();
        assert_eq!(windows.len(), 2);
        assert!(windows[0].on(Weekday::Friday) && !windows[0].on(Weekday::Sunday));
        // The user-facing view, cut by the layout, is what prost writes.
        let user_facing = ready.encoded_for(ReadView::UserFacing);
        assert_eq!(
            user_facing.as_ref(),
            contact_info_to_pb(&info, ReadView::UserFacing)
                .encode_to_vec()
                .as_slice()
        );
    }

    #[test]
    fn a_message_whose_fields_are_out_of_order_or_unknown_has_no_layout() {
        let info = sample(Some(windows()));
        let bytes = Ready::of(&info).encoded().to_vec();
        assert!(Layout::of(&bytes).is_ok());
        // A field again after another (not next to its first occurrence).
        let mut split = bytes.clone();
        let mut again = Vec::new();
        put_str(CI_ETAG, "W/again", &mut again);
        split.extend_from_slice(&again);
        assert!(Layout::of(&split).is_err());
        // Fields in another order than this release writes.
        let mut reordered = Vec::new();
        put_str(CI_ETAG, "W/x", &mut reordered);
        put_str(
            CI_NAME,
            "partners/a/environments/production/contactInfo",
            &mut reordered,
        );
        assert!(Layout::of(&reordered).is_err());
        // A field number ContactInfo does not have.
        let mut unknown = bytes;
        put_str(12, "x", &mut unknown);
        assert!(Layout::of(&unknown).is_err());
        // Such a blob is not trusted: the row's fields are read instead.
        let mut stored = vec![STORED_FORMAT_V1];
        stored.extend_from_slice(&7i64.to_be_bytes());
        stored.extend_from_slice(&split);
        assert_eq!(Ready::from_stored(&stored, 7), None);
    }
}
