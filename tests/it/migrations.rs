//! Migrations: a release may start on a database that a newer release has
//! already migrated (a rollback, an old replica restarting mid-rollout).
use crate::common::{self, Backend};
use crate::on_both_backends;
use partner_contacts::store::{self, StoreOptions};

async fn a_database_migrated_by_a_newer_release_still_opens(backend: Backend) {
    let test = common::store(backend).await;
    let future = "INSERT INTO _sqlx_migrations \
         (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'a newer release', TRUE, x'00', 0)";
    match backend {
        Backend::Postgres => {
            let future = future.replace("x'00'", "'\\x00'::bytea");
            let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&test.url)
                .await
                .expect("connect");
            sqlx::query(sqlx::AssertSqlSafe(future))
                .execute(&mut c)
                .await
                .expect("record a newer migration");
        }
        Backend::Sqlite => {
            let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect(&test.url)
                .await
                .expect("connect");
            sqlx::query(future)
                .execute(&mut c)
                .await
                .expect("record a newer migration");
        }
    }
    store::open(&test.url, &StoreOptions::default())
        .await
        .expect("an older release serves a newer schema");
}

on_both_backends!(a_database_migrated_by_a_newer_release_still_opens);
