//! Child processes that die with their guard.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::error::{Error, IoContext, Result};

/// Runs a command to completion and returns its stdout; a non-zero exit is an error carrying stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .io_context(|| format!("spawn {}", describe(cmd)))?;
    if !output.status.success() {
        return Err(Error::Command {
            command: describe(cmd),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `program arg arg …` for messages.
pub fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Polls `ready` every 50 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A long-running peer (etcd, kube-apiserver, containerd, …) with its output in a log file.
///
/// It runs in a process group of its own so that stopping it also stops what it forked. Drop sends
/// SIGTERM, then SIGKILL after a grace period; when the test is panicking, the log's tail is printed.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `cmd`, its stdout and stderr appended to `log`.
    pub fn spawn(name: impl Into<String>, mut cmd: Command, log: &Path) -> Result<Self> {
        let name = name.into();
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .io_context(|| format!("open log {}", log.display()))?;
        let err = out
            .try_clone()
            .io_context(|| format!("dup log {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .io_context(|| format!("spawn {name}: {}", describe(&cmd)))?;
        Ok(Self {
            name,
            child,
            log: log.to_owned(),
        })
    }

    /// Waits until `ready` holds; fails early, with the log's tail, when the process exits first.
    pub fn wait_ready(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<()> {
        let mut exited = None;
        let ok = wait_until(timeout, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                exited = Some(status);
                return true;
            }
            ready()
        });
        if let Some(status) = exited {
            return Err(Error::Other(format!(
                "{} exited with {status} before it was ready; log {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 30)
            )));
        }
        if !ok {
            return Err(Error::NotReady {
                what: self.name.clone(),
                seconds: timeout.as_secs(),
                log: self.log.clone(),
            });
        }
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the process group: SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        let group = Pid::from_raw(self.child.id() as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let exited = wait_until(grace, || matches!(self.child.try_wait(), Ok(Some(_))));
        if !exited {
            let _ = killpg(group, Signal::SIGKILL);
            let _ = self.child.wait();
        }
        // Children that left the group's leader behind still belong to the group.
        let _ = killpg(group, Signal::SIGKILL);
    }

    /// Kills the process group at once, as a crash would.
    pub fn kill(&mut self) {
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
        if std::thread::panicking() {
            eprintln!(
                "---- {} log ({}), last lines:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 40)
            );
        }
    }
}

/// Every process on the machine: its pid and its `/proc/<pid>` folder.
pub fn all_processes() -> Vec<(i32, PathBuf)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            Some((pid, entry.path()))
        })
        .collect()
}

/// The last `lines` lines of a text file (empty when unreadable).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
