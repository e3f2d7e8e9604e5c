//! Reading an encoded `ContactInfo` in place: which fields it holds, its
//! contacts as borrowed text, its support hours, its etag. What the gate and
//! ResolveRecipients need, without decoding the message into owned strings.
use prost::encoding::{WireType, decode_key, decode_varint};

use super::day_number;
use chrono::{DateTime, Utc};

use crate::domain::{
    Field, FieldSet, GateFacts, LocalTime, PartnerVerifications, PortalUserEmails, ReadView,
    TimeZoneName, VerificationPolicy, VerificationState, Weekday, email_key_borrowed,
};

/// The encoded message is not what this release writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// One top-level or nested field: its number and, for length-delimited
/// fields, its bytes (varints carry their value in `value`).
#[derive(Debug, Clone, Copy)]
struct Item<'a> {
    tag: u32,
    bytes: &'a [u8],
    value: u64,
}

/// The fields of one encoded message, in order.
struct Items<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Items<'a> {
    type Item = Result<Item<'a>, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        Some(self.read())
    }
}

impl<'a> Items<'a> {
    fn read(&mut self) -> Result<Item<'a>, Malformed> {
        let mut buf = self.rest;
        let (tag, wire) = decode_key(&mut buf).map_err(|_| Malformed)?;
        let (bytes, value) = match wire {
            WireType::Varint => (&[][..], decode_varint(&mut buf).map_err(|_| Malformed)?),
            WireType::LengthDelimited => {
                let len = usize::try_from(decode_varint(&mut buf).map_err(|_| Malformed)?)
                    .map_err(|_| Malformed)?;
                if len > buf.len() {
                    return Err(Malformed);
                }
                let (bytes, after) = buf.split_at(len);
                buf = after;
                (bytes, 0)
            }
            // ContactInfo holds neither fixed-width nor group fields.
            _ => return Err(Malformed),
        };
        self.rest = buf;
        Ok(Item { tag, bytes, value })
    }
}

fn items(bytes: &[u8]) -> Items<'_> {
    Items { rest: bytes }
}

fn text(bytes: &[u8]) -> Result<&str, Malformed> {
    std::str::from_utf8(bytes).map_err(|_| Malformed)
}

/// Where each top-level field of an encoded `ContactInfo` lies, found once
/// when its ready form is made, so that a read goes straight to the fields
/// it needs instead of walking the message for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// By field number (1 to 11): the byte range of all its occurrences,
    /// which this release writes next to each other (a repeated field's
    /// elements in order, as prost does too).
    spans: [(u32, u32); FIELDS + 1],
    provided: FieldSet,
}

/// `ContactInfo`'s highest field number.
const FIELDS: usize = 11;

impl Layout {
    /// Nothing in it: the layout of an empty message.
    pub const EMPTY: Self = Self {
        spans: [(0, 0); FIELDS + 1],
        provided: FieldSet::EMPTY,
    };

    /// Reads every field once: the layout of a message that every later
    /// read may trust, or `Malformed` (then the row's JSON fields are used).
    pub fn of(bytes: &[u8]) -> Result<Self, Malformed> {
        let mut layout = Self::EMPTY;
        let mut last = 0usize;
        let mut it = items(bytes);
        loop {
            let start = bytes.len() - it.rest.len();
            let Some(item) = it.next() else { break };
            let item = item?;
            let number = usize::try_from(item.tag).map_err(|_| Malformed)?;
            if number == 0 || number > FIELDS {
                return Err(Malformed);
            }
            let end = bytes.len() - it.rest.len();
            let (from, to) = layout.spans[number];
            let (from, to) = (from as usize, to as usize);
            if from == to {
                // A field starts after the ones before it, once.
                if number <= last {
                    return Err(Malformed);
                }
                last = number;
                layout.spans[number] = (as_u32(start)?, as_u32(end)?);
            } else if to == start && number == last {
                layout.spans[number].1 = as_u32(end)?;
            } else {
                return Err(Malformed);
            }
            if let Some(field) = super::field_of(item.tag) {
                if field == Field::OperationalSupport {
                    (SupportView { bytes: item.bytes })
                        .windows()
                        .try_for_each(|w| w.map(drop))?;
                } else {
                    ContactView::read(item.bytes)?;
                }
                layout.provided.insert(field);
            } else if item.tag == 10 || item.tag == 11 {
                // Timestamps: varints only.
                items(item.bytes).try_for_each(|i| i.map(drop))?;
            } else {
                text(item.bytes)?;
            }
        }
        Ok(layout)
    }

    fn span(&self, number: u32) -> std::ops::Range<usize> {
        let (from, to) = self.spans[number as usize];
        from as usize..to as usize
    }
}

fn as_u32(n: usize) -> Result<u32, Malformed> {
    u32::try_from(n).map_err(|_| Malformed)
}

/// An encoded `ContactInfo` (see `wire::Ready`) with its layout.
#[derive(Debug, Clone, Copy)]
pub struct ContactInfoView<'a> {
    bytes: &'a [u8],
    layout: &'a Layout,
}

impl<'a> ContactInfoView<'a> {
    pub fn new(bytes: &'a [u8], layout: &'a Layout) -> Self {
        Self { bytes, layout }
    }

