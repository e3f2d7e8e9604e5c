//! Which PostgreSQL the tests use, and a throwaway cluster of the tests' own
//! when the machine runs none.
//!
//! Order (once per test process, on first use):
//! 1. `PARTNER_CONTACTS_TEST_PG=throwaway`: always a throwaway cluster, even
//!    when `TEST_DATABASE_URL` is set or 127.0.0.1:5432 answers (CI uses it to
//!    prove this path on a machine whose cluster is always up).
//! 2. `TEST_DATABASE_URL`, as given.
//! 3. `postgres://postgres@127.0.0.1:5432/postgres` when that port accepts
//!    connections.
//! 4. A throwaway cluster: the server binaries are looked up (`pg_config
//!    --bindir`, then the highest `/usr/lib/postgresql/<version>/bin`, then
//!    `PATH`), `initdb` writes a cluster into a fresh temporary directory
//!    (trust auth, superuser `postgres`, fsync off) and `pg_ctl` starts it on
//!    a free port, listening on 127.0.0.1 only, its unix socket in that
//!    directory. Without the binaries the tests fail with the one command that
//!    installs them.
//!
//! initdb and postgres refuse to run as root: as root, the directory is given
//! to the `postgres` system user (else `nobody`) and every PostgreSQL command
//! runs as that user through `runuser` (or `setpriv`).
//!
//! A Rust test process runs no static destructors, and a test binary may be
//! killed. So the cluster belongs to a watchdog: a small `sh`, in a process
//! group of its own (a Ctrl-C to the tests does not reach it), that runs
//! initdb and `pg_ctl start`, says whether the server is ready, and then
//! reads a pipe whose only writer is the test process. When that process
//! ends, however it ends, the pipe closes; the watchdog then stops the
//! cluster (`pg_ctl stop -m immediate`) and removes the directory. Because
//! setup and removal run in that one script, removal never races a setup
//! that is still under way. Dropping a [`Cluster`] closes the pipe early and
//! waits for the watchdog.
//!
//! Hand-written rather than a crate: `pgtemp` calls sudo to leave root, and
//! the embedded-PostgreSQL crates download binaries at test time.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

/// Set to `throwaway` to force a throwaway cluster; `auto` (or unset) follows
/// the order in the module doc.
pub const MODE_VAR: &str = "PARTNER_CONTACTS_TEST_PG";

/// Every throwaway cluster's directory starts with this, in the temp dir.
pub const DIR_PREFIX: &str = "partner-contacts-pg-";

const SERVER_BINARIES: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// The URL of the PostgreSQL server the tests use, or why there is none.
/// Called once per process (see `common::test_database_url`): a throwaway
/// cluster started here lives until the process ends.
pub fn resolve_test_database_url() -> Result<String, String> {
    match std::env::var(MODE_VAR).as_deref() {
        Ok("throwaway") => return throwaway_url(),
        Ok("auto" | "") | Err(_) => {}
        Ok(other) => {
            return Err(format!(
                "{MODE_VAR}={other:?} is not understood: use `throwaway` or `auto`"
            ));
        }
    }
    if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
        return Ok(url);
    }
    let machine: SocketAddr = ([127, 0, 0, 1], 5432).into();
    if TcpStream::connect_timeout(&machine, Duration::from_secs(2)).is_ok() {
        return Ok(super::DEFAULT_TEST_DATABASE_URL.to_owned());
    }
    throwaway_url()
}

fn throwaway_url() -> Result<String, String> {
    let bindir = find_server_bindir(&BinSearch::system())?;
    let cluster = Cluster::start(&bindir)?;
    let url = cluster.url.clone();
    // Kept for the rest of the process: the watchdog's pipe stays open until
    // the process ends, which is when the cluster should go.
    std::mem::forget(cluster);
    Ok(url)
}

/// Where to look for PostgreSQL's server binaries, in this order.
pub struct BinSearch {
    /// `pg_config`, asked for `--bindir` (a client-only install has
    /// `pg_config` but no server binaries there: those are checked).
    pub pg_config: PathBuf,
    /// A directory of `<version>/bin` (Debian's /usr/lib/postgresql): the
    /// highest version with all binaries wins.
    pub versioned_root: PathBuf,
    /// A `PATH`-style list of directories.
    pub path: OsString,
}

impl BinSearch {
    pub fn system() -> BinSearch {
        BinSearch {
            pg_config: PathBuf::from("pg_config"),
            versioned_root: PathBuf::from("/usr/lib/postgresql"),
            path: std::env::var_os("PATH").unwrap_or_default(),
        }
    }
}

