//! Ownership of beds and the sweeper of what a dead owner left behind.
//!
//! Every bed writes a record `<beds dir>/<bed id>` (default `/tmp/nauti-beds`) before it creates
//! anything: the owner's pid and start time, and the folders it uses. Every process it starts
//! carries `NAUTI_BED=<bed id>` in its environment, every namespace's name starts with `<bed id>-`
//! and every cgroup's with `nauti-<bed id>-`. A bed that starts sweeps the records whose owner is
//! gone (a test killed with SIGKILL never runs its destructors), and a bed that stops sweeps its
//! own: processes, mounts, namespaces, cgroups, kubelet's log links and folders.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::containerd::mounts_under;
use crate::error::{IoContext, Result};
use crate::process::{run, wait_until};

use super::plan;

/// The environment variable that tags every process of a bed.
pub const BED_ENV: &str = "NAUTI_BED";
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const NETNS_DIR: &str = "/run/netns";
/// Where kubelet links container logs, whatever its root dir.
const CONTAINER_LOG_LINKS: &str = "/var/log/containers";

/// `$NAUTI_BEDS_DIR`, default `/tmp/nauti-beds`: one record per bed.
pub fn beds_dir() -> PathBuf {
    std::env::var_os("NAUTI_BEDS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/nauti-beds"))
}

/// What a record says: the owner process and the folders that belong to the bed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub owner: Option<(i32, u64)>,
    pub paths: Vec<PathBuf>,
}

impl Record {
    /// Parses `owner <pid> <start time>` and `path <folder>` lines; other lines are ignored.
    pub fn parse(text: &str) -> Self {
        let mut record = Self::default();
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("owner", rest)) => {
                    let mut words = rest.split_whitespace();
                    let pid = words.next().and_then(|w| w.parse().ok());
                    let start = words.next().and_then(|w| w.parse().ok());
                    if let (Some(pid), Some(start)) = (pid, start) {
                        record.owner = Some((pid, start));
                    }
                }
                Some(("path", rest)) if rest.starts_with('/') && rest.len() > 1 => {
                    record.paths.push(PathBuf::from(rest));
                }
                _ => {}
            }
        }
        record
    }
}

/// The start time of a process (field 22 of `/proc/<pid>/stat`), to tell a reused pid apart.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it follow its closing parenthesis.
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19)?.parse().ok()
}

/// True when the recorded owner still runs.
pub fn owner_alive(owner: Option<(i32, u64)>) -> bool {
    owner.is_some_and(|(pid, start)| start_time(pid) == Some(start))
}

/// The record file of this process's bed `id`; removed (after the sweep) when the bed stops.
#[derive(Debug)]
pub struct Ownership {
    id: String,
    file: PathBuf,
}

