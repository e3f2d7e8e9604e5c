//! The throwaway PostgreSQL cluster (common/pg_cluster.rs): where its
//! binaries are found, what the tests say when they are missing, and that a
//! cluster leaves nothing behind, whether dropped or when its process dies.
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{
    self,
    pg_cluster::{self, BinSearch, Cluster, DIR_PREFIX},
};

fn fake_server_binaries(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for b in ["initdb", "pg_ctl", "postgres"] {
        std::fs::write(dir.join(b), "#!/bin/sh\n").expect("write fake binary");
    }
}

fn search_in(root: &Path, path: &[&Path]) -> BinSearch {
    BinSearch {
        pg_config: root.join("no-such-pg_config"),
        versioned_root: root.join("lib/postgresql"),
        path: std::env::join_paths(path).expect("join paths"),
    }
}

#[test]
fn missing_binaries_fail_naming_the_install_command() {
    let empty = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(empty.path().join("lib/postgresql")).expect("mkdir");
    let err = pg_cluster::find_server_bindir(&search_in(empty.path(), &[empty.path()]))
        .expect_err("no binaries anywhere");
    let install = pg_cluster::install_command(&pg_cluster::os_release());
    assert!(err.contains(install), "{err}");
    assert!(err.contains("initdb, pg_ctl, postgres"), "{err}");
}

#[test]
fn the_install_command_follows_the_system() {
    if cfg!(target_os = "macos") {
        assert!(pg_cluster::install_command("").starts_with("brew install postgresql@"));
        return;
    }
    let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";
    let mint = "ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n";
    let fedora = "ID=fedora\n";
    let rocky = "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n";
    assert_eq!(
        pg_cluster::install_command(debian),
        "sudo apt-get install postgresql"
    );
    assert_eq!(
        pg_cluster::install_command(mint),
        "sudo apt-get install postgresql"
    );
    assert_eq!(
        pg_cluster::install_command(fedora),
        "sudo dnf install postgresql-server"
    );
    assert_eq!(
        pg_cluster::install_command(rocky),
        "sudo dnf install postgresql-server"
    );
    let other = pg_cluster::install_command("ID=plan9\n");
    assert!(other.contains("apt-get install postgresql"), "{other}");
}

#[test]
fn discovery_takes_the_highest_installed_version() {
    let root = tempfile::tempdir().expect("temp dir");
    let versions = root.path().join("lib/postgresql");
    for v in ["9.6", "15", "16"] {
        fake_server_binaries(&versions.join(v).join("bin"));
    }
    // A client-only version: no server binaries.
    std::fs::create_dir_all(versions.join("17/bin")).expect("mkdir");
    let found = pg_cluster::find_server_bindir(&search_in(root.path(), &[])).expect("found");
    assert_eq!(found, versions.join("16/bin"));
}

#[test]
fn discovery_skips_a_client_only_pg_config_and_falls_back_to_path() {
    let root = tempfile::tempdir().expect("temp dir");
    let client_only = root.path().join("client/bin");
    std::fs::create_dir_all(&client_only).expect("mkdir");
    let pg_config = root.path().join("pg_config");
    std::fs::write(
        &pg_config,
        format!("#!/bin/sh\necho {}\n", client_only.display()),
    )
    .expect("write pg_config");
    std::fs::set_permissions(&pg_config, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let on_path = root.path().join("on-path");
    fake_server_binaries(&on_path);
    let search = BinSearch {
        pg_config,
        ..search_in(root.path(), &[&client_only, &on_path])
    };
    assert_eq!(
        pg_cluster::find_server_bindir(&search).expect("found"),
        on_path
    );
}

fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie has ended; only its parent has not collected it yet.
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) if Path::new("/proc/self").exists() => false,
        Err(_) => Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    }
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn a_dropped_cluster_leaves_no_process_and_no_directory() {
    let bindir =
        pg_cluster::find_server_bindir(&BinSearch::system()).unwrap_or_else(|why| panic!("{why}"));
    let cluster = Cluster::start(&bindir).unwrap_or_else(|why| panic!("{why}"));
    let mut c = common::raw_pg_connection(&cluster.url)
        .await
        .expect("connect to the throwaway cluster");
    let (one,): (i32,) = sqlx::query_as("SELECT 1")
        .fetch_one(&mut c)
        .await
        .expect("query");
    assert_eq!(one, 1);
    drop(c);
    let (dir, port) = (cluster.dir.clone(), cluster.port);
    assert!(
        dir.join(format!(".s.PGSQL.{port}")).exists(),
        "its unix socket is in its own directory"
    );
    let pid = cluster.postmaster_pid().expect("postmaster.pid");
    assert!(process_alive(pid));

    drop(cluster);
    assert!(!dir.exists(), "{} is still there", dir.display());
    wait_until("the postmaster ends", Duration::from_secs(10), || {
        !process_alive(pid)
    });
}

fn throwaway_dirs(tmp: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(tmp)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(DIR_PREFIX))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// A test process that is killed (or panics, or ends) runs no destructor:
/// the watchdog still stops the cluster and removes its directory.
#[test]
fn a_killed_test_process_leaves_no_cluster_behind() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // As root the cluster belongs to an unprivileged user, who must reach it.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // This test binary again, running PostgreSQL scenarios on a throwaway
    // cluster whose directory lands in `tmp`.
    let mut child = Command::new(std::env::current_exe().expect("current exe"))
        .args(["store_scenarios::", "--test-threads", "1"])
        .env(pg_cluster::MODE_VAR, "throwaway")
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the child test process");
    let start = Instant::now();
    let (dir, pid) = loop {
        // The server is up: its pid file's status line says so (initdb's
        // bootstrap writes a pid file too, without it).
        let running = throwaway_dirs(tmp.path()).into_iter().find_map(|d| {
            let pid_file = std::fs::read_to_string(d.join("data/postmaster.pid")).ok()?;
            let mut lines = pid_file.lines();
            let pid: u32 = lines.next()?.trim().parse().ok()?;
            (lines.nth(6)?.trim() == "ready").then_some((d, pid))
        });
        if let Some(found) = running {
            break found;
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("the child ended ({status}) before its cluster was seen");
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no cluster started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(process_alive(pid));

    child.kill().expect("kill the child");
    child.wait().expect("wait for the child");

    wait_until(
        "the killed process's cluster directory goes",
        Duration::from_secs(30),
        || !dir.exists(),
    );
    wait_until(
        "the killed process's postmaster ends",
        Duration::from_secs(30),
        || !process_alive(pid),
    );
    assert_eq!(throwaway_dirs(tmp.path()), Vec::<PathBuf>::new());
}
