//! Point reads that arrive together go to the database together: one query
//! for every read waiting, instead of one round trip each.
//!
//! Why: a read that misses the cache costs PostgreSQL (and the driver) far
//! more per statement than per row. `workers` queries may be in flight at
//! once; a read that finds a worker idle goes with every read that the
//! calls ready to run beside it make (one turn of the scheduler, no timer),
//! and the reads that arrive while every worker is busy leave together in
//! the next query. Under a burst of misses (the alert dispatcher's incident
//! fan-out) batches grow by themselves; in quiet times a lone read goes
//! alone, with no added wait.
//!
//! Every read is its own query's snapshot or a later one: a read is sent only
//! after it was asked for, so read-your-writes holds as for a plain query.
//!
//! Each worker owns its reader (for PostgreSQL, a connection of its own):
//! nothing to take from a pool and give back per read.
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::error::Error;

type Reply<V> = oneshot::Sender<Result<Option<V>, Error>>;
/// What a batch read found: each found key with its value.
pub(crate) type Found<K, V> = Result<Vec<(K, V)>, Error>;

/// A batch read, one per worker. `read` gets distinct keys (at most the
/// batch limit) and returns the found ones with their values; a key it
/// leaves out reads as absent. Its error reaches every read of the batch.
pub(crate) trait BatchRead: Send + 'static {
    type Key: Eq + Hash + Clone + Send + 'static;
    type Value: Clone + Send + 'static;
    fn read(
        &mut self,
        keys: Vec<Self::Key>,
    ) -> impl Future<Output = Found<Self::Key, Self::Value>> + Send;
}

/// Sends point reads, gathered, to the workers' batch reads. Dropping it (the last
/// clone of the store) ends its workers once their queries are done.
pub(crate) struct Coalescer<K, V> {
    requests: mpsc::UnboundedSender<(K, Reply<V>)>,
}

impl<K, V> std::fmt::Debug for Coalescer<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer").finish_non_exhaustive()
    }
}

