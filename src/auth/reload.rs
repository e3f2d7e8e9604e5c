//! Key and certificate files re-read while serving: a changed file is checked whole and swapped in atomically, a bad one is refused and the old material kept.
//!
//! Files are polled, not watched: a Kubernetes Secret or ConfigMap volume
//! replaces its files by swapping a `..data` symlink, which inotify on the
//! file itself never reports, and cert-manager or a SPIFFE helper may write
//! in place or rename over the file. Reading a few kilobytes every few
//! seconds and comparing a digest of the contents catches all of them, and a
//! `touch` that changes nothing reloads nothing.
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};

use super::config::read_file;

/// How often the files are compared with what was loaded: a rotated key or
/// certificate is in use at most this long after its file changed.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// What was read from a set of files: their contents, or why one could not be read.
type Snapshot = Result<Vec<Vec<u8>>, String>;

/// Builds the material from the files' contents, in the order they were named.
type Build<T> = Box<dyn Fn(&[Vec<u8>]) -> Result<T, String> + Send + Sync>;

/// Material built from files (a JWKS, a TLS configuration): the current value,
/// and how to build it again from the files.
pub(crate) struct Watched<T> {
    /// Names the material in log lines, e.g. `[jwt] jwks_file`.
    what: &'static str,
    /// `(name in the config, path)` of each file the material is built from.
    files: Vec<(&'static str, PathBuf)>,
    current: ArcSwap<T>,
    /// Digest of the files as last read, built or refused: a refused file is
    /// retried only once it changes again, so it is logged once.
    seen: Mutex<[u8; 32]>,
    build: Build<T>,
}

/// What one check found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Checked {
    Unchanged,
    Reloaded,
    /// The files changed but were refused; the reason names the file.
    Kept(String),
}

impl<T: Send + Sync + 'static> Watched<T> {
    /// Reads the files and builds the first value. At start a bad file is an
    /// error (the server does not start), not a warning.
    pub(crate) fn load(
        what: &'static str,
        files: Vec<(&'static str, PathBuf)>,
        build: impl Fn(&[Vec<u8>]) -> Result<T, String> + Send + Sync + 'static,
    ) -> Result<Self, String> {
        let snapshot = read_all(&files);
        let contents = snapshot.as_ref().map_err(Clone::clone)?;
        let value = build(contents)?;
        Ok(Self {
            what,
            seen: Mutex::new(digest(&snapshot)),
            files,
            current: ArcSwap::from_pointee(value),
            build: Box::new(build),
        })
    }

    /// The material in force now: lock-free, cheap enough for every call.
    pub(crate) fn current(&self) -> arc_swap::Guard<Arc<T>> {
        self.current.load()
    }

    /// The material in force now, to keep beyond a short borrow.
    pub(crate) fn current_full(&self) -> Arc<T> {
        self.current.load_full()
    }

    /// Reads the files (blocking) and, when they changed, builds and swaps in
    /// the new material, or keeps the old one and says why.
    pub(crate) fn check(&self) -> Checked {
        let snapshot = read_all(&self.files);
        let fingerprint = digest(&snapshot);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if *seen == fingerprint {
            return Checked::Unchanged;
        }
        *seen = fingerprint;
        let built = snapshot.and_then(|contents| (self.build)(&contents));
        match built {
            Ok(value) => {
                self.current.store(Arc::new(value));
                tracing::info!(
                    material = self.what,
                    files = %self.shown(),
                    "reloaded: its files changed; new connections and calls use the new material"
                );
                Checked::Reloaded
            }
            Err(reason) => {
                tracing::warn!(
                    material = self.what,
                    files = %self.shown(),
                    error = %reason,
                    "changed files refused; keeping the material loaded before (retried when they change again)"
                );
                Checked::Kept(reason)
            }
        }
    }

    fn shown(&self) -> String {
        let paths: Vec<String> = self
            .files
            .iter()
            .map(|(_, p)| p.display().to_string())
            .collect();
        paths.join(", ")
    }
}

