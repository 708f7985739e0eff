//! Where `make peers` put the real programs.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// `$NAUTI_PEERS_DIR`, default `~/.cache/nauti-peers`.
pub fn dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NAUTI_PEERS_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/nauti-peers")
}

/// A peer binary: `$NAUTI_PEERS_DIR/bin/<name>` first, then the `PATH` (Debian's packages).
pub fn bin(name: &str) -> Result<PathBuf> {
    let built = dir().join("bin").join(name);
    if built.is_file() {
        return Ok(built);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for entry in std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]) {
        let candidate = entry.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(Error::PeerMissing {
        name: name.to_owned(),
        looked: format!("{} and PATH", dir().join("bin").display()),
    })
}

/// An OCI archive built by `make peers` (`pause`, `busybox`).
pub fn image(name: &str) -> Result<PathBuf> {
    let archive = dir().join("images").join(format!("{name}.oci.tar"));
    if archive.is_file() {
        Ok(archive)
    } else {
        Err(Error::PeerMissing {
            name: format!("image {name}"),
            looked: archive.display().to_string(),
        })
    }
}
