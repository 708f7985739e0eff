//! The file store: `<dataDir>/<network>/{lock,state.0,state.1}`.
//!
//! Guarantees:
//! - **No address twice.** Every read-modify-write happens under an exclusive `flock` of `lock`,
//!   taken in [`FileStore::open`] and held until the store is dropped, so concurrent plugin
//!   processes serialise. The kernel drops the lock when a process dies, even by SIGKILL.
//! - **No torn state after a process crash.** The state lives in two slots, each framed with the
//!   boot ID, a sequence number, its length and a checksum. [`FileStore::save`] writes the new
//!   state into the slot that does *not* hold the current one; [`FileStore::load`] takes the
//!   valid slot of this boot with the highest sequence. A writer killed at any point leaves the
//!   current state untouched and, at worst, a torn copy in the other slot that fails its checksum.
//! - **Reservations last one boot.** Every container dies with the machine, so after a machine
//!   crash or reboot the previous boot's reservations are dropped, never trusted: slots stamped
//!   with another boot ID are ignored whatever state the crash left them in (complete, torn,
//!   zeroed, or missing), and the first save of the new boot overwrites them.
//!
//! Why no flush: the page cache survives a process crash, so the next process reads every write
//! without one; only a machine crash loses writes, and the state it would lose is then void
//! anyway. This saves one disk flush (2.5–3.5 ms on the VM disk we measured) per ADD and DEL.
//!
//! When `/proc/sys/kernel/random/boot_id` cannot be read, every slot counts as this boot's: the
//! state is kept across a reboot, which may leak addresses but never hands one out twice. A slot
//! without a boot ID (format 1, or written while it could not be read) is trusted the same way,
//! unless a slot of another boot is newer: it then predates that boot.
//!
//! Why two slots rather than write-new-then-rename: on ext4, renaming over an existing file
//! forces writeback of the new file (`auto_da_alloc`, about 1.7 ms here), while overwriting a
//! slot in place changes no metadata and costs a page-cache write.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::StoreError;
use super::format::StoreState;

/// host-local's default, so a swapped-in plugin keeps its data where operators look for it.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// How long to wait for another process's lock before answering "try again later".
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the kernel publishes a random ID chosen at each boot.
const BOOT_ID_FILE: &str = "/proc/sys/kernel/random/boot_id";

const LOCK_FILE: &str = "lock";
const SLOTS: [&str; 2] = ["state.0", "state.1"];
/// Format 1 had no version suffix and no boot ID: `nauti-ipam-slot <seq> <len> <sum>`.
const FRAME_MAGIC: &str = "nauti-ipam-slot";
const FRAME_VERSION: &str = "2";
/// Stands for "no boot ID" in a frame.
const NO_BOOT: &str = "-";

/// A network's folder, locked for the lifetime of this value.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    _lock: File,
    /// This boot's ID; `None` when unknown, and then every slot counts as this boot's.
    boot_id: Option<String>,
    /// Slot and sequence number the next save writes, as decided by the last load.
    next: (usize, u64),
    /// The slot files as opened by the last load, for save to write without opening again.
    files: [Option<File>; 2],
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + use<> {
    let path = path.to_path_buf();
    move |source| StoreError::Io { op, path, source }
}

/// This boot's ID, or `None` if the kernel does not tell (no `/proc`, unexpected content).
fn current_boot_id() -> Option<String> {
    // One read: the file is 37 bytes, and procfs hands it over whole.
    let mut buf = [0u8; 80];
    let n = File::open(BOOT_ID_FILE).ok()?.read(&mut buf).ok()?;
    let text = std::str::from_utf8(buf.get(..n)?).ok()?;
    valid_boot_id(text.trim().to_owned())
}

/// A boot ID must fit in one space-separated field of the frame line.
fn valid_boot_id(id: String) -> Option<String> {
    let ok = !id.is_empty()
        && id != NO_BOOT
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(id)
}

impl FileStore {
    /// Creates the network's folder if needed and takes its lock, waiting up to `timeout`.
    pub fn open(data_dir: &Path, network: &str, timeout: Duration) -> Result<Self, StoreError> {
        let dir = network_dir(data_dir, network)?;
        let path = dir.join(LOCK_FILE);
        // The folder exists on every call but a network's first: try the lock file first.
        let file = match open_lock(&path) {
            Ok(f) => f,
            Err(_) => {
                std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
                open_lock(&path).map_err(io("create", &path))?
            }
        };
        Self::lock(dir, path, file, timeout)
    }

