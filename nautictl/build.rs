//! `--test diagnose_clusters` installs Nauti on ClusterBed with octopus's own test helpers
//! (octopus/tests/crosscluster/cluster.rs), which find the workspace's binaries through
//! `CARGO_BIN_EXE_octopus`. Cargo sets that only for octopus's own tests, so it is set here to
//! where the workspace's binaries of this profile are built.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // OUT_DIR is <target>/<profile>/build/nautictl-<hash>/out: the profile folder is three up.
    let Some(out_dir) = std::env::var_os("OUT_DIR") else {
        return;
    };
    if let Some(profile) = Path::new(&out_dir).ancestors().nth(3) {
        println!(
            "cargo:rustc-env=CARGO_BIN_EXE_octopus={}",
            profile.join("octopus").display()
        );
    }
}
