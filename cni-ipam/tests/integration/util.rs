//! Running the plugin binary and reading its answers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::{Value, json};

/// The plugin binary under test.
pub fn plugin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_nauti-ipam"))
}

/// `CNI_PATH` with the folder of our binary first, then Debian's reference plugins.
pub fn cni_path() -> String {
    let ours = plugin().parent().map(Path::to_path_buf).unwrap_or_default();
    format!("{}:/usr/lib/cni", ours.display())
}

/// A network configuration using nauti-ipam with one range set.
pub fn mk_conf(name: &str, data_dir: &Path, range: Value) -> Value {
    json!({
        "cniVersion": "1.1.0",
        "name": name,
        "type": "bridge",
        "ipam": {"type": "nauti-ipam", "ranges": [[range]], "dataDir": data_dir},
    })
}

/// One invocation's environment.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub command: &'static str,
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
}

impl Invocation {
    pub fn new(command: &'static str, container_id: impl Into<String>) -> Self {
        Self {
            command,
            container_id: container_id.into(),
            ifname: "eth0".into(),
            netns: "/var/run/netns/none".into(),
        }
    }

    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("CNI_COMMAND", self.command)
            .env("CNI_CONTAINERID", &self.container_id)
            .env("CNI_IFNAME", &self.ifname)
            .env("CNI_NETNS", &self.netns)
            .env("CNI_PATH", cni_path())
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs our plugin directly.
    pub fn run(&self, conf: &Value) -> Reply {
        run_with(self.command(plugin()), conf.to_string().as_bytes())
    }

    /// Starts our plugin directly without waiting.
    pub fn spawn(&self, conf: &Value) -> Child {
        let mut child = self.command(plugin()).spawn().expect("spawn nauti-ipam");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(conf.to_string().as_bytes())
            .expect("write stdin");
        child
    }
}

/// What a plugin process answered.
#[derive(Debug)]
pub struct Reply {
    pub success: bool,
    pub stdout: Option<Value>,
    pub raw: String,
    pub stderr: String,
}

impl Reply {
    pub fn from_output(out: Output) -> Self {
        let raw = String::from_utf8_lossy(&out.stdout).into_owned();
        Self {
            success: out.status.success(),
            stdout: serde_json::from_str(&raw).ok(),
            raw,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The result's first address (`10.112.1.2/24`), asserting success.
    pub fn address(&self) -> String {
        assert!(self.success, "plugin failed: {} {}", self.raw, self.stderr);
        self.stdout.as_ref().expect("JSON result")["ips"][0]["address"]
            .as_str()
            .expect("ips[0].address")
            .to_owned()
    }

    /// The CNI error code, asserting failure and a well-formed error object.
    pub fn code(&self) -> u64 {
        assert!(!self.success, "expected a failure, got {}", self.raw);
        let e = self
            .stdout
            .as_ref()
            .unwrap_or_else(|| panic!("error is not JSON: {:?}", self.raw));
        for key in ["cniVersion", "msg", "details"] {
            assert!(e[key].is_string(), "error object lacks {key}: {e}");
        }
        e["code"].as_u64().expect("numeric code")
    }

    /// The error's `msg`.
    pub fn msg(&self) -> String {
        self.stdout
            .as_ref()
            .map(|e| e["msg"].to_string())
            .unwrap_or_default()
    }
}

pub fn run_with(mut cmd: Command, stdin: &[u8]) -> Reply {
    let mut child = cmd.spawn().expect("spawn plugin");
    if let Some(mut s) = child.stdin.take() {
        let _ = s.write_all(stdin);
    }
    Reply::from_output(child.wait_with_output().expect("wait plugin"))
}

/// A data dir for one test.
pub fn data_dir(dir: &nauti_testbed::testdir::TestDir) -> PathBuf {
    dir.sub("data").expect("data dir")
}