impl<K, V> Coalescer<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Starts one task per reader on the current runtime; a batch is at
    /// most `max_batch` reads.
    pub(crate) fn start<R>(readers: Vec<R>, max_batch: usize) -> Self
    where
        R: BatchRead<Key = K, Value = V>,
    {
        let (requests, queue) = mpsc::unbounded_channel();
        let queue = Arc::new(Mutex::new(queue));
        for mut reader in readers {
            let queue = Arc::clone(&queue);
            tokio::spawn(async move {
                while let Some(batch) = next_batch(&queue, max_batch.max(1)).await {
                    answer(batch, &mut reader).await;
                }
            });
        }
        Self { requests }
    }

    /// The value of `key`, read in the next query with whatever else waits.
    pub(crate) async fn get(&self, key: K) -> Result<Option<V>, Error> {
        let (reply, answer) = oneshot::channel();
        self.requests.send((key, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The reads waiting now: the first to arrive (waiting for it), then every
/// other queued by the time the calls that were ready to run alongside it
/// have run, up to `max`. One worker at a time takes from the queue; the
/// others are querying.
async fn next_batch<K, V>(
    queue: &Mutex<mpsc::UnboundedReceiver<(K, Reply<V>)>>,
    max: usize,
) -> Option<Vec<(K, Reply<V>)>> {
    let mut queue = queue.lock().await;
    let first = queue.recv().await?;
    if queue.is_empty() {
        // Misses rarely come while every worker is busy: under skewed reads
        // they arrive one at a time, each to an idle worker. Letting the
        // calls already runnable run first (one turn of the scheduler: no
        // timer, no wait when nothing else is ready) lets the misses they
        // make join this one. Zipf over 1 000 000 partners: 0.20 queries per
        // call without it, 0.115 with it; a second turn gathered a little
        // more (0.09) but cost more in latency than it saved.
        tokio::task::yield_now().await;
    }
    let mut batch = Vec::with_capacity(max.min(queue.len() + 1));
    batch.push(first);
    while batch.len() < max {
        match queue.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
    Some(batch)
}

async fn answer<R: BatchRead>(batch: Vec<(R::Key, Reply<R::Value>)>, reader: &mut R) {
    // Reads given up on (their call's deadline passed) need no query.
    let batch: Vec<_> = batch.into_iter().filter(|(_, r)| !r.is_closed()).collect();
    if let [(key, _)] = batch.as_slice() {
        let result = reader.read(vec![key.clone()]).await;
        if let Some((_, reply)) = batch.into_iter().next() {
            let _ = reply.send(result.map(|found| found.into_iter().next().map(|(_, v)| v)));
        }
        return;
    }
    if batch.is_empty() {
        return;
    }
    let mut waiting: HashMap<R::Key, Vec<Reply<R::Value>>> = HashMap::with_capacity(batch.len());
    for (key, reply) in batch {
        waiting.entry(key).or_default().push(reply);
    }
    match reader.read(waiting.keys().cloned().collect()).await {
        Ok(found) => {
            for (key, value) in found {
                for reply in waiting.remove(&key).into_iter().flatten() {
                    let _ = reply.send(Ok(Some(value.clone())));
                }
            }
            for reply in waiting.into_values().flatten() {
                let _ = reply.send(Ok(None));
            }
        }
        Err(e) => {
            for reply in waiting.into_values().flatten() {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

fn stopped() -> Error {
    Error::Unavailable {
        detail: "the read queue stopped".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;
    use std::time::Duration;

    use tokio::sync::Semaphore;

    use super::*;

    /// Records the batches it got and answers key * 10 for even keys, after
    /// waiting for `gate` to open; fails every batch when `fail`.
    struct Recording {
        seen: Arc<StdMutex<Vec<Vec<u32>>>>,
        gate: Arc<Semaphore>,
        fail: bool,
    }

    impl BatchRead for Recording {
        type Key = u32;
        type Value = u32;
        async fn read(&mut self, keys: Vec<u32>) -> Result<Vec<(u32, u32)>, Error> {
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            self.seen.lock().expect("test lock").push(sorted);
            let _open = self.gate.acquire().await.map_err(|_| stopped())?;
            if self.fail {
                return Err(Error::Unavailable {
                    detail: "down".into(),
                });
            }
            Ok(keys
                .into_iter()
                .filter(|k| k % 2 == 0)
                .map(|k| (k, k * 10))
                .collect())
        }
    }

    type Batches = Arc<StdMutex<Vec<Vec<u32>>>>;

    fn coalescer(
        permits: usize,
        max_batch: usize,
        fail: bool,
    ) -> (Arc<Coalescer<u32, u32>>, Batches, Arc<Semaphore>) {
        let seen = Arc::new(StdMutex::new(Vec::new()));
        let gate = Arc::new(Semaphore::new(permits));
        let reader = Recording {
            seen: Arc::clone(&seen),
            gate: Arc::clone(&gate),
            fail,
        };
        (
            Arc::new(Coalescer::start(vec![reader], max_batch)),
            seen,
            gate,
        )
    }

    fn spawn_get(
        c: &Arc<Coalescer<u32, u32>>,
        key: u32,
    ) -> tokio::task::JoinHandle<Result<Option<u32>, Error>> {
        let c = Arc::clone(c);
        tokio::spawn(async move { c.get(key).await })
    }

    #[tokio::test]
    async fn a_lone_read_goes_at_once_and_absent_keys_read_as_none() {
        let (c, seen, _gate) = coalescer(100, 64, false);
        assert_eq!(c.get(4).await, Ok(Some(40)));
        assert_eq!(c.get(3).await, Ok(None));
        assert_eq!(*seen.lock().expect("test lock"), vec![vec![4], vec![3]]);
    }

    #[tokio::test]
    async fn reads_arriving_while_the_worker_is_busy_leave_together() {
        let (c, seen, gate) = coalescer(0, 64, false);
        let first = spawn_get(&c, 2);
        // The worker is now held in the first read.
        while seen.lock().expect("test lock").is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let rest: Vec<_> = [4, 5, 4, 6].into_iter().map(|k| spawn_get(&c, k)).collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        gate.add_permits(10);
        assert_eq!(first.await.expect("task"), Ok(Some(20)));
        let mut answers = Vec::new();
        for r in rest {
            answers.push(r.await.expect("task"));
        }
        assert_eq!(
            answers,
            vec![Ok(Some(40)), Ok(None), Ok(Some(40)), Ok(Some(60))]
        );
        // One read for the four waiting, the repeated key asked once.
        assert_eq!(
            *seen.lock().expect("test lock"),
            vec![vec![2], vec![4, 5, 6]]
        );
    }

    #[tokio::test]
    async fn reads_made_by_calls_ready_beside_a_lone_one_join_it() {
        let (c, seen, _gate) = coalescer(100, 64, false);
        // Two calls woken by the first one's send: they are ready to run
        // when the idle worker wakes for the first read, but behind it.
        let ready = Arc::new(Semaphore::new(0));
        let behind: Vec<_> = [4, 6]
            .into_iter()
            .map(|k| {
                let (c, ready) = (Arc::clone(&c), Arc::clone(&ready));
                tokio::spawn(async move {
                    let _go = ready.acquire().await.map_err(|_| stopped())?;
                    c.get(k).await
                })
            })
            .collect();
        tokio::task::yield_now().await; // both now wait for `ready`
        let first = {
            let (c, ready) = (Arc::clone(&c), Arc::clone(&ready));
            tokio::spawn(async move {
                let read = c.get(2);
                let mut read = std::pin::pin!(read);
                // Sends the read (waking the worker), then wakes the others.
                let sent = poll_once(read.as_mut()).await;
                ready.add_permits(2);
                match sent {
                    Some(done) => done,
                    None => read.await,
                }
            })
        };
        assert_eq!(first.await.expect("task"), Ok(Some(20)));
        for (k, r) in [4u32, 6].into_iter().zip(behind) {
            assert_eq!(r.await.expect("task"), Ok(Some(k * 10)));
        }
        assert_eq!(*seen.lock().expect("test lock"), vec![vec![2, 4, 6]]);
    }

    /// Polls `f` once: its output if it finished, else `None`.
    async fn poll_once<F: Future + Unpin>(mut f: F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }

    #[tokio::test]
    async fn a_batch_is_at_most_max_keys() {
        let (c, seen, gate) = coalescer(0, 2, false);
        let reads: Vec<_> = (0..5u32).map(|k| spawn_get(&c, k * 2)).collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        gate.add_permits(10);
        for (k, r) in (0u32..).zip(reads) {
            assert_eq!(r.await.expect("task"), Ok(Some(k * 20)));
        }
        let seen = seen.lock().expect("test lock");
        assert!(seen.iter().all(|b| b.len() <= 2), "{seen:?}");
        assert!(seen.iter().any(|b| b.len() == 2), "{seen:?}");
    }

    #[tokio::test]
    async fn an_error_reaches_every_read_of_its_batch() {
        let (c, _seen, gate) = coalescer(0, 64, true);
        let reads: Vec<_> = (0..4u32).map(|k| spawn_get(&c, k)).collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        gate.add_permits(10);
        for r in reads {
            assert!(matches!(
                r.await.expect("task"),
                Err(Error::Unavailable { .. })
            ));
        }
    }
}
