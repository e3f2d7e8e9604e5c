//! Portal users on SQLite: each change made under the write lock, with its
//! revision and its event; the email keys an older release wrote,
//! recomputed at migration.
use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

use super::{
    SqliteStore, SqliteUserRow, USER_COLUMNS, decode_user, events, from_micros, parse_uuid,
};
use crate::domain::{
    EMAIL_KEY_SCHEME, PartnerId, PortalUser, PortalUserChange, PortalUserEmails, PortalUserName,
    RekeyReport, StoredUserKey, email_key_of_stored, now_micros, rekey, user_event,
};
use crate::error::Error;
use crate::store::classify::to_error;
use crate::store::outbox::EventRows;
use crate::store::rows::{encode_user, internal};

impl SqliteStore {
    pub(super) async fn rekey_portal_users(&self) -> Result<RekeyReport, Error> {
        let mut tx = self.begin_write().await?;
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT partner, id, email, create_time FROM portal_users
             WHERE partner IN (SELECT partner FROM portal_users WHERE email_key_scheme < 2)",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| to_error(&e, "read portal users to rekey"))?;
        if rows.is_empty() {
            return Ok(RekeyReport::default());
        }
        let users = rows
            .into_iter()
            .map(|(partner, id, email, created)| {
                Ok(StoredUserKey {
                    name: PortalUserName {
                        partner: PartnerId::parse(&partner)
                            .map_err(|_| internal("stored partner id is invalid"))?,
                        id: parse_uuid(&id)?,
                    },
                    email,
                    create_time: from_micros(created)?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let plan = rekey(users);
        // Out of the way first: a row's new key may be another row's old one.
        sqlx::query(
            "UPDATE portal_users SET email_key = 'rekey:' || id
             WHERE partner IN (SELECT partner FROM portal_users WHERE email_key_scheme < 2)",
        )
        .execute(&mut *tx)
        .await
        .map_err(|e| to_error(&e, "clear old email keys"))?;
        for r in &plan {
            sqlx::query(
                "UPDATE portal_users SET email_key = ?3, email_key_scheme = ?4, shares_mailbox_with = ?5
                 WHERE partner = ?1 AND id = ?2",
            )
            .bind(r.name.partner.as_str())
            .bind(r.name.id.hyphenated().to_string())
            .bind(&r.key)
            .bind(EMAIL_KEY_SCHEME)
            .bind(r.shares_mailbox_with.map(|u| u.hyphenated().to_string()))
            .execute(&mut *tx)
            .await
            .map_err(|e| to_error(&e, "write new email key"))?;
        }
        tx.commit().await.map_err(|e| to_error(&e, "commit"))?;
        Ok(RekeyReport::of(&plan))
    }

    /// One change to `partner`'s portal users: loads them under the write
    /// lock, lets `decide` (a domain rule, no I/O) say what changes, writes
    /// that and its revision; all in one transaction.
    pub(super) async fn mutate_users(
        &self,
        partner: &PartnerId,
        actor: &str,
        decide: impl FnOnce(&[PortalUser]) -> Result<PortalUserChange, Error>,
    ) -> Result<PortalUser, Error> {
        let mut tx = self.begin_write().await?;
        let users = partner_users(&mut tx, partner).await?;
        let change = decide(&users)?;
        let user = change.user();
        let id = user.name.id.hyphenated().to_string();
        match &change {
            PortalUserChange::Grant(u) => sqlx::query(
                "INSERT INTO portal_users
                     (partner, id, email, email_key, role, create_time, update_time, email_key_scheme)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
            )
            .bind(partner.as_str())
            .bind(id)
            .bind(u.email.as_str())
            .bind(u.email.comparison_key())
            .bind(u.role.as_str())
            .bind(u.create_time.timestamp_micros())
            .bind(EMAIL_KEY_SCHEME),
            PortalUserChange::UpdateRole(u) => sqlx::query(
                "UPDATE portal_users SET role = ?3, update_time = ?4 WHERE partner = ?1 AND id = ?2",
            )
            .bind(partner.as_str())
            .bind(id)
            .bind(u.role.as_str())
            .bind(u.update_time.timestamp_micros()),
            PortalUserChange::Revoke(_) => {
                sqlx::query("DELETE FROM portal_users WHERE partner = ?1 AND id = ?2")
                    .bind(partner.as_str())
                    .bind(id)
            }
        }
        .execute(&mut *tx)
        .await
        .map_err(|e| to_error(&e, "write portal user"))?;
        let at = match &change {
            PortalUserChange::Revoke(_) => now_micros(),
            _ => user.update_time,
        };
        record_user_revision(&mut tx, user, change.action(), actor, at).await?;
        let events = EventRows::of(&[user_event(&change, actor, at)]);
        events::write(&mut tx, partner, &events, at).await?;
        tx.commit().await.map_err(|e| to_error(&e, "commit"))?;
        Ok(change.into_user())
    }
}

pub(super) async fn user_emails(
    conn: &mut SqliteConnection,
    partner: &PartnerId,
) -> Result<PortalUserEmails, Error> {
    // Keys are computed here from the addresses, not read from `email_key`:
    // a row an older release wrote during a rollout holds an older key.
    let emails: Vec<(String,)> =
        sqlx::query_as("SELECT email FROM portal_users WHERE partner = ?1")
            .bind(partner.as_str())
            .fetch_all(conn)
            .await
            .map_err(|e| to_error(&e, "read portal users"))?;
    Ok(emails
        .into_iter()
        .map(|(e,)| email_key_of_stored(&e))
        .collect())
}

/// Every portal user of `partner`; inside a write transaction, which holds
/// SQLite's write lock, so they cannot change until it ends.
async fn partner_users(
    conn: &mut SqliteConnection,
    partner: &PartnerId,
) -> Result<Vec<PortalUser>, Error> {
    let sql = format!("{USER_COLUMNS} WHERE partner = ?1");
    let rows: Vec<SqliteUserRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(partner.as_str())
        .fetch_all(conn)
        .await
        .map_err(|e| to_error(&e, "read portal users"))?;
    rows.into_iter().map(decode_user).collect()
}

async fn record_user_revision(
    conn: &mut SqliteConnection,
    user: &PortalUser,
    action: &str,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO portal_user_revisions (partner, user_id, action, actor, resource, create_time)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(user.name.partner.as_str())
    .bind(user.name.id.hyphenated().to_string())
    .bind(action)
    .bind(actor)
    .bind(encode_user(user)?)
    .bind(at.timestamp_micros())
    .execute(conn)
    .await
    .map(|_| ())
    .map_err(|e| to_error(&e, "record portal user revision"))
}
