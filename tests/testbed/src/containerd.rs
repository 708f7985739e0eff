//! containerd 2.x with NRI, one per node namespace, driven through CRI with crictl.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::{Error, IoContext, Result};
use crate::netns::Netns;
use crate::process::{Daemon, run, wait_until};
use crate::testdir::TestDir;
use crate::{names, peers};

/// The images `make peers` builds, as containerd knows them after import.
pub const PAUSE_IMAGE: &str = "localhost/nauti/pause:3.10";
pub const BUSYBOX_IMAGE: &str = "localhost/nauti/busybox:latest";

/// A pod as a kubelet would hand it to CRI.
#[derive(Debug, Clone, Default)]
pub struct PodSpec {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub host_network: bool,
    pub annotations: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

impl PodSpec {
    /// A pod with a fresh uid.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            uid: names::unique("uid-"),
            ..Self::default()
        }
    }

    fn sandbox_config(&self, log_dir: &Path) -> serde_json::Value {
        let network = if self.host_network { 2 } else { 0 };
        // A host-network pod shares the node's UTS namespace too, so it cannot set a hostname.
        let hostname = if self.host_network {
            ""
        } else {
            self.name.as_str()
        };
        serde_json::json!({
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid, "attempt": 0},
            "hostname": hostname,
            "log_directory": log_dir,
            "annotations": self.annotations,
            "labels": self.labels,
            "linux": {"security_context": {"namespace_options": {"network": network}}},
        })
    }
}

/// A running pod sandbox.
#[derive(Debug, Clone)]
pub struct Pod {
    pub id: String,
    pub spec: PodSpec,
}

/// containerd in a node namespace: its own root, state, sockets and CNI conf dir; NRI on, with the
/// socket at [`Containerd::nri_socket`]; the pause and busybox images imported.
///
/// It is started with `nsenter --net` rather than `ip netns exec`, so that it shares the machine's
/// mount namespace: pod network namespaces it bind-mounts under its state dir are then visible to
/// the NRI plugin, as on a real node. Drop removes every pod, stops the daemon and its shims, and
/// unmounts what it mounted.
#[derive(Debug)]
pub struct Containerd {
    dir: PathBuf,
    netns: String,
    config: PathBuf,
    daemon: Option<Daemon>,
    restarts: u32,
}

