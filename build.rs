//! Compiles the API protos with a vendored protoc and records a descriptor set for reflection.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The build must not depend on a system protoc.
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { env::set_var("PROTOC", protoc) };

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("contacts_descriptor.bin"))
        .compile_protos(
            &["proto/partnerportal/contacts/v1/contacts_service.proto"],
            &["proto"],
        )?;

    // sqlx::migrate! embeds the migrations at compile time.
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