/// The directory holding initdb, pg_ctl and postgres, or a message naming the
/// command that installs them.
pub fn find_server_bindir(search: &BinSearch) -> Result<PathBuf, String> {
    if let Ok(out) = Command::new(&search.pg_config).arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_server_binaries(&dir) {
            return Ok(dir);
        }
    }
    if let Some(dir) = highest_versioned_bindir(&search.versioned_root) {
        return Ok(dir);
    }
    if let Some(dir) = std::env::split_paths(&search.path).find(|d| has_server_binaries(d)) {
        return Ok(dir);
    }
    Err(missing_binaries_message(search))
}

fn has_server_binaries(dir: &Path) -> bool {
    SERVER_BINARIES.iter().all(|b| dir.join(b).is_file())
}

fn highest_versioned_bindir(root: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(root).ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            // "9.6" < "15" < "16": compare as numbers, not as text.
            let version: Vec<u32> = e
                .file_name()
                .to_str()?
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            let bin = e.path().join("bin");
            has_server_binaries(&bin).then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

/// The message the tests fail with when no PostgreSQL is reachable and its
/// server binaries are missing.
pub fn missing_binaries_message(search: &BinSearch) -> String {
    format!(
        "The tests need PostgreSQL. Nothing listens on 127.0.0.1:5432 and TEST_DATABASE_URL \
         is not set, so they start a throwaway cluster of their own, but PostgreSQL's server \
         binaries ({}) are not in `{} --bindir`, {}/<version>/bin or PATH.\n\
         Install them with: {}\n\
         (or point TEST_DATABASE_URL at a server where the user may CREATE DATABASE)",
        SERVER_BINARIES.join(", "),
        search.pg_config.display(),
        search.versioned_root.display(),
        install_command(&os_release()),
    )
}

/// /etc/os-release's text, empty where there is none (macOS).
pub fn os_release() -> String {
    std::fs::read_to_string("/etc/os-release").unwrap_or_default()
}

/// The one command that installs PostgreSQL's server binaries on the system
/// `os_release` (the text of /etc/os-release) describes.
pub fn install_command(os_release: &str) -> &'static str {
    if cfg!(target_os = "macos") {
        return "brew install postgresql@16 && brew link --force postgresql@16";
    }
    let ids: Vec<&str> = os_release
        .lines()
        .filter_map(|l| l.strip_prefix("ID=").or_else(|| l.strip_prefix("ID_LIKE=")))
        .flat_map(|v| v.trim_matches('"').split_whitespace())
        .collect();
    let is = |id: &str| ids.contains(&id);
    if is("debian") || is("ubuntu") {
        "sudo apt-get install postgresql"
    } else if is("fedora") || is("rhel") || is("centos") {
        "sudo dnf install postgresql-server"
    } else if is("alpine") {
        "sudo apk add postgresql"
    } else if is("arch") {
        "sudo pacman -S postgresql"
    } else if is("suse") || is("opensuse") {
        "sudo zypper install postgresql-server"
    } else {
        "your system's PostgreSQL server package (Debian/Ubuntu: sudo apt-get install postgresql; \
         macOS: brew install postgresql@16)"
    }
}

/// A PostgreSQL cluster in a temporary directory, stopped and removed when
/// dropped or when the process that started it ends.
pub struct Cluster {
    pub url: String,
    pub port: u16,
    /// The temporary directory: data/, the logs and the server's socket.
    pub dir: PathBuf,
    watchdog: Child,
    /// The watchdog's stdin: closing it (drop, or this process ending) is
    /// its signal.
    lifeline: Option<ChildStdin>,
}

/// The watchdog: sets the cluster up, says `ready` or `failed` on stdout,
/// then waits for its stdin to close and removes everything. Setup runs in
/// the watchdog rather than from Rust so that removal always comes after it:
/// a test process killed during initdb or `pg_ctl start` would otherwise
/// leave a directory being written to, or a server starting, behind. It runs
/// as the caller (root may remove the directory from any temp dir); the
/// PostgreSQL commands run through the run-as prefix.
/// Arguments: run-as prefix (words without spaces, may be empty), bin dir,
/// cluster dir, port, settings for postgresql.conf, initdb's locale option
/// (may be empty).
const WATCHDOG: &str = r#"
trap '' PIPE
as=$1 bin=$2 dir=$3 data=$3/data
if $as "$bin/initdb" -D "$data" -U postgres --auth=trust --no-sync -E UTF8 ${6:+"$6"} \
        </dev/null >"$dir/setup.log" 2>&1 &&
    printf '%s' "$5" >>"$data/postgresql.conf" &&
    $as "$bin/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 -o "-p $4" start \
        </dev/null >>"$dir/setup.log" 2>&1
then echo ready
else echo failed
fi
cat >/dev/null
$as "$bin/pg_ctl" -D "$data" stop -m immediate -w </dev/null >/dev/null 2>&1
rm -rf "$dir"
"#;

