//! Portal users on PostgreSQL: each change made under the partner's lock,
//! with its revision and its event; the email keys an older release wrote,
//! recomputed at migration.
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::events;
use super::{PgUserRow, PostgresStore, USER_COLUMNS, user_row};
use crate::domain::{
    EMAIL_KEY_SCHEME, PartnerId, PortalUser, PortalUserChange, PortalUserEmails, PortalUserName,
    RekeyReport, StoredUserKey, email_key_of_stored, now_micros, rekey, user_event, user_exists,
};
use crate::error::Error;
use crate::store::changes::Change;
use crate::store::classify::to_error;
use crate::store::outbox::EventRows;
use crate::store::rows::{encode_user, internal};

impl PostgresStore {
    pub(super) async fn rekey_portal_users(&self) -> Result<RekeyReport, Error> {
        let mut tx = self.pool.begin().await.map_err(|e| to_error(&e, "begin"))?;
        // Replicas starting together take turns; the second finds nothing left.
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtext('partner-contacts rekey portal users'))",
        )
        .execute(&mut *tx)
        .await
        .map_err(|e| to_error(&e, "lock rekey"))?;
        let rows: Vec<(String, uuid::Uuid, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT partner, id, email, create_time FROM portal_users
             WHERE partner IN (SELECT partner FROM portal_users WHERE email_key_scheme < 2)
             FOR UPDATE",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| to_error(&e, "read portal users to rekey"))?;
        if rows.is_empty() {
            return Ok(RekeyReport::default());
        }
        let users = rows
            .into_iter()
            .map(|(partner, id, email, create_time)| {
                Ok(StoredUserKey {
                    name: PortalUserName {
                        partner: PartnerId::parse(&partner)
                            .map_err(|_| internal("stored partner id is invalid"))?,
                        id,
                    },
                    email,
                    create_time,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let plan = rekey(users);
        let partners: Vec<&str> = plan.iter().map(|r| r.name.partner.as_str()).collect();
        let ids: Vec<uuid::Uuid> = plan.iter().map(|r| r.name.id).collect();
        let keys: Vec<&str> = plan.iter().map(|r| r.key.as_str()).collect();
        let shares: Vec<Option<uuid::Uuid>> = plan.iter().map(|r| r.shares_mailbox_with).collect();
        // Out of the way first: a row's new key may be another row's old one.
        sqlx::query(
            "UPDATE portal_users u SET email_key = 'rekey:' || u.id::text
             FROM UNNEST($1::text[], $2::uuid[]) AS v(partner, id)
             WHERE u.partner = v.partner AND u.id = v.id",
        )
        .bind(&partners)
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .map_err(|e| to_error(&e, "clear old email keys"))?;
        sqlx::query(
            "UPDATE portal_users u
             SET email_key = v.key, email_key_scheme = $5, shares_mailbox_with = v.shares
             FROM UNNEST($1::text[], $2::uuid[], $3::text[], $4::uuid[]) AS v(partner, id, key, shares)
             WHERE u.partner = v.partner AND u.id = v.id",
        )
        .bind(&partners)
        .bind(&ids)
        .bind(&keys)
        .bind(&shares)
        .bind(EMAIL_KEY_SCHEME)
        .execute(&mut *tx)
        .await
        .map_err(|e| to_error(&e, "write new email keys"))?;
        tx.commit().await.map_err(|e| to_error(&e, "commit"))?;
        Ok(RekeyReport::of(&plan))
    }

    /// One change to `partner`'s portal users: locks and loads them, lets
    /// `decide` (a domain rule, no I/O) say what changes, writes that and its
    /// revision, and tells the other replicas; all in one transaction.
    pub(super) async fn mutate_users(
        &self,
        partner: &PartnerId,
        actor: &str,
        decide: impl FnOnce(&[PortalUser]) -> Result<PortalUserChange, Error>,
    ) -> Result<PortalUser, Error> {
        let mut tx = self.begin().await?;
        let users = lock_users(&mut tx, partner).await?;
        let change = decide(&users)?;
        let user = change.user();
        let written = match &change {
            PortalUserChange::Grant(u) => sqlx::query(
                "INSERT INTO portal_users
                     (partner, id, email, email_key, role, create_time, update_time, email_key_scheme)
                 VALUES ($1, $2, $3, $4, $5, $6, $6, $7) ON CONFLICT DO NOTHING",
            )
            .bind(partner.as_str())
            .bind(u.name.id)
            .bind(u.email.as_str())
            .bind(u.email.comparison_key())
            .bind(u.role.as_str())
            .bind(u.create_time)
            .bind(EMAIL_KEY_SCHEME),
            PortalUserChange::UpdateRole(u) => sqlx::query(
                "UPDATE portal_users SET role = $3, update_time = $4 WHERE partner = $1 AND id = $2",
            )
            .bind(partner.as_str())
            .bind(u.name.id)
            .bind(u.role.as_str())
            .bind(u.update_time),
            PortalUserChange::Revoke(u) => {
                sqlx::query("DELETE FROM portal_users WHERE partner = $1 AND id = $2")
                    .bind(partner.as_str())
                    .bind(u.name.id)
            }
        }
        .execute(&mut *tx)
        .await
        .map_err(|e| to_error(&e, "write portal user"))?;
        if written.rows_affected() != 1 {
            // Only an insert can miss: a concurrent grant of the same
            // mailbox committed first (the partner had no user to lock).
            return Err(user_exists(partner));
        }
        let at = match &change {
            PortalUserChange::Revoke(_) => now_micros(),
            _ => user.update_time,
        };
        record_user_revision(&mut tx, user, change.action(), actor, at).await?;
        let event = EventRows::of(&[user_event(&change, actor, at)]);
        events::write(&mut tx, partner, &event, at).await?;
        self.notify(&mut tx, &users_changed(partner)).await?;
        tx.commit().await.map_err(|e| to_error(&e, "commit"))?;
        Ok(change.into_user())
    }
}

pub(super) async fn user_emails(
    conn: &mut PgConnection,
    partner: &PartnerId,
) -> Result<PortalUserEmails, Error> {
    let emails: Vec<(String,)> =
        sqlx::query_as("SELECT email FROM portal_users WHERE partner = $1")
            .bind(partner.as_str())
            .fetch_all(conn)
            .await
            .map_err(|e| to_error(&e, "read portal users"))?;
    Ok(email_keys(emails.into_iter().map(|(e,)| e)))
}

/// Keys are computed here from the addresses, not read from `email_key`:
/// a row an older release wrote during a rollout holds an older key.
pub(super) fn email_keys(emails: impl IntoIterator<Item = String>) -> PortalUserEmails {
    emails
        .into_iter()
        .map(|e| email_key_of_stored(&e))
        .collect()
}

/// Locks every portal user of `partner` (so that concurrent changes to the
/// partner's users run one at a time) and returns them.
async fn lock_users(
    conn: &mut PgConnection,
    partner: &PartnerId,
) -> Result<Vec<PortalUser>, Error> {
    let sql = format!("{USER_COLUMNS} WHERE partner = $1 ORDER BY id FOR UPDATE");
    let rows: Vec<PgUserRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(partner.as_str())
        .fetch_all(conn)
        .await
        .map_err(|e| to_error(&e, "lock portal users"))?;
    rows.into_iter()
        .map(|r| user_row(r).into_domain())
        .collect()
}

async fn record_user_revision(
    conn: &mut PgConnection,
    user: &PortalUser,
    action: &str,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO portal_user_revisions (partner, user_id, action, actor, resource, create_time)
         VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
    )
    .bind(user.name.partner.as_str())
    .bind(user.name.id)
    .bind(action)
    .bind(actor)
    .bind(encode_user(user)?)
    .bind(at)
    .execute(conn)
    .await
    .map(|_| ())
    .map_err(|e| to_error(&e, "record portal user revision"))
}

pub(super) fn users_changed(partner: &PartnerId) -> Change {
    Change::PortalUsers {
        partner: partner.clone(),
    }
}
