//! Saving a contact info on PostgreSQL: the row, its revision, its events,
//! the request's recorded response and the change notification in one
//! statement, either in a transaction that locked the row first or, for a
//! plain update, as a compare-and-set without a transaction.
use sqlx::PgConnection;

use super::{CHANNEL, Lock, PostgresStore, events, read_row, user_emails, verify};
use crate::domain::{ContactInfo, Update, now_micros, save_events};
use crate::error::Error;
use crate::store::changes::Change;
use crate::store::classify::to_error;
use crate::store::outbox::EventRows;
use crate::store::requests::{encode_response, replay};
use crate::store::rows::{encode_changed, encode_fields};
use crate::store::{RequestKey, Saved};
use crate::wire::Ready;

/// PostgreSQL's `lock_not_available`: a `NOWAIT` lock found the row held.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// The row written at the revision read.
macro_rules! update_row {
    () => {
        "UPDATE contact_info
         SET revision = $3, etag = $4, fields = $5::jsonb, update_time = $6,
             ready = $16, ready_revision = $3
         WHERE partner = $1 AND environment = $2 AND revision = $7"
    };
}

/// How the save statement writes the `contact_info` row.
#[derive(Debug, Clone, Copy)]
enum Write {
    /// A new resource; writes nothing when a concurrent create won.
    Create,
    /// The row this transaction locked (`FOR UPDATE`) at the revision read.
    Locked,
    /// The row at the revision read outside any transaction: locked here
    /// without waiting (`NOWAIT`), written only if its revision is still
    /// the one read. Writes nothing when the revision moved on; fails with
    /// `lock_not_available` when another transaction holds the row.
    Unlocked,
}

impl Write {
    fn sql(self) -> &'static str {
        match self {
            Self::Create => {
                "INSERT INTO contact_info
                     (partner, environment, revision, etag, fields, create_time, update_time,
                      ready, ready_revision)
                 VALUES ($1, $2, $3, $4, $5::jsonb, $11, $6, $16, $3)
                 ON CONFLICT (partner, environment) DO NOTHING
                 RETURNING 1"
            }
            Self::Locked => concat!(update_row!(), " RETURNING 1"),
            Self::Unlocked => concat!(
                update_row!(),
                " AND EXISTS (SELECT 1 FROM contact_info AS held
                              WHERE held.partner = $1 AND held.environment = $2
                                AND held.revision = $7
                              FOR UPDATE NOWAIT)
                 RETURNING 1"
            ),
        }
    }
}

/// What one save writes, encoded: the resource as it will be, beside the
/// one it replaces.
struct Saving<'a> {
    next: &'a ContactInfo,
    current: Option<&'a ContactInfo>,
    update: &'a Update,
    request: Option<&'a RequestKey>,
    actor: &'a str,
    fields: String,
    response: Option<String>,
    events: EventRows,
}

impl<'a> Saving<'a> {
    fn new(
        next: &'a ContactInfo,
        current: Option<&'a ContactInfo>,
        update: &'a Update,
        request: Option<&'a RequestKey>,
        actor: &'a str,
    ) -> Result<Self, Error> {
        Ok(Self {
            next,
            current,
            update,
            request,
            actor,
            fields: encode_fields(&next.fields)?,
            response: request.map(|_| encode_response(next)).transpose()?,
            events: EventRows::of(&save_events(current, next, actor)),
        })
    }
}

impl PostgresStore {
    /// One statement writes the row, its revision, its events, the
    /// request's recorded response and the change notification (sent at
    /// commit, and only then): each round trip saved is a lock held that
    /// much shorter. `Ok((written, facts))`: `written` is 0 when the row
    /// was not written (see [`Write`]), `facts` the partner's address
    /// verifications after the save.
    async fn write(
        &self,
        conn: &mut PgConnection,
        how: Write,
        saving: &Saving<'_>,
    ) -> Result<(i64, Vec<String>), sqlx::Error> {
        let Saving {
            next,
            current,
            update,
            request,
            actor,
            ref fields,
            ref response,
            ref events,
        } = *saving;
        let notice = Change::ContactInfo {
            name: next.name.clone(),
            revision: next.revision,
        };
        let sql = format!(
            "WITH written AS ({}),
             {},
             revision AS (
                 INSERT INTO contact_info_revisions
                     (partner, environment, revision, actor, request_id, changed_fields, etag,
                      fields, resource_create_time, create_time, source)
                 SELECT $1, $2, $3, $8, $9, $10, $4, $5::jsonb, $11, $6, $17 FROM written
             ),
             recorded AS (
                 UPDATE update_requests SET response = $12::jsonb
                 WHERE request_id = $15 AND EXISTS (SELECT 1 FROM written)
             )
             SELECT ({}), {}",
            how.sql(),
            events::events_ctes("written", 1, 18, 19, 20, 6),
            if self.notify {
                "SELECT count(*) FROM (SELECT pg_notify($13, $14) FROM written) AS notified"
            } else {
                "SELECT count(*) FROM written"
            },
            verify::facts_array!("$1"),
        );
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(next.name.partner.as_str())
            .bind(next.name.environment.as_str())
            .bind(next.revision)
            .bind(&next.etag)
            .bind(fields)
            .bind(next.update_time)
            .bind(current.map_or(0, |c| c.revision))
            .bind(actor)
            .bind(request.map(|k| k.id))
            .bind(encode_changed(next.changed_since(current)))
            .bind(next.create_time)
            .bind(response)
            .bind(CHANNEL)
            .bind(notice.encode())
            .bind(request.map(|k| k.slot))
            .bind(Ready::of(next).to_stored())
            .bind(update.copied_from.as_ref().map(ToString::to_string))
            .bind(&events.ids)
            .bind(&events.types)
            .bind(&events.payloads)
            .fetch_one(conn)
            .await
    }

