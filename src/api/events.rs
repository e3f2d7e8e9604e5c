//! ListEvents after admission: a partner's events from the outbox, oldest
//! first, as they were encoded when their change was saved.
use prost::Message;

use super::{ContactsApi, paging};
use crate::domain::parse_partner_parent;
use crate::error::{Error, Violations};
use crate::pb;
use crate::store::{ContactStore, StoredEvent};

const EVENTS_TOKEN: &str = "events";

pub(super) async fn list(
    api: &ContactsApi,
    req: pb::ListEventsRequest,
) -> Result<pb::ListEventsResponse, Error> {
    let mut v = Violations::default();
    let partner = parse_partner_parent(&req.parent)
        .map_err(|d| v.push("parent", d))
        .ok();
    if req.after_sequence < 0 {
        v.push("after_sequence", "must not be negative");
    }
    let size = paging::page_size(req.page_size)
        .map_err(|f| v.push(f.field, f.description))
        .ok();
    let (Some(partner), Some(size)) = v.finish((partner, size))? else {
        return Err(Error::invalid_field("parent", "is invalid"));
    };
    // The token continues this listing only: same parent, same start.
    let scope = format!("{}:{}", req.parent, req.after_sequence);
    let after = paging::start_of_page(&req.page_token, EVENTS_TOKEN, &scope, |c| {
        c.parse::<i64>().ok().filter(|n| *n >= req.after_sequence)
    })?
    .unwrap_or(req.after_sequence);
    let page = paging::fetch_page(
        size,
        EVENTS_TOKEN,
        &scope,
        |limit| api.store.list_events(&partner, after, limit),
        |e: &StoredEvent| e.sequence.to_string(),
    )
    .await?;
    let events = page
        .items
        .iter()
        .map(|e| {
            pb::Event::decode(e.event.as_slice()).map_err(|_| Error::Internal {
                detail: "a stored event did not decode".to_owned(),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(pb::ListEventsResponse {
        events,
        next_page_token: page.next_page_token,
    })
}
