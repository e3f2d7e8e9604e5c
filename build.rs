//! Compiles the API protos with a vendored protoc and records a descriptor set
//! for reflection, the `descriptor` subcommand and tools (grpcurl, buf curl).
use std::{
    env, fs,
    path::{Path, PathBuf},
};

/// File name of the descriptor set copied next to the binary.
const STABLE_NAME: &str = "partner-contacts.binpb";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The build must not depend on a system protoc.
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { env::set_var("PROTOC", protoc) };

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor = out_dir.join("contacts_descriptor.bin");
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor)
        .compile_protos(
            &["proto/partnerportal/contacts/v1/contacts_service.proto"],
            &["proto"],
        )?;
    copy_next_to_binary(&out_dir, &descriptor)?;

    // sqlx::migrate! embeds the migrations at compile time.
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=proto");
    revision();
    Ok(())
}

/// The commit for `partner_contacts_build_info{revision}`: the
/// `PARTNER_CONTACTS_REVISION` the build was given (an image build, where
/// `.git` is not copied in), else git's HEAD when building from a checkout.
fn revision() {
    println!("cargo:rerun-if-env-changed=PARTNER_CONTACTS_REVISION");
    if env::var_os("PARTNER_CONTACTS_REVISION").is_some() {
        return;
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "HEAD"]) else {
        return;
    };
    println!("cargo:rustc-env=PARTNER_CONTACTS_REVISION={head}");
    // Again after a commit or a checkout; only files that exist, or cargo
    // would run this script on every build.
    for path in [
        git(&["rev-parse", "--git-path", "HEAD"]),
        git(&["rev-parse", "--symbolic-full-name", "HEAD"])
            .and_then(|r| git(&["rev-parse", "--git-path", &r])),
    ]
    .into_iter()
    .flatten()
    {
        if Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

/// Copies the descriptor set (every file of the API and its imports) to
/// `target/<profile>/partner-contacts.binpb` (`target/<triple>/<profile>/`
/// when cross-compiling), beside the binary, for tools that take a
/// descriptor set file. Cargo gives build scripts no such directory, so it is
/// OUT_DIR's ancestor: OUT_DIR is `<that>/build/partner-contacts-<hash>/out`.
/// Any other layout is left alone (with a `build.build-dir` of its own the
/// file lands there, not beside the binary); `partner-contacts descriptor`
/// prints the same bytes from any binary. Rewritten whenever this script
/// runs (proto/ or migrations/ changed, or a fresh target directory).
fn copy_next_to_binary(out_dir: &Path, descriptor: &Path) -> std::io::Result<()> {
    fn name(p: Option<&Path>) -> &str {
        p.and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .unwrap_or("")
    }
    let package = out_dir.parent();
    let build = package.and_then(Path::parent);
    let Some(binary_dir) = build.and_then(Path::parent) else {
        return Ok(());
    };
    if name(Some(out_dir)) != "out"
        || !name(package).starts_with("partner-contacts-")
        || name(build) != "build"
    {
        return Ok(());
    }
    // Written under another name, then renamed: a tool reading the file
    // never sees half of it.
    let partial = out_dir.join(format!("{STABLE_NAME}.partial"));
    fs::copy(descriptor, &partial)?;
    fs::rename(&partial, binary_dir.join(STABLE_NAME))
}