    /// Like [`FileStore::open`], but `None` (and nothing created) when the network has no folder:
    /// DEL, CHECK and GC of a network that never allocated anything.
    pub fn open_existing(
        data_dir: &Path,
        network: &str,
        timeout: Duration,
    ) -> Result<Option<Self>, StoreError> {
        let dir = network_dir(data_dir, network)?;
        let path = dir.join(LOCK_FILE);
        match open_lock(&path) {
            Ok(file) => Self::lock(dir, path, file, timeout).map(Some),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotADirectory => Err(io("open", &dir)(e)),
            Err(e) => Err(io("create", &path)(e)),
        }
    }

    /// Replaces the boot ID read by `open` (tests simulate reboots with it). `None`, or an ID
    /// that does not fit a frame, means unknown: every slot then counts as this boot's.
    pub fn with_boot_id(mut self, boot_id: Option<String>) -> Self {
        self.boot_id = boot_id.and_then(valid_boot_id);
        self
    }

    /// The boot ID slots are compared with and stamped with.
    pub fn boot_id(&self) -> Option<&str> {
        self.boot_id.as_deref()
    }

    fn lock(
        dir: PathBuf,
        path: PathBuf,
        file: File,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let started = Instant::now();
        let mut pause = Duration::from_micros(200);
        loop {
            match file.try_lock() {
                Ok(()) => {
                    return Ok(Self {
                        dir,
                        _lock: file,
                        boot_id: current_boot_id(),
                        next: (0, 1),
                        files: [None, None],
                    });
                }
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

    /// Reads the state: the valid slot of this boot with the highest sequence. No slot of this
    /// boot at all (missing, empty, zeroed, or from an earlier boot) is an empty state. A torn
    /// slot of this boot while no valid one of this boot remains is corrupt, never treated as
    /// empty: a process crash cannot cause it. So is a slot that is no frame at all, and a slot
    /// of an unknown format version even beside a valid one (it may hold the newer state).
    pub fn load(&mut self) -> Result<StoreState, StoreError> {
        let mut raw: [Vec<u8>; 2] = Default::default();
        for ((buf, file), name) in raw.iter_mut().zip(&mut self.files).zip(SLOTS) {
            let path = self.dir.join(name);
            // Read-write, so that save can reuse the handle.
            *file = match OpenOptions::new().read(true).write(true).open(&path) {
                Ok(f) => Some(f),
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                Err(e) => return Err(io("read", &path)(e)),
            };
            if let Some(f) = file {
                // Through `take`, read_to_end skips std's size probe (fstat and lseek): slots
                // are small, and the reserve covers most in one read.
                buf.reserve(16 << 10);
                f.take(u64::MAX)
                    .read_to_end(buf)
                    .map_err(io("read", &path))?;
            }
        }
        let slots = [unframe(&raw[0]), unframe(&raw[1])];
        let corrupt = |slot: usize, line: usize, reason: String| StoreError::Corrupt {
            path: self.dir.join(SLOTS[slot]),
            line,
            reason,
        };
        let mut max_seq = 0;
        // The newest write made during another boot: anything older predates that boot.
        let mut other_boot_seq: Option<u64> = None;
        for (i, slot) in slots.iter().enumerate() {
            match slot {
                Slot::Unsupported(reason) => return Err(corrupt(i, 1, reason.clone())),
                Slot::Valid { boot, seq, .. } | Slot::Torn { boot, seq, .. } => {
                    max_seq = max_seq.max(*seq);
                    if let (Boot::Id(id), Some(current)) = (boot, self.boot_id.as_deref())
                        && *id != current
                    {
                        other_boot_seq = other_boot_seq.max(Some(*seq));
                    }
                }
                Slot::Absent | Slot::Debris | Slot::Invalid(_) => {}
            }
        }
        let this_boot = |boot: &Boot<'_>, seq: u64| match (boot, self.boot_id.as_deref()) {
            (Boot::Id(id), Some(current)) => *id == current,
            (Boot::Id(_), None) => true,
            (Boot::Unknown, _) => other_boot_seq.is_none_or(|other| seq > other),
        };
        let mut best: Option<(usize, u64, &str)> = None;
        let mut first_error: Option<(usize, String)> = None;
        for (i, slot) in slots.iter().enumerate() {
            match slot {
                Slot::Valid { boot, seq, body }
                    if this_boot(boot, *seq) && best.is_none_or(|(_, s, _)| *seq > s) =>
                {
                    best = Some((i, *seq, body));
                }
                Slot::Torn { boot, seq, reason } if this_boot(boot, *seq) => {
                    first_error.get_or_insert((
                        i,
                        format!("{reason}; no complete state of this boot is left"),
                    ));
                }
                Slot::Invalid(reason) => {
                    first_error.get_or_insert((i, reason.clone()));
                }
                _ => {}
            }
        }
        // Above every sequence on disk, so that no slot of an earlier boot can ever outrank
        // the state written next, even for a reader that does not know the boot ID.
        let next_seq = max_seq.saturating_add(1);
        let Some((slot, _, body)) = best else {
            return match first_error {
                Some((slot, reason)) => Err(corrupt(slot, 1, reason)),
                None => {
                    self.next = (0, next_seq);
                    Ok(StoreState::default())
                }
            };
        };
        // +1 for the frame line.
        let state =
            StoreState::parse(body).map_err(|(line, reason)| corrupt(slot, line + 1, reason))?;
        self.next = (1 - slot, next_seq);
        Ok(state)
    }

    /// Writes `state`, stamped with this boot's ID, into the slot not holding the current state.
    /// Call [`FileStore::load`] first: the slot and sequence follow from what it read.
    pub fn save(&mut self, state: &StoreState) -> Result<(), StoreError> {
        let (slot, seq) = self.next;
        let path = self.dir.join(SLOTS[slot]);
        let file = match self.files[slot].take() {
            Some(f) => f,
            None => OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io("write", &path))?,
        };
        let framed = frame(self.boot_id.as_deref(), seq, &state.render());
        file.write_all_at(framed.as_bytes(), 0)
            .map_err(io("write", &path))?;
        self.files[slot] = Some(file);
        self.next = (1 - slot, seq.saturating_add(1));
        Ok(())
    }
}

fn open_lock(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
}

/// Which boot wrote a slot, as far as its frame says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Boot<'a> {
    Id(&'a str),
    /// Format 1, or written when the boot ID was unknown: trusted as this boot's.
    Unknown,
}

/// What a slot file holds.
#[derive(Debug, PartialEq, Eq)]
enum Slot<'a> {
    /// Empty or all zero bytes: nothing was ever written, or it never reached the disk.
    Absent,
    /// Starts with a zero byte although something follows: blocks lost by a machine crash (a
    /// write always puts the frame line first), hence from an earlier boot.
    Debris,
    Valid {
        boot: Boot<'a>,
        seq: u64,
        body: &'a str,
    },
    /// The frame line is intact but the body is not what it announces.
    Torn {
        boot: Boot<'a>,
        seq: u64,
        reason: String,
    },
    /// Not a frame line at all.
    Invalid(String),
    /// A frame of a version this build does not read.
    Unsupported(String),
}

