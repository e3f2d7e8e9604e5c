//! The contact-info resource, its top-level fields, and how an update applies to it.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Contact, ContactInfoName, OperationalSupport, PortalUserEmails, require_portal_users};
use crate::error::Error;

/// The top-level fields of a contact info, named as in the proto.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    AlertContacts,
    TechnicalEmergencyContacts,
    TechnicalNonEmergencyContacts,
    MerchantIssuesContacts,
    PlatformOperationalContacts,
    UserFacingOperationalContacts,
    OperationalSupport,
}

impl Field {
    /// In the order of the proto message.
    pub const ALL: [Field; 7] = [
        Self::AlertContacts,
        Self::TechnicalEmergencyContacts,
        Self::TechnicalNonEmergencyContacts,
        Self::MerchantIssuesContacts,
        Self::PlatformOperationalContacts,
        Self::UserFacingOperationalContacts,
        Self::OperationalSupport,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AlertContacts => "alert_contacts",
            Self::TechnicalEmergencyContacts => "technical_emergency_contacts",
            Self::TechnicalNonEmergencyContacts => "technical_non_emergency_contacts",
            Self::MerchantIssuesContacts => "merchant_issues_contacts",
            Self::PlatformOperationalContacts => "platform_operational_contacts",
            Self::UserFacingOperationalContacts => "user_facing_operational_contacts",
            Self::OperationalSupport => "operational_support",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of top-level fields (an update mask, a policy's required fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct FieldSet(u8);

impl FieldSet {
    pub const EMPTY: Self = Self(0);

    pub fn all() -> Self {
        Field::ALL.into_iter().collect()
    }

    pub fn contains(self, field: Field) -> bool {
        self.0 & field.bit() != 0
    }

    pub fn insert(&mut self, field: Field) {
        self.0 |= field.bit();
    }

    pub fn remove(&mut self, field: Field) {
        self.0 &= !field.bit();
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Members in proto order.
    pub fn iter(self) -> impl Iterator<Item = Field> {
        Field::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

impl FromIterator<Field> for FieldSet {
    fn from_iter<I: IntoIterator<Item = Field>>(iter: I) -> Self {
        let mut set = Self::EMPTY;
        for f in iter {
            set.insert(f);
        }
        set
    }
}

/// The editable part of a contact info. Empty lists and `None` mean "not
/// provided yet": drafts are allowed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ContactFields {
    pub alert_contacts: Vec<Contact>,
    pub technical_emergency_contacts: Vec<Contact>,
    pub technical_non_emergency_contacts: Vec<Contact>,
    pub merchant_issues_contacts: Vec<Contact>,
    pub platform_operational_contacts: Vec<Contact>,
    pub user_facing_operational_contacts: Vec<Contact>,
    pub operational_support: Option<OperationalSupport>,
}

impl ContactFields {
    /// Gives back spare vector capacity (decoding grows vectors in steps): a
    /// long-lived cached copy should cost what it holds and no more.
    pub fn shrink_to_fit(&mut self) {
        for contacts in [
            &mut self.alert_contacts,
            &mut self.technical_emergency_contacts,
            &mut self.technical_non_emergency_contacts,
            &mut self.merchant_issues_contacts,
            &mut self.platform_operational_contacts,
            &mut self.user_facing_operational_contacts,
        ] {
            contacts.shrink_to_fit();
        }
        if let Some(OperationalSupport::Windows(windows)) = &mut self.operational_support {
            windows.shrink_to_fit();
            for w in windows {
                w.shrink_to_fit();
            }
        }
    }

    /// The contacts of a contact field; `None` for `operational_support`.
    pub fn contacts(&self, field: Field) -> Option<&[Contact]> {
        match field {
            Field::AlertContacts => Some(&self.alert_contacts),
            Field::TechnicalEmergencyContacts => Some(&self.technical_emergency_contacts),
            Field::TechnicalNonEmergencyContacts => Some(&self.technical_non_emergency_contacts),
            Field::MerchantIssuesContacts => Some(&self.merchant_issues_contacts),
            Field::PlatformOperationalContacts => Some(&self.platform_operational_contacts),
            Field::UserFacingOperationalContacts => Some(&self.user_facing_operational_contacts),
            Field::OperationalSupport => None,
        }
    }

    pub fn is_provided(&self, field: Field) -> bool {
        match self.contacts(field) {
            Some(contacts) => !contacts.is_empty(),
            None => self.operational_support.is_some(),
        }
    }

    /// The fields whose value differs between `self` and `other`.
    pub fn changed_fields(&self, other: &ContactFields) -> FieldSet {
        Field::ALL
            .into_iter()
            .filter(|f| match (self.contacts(*f), other.contacts(*f)) {
                (Some(a), Some(b)) => a != b,
                _ => self.operational_support != other.operational_support,
            })
            .collect()
    }

    /// Empties `field` ("not provided yet").
    pub fn clear(&mut self, field: Field) {
        self.take_field(&Self::default(), field);
    }

    /// Copies `field` from `other`.
    fn take_field(&mut self, other: &ContactFields, field: Field) {
        match field {
            Field::AlertContacts => self.alert_contacts.clone_from(&other.alert_contacts),
            Field::TechnicalEmergencyContacts => self
                .technical_emergency_contacts
                .clone_from(&other.technical_emergency_contacts),
            Field::TechnicalNonEmergencyContacts => self
                .technical_non_emergency_contacts
                .clone_from(&other.technical_non_emergency_contacts),
            Field::MerchantIssuesContacts => self
                .merchant_issues_contacts
                .clone_from(&other.merchant_issues_contacts),
            Field::PlatformOperationalContacts => self
                .platform_operational_contacts
                .clone_from(&other.platform_operational_contacts),
            Field::UserFacingOperationalContacts => self
                .user_facing_operational_contacts
                .clone_from(&other.user_facing_operational_contacts),
            Field::OperationalSupport => self
                .operational_support
                .clone_from(&other.operational_support),
        }
    }
}

/// One immutable saved state of a contact info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// The resource as saved; `info.revision` numbers the revision and
    /// `info.update_time` is when it was saved.
    pub info: ContactInfo,
    /// Token `sub` or SPIFFE ID of whoever saved it.
    pub actor: String,
    pub request_id: Option<uuid::Uuid>,
    /// Top-level fields whose value the save changed.
    pub changed: FieldSet,
    /// The revision it was copied from (CopyContactInfo), as its resource
    /// name; `None` for an ordinary save.
    pub source: Option<String>,
}

/// A saved contact info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactInfo {
    pub name: ContactInfoName,
    pub fields: ContactFields,
    /// Counts saves, starting at 1.
    pub revision: i64,
    pub etag: String,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl ContactInfo {
    /// The fields this save changed against the resource it replaced:
    /// everything provided, for a create.
    pub fn changed_since(&self, previous: Option<&ContactInfo>) -> FieldSet {
        match previous {
            Some(p) => p.fields.changed_fields(&self.fields),
            None => ContactFields::default().changed_fields(&self.fields),
        }
    }
}

/// What the caller asked to change. Already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub name: ContactInfoName,
    pub patch: ContactFields,
    /// Never empty: an empty request mask has become `FieldSet::all()`.
    pub mask: FieldSet,
    /// The etag the caller read, if it asked for a conditional update.
    pub expected_etag: Option<String>,
    /// What the update copies (CopyContactInfo), recorded with its revision.
    pub copied_from: Option<super::RevisionName>,
}

impl Update {
    /// The fields the resource will hold once `self` is applied to `current`.
    /// Fails with `EtagMismatch` when the caller's etag is stale (or names a
    /// resource that does not exist).
    pub fn merge_onto(&self, current: Option<&ContactInfo>) -> Result<ContactFields, Error> {
        if let Some(expected) = &self.expected_etag
            && current.is_none_or(|c| &c.etag != expected)
        {
            return Err(Error::EtagMismatch);
        }
        let mut fields = current.map(|c| c.fields.clone()).unwrap_or_default();
        for field in self.mask.iter() {
            fields.take_field(&self.patch, field);
        }
        Ok(fields)
    }

    /// Whether checking this update needs the partner's portal users: it
    /// names alert contacts, which must be portal users (later revocations
    /// are the gate's business, not the save's).
    pub fn needs_portal_users(&self) -> bool {
        self.mask.contains(Field::AlertContacts)
    }

    /// The fields the resource will hold once `self` is applied to
    /// `current`, every rule of a save checked: the etag, and that the alert
    /// contacts it names are portal users. `users` are the partner's, loaded
    /// by the caller when [`Self::needs_portal_users`]. `validate_only` and
    /// the stores' saves both come through here.
    pub fn checked_fields(
        &self,
        current: Option<&ContactInfo>,
        users: Option<&PortalUserEmails>,
    ) -> Result<ContactFields, Error> {
        let fields = self.merge_onto(current)?;
        if self.needs_portal_users() && !fields.alert_contacts.is_empty() {
            let users = users.ok_or_else(|| Error::Internal {
                detail: "an update naming alert contacts was checked without the portal users"
                    .to_owned(),
            })?;
            require_portal_users(&fields, users)?;
        }
        Ok(fields)
    }

    /// Applies the update and stamps the next revision: what a store saves
    /// (checked as [`Self::checked_fields`]).
    pub fn apply(
        &self,
        current: Option<&ContactInfo>,
        users: Option<&PortalUserEmails>,
        now: DateTime<Utc>,
    ) -> Result<ContactInfo, Error> {
        let fields = self.checked_fields(current, users)?;
        let revision = current.map_or(1, |c| c.revision + 1);
        Ok(ContactInfo {
            etag: etag_for(&self.name, revision, now),
            name: self.name.clone(),
            fields,
            revision,
            create_time: current.map_or(now, |c| c.create_time),
            update_time: now,
        })
    }
}

/// An opaque etag, different for every save of every resource.
fn etag_for(name: &ContactInfoName, revision: i64, update_time: DateTime<Utc>) -> String {
    let mut h = Sha256::new();
    h.update(name.to_string().as_bytes());
    h.update(revision.to_be_bytes());
    h.update(update_time.timestamp_micros().to_be_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(2 + 16);
    out.push_str("W/");
    for b in &digest[..8] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The current time at the precision both databases keep (microseconds), so
/// that what an update returns equals what a later read returns.
pub fn now_micros() -> DateTime<Utc> {
    // From the system clock's count, cut to the microsecond before the date
    // is built (`Utc::now` then a cut would build it twice): the gate and
    // ResolveRecipients read the clock on every call.
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| {
            let secs = i64::try_from(d.as_secs()).ok()?;
            DateTime::from_timestamp(secs, d.subsec_micros() * 1_000)
        })
        .unwrap_or_else(Utc::now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::contact::contact;
    use crate::domain::{Environment, PartnerId};

    #[test]
    fn now_is_cut_to_the_microsecond() {
        let before = Utc::now();
        let now = now_micros();
        assert_eq!(now.timestamp_subsec_nanos() % 1_000, 0);
        assert!(now <= Utc::now());
        assert!(before - chrono::Duration::microseconds(1) <= now);
    }

    fn name() -> ContactInfoName {
        ContactInfoName::new(
            PartnerId::parse("acme").expect("valid"),
            Environment::Production,
        )
    }

    #[test]
    fn field_names_round_trip() {
        for f in Field::ALL {
            assert_eq!(Field::parse(f.as_str()), Some(f));
        }
        assert_eq!(Field::parse("etag"), None);
        assert_eq!(FieldSet::all().iter().count(), 7);
    }

    #[test]
    fn masked_update_keeps_other_fields_and_bumps_revision() {
        let t0 = now_micros();
        let first = Update {
            name: name(),
            patch: ContactFields {
                technical_emergency_contacts: vec![contact("pager@example.com")],
                technical_non_emergency_contacts: vec![contact("dev@example.com")],
                ..Default::default()
            },
            mask: FieldSet::all(),
            expected_etag: None,
            copied_from: None,
        }
        .apply(None, None, t0)
        .expect("create");
        assert_eq!(first.revision, 1);

        let mut mask = FieldSet::EMPTY;
        mask.insert(Field::TechnicalNonEmergencyContacts);
        let t1 = t0 + chrono::Duration::seconds(1);
        let second = Update {
            name: name(),
            patch: ContactFields::default(),
            mask,
            expected_etag: Some(first.etag.clone()),
            copied_from: None,
        }
        .apply(Some(&first), None, t1)
        .expect("update");
        assert_eq!(second.revision, 2);
        assert_ne!(second.etag, first.etag);
        assert_eq!(second.create_time, t0);
        assert_eq!(second.update_time, t1);
        assert_eq!(
            second.fields.technical_emergency_contacts,
            first.fields.technical_emergency_contacts
        );
        assert!(second.fields.technical_non_emergency_contacts.is_empty());
    }

    #[test]
    fn stale_or_dangling_etag_is_rejected() {
        let update = Update {
            name: name(),
            patch: ContactFields::default(),
            mask: FieldSet::all(),
            expected_etag: Some("W/0000".into()),
            copied_from: None,
        };
        assert_eq!(
            update.apply(None, None, now_micros()),
            Err(Error::EtagMismatch)
        );
    }
}
