-- Bulk-loads :n partners into a freshly migrated partner-contacts database
-- (psql -v n=N -f bench/load.sql). Run by bench/run.
--
-- Every partner `bench-{i}` gets complete production contact information
-- (all seven fields, so the onboarding gate is open and production alerts
-- resolve to the alert contacts), encoded exactly as the service stores
-- domain::ContactFields (serde JSON: contacts with optional parts omitted,
-- support hours as {"windows": [...]} with days in lowercase and times in
-- minutes since midnight); revision 1 with an opaque etag; one revision row;
-- its alert contact as an ADMINISTRATOR portal user with the GRANT in the
-- portal-user history. Plus `bench_pgbench_rows`, the table pgbench updates
-- (its single-row update rate is the ceiling for UpdateContacts).
\set ON_ERROR_STOP on
SET synchronous_commit = off;

BEGIN;

INSERT INTO contact_info (partner, environment, revision, etag, fields, create_time, update_time)
SELECT p, 'production', 1, 'W/' || substr(md5(p || '/production/1'), 1, 16),
       jsonb_build_object(
           'alert_contacts', jsonb_build_array(jsonb_build_object(
               'email', 'oncall@' || p || '.example',
               'display_name', initcap(p) || ' on-call',
               'language_code', 'en')),
           'technical_emergency_contacts', jsonb_build_array(jsonb_build_object(
               'email', 'pager@' || p || '.example',
               'phone_number', '+16502530000')),
           'technical_non_emergency_contacts', jsonb_build_array(jsonb_build_object(
               'email', 'integrations@' || p || '.example',
               'language_code', 'en')),
           'merchant_issues_contacts', jsonb_build_array(jsonb_build_object(
               'email', 'merchants@' || p || '.example')),
           'platform_operational_contacts', jsonb_build_array(jsonb_build_object(
               'email', 'escalations@' || p || '.example',
               'phone_number', '+41446681800')),
           'user_facing_operational_contacts', jsonb_build_array(jsonb_build_object(
               'email', 'support@' || p || '.example',
               'display_name', initcap(p) || ' Support',
               'language_code', 'en')),
           'operational_support', jsonb_build_object('windows', jsonb_build_array(
               jsonb_build_object(
                   'time_zone', 'America/Los_Angeles',
                   'days', jsonb_build_array('monday', 'tuesday', 'wednesday', 'thursday', 'friday'),
                   'open_time', 480, 'close_time', 1200),
               jsonb_build_object(
                   'time_zone', 'Europe/Zurich',
                   'days', jsonb_build_array('saturday'),
                   'open_time', 1320, 'close_time', 120)))),
       t, t
FROM generate_series(1, :n) AS i
CROSS JOIN LATERAL (SELECT 'bench-' || i AS p) AS names
CROSS JOIN (SELECT now() - interval '1 day' AS t) AS loaded;

INSERT INTO contact_info_revisions
    (partner, environment, revision, actor, request_id, changed_fields, etag, fields,
     resource_create_time, create_time)
SELECT partner, environment, revision, 'bench-load', NULL,
       'alert_contacts technical_emergency_contacts technical_non_emergency_contacts '
       'merchant_issues_contacts platform_operational_contacts '
       'user_facing_operational_contacts operational_support',
       etag, fields, create_time, update_time
FROM contact_info;

-- The key as this release computes it for an ASCII address (ASCII letters
-- folded), under its scheme (2), so that `migrate` has nothing to recompute.
INSERT INTO portal_users (partner, id, email, email_key, email_key_scheme, role, create_time, update_time)
SELECT partner, gen_random_uuid(), fields #>> '{alert_contacts,0,email}',
       lower(fields #>> '{alert_contacts,0,email}'), 2, 'ADMINISTRATOR', create_time, create_time
FROM contact_info;

INSERT INTO portal_user_revisions (partner, user_id, action, actor, resource, create_time)
SELECT partner, id, 'GRANT', 'bench-load',
       jsonb_build_object(
           'name', 'partners/' || partner || '/portalUsers/' || id,
           'email', email,
           'role', role,
           'create_time', to_char(create_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'update_time', to_char(update_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')),
       create_time
FROM portal_users;

CREATE TABLE bench_pgbench_rows (
    id BIGINT PRIMARY KEY,
    v  BIGINT NOT NULL DEFAULT 0
);
INSERT INTO bench_pgbench_rows (id) SELECT generate_series(1, :n);

COMMIT;

VACUUM (ANALYZE) contact_info, contact_info_revisions, portal_users, portal_user_revisions,
    bench_pgbench_rows;

SELECT (SELECT count(*) FROM contact_info) AS contact_info,
       (SELECT count(*) FROM contact_info_revisions) AS revisions,
       (SELECT count(*) FROM portal_users) AS portal_users
\gset
\echo loaded :contact_info contact infos, :revisions revisions, :portal_users portal users
