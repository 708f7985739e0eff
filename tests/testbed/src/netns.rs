//! Network namespaces made by a test, with veth links between them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::{Error, IoContext, Result};
use crate::names;
use crate::process::{run, wait_until};

/// A named network namespace (`ip netns add`), deleted on drop with every process still inside it.
///
/// Links and addresses inside it vanish with it, so a test cannot leave anything behind in the
/// machine's own namespace.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// A new namespace named `<prefix><unique>`, loopback up.
    pub fn new(prefix: &str) -> Result<Self> {
        let name = names::unique(prefix);
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind-mounted namespace file, for `setns` and for NRI-like consumers.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `ip -n <ns> <args>`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// A command that runs inside this namespace (through `ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `program args…` inside the namespace and returns its stdout.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String> {
        run(self.command(program).args(args))
    }

    /// A veth pair: `local` here, `remote` in `other`, both up.
    pub fn veth_to(&self, local: &str, other: &Netns, remote: &str) -> Result<()> {
        self.ip(&[
            "link",
            "add",
            local,
            "type",
            "veth",
            "peer",
            "name",
            remote,
            "netns",
            &other.name,
        ])?;
        self.ip(&["link", "set", local, "up"])?;
        other.ip(&["link", "set", remote, "up"])?;
        Ok(())
    }

    /// Adds `cidr` (e.g. `198.18.0.1/24`) to `link` and brings the link up.
    pub fn add_addr(&self, link: &str, cidr: &str) -> Result<()> {
        self.ip(&["addr", "add", cidr, "dev", link])?;
        self.ip(&["link", "set", link, "up"])?;
        Ok(())
    }

    /// Packets `link` in this namespace has received (its `rx_packets` counter).
    pub fn rx_packets(&self, link: &str) -> Result<u64> {
        let counter = format!("/sys/class/net/{link}/statistics/rx_packets");
        let text = self.exec("cat", &[&counter])?;
        text.trim()
            .parse()
            .map_err(|e| Error::Other(format!("{counter} in {}: {text:?}: {e}", self.name)))
    }

    /// True when `ping` from here reaches `addr` within `tries` one-second attempts.
    pub fn ping(&self, addr: &str, tries: u32) -> bool {
        (0..tries).any(|_| self.exec("ping", &["-c", "1", "-W", "1", addr]).is_ok())
    }

    /// Runs `f` on a new thread that entered this namespace; sockets it opens stay bound to it.
    ///
    /// `setns` changes only the calling thread, so a fresh thread keeps the test's own threads in
    /// the machine's namespace whatever happens inside.
    pub fn run_in<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        run_in_path(&self.path(), f)
    }

    /// PIDs of the processes whose network namespace is this one.
    pub fn pids(&self) -> Vec<i32> {
        run(Command::new("ip").args(["netns", "pids", &self.name]))
            .map(|out| {
                out.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for pid in self.pids() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        wait_until(Duration::from_secs(5), || self.pids().is_empty());
        let _ = run(Command::new("ip").args(["netns", "del", &self.name]));
    }
}

/// Runs `f` on a new thread that entered the network namespace at `path` (a `/run/netns` entry,
/// a runtime's bind mount or `/proc/<pid>/ns/net`).
pub fn run_in_path<T, F>(path: &Path, f: F) -> Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let owned = path.to_owned();
    let handle = std::thread::spawn(move || -> Result<T> {
        let file =
            std::fs::File::open(&owned).io_context(|| format!("open {}", owned.display()))?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::Other(format!("setns {}: {e}", owned.display())))?;
        Ok(f())
    });
    handle
        .join()
        .map_err(|_| Error::Other(format!("thread in {} panicked", path.display())))?
}
