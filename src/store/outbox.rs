//! The outbox's rows, shared by both backends: events encoded for their
//! change's transaction, and events as read back for ListEvents and the relay.
use crate::domain::{Event, PartnerId};
use crate::error::Error;
use crate::store::rows::internal;
use crate::wire::{encode_event, with_sequence};

/// The events of one change, column by column (PostgreSQL binds each as an
/// array and numbers them in the change's own statement).
#[derive(Debug, Default)]
pub(crate) struct EventRows {
    pub ids: Vec<uuid::Uuid>,
    pub types: Vec<&'static str>,
    pub payloads: Vec<Vec<u8>>,
}

impl EventRows {
    pub(crate) fn of(events: &[Event]) -> Self {
        Self {
            ids: events.iter().map(|e| e.id).collect(),
            types: events.iter().map(|e| e.kind.type_name()).collect(),
            payloads: events.iter().map(encode_event).collect(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The partner's count of events after these: SQL's `cardinality` as an
    /// i64 bind.
    pub(crate) fn count(&self) -> i64 {
        i64::try_from(self.len()).unwrap_or(i64::MAX)
    }
}

/// One stored event, numbered within its partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub sequence: i64,
    pub id: uuid::Uuid,
    /// `Event.type`, e.g. `contacts.changed`.
    pub event_type: String,
    /// The whole proto `Event`, `sequence` included.
    pub event: Vec<u8>,
}

impl StoredEvent {
    pub(crate) fn from_row(
        sequence: i64,
        id: uuid::Uuid,
        event_type: String,
        payload: &[u8],
    ) -> Self {
        Self {
            sequence,
            id,
            event_type,
            event: with_sequence(payload, sequence),
        }
    }
}

/// The partners a lease query returned, with how far each was published.
pub(crate) fn leased(rows: Vec<(String, i64)>) -> Result<Vec<(PartnerId, i64)>, Error> {
    rows.into_iter()
        .map(|(partner, published)| {
            let partner =
                PartnerId::parse(&partner).map_err(|_| internal("stored partner id is invalid"))?;
            Ok((partner, published))
        })
        .collect()
}
