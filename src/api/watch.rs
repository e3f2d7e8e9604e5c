//! WatchContacts: the current state, then every saved state, per stream,
//! without letting one slow consumer hold anything up.
use std::pin::Pin;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::{ContactsApi, status::to_status};
use crate::domain::{ContactInfoName, ReadView};
use crate::error::Error;
use crate::pb;
use crate::store::Change;

/// Messages a stream may hold for a consumer that is not reading. States are
/// whole resources, so a consumer that catches up loses nothing but
/// intermediate states; one that stays behind is told to resubscribe.
pub const WATCH_BUFFER: usize = 16;

pub type WatchStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchContactsResponse, Status>> + Send + 'static>>;

pub(super) fn start(api: &ContactsApi, name: ContactInfoName, view: ReadView) -> WatchStream {
    // One slot stays free for the status that ends the stream.
    let (tx, rx) = mpsc::channel(WATCH_BUFFER + 1);
    // Subscribe before the first read, so no save falls between them.
    let mut changes = api.store.changes();
    let store = api.store.clone();
    let mut draining = api.draining.clone();
    tokio::spawn(async move {
        let mut sent_revision = 0;
        loop {
            match store.ready(&name).await {
                Ok(Some(ready)) if ready.revision() > sent_revision => {
                    if tx.capacity() <= 1 {
                        let _ = tx.try_send(Err(to_status(Error::WatchConsumerTooSlow)));
                        return;
                    }
                    sent_revision = ready.revision();
                    let Ok(info) = prost::Message::decode(ready.encoded_for(view)) else {
                        let _ = tx.try_send(Err(to_status(Error::Internal {
                            detail: "a ready form did not decode".to_owned(),
                        })));
                        return;
                    };
                    let message = pb::WatchContactsResponse {
                        contact_info: Some(info),
                    };
                    if tx.try_send(Ok(message)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.try_send(Err(to_status(e)));
                    return;
                }
            }
            // Wait for something that may have changed this resource.
            let expired = tokio::time::sleep(store.time_to_live());
            tokio::pin!(expired);
            loop {
                tokio::select! {
                    _ = draining.wait_for(|d| *d) => {
                        let _ = tx.try_send(Err(to_status(Error::ShuttingDown)));
                        return;
                    }
                    () = tx.closed() => return,
                    // Without change notifications (`--change-feed ttl`)
                    // another replica's write shows up only when the cached
                    // entry expires: look again then.
                    () = &mut expired => break,
                    change = changes.recv() => match change {
                        Ok(Change::ContactInfo { name: changed, revision })
                            if changed == name && revision > sent_revision => break,
                        Ok(Change::Resync) | Err(RecvError::Lagged(_)) => break,
                        Ok(_) => {}
                        Err(RecvError::Closed) => return,
                    },
                }
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}