    /// A plain update (an existing resource, no request id, nothing that
    /// depends on the partner's portal users) in two statements and no
    /// transaction: read the row, then write it in one statement that
    /// locks it without waiting and only at the revision read. A locked
    /// save takes four (BEGIN, lock, write, COMMIT): with PostgreSQL a
    /// network hop away, each is a round trip of latency added to the
    /// call. `Ok(None)`: nothing was written (no such resource, a
    /// concurrent save moved the revision on or holds the row); the
    /// caller saves in a transaction, which waits its turn.
    ///
    /// Requests with an id keep the transaction: their id is claimed
    /// before the row is locked, so that a concurrent retry waits for the
    /// first and replays it. Updates of alert contacts keep it too: they
    /// are checked against the partner's portal users, read under the
    /// row's lock.
    ///
    /// Nothing here waits for the contact info's row, so the call's
    /// deadline needs no `statement_timeout` of its own: a wait for the
    /// row is the locked path's, bounded by the deadline there.
    pub(super) async fn try_unlocked_update(
        &self,
        update: &Update,
        actor: &str,
    ) -> Result<Option<Saved>, Error> {
        // One connection for both statements: each one taken from the pool
        // costs a round trip more when given back.
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| to_error(&e, "acquire a connection"))?;
        let Some(current) = read_row(&mut *conn, &update.name, Lock::None).await? else {
            return Ok(None);
        };
        // Decided on the row as read: a concurrent save either committed
        // before that read or moves the revision on, and then nothing is
        // written below.
        let next = update.apply(Some(&current), None, now_micros())?;
        let saving = Saving::new(&next, Some(&current), update, None, actor)?;
        match self.write(&mut conn, Write::Unlocked, &saving).await {
            Ok((1, facts)) => Ok(Some(Saved {
                verifications: Some(verify::parse_facts(facts)?),
                info: next,
            })),
            Ok(_) => Ok(None),
            Err(e)
                if e.as_database_error().and_then(|d| d.code()).as_deref()
                    == Some(LOCK_NOT_AVAILABLE) =>
            {
                Ok(None)
            }
            Err(e) => Err(to_error(&e, "save contact info")),
        }
    }

    /// A save in a transaction that claims the request id, then locks the
    /// row. `Ok(None)`: lost a create race; the caller tries again.
    pub(super) async fn try_update(
        &self,
        update: &Update,
        request: Option<&RequestKey>,
        actor: &str,
    ) -> Result<Option<Saved>, Error> {
        let mut tx = self.begin().await?;

        if let Some(key) = request {
            // Claiming the id first makes a concurrent retry wait for this
            // transaction, then see its result instead of racing it.
            let claimed = sqlx::query(
                "INSERT INTO update_requests (request_id, fingerprint, create_time)
                 VALUES ($1, $2, $3) ON CONFLICT (request_id) DO NOTHING",
            )
            .bind(key.slot)
            .bind(key.fingerprint.as_slice())
            .bind(now_micros())
            .execute(&mut *tx)
            .await
            .map_err(|e| to_error(&e, "claim request id"))?
            .rows_affected()
                == 1;
            if !claimed {
                let (fingerprint, response): (Vec<u8>, Option<String>) = sqlx::query_as(
                    "SELECT fingerprint, response::text FROM update_requests WHERE request_id = $1",
                )
                .bind(key.slot)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| to_error(&e, "read request id"))?;
                return replay(key, &fingerprint, response.as_deref()).map(|info| {
                    Some(Saved {
                        info,
                        verifications: None,
                    })
                });
            }
        }

        let current = read_row(&mut *tx, &update.name, Lock::ForUpdate).await?;
        let users = match update.needs_portal_users() {
            true => Some(user_emails(&mut tx, &update.name.partner).await?),
            false => None,
        };
        let next = update.apply(current.as_ref(), users.as_ref(), now_micros())?;
        let how = match current {
            None => Write::Create,
            Some(_) => Write::Locked,
        };
        let saving = Saving::new(&next, current.as_ref(), update, request, actor)?;
        let (written, facts) = self
            .write(&mut tx, how, &saving)
            .await
            .map_err(|e| to_error(&e, "save contact info"))?;
        if written != 1 {
            // A concurrent create won the race; the row lock now orders us.
            return Ok(None);
        }
        tx.commit().await.map_err(|e| to_error(&e, "commit"))?;
        Ok(Some(Saved {
            info: next,
            verifications: Some(verify::parse_facts(facts)?),
        }))
    }
}