impl Cluster {
    pub fn start(bindir: &Path) -> Result<Cluster, String> {
        // A free port can be taken between asking and binding: try again.
        let mut last_error = String::new();
        for _ in 0..3 {
            match Cluster::try_start(bindir, free_port()?)? {
                Ok(cluster) => return Ok(cluster),
                Err((why, bind_failed)) => {
                    last_error = why;
                    if !bind_failed {
                        break;
                    }
                }
            }
        }
        Err(last_error)
    }

    /// `Err(_)`: no attempt possible; `Ok(Err((why, the port was taken)))`:
    /// this attempt failed, its directory is gone.
    fn try_start(bindir: &Path, port: u16) -> Result<Result<Cluster, (String, bool)>, String> {
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir()
            .map_err(|e| format!("throwaway PostgreSQL: cannot create a temp dir: {e}"))?
            .keep();
        let run_as = match RunAs::for_dir(&dir) {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let socket_dir = dir.to_string_lossy().replace('\'', "''");
        let settings = format!(
            "\n# throwaway cluster of partner-contacts' tests\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{socket_dir}'\n\
             max_connections = 100\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n"
        );
        // The machine's cluster is C.UTF-8 (code point order, Unicode case
        // mapping); macOS has no such locale and keeps the environment's.
        let locale = if cfg!(target_os = "linux") {
            "--locale=C.UTF-8"
        } else {
            ""
        };
        let spawned = Command::new("/bin/sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("pg-cluster-watchdog")
            .arg(&run_as.prefix)
            .arg(bindir)
            .arg(&dir)
            .arg(port.to_string())
            .arg(settings)
            .arg(locale)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Out of the tests' process group: a Ctrl-C ends the tests, not
            // the watchdog, which then stops the server.
            .process_group(0)
            .spawn();
        let mut watchdog = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(format!(
                    "throwaway PostgreSQL: cannot start its watchdog: {e}"
                ));
            }
        };
        let lifeline = watchdog.stdin.take();
        let said = watchdog.stdout.take().map(|out| {
            let mut line = String::new();
            let _ = BufRead::read_line(&mut BufReader::new(out), &mut line);
            line
        });
        let cluster = Cluster {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            port,
            dir: dir.clone(),
            watchdog,
            lifeline,
        };
        if said.as_deref().map(str::trim) == Some("ready") {
            return Ok(Ok(cluster));
        }
        // The watchdog keeps the directory until `cluster` is dropped.
        let setup_log = std::fs::read_to_string(dir.join("setup.log")).unwrap_or_default();
        let server_log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
        drop(cluster);
        Ok(Err((
            format!(
                "throwaway PostgreSQL in {} failed to start (initdb and pg_ctl said:)\n\
                 {setup_log}\nserver log:\n{server_log}",
                dir.display()
            ),
            server_log.contains("could not bind"),
        )))
    }

    /// The postmaster's process id, from its pid file.
    pub fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        drop(self.lifeline.take());
        let _ = self.watchdog.wait();
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("throwaway PostgreSQL: no free port: {e}"))
}

/// How PostgreSQL's commands are run: directly, or (as root, which initdb
/// and postgres refuse) as an unprivileged user. Words without spaces, for
/// the watchdog's shell to split.
struct RunAs {
    prefix: String,
}

impl RunAs {
    /// For a directory this process just created: its owner is our
    /// effective user. As root, the directory goes to the unprivileged user.
    fn for_dir(dir: &Path) -> Result<RunAs, String> {
        let meta = std::fs::metadata(dir)
            .map_err(|e| format!("throwaway PostgreSQL: {}: {e}", dir.display()))?;
        if meta.uid() != 0 {
            return Ok(RunAs {
                prefix: String::new(),
            });
        }
        let (user, uid, gid) = ["postgres", "nobody"]
            .into_iter()
            .find_map(|u| Some((u, id_of(u, "-u")?, id_of(u, "-g")?)))
            .ok_or(
                "throwaway PostgreSQL: running as root, and neither a `postgres` nor a \
                 `nobody` user exists to run initdb and postgres as",
            )?;
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))
            .map_err(|e| format!("throwaway PostgreSQL: chown {}: {e}", dir.display()))?;
        let words = |p: PathBuf| {
            let p = p.to_string_lossy().into_owned();
            (!p.contains(char::is_whitespace)).then_some(p)
        };
        let prefix = if let Some(runuser) = find_on_path("runuser").and_then(words) {
            format!("{runuser} -u {user} --")
        } else if let Some(setpriv) = find_on_path("setpriv").and_then(words) {
            format!("{setpriv} --reuid={uid} --regid={gid} --clear-groups --")
        } else {
            return Err(
                "throwaway PostgreSQL: running as root, and neither runuser nor setpriv \
                 (util-linux) is there to run initdb and postgres as an unprivileged user"
                    .into(),
            );
        };
        Ok(RunAs { prefix })
    }
}

fn id_of(user: &str, flag: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, user]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}