fn read_all(files: &[(&'static str, PathBuf)]) -> Snapshot {
    files
        .iter()
        .map(|(what, path)| read_file(what, path))
        .collect()
}

/// SHA-256 of the contents (or of the read error, so that a file that stays
/// unreadable is reported once).
fn digest(snapshot: &Snapshot) -> [u8; 32] {
    let mut hash = Sha256::new();
    match snapshot {
        Ok(contents) => {
            for file in contents {
                hash.update(b"\x01");
                hash.update((file.len() as u64).to_le_bytes());
                hash.update(file);
            }
        }
        Err(reason) => {
            hash.update(b"\x00");
            hash.update(reason.as_bytes());
        }
    }
    hash.finalize().into()
}

/// Something whose files the reload task checks.
pub(crate) trait Reload: Send + Sync {
    fn check(&self) -> Checked;
}

impl<T: Send + Sync + 'static> Reload for Watched<T> {
    fn check(&self) -> Checked {
        Watched::check(self)
    }
}

/// The task that re-reads key and certificate files; it stops when dropped.
#[derive(Debug)]
pub struct ReloadTask(tokio::task::JoinHandle<()>);

impl Drop for ReloadTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Checks every `watched` each `interval` on a blocking thread (file reads
/// and key parsing block); `None` when there is nothing to watch.
pub(crate) fn spawn(watched: Vec<Arc<dyn Reload>>, interval: Duration) -> Option<ReloadTask> {
    if watched.is_empty() || interval.is_zero() {
        return None;
    }
    let watched: Arc<[Arc<dyn Reload>]> = watched.into();
    Some(ReloadTask(tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let batch = watched.clone();
            let checked = tokio::task::spawn_blocking(move || {
                for w in batch.iter() {
                    w.check();
                }
            })
            .await;
            if let Err(e) = checked {
                // A panic in a parser must not end reloading for good.
                tracing::error!(error = %e, "checking key and certificate files failed");
            }
        }
    })))
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Arc;

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Collects what the code under test logs.
    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Logs {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Logs {
        type Writer = Logs;
        fn make_writer(&'a self) -> Logs {
            self.clone()
        }
    }

    impl Logs {
        fn take(&self) -> String {
            let mut buf = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            String::from_utf8_lossy(&std::mem::take(&mut *buf)).into_owned()
        }
    }

    /// A number file: the material is the number, refused when not one.
    fn number(path: PathBuf) -> Result<Watched<u32>, String> {
        Watched::load("test number", vec![("[test] number", path)], |files| {
            let text = std::str::from_utf8(&files[0]).map_err(|e| e.to_string())?;
            text.trim()
                .parse::<u32>()
                .map_err(|e| format!("[test] number: not a number: {e}"))
        })
    }

    #[test]
    fn changed_files_are_swapped_in_and_bad_ones_kept_out_once() {
        let _one_at_a_time = crate::telemetry::scoped_subscriber_lock();
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("n");
        std::fs::write(&path, "1").expect("write");
        let watched = number(path.clone()).expect("valid at start");
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            assert_eq!(watched.check(), Checked::Unchanged);
            // Same contents rewritten: nothing to do.
            std::fs::write(&path, "1").expect("write");
            assert_eq!(watched.check(), Checked::Unchanged);

            std::fs::write(&path, "2").expect("write");
            assert_eq!(watched.check(), Checked::Reloaded);
            assert_eq!(**watched.current(), 2);
            let info = logs.take();
            assert!(info.contains("INFO") && info.contains("reloaded"), "{info}");
            assert!(info.contains(&path.display().to_string()), "{info}");

            std::fs::write(&path, "two").expect("write");
            assert!(matches!(watched.check(), Checked::Kept(e) if e.contains("not a number")));
            assert_eq!(**watched.current(), 2, "the old value stays");
            let warning = logs.take();
            assert!(warning.contains("WARN"), "{warning}");
            assert!(warning.contains("not a number"), "{warning}");
            assert!(warning.contains(&path.display().to_string()), "{warning}");
            // Still bad, unchanged: not retried, not logged again.
            assert_eq!(watched.check(), Checked::Unchanged);
            assert_eq!(logs.take(), "");

            // Unreadable: kept, and the reason names the file.
            std::fs::remove_file(&path).expect("remove");
            assert!(matches!(watched.check(), Checked::Kept(e) if e.contains("cannot read")));
            assert_eq!(**watched.current(), 2);

            // Fixed: retried because it changed.
            std::fs::write(&path, "3").expect("write");
            assert_eq!(watched.check(), Checked::Reloaded);
            assert_eq!(**watched.current(), 3);
        });
    }

    #[test]
    fn a_bad_file_at_start_is_an_error() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("n");
        assert!(number(path.clone()).is_err_and(|e| e.contains("cannot read")));
        std::fs::write(&path, "x").expect("write");
        assert!(number(path).is_err_and(|e| e.contains("not a number")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_task_polls_until_dropped() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("n");
        std::fs::write(&path, "1").expect("write");
        let watched = Arc::new(number(path.clone()).expect("valid"));
        let task = spawn(vec![watched.clone()], Duration::from_millis(20)).expect("a task");
        std::fs::write(&path, "2").expect("write");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while **watched.current() != 2 {
            assert!(tokio::time::Instant::now() < deadline, "never reloaded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(task);
        tokio::time::sleep(Duration::from_millis(50)).await;
        std::fs::write(&path, "3").expect("write");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(**watched.current(), 2, "a dropped task reloads nothing");
        assert!(spawn(vec![watched], Duration::ZERO).is_none());
    }
}