/// `nauti-ipam-slot/2 <boot ID or -> <seq> <body length> <fnv64 of body>\n<body>`; bytes after
/// the body are left-overs of a longer earlier state and are ignored.
fn frame(boot_id: Option<&str>, seq: u64, body: &str) -> String {
    format!(
        "{FRAME_MAGIC}/{FRAME_VERSION} {} {seq} {} {:016x}\n{body}",
        boot_id.unwrap_or(NO_BOOT),
        body.len(),
        checksum(body.as_bytes())
    )
}

fn unframe(raw: &[u8]) -> Slot<'_> {
    match raw.iter().position(|&b| b != 0) {
        None => return Slot::Absent,
        Some(0) => {}
        Some(_) => return Slot::Debris,
    }
    let Some(nl) = raw.iter().position(|&b| b == b'\n') else {
        return Slot::Invalid("no frame line".into());
    };
    let Ok(header) = std::str::from_utf8(&raw[..nl]) else {
        return Slot::Invalid("frame line is not text".into());
    };
    let bad = || Slot::Invalid(format!("bad frame line {header:?}"));
    let mut fields = header.split(' ');
    let magic = fields.next().unwrap_or_default();
    let boot = match magic.strip_prefix(FRAME_MAGIC) {
        // Format 1.
        Some("") => Boot::Unknown,
        Some(v) if v.strip_prefix('/') == Some(FRAME_VERSION) => match fields.next() {
            Some(NO_BOOT) => Boot::Unknown,
            Some(id) if !id.is_empty() => Boot::Id(id),
            _ => return bad(),
        },
        Some(v) if v.starts_with('/') => {
            return Slot::Unsupported(format!(
                "slot format {magic:?} is not supported (this build reads {FRAME_MAGIC} and \
                 {FRAME_MAGIC}/{FRAME_VERSION}); written by a newer nauti-ipam?"
            ));
        }
        _ => return bad(),
    };
    let (Some(seq), Some(len), Some(sum), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return bad();
    };
    let (Ok(seq), Ok(len), Ok(sum)) = (
        seq.parse::<u64>(),
        len.parse::<usize>(),
        u64::from_str_radix(sum, 16),
    ) else {
        return bad();
    };
    let torn = |reason: &str| Slot::Torn {
        boot,
        seq,
        reason: reason.to_owned(),
    };
    let Some(body) = raw.get(nl + 1..).and_then(|rest| rest.get(..len)) else {
        return torn("slot shorter than its frame line says (torn write)");
    };
    if checksum(body) != sum {
        return torn("checksum mismatch (torn write)");
    }
    match std::str::from_utf8(body) {
        Ok(body) => Slot::Valid { boot, seq, body },
        Err(_) => torn("slot body is not text"),
    }
}

