//! The file store: `<dataDir>/<network>/{lock,state}`.
//!
//! Guarantees:
//! - **No address twice.** Every read-modify-write happens under an exclusive `flock` of `lock`,
//!   taken in [`FileStore::open`] and held until the store is dropped, so concurrent plugin
//!   processes serialise. The kernel drops the lock when a process dies, even by SIGKILL.
//! - **No torn state.** [`FileStore::save`] writes `state.tmp`, fsyncs it, renames it over `state`
//!   and fsyncs the folder. A process killed at any point leaves either the old or the new state;
//!   a stale `state.tmp` is ignored and overwritten by the next writer.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::StoreError;
use super::format::StoreState;

/// host-local's default, so a swapped-in plugin keeps its data where operators look for it.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// How long to wait for another process's lock before answering "try again later".
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

const LOCK_FILE: &str = "lock";
const STATE_FILE: &str = "state";
const TMP_FILE: &str = "state.tmp";

/// A network's folder, locked for the lifetime of this value.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    _lock: File,
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + use<> {
    let path = path.to_path_buf();
    move |source| StoreError::Io { op, path, source }
}

impl FileStore {
    /// Creates the network's folder if needed and takes its lock, waiting up to `timeout`.
    pub fn open(data_dir: &Path, network: &str, timeout: Duration) -> Result<Self, StoreError> {
        let dir = network_dir(data_dir, network)?;
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        Self::lock(dir, timeout)
    }

    /// Like [`FileStore::open`], but `None` (and nothing created) when the network has no folder:
    /// DEL, CHECK and GC of a network that never allocated anything.
    pub fn open_existing(
        data_dir: &Path,
        network: &str,
        timeout: Duration,
    ) -> Result<Option<Self>, StoreError> {
        let dir = network_dir(data_dir, network)?;
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => Self::lock(dir, timeout).map(Some),
            Ok(_) => Err(StoreError::Io {
                op: "open",
                path: dir,
                source: std::io::Error::new(ErrorKind::NotADirectory, "not a directory"),
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("open", &dir)(e)),
        }
    }

    fn lock(dir: PathBuf, timeout: Duration) -> Result<Self, StoreError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io("create", &path))?;
        let started = Instant::now();
        let mut pause = Duration::from_micros(200);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { dir, _lock: file }),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", &path)(e)),
            }
            if started.elapsed() >= timeout {
                return Err(StoreError::Busy {
                    path,
                    waited_ms: started.elapsed().as_millis(),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    /// The network's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the state; a missing file is an empty state.
    pub fn load(&self) -> Result<StoreState, StoreError> {
        let path = self.dir.join(STATE_FILE);
        let mut text = String::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_string(&mut text).map_err(io("read", &path))?;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(StoreState::default()),
            Err(e) => return Err(io("read", &path)(e)),
        }
        StoreState::parse(&text).map_err(|(line, reason)| StoreError::Corrupt {
            path,
            line,
            reason,
        })
    }

    /// Replaces the state atomically and durably (write, fsync, rename, fsync folder).
    pub fn save(&self, state: &StoreState) -> Result<(), StoreError> {
        let tmp = self.dir.join(TMP_FILE);
        let path = self.dir.join(STATE_FILE);
        {
            let mut f = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(&tmp)
                .map_err(io("write", &tmp))?;
            f.write_all(state.render().as_bytes())
                .map_err(io("write", &tmp))?;
            f.sync_data().map_err(io("sync", &tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io("rename", &path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io("sync", &self.dir))?;
        Ok(())
    }
}

/// `<data_dir>/<network>`, refusing names that would leave `data_dir`.
fn network_dir(data_dir: &Path, network: &str) -> Result<PathBuf, StoreError> {
    if network.is_empty() || network == "." || network == ".." || network.contains(['/', '\0']) {
        return Err(StoreError::Io {
            op: "open",
            path: data_dir.join(network),
            source: std::io::Error::new(ErrorKind::InvalidInput, "invalid network name"),
        });
    }
    Ok(data_dir.join(network))
}

#[cfg(test)]
mod tests {
    use super::super::format::Record;
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "nauti-ipam-store-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn saved_state_is_read_back() {
        let d = tmpdir("roundtrip");
        let store = FileStore::open(&d, "net1", DEFAULT_LOCK_TIMEOUT).unwrap();
        assert_eq!(store.load().unwrap(), StoreState::default());
        let mut s = StoreState::default();
        s.records.push(Record {
            ip: "10.0.0.2".parse().unwrap(),
            container_id: "c1".into(),
            ifname: "eth0".into(),
        });
        store.save(&s).unwrap();
        assert_eq!(store.load().unwrap(), s);
        assert!(!d.join("net1").join(TMP_FILE).exists());
        drop(store);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn second_opener_waits_and_then_times_out() {
        let d = tmpdir("busy");
        let _held = FileStore::open(&d, "net1", DEFAULT_LOCK_TIMEOUT).unwrap();
        let e = FileStore::open(&d, "net1", Duration::from_millis(50)).unwrap_err();
        assert!(matches!(e, StoreError::Busy { .. }), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_network_folder_is_not_created_by_open_existing() {
        let d = tmpdir("missing");
        assert!(
            FileStore::open_existing(&d, "nope", DEFAULT_LOCK_TIMEOUT)
                .unwrap()
                .is_none()
        );
        assert!(!d.join("nope").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn names_that_escape_the_data_dir_are_refused() {
        let d = tmpdir("escape");
        for bad in ["..", ".", "a/b", ""] {
            assert!(
                FileStore::open(&d, bad, DEFAULT_LOCK_TIMEOUT).is_err(),
                "{bad:?}"
            );
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn stale_tmp_file_is_ignored() {
        let d = tmpdir("stale");
        let store = FileStore::open(&d, "n", DEFAULT_LOCK_TIMEOUT).unwrap();
        std::fs::write(d.join("n").join(TMP_FILE), "garbage from a killed writer").unwrap();
        assert_eq!(store.load().unwrap(), StoreState::default());
        store.save(&StoreState::default()).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }
}