    /// The items of one top-level field, all its occurrences.
    fn field(&self, number: u32) -> Items<'a> {
        items(self.bytes.get(self.layout.span(number)).unwrap_or_default())
    }

    /// The fields that hold something (a non-empty contact list, support hours).
    pub fn provided(&self) -> FieldSet {
        self.layout.provided
    }

    /// The contacts of a contact field, in order.
    pub fn contacts(&self, field: Field) -> impl Iterator<Item = ContactView<'a>> + 'a {
        let items = if field == Field::OperationalSupport {
            items(&[])
        } else {
            self.field(super::field_number(field))
        };
        items
            .filter_map(Result::ok)
            .filter_map(|i| ContactView::read(i.bytes).ok())
    }

    /// What the gate needs, against the partner's portal users.
    /// The gate's facts; `unverified` as [`Self::unverified`] found them.
    pub fn gate_facts(&self, users: &PortalUserEmails, unverified: FieldSet) -> GateFacts {
        GateFacts {
            unverified,
            provided: self.provided(),
            alert_contacts_are_users: self
                .field(super::field_number(Field::AlertContacts))
                .filter_map(Result::ok)
                .map(|contact| ContactView::email(contact.bytes).unwrap_or_default())
                .all(|email| users.contains(email_key_borrowed(email).as_ref())),
        }
    }

    /// Which of `fields` name an address that is not verified at `now`.
    pub fn unverified(
        &self,
        fields: FieldSet,
        facts: &PartnerVerifications,
        now: DateTime<Utc>,
        policy: &VerificationPolicy,
    ) -> FieldSet {
        Field::ALL
            .into_iter()
            .filter(|f| fields.contains(*f))
            .filter(|f| {
                self.contacts(*f).any(|c| {
                    facts
                        .get(email_key_borrowed(c.email).as_ref())
                        .is_none_or(|v| v.at(now, policy).state != VerificationState::Verified)
                })
            })
            .collect()
    }

    pub fn etag(&self) -> &'a str {
        self.string(9)
    }

    fn string(&self, tag: u32) -> &'a str {
        self.field(tag)
            .filter_map(Result::ok)
            .next()
            .and_then(|i| text(i.bytes).ok())
            .unwrap_or("")
    }

    /// Support hours: `None` when not provided, else always-open or the
    /// windows (time zone, days, open and close times).
    pub fn support(&self) -> Option<SupportView<'a>> {
        self.field(super::field_number(Field::OperationalSupport))
            .filter_map(Result::ok)
            .next()
            .map(|i| SupportView { bytes: i.bytes })
    }

    /// The encoded message with only what `view` shows: the top-level fields
    /// copied as they are, in order.
    pub fn filtered(&self, view: ReadView) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len());
        for number in 1..=FIELDS as u32 {
            if super::field_of(number).is_none_or(|f| view.shows(f)) {
                out.extend_from_slice(self.bytes.get(self.layout.span(number)).unwrap_or_default());
            }
        }
        out
    }
}

/// One encoded `Contact`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContactView<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub phone_number: &'a str,
    pub language_code: &'a str,
}

impl<'a> ContactView<'a> {
    /// The email alone (the gate needs nothing else).
    fn email(bytes: &'a [u8]) -> Option<&'a str> {
        items(bytes)
            .filter_map(Result::ok)
            .find(|i| i.tag == 1)
            .and_then(|i| text(i.bytes).ok())
    }

    fn read(bytes: &'a [u8]) -> Result<Self, Malformed> {
        let mut c = Self::default();
        for item in items(bytes) {
            let item = item?;
            let s = text(item.bytes)?;
            match item.tag {
                1 => c.email = s,
                2 => c.display_name = s,
                3 => c.phone_number = s,
                4 => c.language_code = s,
                _ => {}
            }
        }
        Ok(c)
    }
}

/// An encoded `OperationalSupport`.
#[derive(Debug, Clone, Copy)]
pub struct SupportView<'a> {
    bytes: &'a [u8],
}

impl<'a> SupportView<'a> {
    pub fn always_open(self) -> bool {
        items(self.bytes)
            .filter_map(Result::ok)
            .any(|i| i.tag == 1 && i.value != 0)
    }

    /// The windows, each read into the few values `is_open_at` needs.
    pub fn windows(self) -> impl Iterator<Item = Result<WindowView, Malformed>> + 'a {
        items(self.bytes)
            .filter(|i| i.as_ref().map_or(true, |i| i.tag == 2))
            .map(|i| i.and_then(|i| WindowView::read(i.bytes)))
    }
}

/// One support window, decoded (its time zone by the embedded tz database).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowView {
    pub time_zone: TimeZoneName,
    /// Bit `n` set: `DayOfWeek` number `n` (Monday 1 .. Sunday 7).
    days: u8,
    pub open_time: LocalTime,
    pub close_time: LocalTime,
}

impl WindowView {
    fn read(bytes: &[u8]) -> Result<Self, Malformed> {
        let (mut tz, mut days, mut open, mut close) = (None, 0u8, None, None);
        for item in items(bytes) {
            let item = item?;
            match item.tag {
                1 => tz = TimeZoneName::parse_canonical(text(item.bytes)?),
                2 => {
                    for &d in item.bytes {
                        if (1..=7).contains(&d) {
                            days |= 1 << d;
                        }
                    }
                }
                3 => open = LocalTime::parse(text(item.bytes)?, false).ok(),
                4 => close = LocalTime::parse(text(item.bytes)?, true).ok(),
                _ => {}
            }
        }
        Ok(Self {
            time_zone: tz.ok_or(Malformed)?,
            days,
            open_time: open.ok_or(Malformed)?,
            close_time: close.ok_or(Malformed)?,
        })
    }

    pub fn on(&self, day: Weekday) -> bool {
        self.days & (1 << day_number(day)) != 0
    }
}
