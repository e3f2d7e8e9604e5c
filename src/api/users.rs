//! Portal-user RPCs (the onboarding modal's Users tab) after admission.
use super::{ContactsApi, paging};
use crate::domain::{
    Email, PortalRole, PortalUser, PortalUserName, Principal, parse_partner_parent,
};
use crate::error::{Error, Violations, join_checks};
use crate::pb;
use crate::store::{ContactStore, UserCursor};
use crate::wire::portal_user_pb;

const USERS_TOKEN: &str = "users";

/// A role from the wire; UNSPECIFIED and unknown numbers are violations.
fn parse_role(raw: i32, field: &str, v: &mut Violations) -> Option<PortalRole> {
    match pb::PortalRole::try_from(raw) {
        Ok(pb::PortalRole::Administrator) => Some(PortalRole::Administrator),
        Ok(pb::PortalRole::Editor) => Some(PortalRole::Editor),
        Ok(pb::PortalRole::ReadOnly) => Some(PortalRole::ReadOnly),
        Ok(pb::PortalRole::Unspecified) | Err(_) => {
            v.push(
                field,
                "must be PORTAL_ROLE_ADMINISTRATOR, PORTAL_ROLE_EDITOR or PORTAL_ROLE_READ_ONLY",
            );
            None
        }
    }
}

fn cursor_text(c: &UserCursor) -> String {
    format!("{}|{}", c.create_time.timestamp_micros(), c.id.hyphenated())
}

fn parse_cursor(text: &str) -> Option<UserCursor> {
    let (micros, id) = text.split_once('|')?;
    // Tokens are not signed: a forged one must not carry a time the
    // databases cannot compare (PostgreSQL fails with SQLSTATE 22008).
    let create_time = chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)
        .filter(|t| super::convert::in_timestamp_range(*t))?;
    Some(UserCursor {
        create_time,
        id: uuid::Uuid::try_parse(id).ok()?,
    })
}

pub(super) async fn list(
    api: &ContactsApi,
    req: pb::ListPortalUsersRequest,
) -> Result<pb::ListPortalUsersResponse, Error> {
    let (partner, size) = join_checks(
        parse_partner_parent(&req.parent).map_err(|d| Error::invalid_field("parent", d)),
        paging::page_size(req.page_size),
    )?;
    let after = paging::start_of_page(&req.page_token, USERS_TOKEN, &req.parent, parse_cursor)?;
    let page = paging::fetch_page(
        size,
        USERS_TOKEN,
        &req.parent,
        |limit| api.store.list_portal_users(&partner, after.as_ref(), limit),
        |u: &PortalUser| {
            cursor_text(&UserCursor {
                create_time: u.create_time,
                id: u.name.id,
            })
        },
    )
    .await?;
    Ok(pb::ListPortalUsersResponse {
        portal_users: page.items.iter().map(portal_user_pb).collect(),
        next_page_token: page.next_page_token,
    })
}

pub(super) async fn grant(
    api: &ContactsApi,
    principal: &Principal,
    req: pb::GrantPortalAccessRequest,
) -> Result<pb::PortalUser, Error> {
    let mut v = Violations::default();
    let partner = parse_partner_parent(&req.parent)
        .map_err(|d| v.push("parent", d))
        .ok();
    let (email, role) = match &req.portal_user {
        None => {
            v.push("portal_user", "is required");
            (None, None)
        }
        Some(u) => (
            Email::parse(&u.email)
                .map_err(|d| v.push("portal_user.email", d))
                .ok(),
            parse_role(u.role, "portal_user.role", &mut v),
        ),
    };
    let (Some(partner), Some(email), Some(role)) = v.finish((partner, email, role))? else {
        return Err(Error::invalid_field("portal_user", "is invalid"));
    };
    let user = api
        .store
        .grant_portal_access(&partner, &email, role, principal.actor())
        .await?;
    Ok(portal_user_pb(&user))
}

pub(super) async fn update_role(
    api: &ContactsApi,
    principal: &Principal,
    req: pb::UpdatePortalUserRoleRequest,
) -> Result<pb::PortalUser, Error> {
    let mut v = Violations::default();
    let name = PortalUserName::parse(&req.name)
        .map_err(|d| v.push("name", d))
        .ok();
    let role = parse_role(req.role, "role", &mut v);
    let (Some(name), Some(role)) = v.finish((name, role))? else {
        return Err(Error::invalid_field("name", "is invalid"));
    };
    let user = api
        .store
        .update_portal_user_role(&name, role, principal.actor())
        .await?;
    Ok(portal_user_pb(&user))
}

pub(super) async fn revoke(
    api: &ContactsApi,
    principal: &Principal,
    req: pb::RevokePortalAccessRequest,
) -> Result<(), Error> {
    let name = PortalUserName::parse(&req.name).map_err(|d| Error::invalid_field("name", d))?;
    api.store
        .revoke_portal_access(&name, principal.actor())
        .await
}