impl Ownership {
    /// Writes the record of bed `id` owned by this process.
    pub fn claim(id: &str) -> Result<Self> {
        let dir = beds_dir();
        std::fs::create_dir_all(&dir).io_context(|| format!("create {}", dir.display()))?;
        let pid = std::process::id() as i32;
        let start = start_time(pid).unwrap_or_default();
        let file = dir.join(id);
        std::fs::write(&file, format!("owner {pid} {start}\n"))
            .io_context(|| format!("write {}", file.display()))?;
        Ok(Self {
            id: id.to_owned(),
            file,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// A short folder for the bed's OVS/OVN run folders (unix socket paths are limited to 107
    /// bytes), recorded before anything is created in it.
    pub fn run_dir(&self) -> Result<PathBuf> {
        let dir = std::env::temp_dir().join(format!("nauti-run-{}", self.id));
        if !self.record().paths.contains(&dir) {
            self.add_path(&dir)?;
        }
        std::fs::create_dir_all(&dir).io_context(|| format!("create {}", dir.display()))?;
        Ok(dir)
    }

    /// Records a folder of the bed (before anything is put into it).
    pub fn add_path(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.file)
            .io_context(|| format!("open {}", self.file.display()))?;
        writeln!(file, "path {}", path.display())
            .io_context(|| format!("write {}", self.file.display()))
    }

    /// The record as written so far.
    pub fn record(&self) -> Record {
        Record::parse(&std::fs::read_to_string(&self.file).unwrap_or_default())
    }

    /// Sweeps everything of this bed, except the folder `keep` (the logs of a failed test), and
    /// removes the record (so that no later sweep removes the kept folder).
    pub fn release_keeping(&self, keep: Option<&Path>) {
        let mut record = self.record();
        record.paths.retain(|p| Some(p.as_path()) != keep);
        if let Some(kept) = keep {
            detach_all_under(kept);
        }
        sweep(&self.id, &record);
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Detaches every mount at or below `path`. Mounts may be stacked (a folder bound on itself over
/// mounts below it, as the seed demo does with a node's netns folder): detaching the top one
/// shows the next, so a few passes, bounded.
fn detach_all_under(path: &Path) {
    for _ in 0..4 {
        let points = mounts_under(path);
        if points.is_empty() {
            return;
        }
        for point in points {
            let _ = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Sweeps every bed whose owner is gone; returns their ids.
pub fn sweep_dead_beds() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(beds_dir()) else {
        return Vec::new();
    };
    let mut swept = Vec::new();
    for entry in entries.flatten() {
        let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let record = Record::parse(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        if owner_alive(record.owner) {
            continue;
        }
        sweep(&id, &record);
        let _ = std::fs::remove_file(entry.path());
        swept.push(id);
    }
    swept
}

/// Removes every trace of bed `id`: processes first (so nothing holds a mount or a cgroup), then
/// mounts, namespaces, cgroups, kubelet's log links and the folders.
pub fn sweep(id: &str, record: &Record) {
    kill_all(id, record);
    for path in &record.paths {
        detach_all_under(path);
    }
    for ns in namespaces(id) {
        let _ = run(Command::new("ip").args(["netns", "del", &ns]));
    }
    for group in cgroups(id) {
        // Deepest first: a cgroup with children cannot be removed.
        let _ = std::fs::remove_dir(&group);
    }
    for link in log_links(record) {
        let _ = std::fs::remove_file(link);
    }
    for path in &record.paths {
        let _ = std::fs::remove_dir_all(path);
    }
}

/// Kills every process of bed `id` with SIGKILL: a bed needs no graceful stop, since whatever its
/// processes leave is swept after them (and kubelet must not restart what is being removed).
pub fn kill_all(id: &str, record: &Record) {
    // Bounded: a process that survives SIGKILL three times is reported by `leftovers`.
    for _ in 0..3 {
        let pids = processes(id, record);
        if pids.is_empty() {
            break;
        }
        for pid in &pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        wait_until(Duration::from_secs(5), || {
            pids.iter()
                .all(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        });
    }
}

/// What is left of bed `id`, one line per thing (empty when the bed is gone without a trace).
pub fn leftovers(id: &str, record: &Record) -> Vec<String> {
    let mut left = Vec::new();
    left.extend(
        processes(id, record)
            .into_iter()
            .map(|p| format!("process {p}")),
    );
    for path in &record.paths {
        left.extend(
            mounts_under(path)
                .into_iter()
                .map(|m| format!("mount {}", m.display())),
        );
        if path.exists() {
            left.push(format!("folder {}", path.display()));
        }
    }
    left.extend(namespaces(id).into_iter().map(|n| format!("netns {n}")));
    left.extend(
        cgroups(id)
            .into_iter()
            .map(|c| format!("cgroup {}", c.display())),
    );
    left.extend(
        log_links(record)
            .into_iter()
            .map(|l| format!("log link {}", l.display())),
    );
    if beds_dir().join(id).exists() {
        left.push(format!("record {}", beds_dir().join(id).display()));
    }
    left
}

/// Processes of the bed: tagged with [`BED_ENV`], inside one of its namespaces or cgroups, or
/// working, rooted or named (in their command line) in one of its folders. Never this process.
pub(crate) fn processes(id: &str, record: &Record) -> Vec<i32> {
    let me = std::process::id() as i32;
    let tag = format!("{BED_ENV}={id}");
    let ns_inodes: Vec<u64> = namespaces(id)
        .iter()
        .filter_map(|ns| inode(&Path::new(NETNS_DIR).join(ns)))
        .collect();
    let mut in_cgroups = Vec::new();
    for group in cgroups(id) {
        let procs = std::fs::read_to_string(group.join("cgroup.procs")).unwrap_or_default();
        in_cgroups.extend(
            procs
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    let paths: Vec<String> = record
        .paths
        .iter()
        .map(|p| format!("{}/", p.display()))
        .collect();
    let mut found = Vec::new();
    for (pid, dir) in crate::process::all_processes() {
        if pid == me {
            continue;
        }
        let environ = std::fs::read(dir.join("environ")).unwrap_or_default();
        let tagged = environ.split(|b| *b == 0).any(|v| v == tag.as_bytes());
        let in_ns = inode(&dir.join("ns/net")).is_some_and(|i| ns_inodes.contains(&i));
        let under = ["cwd", "root"].iter().any(|link| {
            std::fs::read_link(dir.join(link))
                .is_ok_and(|t| record.paths.iter().any(|p| t.starts_with(p)))
        });
        let cmdline =
            String::from_utf8_lossy(&std::fs::read(dir.join("cmdline")).unwrap_or_default())
                .into_owned();
        let named = paths.iter().any(|p| cmdline.contains(p.as_str()));
        if tagged || in_ns || under || named || in_cgroups.contains(&pid) {
            found.push(pid);
        }
    }
    found
}

fn inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Names of the bed's network namespaces.
fn namespaces(id: &str) -> Vec<String> {
    let prefix = plan::netns_prefix(id);
    std::fs::read_dir(NETNS_DIR)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// The bed's cgroups in every hierarchy, deepest first.
fn cgroups(id: &str) -> Vec<PathBuf> {
    let prefix = plan::cgroup_prefix(id);
    let mut found = Vec::new();
    let Ok(hierarchies) = std::fs::read_dir(CGROUP_ROOT) else {
        return found;
    };
    for hierarchy in hierarchies.flatten() {
        let Ok(children) = std::fs::read_dir(hierarchy.path()) else {
            continue;
        };
        for child in children.flatten() {
            let is_ours = child
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix));
            if is_ours && child.path().is_dir() {
                collect_dirs(&child.path(), &mut found, 0);
            }
        }
    }
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    // Kubelet's tree is a few levels deep (root/kubepods/<qos>/<pod>/<container>).
    if depth > 8 {
        return;
    }
    out.push(dir.to_owned());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&entry.path(), out, depth + 1);
            }
        }
    }
}

/// kubelet's links in `/var/log/containers` that point into the bed's folders.
fn log_links(record: &Record) -> Vec<PathBuf> {
    std::fs::read_dir(CONTAINER_LOG_LINKS)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|link| {
                    std::fs::read_link(link)
                        .is_ok_and(|t| record.paths.iter().any(|p| t.starts_with(p)))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_names_its_owner_and_folders() {
        let record = Record::parse("owner 42 12345\npath /tmp/a\npath /tmp/b c\nnoise\npath /\n");
        assert_eq!(record.owner, Some((42, 12345)));
        assert_eq!(
            record.paths,
            vec![PathBuf::from("/tmp/a"), PathBuf::from("/tmp/b c")]
        );
    }

    #[test]
    fn a_torn_record_has_no_owner_and_is_swept() {
        let record = Record::parse("owner 42\n");
        assert_eq!(record.owner, None);
        assert!(!owner_alive(record.owner));
    }

    #[test]
    fn this_process_is_alive_and_a_wrong_start_time_is_not() {
        let pid = std::process::id() as i32;
        let start = start_time(pid).unwrap();
        assert!(owner_alive(Some((pid, start))));
        assert!(!owner_alive(Some((pid, start + 1))));
    }
}
