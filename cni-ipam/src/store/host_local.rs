//! Taking over from host-local in the same data directory.
//!
//! host-local keeps one file per reserved address in the network's folder: `<ip>` holding
//! `<container ID>\r\n<ifname>` (only the container ID in older releases), next to
//! `last_reserved_ip.<n>` and the same `lock` file this store locks. When nauti-ipam replaces
//! host-local on a node whose pods keep running, those reservations are imported into the state
//! under the lock, and the files are removed once the state holding them is saved, so an address
//! is never handed out twice and a DEL of an imported container frees it. A file that cannot be
//! imported (unreadable, malformed, or an address the state gives to another owner) stops the
//! operation with an error naming it; nothing is imported then.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::StoreError;
use super::format::{Record, StoreState};

/// The interface host-local's oldest format implies: it stored only the container ID.
const DEFAULT_IFNAME: &str = "eth0";

/// Adds host-local's reservations found in `dir` to `state`; returns the files to remove once
/// `state` is saved. A reservation the state already holds for the same owner is not added again.
pub fn import(dir: &Path, state: &mut StoreState) -> Result<Vec<PathBuf>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(StoreError::Io {
                op: "list",
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| StoreError::Io {
            op: "list",
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name();
        let Some(ip) = name.to_str().and_then(|n| n.parse::<IpAddr>().ok()) else {
            continue;
        };
        let path = entry.path();
        let text = fs::read_to_string(&path).map_err(|source| StoreError::Io {
            op: "read",
            path: path.clone(),
            source,
        })?;
        found.push((ip.to_canonical(), parse_owner(&path, &text)?, path));
    }
    found.sort_by_key(|(ip, ..)| *ip);
    let mut added = Vec::new();
    for (ip, (container_id, ifname), path) in &found {
        match state.records.iter().find(|r| r.ip == *ip) {
            Some(r) if r.container_id == *container_id && r.ifname == *ifname => {}
            Some(r) => {
                return Err(conflict(
                    path,
                    format!(
                        "host-local reserved {ip} for {container_id}/{ifname}, \
                         but this store gives it to {}/{}",
                        r.container_id, r.ifname
                    ),
                ));
            }
            None => added.push(Record {
                ip: *ip,
                container_id: container_id.clone(),
                ifname: ifname.clone(),
            }),
        }
    }
    state.records.extend(added);
    Ok(found.into_iter().map(|(.., path)| path).collect())
}

/// Removes imported reservation files; call only after the state holding them is saved.
pub fn remove(files: &[PathBuf]) -> Result<(), StoreError> {
    for path in files {
        match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StoreError::Io {
                    op: "remove",
                    path: path.clone(),
                    source: e,
                });
            }
            _ => {}
        }
    }
    Ok(())
}

fn parse_owner(path: &Path, text: &str) -> Result<(String, String), StoreError> {
    let mut lines = text.lines().map(str::trim);
    let id = lines.next().unwrap_or_default();
    let ifname = lines
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_IFNAME);
    let valid = |s: &str| !s.is_empty() && !s.chars().any(char::is_whitespace);
    if !valid(id) || !valid(ifname) || lines.any(|l| !l.is_empty()) {
        return Err(conflict(
            path,
            "not a host-local reservation (`<container ID>` and an optional `<ifname>` line)"
                .into(),
        ));
    }
    Ok((id.to_owned(), ifname.to_owned()))
}

fn conflict(path: &Path, reason: String) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        line: 1,
        reason: format!("cannot import: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("nauti-host-local-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn reservations_of_both_formats_are_imported_and_other_files_left_alone() {
        let d = dir("formats");
        fs::write(d.join("10.0.0.2"), "c1\r\neth0").unwrap();
        fs::write(d.join("10.0.0.3"), "c2").unwrap();
        fs::write(d.join("fd00::5"), "c3\r\nnet1").unwrap();
        fs::write(d.join("last_reserved_ip.0"), "10.0.0.3").unwrap();
        fs::write(d.join("lock"), "").unwrap();
        let mut state = StoreState::default();
        let files = import(&d, &mut state).unwrap();
        assert_eq!(files.len(), 3);
        let got: Vec<_> = state
            .records
            .iter()
            .map(|r| (r.ip.to_string(), r.container_id.as_str(), r.ifname.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("10.0.0.2".to_owned(), "c1", "eth0"),
                ("10.0.0.3".to_owned(), "c2", "eth0"),
                ("fd00::5".to_owned(), "c3", "net1")
            ]
        );
        // Importing again (a crash before the files were removed) adds nothing twice.
        import(&d, &mut state).unwrap();
        assert_eq!(state.records.len(), 3);
        remove(&files).unwrap();
        assert!(d.join("last_reserved_ip.0").exists() && !d.join("10.0.0.2").exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_conflicting_or_malformed_reservation_is_refused_by_name() {
        let d = dir("conflict");
        fs::write(d.join("10.0.0.2"), "c1\r\neth0").unwrap();
        let mut state = StoreState::default();
        state.records.push(Record {
            ip: "10.0.0.2".parse().unwrap(),
            container_id: "other".into(),
            ifname: "eth0".into(),
        });
        let e = import(&d, &mut state).unwrap_err();
        assert!(
            e.to_string().contains("10.0.0.2") && e.to_string().contains("other"),
            "{e}"
        );
        assert_eq!(state.records.len(), 1);
        fs::write(d.join("10.0.0.2"), "two words\n").unwrap();
        let e = import(&d, &mut StoreState::default()).unwrap_err();
        assert!(e.to_string().contains("10.0.0.2"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }
}
