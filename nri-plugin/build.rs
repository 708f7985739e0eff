//! Generates the protobuf messages and the async ttrpc client/server code for the NRI API subset in
//! `proto/api.proto` into `OUT_DIR`; `src/proto.rs` includes them.

use std::path::Path;

use ttrpc_codegen::{Codegen, Customize, ProtobufCustomize};

/// The files the generators write for `proto/api.proto`.
const GENERATED: [&str; 2] = ["api.rs", "api_ttrpc.rs"];

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=proto/api.proto");
    println!("cargo:rerun-if-changed=build.rs");
    let out_dir = std::env::var("OUT_DIR").map_err(std::io::Error::other)?;
    Codegen::new()
        .out_dir(&out_dir)
        .input("proto/api.proto")
        .include("proto")
        .rust_protobuf()
        .customize(Customize {
            async_all: true,
            ..Default::default()
        })
        .rust_protobuf_customize(ProtobufCustomize::default())
        .run()?;
    for file in GENERATED {
        strip_inner_attributes(&Path::new(&out_dir).join(file))?;
    }
    Ok(())
}

/// `include!` cannot take a file with inner attributes (`#![allow(..)]`) or inner doc comments
/// (`//!`), and the generators write both; `src/proto.rs` puts the equivalent outer attributes on
/// the modules that include these files.
fn strip_inner_attributes(path: &Path) -> std::io::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| {
            let line = line.trim_start();
            !line.starts_with("#![") && !line.starts_with("//!")
        })
        .collect();
    std::fs::write(path, kept.join("\n"))
}
