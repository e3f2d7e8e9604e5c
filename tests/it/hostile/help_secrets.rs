//! `--help` never prints a secret. In Kubernetes, `DATABASE_URL` comes from a
//! Secret and holds the database password; clap would print an environment
//! variable's value next to its flag. Every help text of the binary, with every
//! secret variable set to a canary, names the variable and never the canary.
//! Non-secret variables (addresses, paths, sizes) keep showing their value.
use clap::CommandFactory;
use partner_contacts::config::{Cli, SECRET_ENV_VARS};

use crate::cli::{binary, run, text};

const CANARY: &str = "hunter2-canary-5d1f";

/// The binary with every secret variable set to a value holding the canary,
/// and one non-secret variable set to a value that help may show.
fn with_canaries(dir: &std::path::Path) -> std::process::Command {
    let mut cmd = binary(dir);
    // DATABASE_URL by name, whatever the list says.
    for name in SECRET_ENV_VARS.iter().copied().chain(["DATABASE_URL"]) {
        cmd.env(
            name,
            format!("postgres://contacts:{CANARY}@db.internal:5432/contacts?password={CANARY}"),
        );
    }
    cmd.env("PARTNER_CONTACTS_LISTEN", "127.0.0.1:50999");
    cmd
}

/// Every way of asking for help: the command's and each subcommand's, with
/// `--help`, `-h` and the `help` subcommand.
fn help_invocations() -> Vec<Vec<String>> {
    let subcommands: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    assert!(
        subcommands.iter().any(|s| s == "migrate") && subcommands.iter().any(|s| s == "token"),
        "{subcommands:?}"
    );
    let mut out = vec![
        vec!["--help".to_owned()],
        vec!["-h".to_owned()],
        vec!["help".to_owned()],
    ];
    for sub in subcommands {
        out.push(vec![sub.clone(), "--help".to_owned()]);
        out.push(vec![sub.clone(), "-h".to_owned()]);
        out.push(vec!["help".to_owned(), sub]);
    }
    out
}

#[test]
fn help_never_prints_a_secret_environment_value() {
    let dir = tempfile::tempdir().expect("temp dir");
    for args in help_invocations() {
        let out = run(with_canaries(dir.path()).args(&args));
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(
            !stdout.contains(CANARY) && !stderr.contains(CANARY),
            "{args:?} prints a secret:\n{stdout}{stderr}"
        );
        // Every help names the variable, without a value (`[env: NAME]`, not
        // `[env: NAME=...]`): the subcommands inherit the global --database-url;
        // the others are the server's flags, in the top-level help.
        for name in SECRET_ENV_VARS.iter().copied().chain(["DATABASE_URL"]) {
            if name != "DATABASE_URL" && args.len() != 1 {
                continue;
            }
            assert!(
                stdout.contains(&format!("[env: {name}]")),
                "{args:?} does not name {name}:\n{stdout}"
            );
        }
        // Non-secret values stay visible where the flag is (the serve flags
        // are the top-level command's).
        if args.len() == 1 {
            assert!(
                stdout.contains("[env: PARTNER_CONTACTS_LISTEN=127.0.0.1:50999]"),
                "{args:?}:\n{stdout}"
            );
        }
    }
}

#[test]
fn usage_errors_never_print_a_secret_environment_value() {
    let dir = tempfile::tempdir().expect("temp dir");
    for args in [
        &["--no-such-flag"][..],
        &["migrate", "--no-such-flag"],
        &["token"],
        &["token", "--sub", "x", "--scope", "contacts.everything"],
        &["no-such-subcommand"],
        &["--listen", "not-an-address"],
    ] {
        let out = run(with_canaries(dir.path()).args(args));
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(!out.status.success(), "{args:?} succeeded: {stdout}");
        assert!(
            !stdout.contains(CANARY) && !stderr.contains(CANARY),
            "{args:?} prints a secret:\n{stdout}{stderr}"
        );
    }
}
