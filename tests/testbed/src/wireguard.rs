//! Userspace WireGuard devices (boringtun) inside test namespaces, configured through the UAPI
//! socket with Debian's `wg`, since the machine has no kernel WireGuard.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::error::{IoContext, Result};
use crate::netns::Netns;
use crate::peers;
use crate::process::{Daemon, run};
use crate::testdir::TestDir;

/// A WireGuard key pair in the base64 form `wg` prints.
#[derive(Debug, Clone)]
pub struct WgKeys {
    pub private: String,
    pub public: String,
}

impl WgKeys {
    /// A fresh pair from `wg genkey` / `wg pubkey`.
    pub fn generate() -> Result<Self> {
        let private = run(Command::new(peers::bin("wg")?).arg("genkey"))?
            .trim()
            .to_owned();
        let mut child = Command::new(peers::bin("wg")?)
            .arg("pubkey")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .io_context(|| "spawn wg pubkey".into())?;
        if let Some(stdin) = child.stdin.as_mut() {
            use std::io::Write;
            stdin
                .write_all(private.as_bytes())
                .io_context(|| "write to wg pubkey".into())?;
        }
        let out = child
            .wait_with_output()
            .io_context(|| "wait for wg pubkey".into())?;
        Ok(Self {
            private,
            public: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        })
    }
}

/// One peer of a device.
#[derive(Debug, Clone)]
pub struct WgPeer {
    pub public_key: String,
    pub endpoint: Option<String>,
    pub allowed_ips: Vec<String>,
    pub keepalive: Option<u16>,
}

/// A boringtun device running in a namespace; the process and its UAPI socket go away on drop.
#[derive(Debug)]
pub struct UserspaceWg {
    netns: String,
    ifname: String,
    _daemon: Daemon,
}

impl UserspaceWg {
    /// Starts `boringtun-cli <ifname>` in `ns`. The UAPI socket lives in the machine-wide
    /// `/var/run/wireguard`, so `ifname` must be unique on the machine (use [`crate::names::unique`]).
    pub fn start(ns: &Netns, ifname: &str, test: &TestDir) -> Result<Self> {
        let mut cmd = ns.command(&peers::bin("boringtun-cli")?.display().to_string());
        cmd.args([
            "--foreground",
            "--disable-drop-privileges",
            "--threads",
            "1",
            ifname,
        ]);
        let mut daemon = Daemon::spawn(
            format!("boringtun {ifname}"),
            cmd,
            &test.log(&format!("boringtun-{ifname}")),
        )?;
        let socket = uapi_socket(ifname);
        daemon.wait_ready(Duration::from_secs(10), || socket.exists())?;
        Ok(Self {
            netns: ns.name().to_owned(),
            ifname: ifname.to_owned(),
            _daemon: daemon,
        })
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The UAPI socket of the device.
    pub fn socket(&self) -> PathBuf {
        uapi_socket(&self.ifname)
    }

    /// Sets the private key, listen port and peers with `wg set`.
    pub fn configure(&self, keys: &WgKeys, listen_port: u16, peers: &[WgPeer]) -> Result<()> {
        let key_file = std::env::temp_dir().join(format!("{}.key", self.ifname));
        std::fs::write(&key_file, &keys.private)
            .io_context(|| format!("write {}", key_file.display()))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns])
            .arg(peers::bin("wg")?)
            .args(["set", &self.ifname, "listen-port", &listen_port.to_string()])
            .arg("private-key")
            .arg(&key_file);
        for peer in peers {
            cmd.args(["peer", &peer.public_key]);
            if let Some(endpoint) = &peer.endpoint {
                cmd.args(["endpoint", endpoint]);
            }
            if !peer.allowed_ips.is_empty() {
                cmd.args(["allowed-ips", &peer.allowed_ips.join(",")]);
            }
            if let Some(keepalive) = peer.keepalive {
                cmd.args(["persistent-keepalive", &keepalive.to_string()]);
            }
        }
        let result = run(&mut cmd);
        let _ = std::fs::remove_file(&key_file);
        result.map(|_| ())
    }
}

impl Drop for UserspaceWg {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.socket());
    }
}

fn uapi_socket(ifname: &str) -> PathBuf {
    PathBuf::from("/var/run/wireguard").join(format!("{ifname}.sock"))
}
