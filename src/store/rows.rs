//! The rows both backends keep, decoded into domain values (and the JSON the
//! fields and portal-user revisions are stored as).
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{
    ContactFields, ContactInfo, ContactInfoName, Email, Environment, Field, FieldSet, PartnerId,
    PortalRole, PortalUser, PortalUserName, Revision,
};
use crate::error::Error;
use crate::wire::Ready;

/// The row both backends keep per contact info, decoded.
pub(crate) struct Row {
    pub partner: String,
    pub environment: String,
    pub revision: i64,
    pub etag: String,
    pub fields: String,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl Row {
    pub(crate) fn into_domain(self) -> Result<ContactInfo, Error> {
        let partner = PartnerId::parse(&self.partner)
            .map_err(|_| internal("stored partner id is invalid"))?;
        let environment = Environment::parse(&self.environment)
            .ok_or_else(|| internal("stored environment is invalid"))?;
        Ok(ContactInfo {
            name: ContactInfoName::new(partner, environment),
            fields: decode_fields(&self.fields)?,
            revision: self.revision,
            etag: self.etag,
            create_time: self.create_time,
            update_time: self.update_time,
        })
    }
}

/// A contact-info row as the read path selects it: the JSON fields only when
/// the ready form is not this revision's (an older release saved the row).
pub(crate) struct ReadyRow {
    pub row: Row,
    /// `None` when the ready form is current: the query leaves it out.
    pub fields: Option<String>,
    pub ready: Option<Vec<u8>>,
    pub ready_revision: Option<i64>,
}

impl ReadyRow {
    /// The ready form: as stored when it is this revision's and of a format
    /// this release knows, else encoded from the JSON fields. `Ok(None)`:
    /// neither (a newer release's format, and the query left the JSON out);
    /// the caller reads the row's fields and encodes them.
    pub(crate) fn into_ready(self) -> Result<Option<Ready>, Error> {
        let revision = self.row.revision;
        if self.ready_revision == Some(revision)
            && let Some(ready) = self
                .ready
                .as_deref()
                .and_then(|blob| Ready::from_stored(blob, revision))
        {
            return Ok(Some(ready));
        }
        match self.fields {
            Some(fields) => Ok(Some(Ready::of(&Row { fields, ..self.row }.into_domain()?))),
            None => Ok(None),
        }
    }
}

pub(crate) fn encode_fields(fields: &ContactFields) -> Result<String, Error> {
    serde_json::to_string(fields).map_err(|_| internal("could not encode contact fields"))
}

fn decode_fields(text: &str) -> Result<ContactFields, Error> {
    serde_json::from_str(text).map_err(|_| internal("stored contact fields do not decode"))
}

pub(crate) fn internal(detail: &str) -> Error {
    Error::Internal {
        detail: detail.to_owned(),
    }
}

/// A revision row of either backend, decoded.
pub(crate) struct RevisionRow {
    pub revision: i64,
    pub actor: String,
    pub request_id: Option<uuid::Uuid>,
    pub changed_fields: String,
    pub etag: String,
    pub fields: String,
    pub resource_create_time: DateTime<Utc>,
    pub create_time: DateTime<Utc>,
    pub source: Option<String>,
}

impl RevisionRow {
    pub(crate) fn into_domain(self, name: &ContactInfoName) -> Result<Revision, Error> {
        let changed = self
            .changed_fields
            .split_ascii_whitespace()
            .map(|f| Field::parse(f).ok_or_else(|| internal("stored changed field is unknown")))
            .collect::<Result<FieldSet, Error>>()?;
        Ok(Revision {
            info: ContactInfo {
                name: name.clone(),
                fields: decode_fields(&self.fields)?,
                revision: self.revision,
                etag: self.etag,
                create_time: self.resource_create_time,
                update_time: self.create_time,
            },
            actor: self.actor,
            request_id: self.request_id,
            changed,
            source: self.source,
        })
    }
}

pub(crate) fn encode_changed(changed: FieldSet) -> String {
    changed
        .iter()
        .map(Field::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A portal user row of either backend, decoded.
pub(crate) struct UserRow {
    pub partner: String,
    pub id: uuid::Uuid,
    pub email: String,
    pub role: String,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl UserRow {
    pub(crate) fn into_domain(self) -> Result<PortalUser, Error> {
        Ok(PortalUser {
            name: PortalUserName {
                partner: PartnerId::parse(&self.partner)
                    .map_err(|_| internal("stored partner id is invalid"))?,
                id: self.id,
            },
            email: Email::parse_stored(self.email)
                .map_err(|_| internal("stored email is invalid"))?,
            role: PortalRole::parse(&self.role)
                .ok_or_else(|| internal("stored role is invalid"))?,
            create_time: self.create_time,
            update_time: self.update_time,
        })
    }
}

/// What a portal-user revision keeps of the user.
#[derive(Serialize)]
struct RecordedUser<'a> {
    name: String,
    email: &'a str,
    role: PortalRole,
    create_time: DateTime<Utc>,
    update_time: DateTime<Utc>,
}

pub(crate) fn encode_user(user: &PortalUser) -> Result<String, Error> {
    serde_json::to_string(&RecordedUser {
        name: user.name.to_string(),
        email: user.email.as_str(),
        role: user.role,
        create_time: user.create_time,
        update_time: user.update_time,
    })
    .map_err(|_| internal("could not encode the portal user revision"))
}