/// FNV-1a 64: enough to tell a complete slot from a torn one.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
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

    const BOOT_A: &str = "4c1a7f0e-0000-4000-8000-00000000000a";
    const BOOT_B: &str = "4c1a7f0e-0000-4000-8000-00000000000b";

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

    /// The store of network `n` under `d`, as a process of boot `boot` sees it.
    fn open(d: &Path, boot: Option<&str>) -> FileStore {
        FileStore::open(d, "n", DEFAULT_LOCK_TIMEOUT)
            .unwrap()
            .with_boot_id(boot.map(str::to_owned))
    }

    fn state(records: &[(&str, &str)]) -> StoreState {
        StoreState {
            records: records
                .iter()
                .map(|(ip, cid)| Record {
                    ip: ip.parse().unwrap(),
                    container_id: (*cid).into(),
                    ifname: "eth0".into(),
                })
                .collect(),
            last_reserved: Default::default(),
        }
    }

    /// Saves each state in turn, as successive updates of one boot; slots alternate from 0.
    fn save_all(d: &Path, boot: Option<&str>, states: &[&StoreState]) {
        let mut store = open(d, boot);
        store.load().unwrap();
        for s in states {
            store.save(s).unwrap();
        }
    }

    fn slot(d: &Path, i: usize) -> PathBuf {
        d.join("n").join(SLOTS[i])
    }

    /// Cuts the end off a slot, as a writer killed mid-write leaves it.
    fn tear(d: &Path, i: usize) {
        let full = std::fs::read(slot(d, i)).unwrap();
        std::fs::write(slot(d, i), &full[..full.len() - 5]).unwrap();
    }

    fn corrupt_path(e: StoreError) -> PathBuf {
        match e {
            StoreError::Corrupt { path, .. } => path,
            other => panic!("expected Corrupt, got {other}"),
        }
    }

    #[test]
    fn saved_state_is_read_back() {
        let d = tmpdir("roundtrip");
        let mut store = open(&d, Some(BOOT_A));
        assert_eq!(store.load().unwrap(), StoreState::default());
        let mut s = state(&[("10.0.0.2", "c1")]);
        store.save(&s).unwrap();
        assert_eq!(store.load().unwrap(), s);
        s.records.clear();
        store.save(&s).unwrap();
        drop(store);
        assert_eq!(
            open(&d, Some(BOOT_A)).load().unwrap(),
            s,
            "a shorter state after a longer one reads back"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn open_reads_this_boots_id() {
        let d = tmpdir("bootid");
        let store = FileStore::open(&d, "n", DEFAULT_LOCK_TIMEOUT).unwrap();
        let from_proc = std::fs::read_to_string(BOOT_ID_FILE)
            .ok()
            .map(|s| s.trim().to_owned());
        assert_eq!(store.boot_id(), from_proc.as_deref());
        drop(store);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn boot_ids_that_do_not_fit_a_frame_count_as_unknown() {
        let d = tmpdir("badboot");
        for bad in ["", "-", "has space", "new\nline"] {
            assert_eq!(open(&d, Some(bad)).boot_id(), None, "{bad:?}");
        }
        assert_eq!(open(&d, Some(BOOT_A)).boot_id(), Some(BOOT_A));
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
    fn slots_are_stamped_with_the_boot_id() {
        let d = tmpdir("stamp");
        save_all(&d, Some(BOOT_A), &[&state(&[("10.0.0.2", "c1")])]);
        let text = std::fs::read_to_string(slot(&d, 0)).unwrap();
        assert!(
            text.starts_with(&format!("nauti-ipam-slot/2 {BOOT_A} 1 ")),
            "{text:?}"
        );
        save_all(&d, None, &[&StoreState::default()]);
        let text = std::fs::read_to_string(slot(&d, 1)).unwrap();
        assert!(text.starts_with("nauti-ipam-slot/2 - 2 "), "{text:?}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn another_boots_state_is_dropped_and_the_next_save_supersedes_it() {
        let d = tmpdir("reboot");
        let s1 = state(&[("10.0.0.2", "c1")]);
        let s2 = state(&[("10.0.0.2", "c1"), ("10.0.0.3", "c2")]);
        save_all(&d, Some(BOOT_A), &[&s1, &s2]);
        assert_eq!(open(&d, Some(BOOT_A)).load().unwrap(), s2, "same boot");
        let mut store = open(&d, Some(BOOT_B));
        assert_eq!(store.load().unwrap(), StoreState::default(), "other boot");
        let t = state(&[("10.0.0.2", "c9")]);
        store.save(&t).unwrap();
        drop(store);
        assert_eq!(open(&d, Some(BOOT_B)).load().unwrap(), t);
        // The new state outranks what the earlier boot left in the other slot, even for a
        // reader that cannot tell boots apart.
        assert_eq!(open(&d, None).load().unwrap(), t);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn another_boots_torn_slots_are_dropped() {
        let d = tmpdir("reboot-torn");
        let s1 = state(&[("10.0.0.2", "c1")]);
        let s2 = state(&[("10.0.0.2", "c1"), ("10.0.0.3", "c2")]);
        save_all(&d, Some(BOOT_A), &[&s1, &s2]);
        tear(&d, 0);
        tear(&d, 1);
        assert!(matches!(
            open(&d, Some(BOOT_A)).load(),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(
            open(&d, Some(BOOT_B)).load().unwrap(),
            StoreState::default()
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn torn_slot_of_this_boot_falls_back_to_the_previous_state() {
        let d = tmpdir("torn");
        let mut store = open(&d, Some(BOOT_A));
        store.load().unwrap();
        let s = state(&[("10.0.0.2", "c1")]);
        store.save(&s).unwrap();
        let s2 = state(&[("10.0.0.2", "c1"), ("10.0.0.3", "c2")]);
        store.save(&s2).unwrap();
        // Tear the newest slot (state.1) as a writer killed mid-write would.
        tear(&d, 1);
        assert_eq!(store.load().unwrap(), s);
        // The next save goes into the torn slot and wins again.
        store.save(&s2).unwrap();
        assert_eq!(store.load().unwrap(), s2);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn torn_slot_of_this_boot_with_no_valid_one_is_corrupt() {
        let d = tmpdir("torn-only");
        save_all(&d, Some(BOOT_A), &[&state(&[("10.0.0.2", "c1")])]);
        tear(&d, 0);
        let e = open(&d, Some(BOOT_A)).load().unwrap_err();
        assert!(e.to_string().contains("torn write"), "{e}");
        assert_eq!(corrupt_path(e), slot(&d, 0));

        // Nor does a valid state of an earlier boot stand in for it.
        let d2 = tmpdir("torn-over-reboot");
        let old = state(&[("10.0.0.2", "old")]);
        save_all(&d2, Some(BOOT_B), &[&old, &old]);
        save_all(&d2, Some(BOOT_A), &[&state(&[("10.0.0.3", "c1")])]);
        tear(&d2, 0);
        assert_eq!(
            corrupt_path(open(&d2, Some(BOOT_A)).load().unwrap_err()),
            slot(&d2, 0)
        );
        for dir in [d, d2] {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn empty_and_zeroed_slots_are_absent() {
        let d = tmpdir("zeroed");
        std::fs::create_dir_all(d.join("n")).unwrap();
        std::fs::write(slot(&d, 0), vec![0u8; 4096]).unwrap();
        std::fs::write(slot(&d, 1), b"").unwrap();
        let mut store = open(&d, Some(BOOT_A));
        assert_eq!(store.load().unwrap(), StoreState::default());
        let s = state(&[("10.0.0.2", "c1")]);
        store.save(&s).unwrap();
        drop(store);
        assert_eq!(open(&d, Some(BOOT_A)).load().unwrap(), s);
        // A first block lost by a machine crash, with later ones intact: an earlier boot's.
        let mut debris = vec![0u8; 4096];
        debris.extend_from_slice(b"ip 10.0.0.9 c9 eth0\n");
        std::fs::write(slot(&d, 1), &debris).unwrap();
        assert_eq!(open(&d, Some(BOOT_A)).load().unwrap(), s);
        std::fs::write(slot(&d, 0), &debris).unwrap();
        assert_eq!(
            open(&d, Some(BOOT_A)).load().unwrap(),
            StoreState::default()
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn unreadable_slots_are_corrupt_not_empty() {
        let d = tmpdir("corrupt");
        let mut store = open(&d, Some(BOOT_A));
        std::fs::write(slot(&d, 0), "garbage").unwrap();
        assert_eq!(corrupt_path(store.load().unwrap_err()), slot(&d, 0));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn unknown_format_versions_are_refused_by_name() {
        let d = tmpdir("version");
        let s = state(&[("10.0.0.2", "c1")]);
        save_all(&d, Some(BOOT_A), &[&s]);
        std::fs::write(
            slot(&d, 1),
            format!("nauti-ipam-slot/3 {BOOT_A} 9 0 cbf29ce484222325\n"),
        )
        .unwrap();
        // Even with a valid slot beside it: the newer format may hold the newer state.
        let e = open(&d, Some(BOOT_A)).load().unwrap_err();
        assert!(e.to_string().contains("nauti-ipam-slot/3"), "{e}");
        assert!(e.to_string().contains("not supported"), "{e}");
        assert_eq!(corrupt_path(e), slot(&d, 1));
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// `nauti-ipam-slot <seq> <len> <sum>`, as the first format wrote it.
    fn frame_v1(seq: u64, body: &str) -> String {
        format!(
            "nauti-ipam-slot {seq} {} {:016x}\n{body}",
            body.len(),
            checksum(body.as_bytes())
        )
    }

    #[test]
    fn format_1_slots_are_trusted_until_a_later_boot_supersedes_them() {
        let d = tmpdir("v1");
        std::fs::create_dir_all(d.join("n")).unwrap();
        let old = state(&[("10.0.0.2", "c1")]);
        std::fs::write(slot(&d, 0), frame_v1(5, &old.render())).unwrap();
        // Written before the upgrade, perhaps in this boot: its containers may still run.
        let mut store = open(&d, Some(BOOT_A));
        assert_eq!(store.load().unwrap(), old);
        let new = state(&[("10.0.0.2", "c1"), ("10.0.0.3", "c2")]);
        store.save(&new).unwrap();
        drop(store);
        let text = std::fs::read_to_string(slot(&d, 1)).unwrap();
        assert!(
            text.starts_with(&format!("nauti-ipam-slot/2 {BOOT_A} 6 ")),
            "{text:?}"
        );
        assert_eq!(open(&d, Some(BOOT_A)).load().unwrap(), new);
        // After a reboot, the format 1 slot is older than boot A's state: dropped as well.
        assert_eq!(
            open(&d, Some(BOOT_B)).load().unwrap(),
            StoreState::default()
        );
        // A torn format 1 slot cannot be placed in a boot: corrupt, as before.
        std::fs::write(slot(&d, 1), b"").unwrap();
        tear(&d, 0);
        assert!(matches!(
            open(&d, Some(BOOT_B)).load(),
            Err(StoreError::Corrupt { .. })
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_unknown_boot_trusts_every_slot() {
        let d = tmpdir("unknown-boot");
        let s = state(&[("10.0.0.2", "c1")]);
        save_all(&d, Some(BOOT_A), &[&s]);
        assert_eq!(open(&d, None).load().unwrap(), s);
        let t = state(&[("10.0.0.3", "c2")]);
        save_all(&d, None, &[&t]);
        assert_eq!(open(&d, Some(BOOT_B)).load().unwrap(), t);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn frames_round_trip_and_ignore_left_overs() {
        assert_eq!(
            unframe(frame(Some(BOOT_A), 7, "x\n").as_bytes()),
            Slot::Valid {
                boot: Boot::Id(BOOT_A),
                seq: 7,
                body: "x\n"
            }
        );
        let mut long = frame(Some(BOOT_A), 3, "a much longer body\n").into_bytes();
        let short = frame(Some(BOOT_A), 4, "b\n");
        long[..short.len()].copy_from_slice(short.as_bytes());
        assert_eq!(
            unframe(&long),
            Slot::Valid {
                boot: Boot::Id(BOOT_A),
                seq: 4,
                body: "b\n"
            }
        );
        assert!(matches!(
            unframe(frame(None, 1, "").as_bytes()),
            Slot::Valid {
                boot: Boot::Unknown,
                ..
            }
        ));
    }
}