impl Containerd {
    /// Starts containerd in `node` with a primary CNI network (bridge + host-local, 10.88.0.0/24
    /// inside the node) so that sandboxes can start.
    pub fn start(node: &Netns, test: &TestDir) -> Result<Self> {
        let dir = test.sub(&names::unique("ctrd"))?;
        for sub in ["root", "state", "cni", "nri/plugins", "nri/conf", "logs"] {
            std::fs::create_dir_all(dir.join(sub))
                .io_context(|| format!("create {}", dir.join(sub).display()))?;
        }
        let config = dir.join("config.toml");
        std::fs::write(&config, render_config(&dir)?)
            .io_context(|| format!("write {}", config.display()))?;
        let primary = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "primary",
            "plugins": [{
                "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/24"}]],
                         "routes": [{"dst": "0.0.0.0/0"}], "dataDir": dir.join("cni-ipam")},
            }],
        });
        let conflist = dir.join("cni/10-primary.conflist");
        std::fs::write(&conflist, primary.to_string())
            .io_context(|| format!("write {}", conflist.display()))?;
        let mut ctrd = Self {
            dir,
            netns: node.path().display().to_string(),
            config,
            daemon: None,
            restarts: 0,
        };
        ctrd.launch()?;
        for (image, archive) in [(PAUSE_IMAGE, "pause"), (BUSYBOX_IMAGE, "busybox")] {
            ctrd.import_image(image, &peers::image(archive)?)?;
        }
        Ok(ctrd)
    }

    fn launch(&mut self) -> Result<()> {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.netns))
            .arg(peers::bin("containerd")?)
            .arg("--config")
            .arg(&self.config);
        // containerd finds its shim and runc by absolute paths in the config; PATH is for CNI.
        cmd.env("PATH", path_with_peers());
        let log = self.dir.join(format!("containerd-{}.log", self.restarts));
        let mut daemon = Daemon::spawn("containerd", cmd, &log)?;
        let socket = self.socket();
        daemon.wait_ready(Duration::from_secs(30), || {
            socket.exists() && run(ctr_command(&socket).arg("version")).is_ok()
        })?;
        self.daemon = Some(daemon);
        Ok(())
    }

    /// Stops containerd (SIGTERM) and starts it again with the same state; pods keep running.
    pub fn restart(&mut self) -> Result<()> {
        if let Some(mut daemon) = self.daemon.take() {
            daemon.stop(Duration::from_secs(10));
        }
        self.restarts += 1;
        self.launch()
    }

    /// The CRI/containerd gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// Where NRI plugins connect.
    pub fn nri_socket(&self) -> PathBuf {
        self.dir.join("nri/nri.sock")
    }

    /// Where containerd finds the NRI plugins it launches itself (`<index>-<name>`).
    pub fn nri_plugin_dir(&self) -> PathBuf {
        self.dir.join("nri/plugins")
    }

    /// Where containerd reads the configuration of the plugins it launches
    /// (`<index>-<name>.conf`, passed to the plugin in `Configure`).
    pub fn nri_conf_dir(&self) -> PathBuf {
        self.dir.join("nri/conf")
    }

    /// The node's CNI configuration folder (holds the primary network).
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.dir.join("cni")
    }

    /// containerd's state folder (pod netns bind mounts live in `netns/` below it).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// The current daemon's log.
    pub fn log(&self) -> PathBuf {
        self.dir.join(format!("containerd-{}.log", self.restarts))
    }

    /// Imports an OCI archive (without a reference name) as `image` into `k8s.io`, where CRI looks.
    pub fn import_image(&self, image: &str, archive: &Path) -> Result<()> {
        let archive = archive.display().to_string();
        self.ctr(&[
            "-n",
            "k8s.io",
            "images",
            "import",
            "--index-name",
            image,
            &archive,
        ])?;
        Ok(())
    }

    /// `ctr -a <socket> <args>`.
    pub fn ctr(&self, args: &[&str]) -> Result<String> {
        run(ctr_command(&self.socket()).args(args))
    }

    /// `crictl` against this containerd, run in the node's namespace: the streaming server that
    /// `exec` talks to listens on the node's loopback.
    pub fn crictl(&self, args: &[&str]) -> Result<String> {
        let endpoint = format!("unix://{}", self.socket().display());
        run(Command::new("nsenter")
            .arg(format!("--net={}", self.netns))
            .arg(peers::bin("crictl")?)
            .args(["--config", "/dev/null"])
            .args([
                "--runtime-endpoint",
                &endpoint,
                "--image-endpoint",
                &endpoint,
            ])
            .args(["--timeout", "60s"])
            .args(args))
    }

    /// Runs a pod sandbox (the primary CNI and every NRI plugin run as part of this).
    pub fn run_pod(&self, spec: &PodSpec) -> Result<Pod> {
        let file = self.dir.join(format!("pod-{}.json", spec.uid));
        let config = spec.sandbox_config(&self.dir.join("logs"));
        std::fs::write(&file, config.to_string())
            .io_context(|| format!("write {}", file.display()))?;
        let id = self
            .crictl(&["runp", &file.display().to_string()])?
            .trim()
            .to_owned();
        Ok(Pod {
            id,
            spec: spec.clone(),
        })
    }

    /// Creates and starts a busybox container running `command` in `pod`; returns its ID.
    pub fn run_container(&self, pod: &Pod, name: &str, command: &[&str]) -> Result<String> {
        let pod_file = self.dir.join(format!("pod-{}.json", pod.spec.uid));
        let file = self.dir.join(format!("ctr-{}-{name}.json", pod.spec.uid));
        let config = serde_json::json!({
            "metadata": {"name": name},
            "image": {"image": BUSYBOX_IMAGE},
            "command": command,
            "log_path": format!("{}-{name}.log", pod.spec.uid),
            "linux": {},
        });
        std::fs::write(&file, config.to_string())
            .io_context(|| format!("write {}", file.display()))?;
        let id = self
            .crictl(&[
                "create",
                &pod.id,
                &file.display().to_string(),
                &pod_file.display().to_string(),
            ])?
            .trim()
            .to_owned();
        self.crictl(&["start", &id])?;
        Ok(id)
    }

    /// Runs `command` in a container and returns its stdout.
    pub fn exec(&self, container: &str, command: &[&str]) -> Result<String> {
        let mut args = vec!["exec", container];
        args.extend_from_slice(command);
        self.crictl(&args)
    }

    /// Stops and removes a pod with its containers.
    pub fn remove_pod(&self, pod: &Pod) -> Result<()> {
        self.crictl(&["stopp", &pod.id])?;
        self.crictl(&["rmp", &pod.id])?;
        Ok(())
    }

    /// Stops and removes every pod sandbox.
    pub fn remove_all_pods(&self) -> Result<()> {
        self.crictl(&["rmp", "-fa"])?;
        Ok(())
    }

    /// IDs of every pod sandbox containerd knows.
    pub fn pod_ids(&self) -> Result<Vec<String>> {
        Ok(self
            .crictl(&["pods", "-q"])?
            .split_whitespace()
            .map(str::to_owned)
            .collect())
    }

    /// The network namespace path of a pod (`None` for host-network pods).
    pub fn pod_netns(&self, pod: &Pod) -> Result<Option<PathBuf>> {
        let info = self.crictl(&["inspectp", "-o", "json", &pod.id])?;
        let value: serde_json::Value = serde_json::from_str(&info)
            .map_err(|e| Error::Other(format!("crictl inspectp output: {e}")))?;
        let namespaces = &value["info"]["runtimeSpec"]["linux"]["namespaces"];
        Ok(namespaces.as_array().and_then(|list| {
            list.iter()
                .find(|ns| ns["type"] == "network")
                .and_then(|ns| ns["path"].as_str())
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
        }))
    }

    fn teardown(&mut self) {
        if self.daemon.is_some() {
            // Bounded: crictl carries its own timeout.
            let _ = self.remove_all_pods();
        }
        if let Some(mut daemon) = self.daemon.take() {
            daemon.stop(Duration::from_secs(10));
        }
        kill_processes_under(&self.dir);
        unmount_under(&self.dir);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn ctr_command(socket: &Path) -> Command {
    let mut cmd = Command::new(peers::bin("ctr").unwrap_or_else(|_| "ctr".into()));
    cmd.arg("-a").arg(socket);
    cmd
}

fn path_with_peers() -> String {
    let current = std::env::var("PATH").unwrap_or_default();
    format!(
        "{}:/usr/lib/cni:/usr/sbin:/sbin:{current}",
        peers::dir().join("bin").display()
    )
}

fn render_config(dir: &Path) -> Result<String> {
    let template_path = crate::repo_root().join("tests/peers/containerd-config.toml.tmpl");
    let template = std::fs::read_to_string(&template_path)
        .io_context(|| format!("read {}", template_path.display()))?;
    let d = |sub: &str| dir.join(sub).display().to_string();
    let runc = peers::bin("runc")?.display().to_string();
    let shim = peers::bin("containerd-shim-runc-v2")?.display().to_string();
    let replacements = [
        ("{{ROOT}}", d("root")),
        ("{{STATE}}", d("state")),
        ("{{SOCKET}}", d("containerd.sock")),
        ("{{SNAPSHOTTER}}", "overlayfs".to_owned()),
        ("{{SANDBOX_IMAGE}}", PAUSE_IMAGE.to_owned()),
        ("{{SHIM}}", shim),
        ("{{RUNC}}", runc),
        ("{{CNI_BIN_DIR}}", "/usr/lib/cni".to_owned()),
        ("{{CNI_CONF_DIR}}", d("cni")),
        ("{{NRI_SOCKET}}", d("nri/nri.sock")),
        ("{{NRI_PLUGIN_DIR}}", d("nri/plugins")),
        ("{{NRI_CONF_DIR}}", d("nri/conf")),
    ];
    let mut text = template;
    for (key, value) in replacements {
        text = text.replace(key, &value);
    }
    Ok(text)
}

/// Kills every process whose working directory or root lies under `dir`: the shims (their cwd is
/// the task bundle) and container processes (their root is a rootfs mount below the state dir).
fn kill_processes_under(dir: &Path) {
    let mut killed = Vec::new();
    for (pid, proc_dir) in crate::process::all_processes() {
        let inside = ["cwd", "root"].iter().any(|link| {
            std::fs::read_link(proc_dir.join(link)).is_ok_and(|target| target.starts_with(dir))
        });
        if inside {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            killed.push(pid);
        }
    }
    wait_until(Duration::from_secs(5), || {
        killed
            .iter()
            .all(|pid| !Path::new(&format!("/proc/{pid}/cwd")).exists())
    });
}

/// Detaches every mount below `dir`, deepest first.
fn unmount_under(dir: &Path) {
    for point in mounts_under(dir) {
        let _ = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Mount points at or below `dir` as this process sees them, deepest first.
pub(crate) fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    points
}
