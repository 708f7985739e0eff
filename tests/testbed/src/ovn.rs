//! OVN and Open vSwitch for tests: a central (northbound and southbound `ovsdb-server` plus
//! `ovn-northd`) and nodes (per network namespace: `ovsdb-server`, `ovs-vswitchd` on the userspace
//! datapath and `ovn-controller`), after the verified recipe in `shared/recipes/ovn-two-nodes.sh`.
//!
//! Every daemon runs in the foreground under a [`Daemon`] guard (its own process group, killed on
//! drop), its output in the test's [`TestDir`]. Sockets, databases and pidfiles live in a short run
//! folder of their own under `/tmp` (unix socket paths are limited to 107 bytes), removed on drop.
//! The test-bed shells out to `ovs-vsctl`, `ovn-nbctl` and friends: it is test infrastructure,
//! and these tools are the reference the product's own OVSDB client is checked against.
//!
//! Gotchas this module takes care of (TESTBED.md): all daemons of one node share one
//! `OVS_RUNDIR`/`OVN_RUNDIR`; the geneve encap IP sits on a netdev bridge `br-phy` that owns the
//! node's underlay link; pod NICs get TX checksum offload off and an MTU with room for geneve.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::{Error, IoContext, Result};
use crate::names;
use crate::netns::Netns;
use crate::process::{Daemon, run, wait_until};
use crate::testdir::TestDir;

/// The northbound schema installed by Debian's `ovn-central`.
pub const NB_SCHEMA: &str = "/usr/share/ovn/ovn-nb.ovsschema";
/// The southbound schema installed by Debian's `ovn-central`.
pub const SB_SCHEMA: &str = "/usr/share/ovn/ovn-sb.ovsschema";
/// The Open_vSwitch schema installed by Debian's `openvswitch-switch`.
pub const VSWITCH_SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// MTU for pod NICs on a 1500-byte underlay: room for geneve (58 bytes) and then some.
pub const POD_MTU: u32 = 1400;

const READY: Duration = Duration::from_secs(20);

/// A short folder under `/tmp` for sockets, databases and pidfiles; removed on drop.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// A fresh `/tmp/<prefix><unique>`.
    pub fn new(prefix: &str) -> Result<Self> {
        Self::new_in(&std::env::temp_dir(), prefix)
    }

    /// A fresh `<parent>/<prefix><unique>` (a parent whose path is short).
    pub fn new_in(parent: &Path, prefix: &str) -> Result<Self> {
        let path = parent.join(names::unique(prefix));
        std::fs::create_dir_all(&path).io_context(|| format!("create {}", path.display()))?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn socket_connectable(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

/// Where a node's daemons run: the namespace (if any) and the shared run folder.
fn daemon_command(program: &str, netns: Option<&str>, rundir: &Path) -> Command {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, program]);
            c
        }
        None => Command::new(program),
    };
    cmd.env("OVS_RUNDIR", rundir)
        .env("OVS_DBDIR", rundir)
        .env("OVS_LOGDIR", rundir)
        .env("OVN_RUNDIR", rundir)
        .env("OVN_DBDIR", rundir)
        .env("OVN_LOGDIR", rundir);
    cmd
}

/// One `ovsdb-server` serving one database file on a unix socket; it can be stopped, killed and
/// started again on the same file and socket (to test clients across a server restart).
#[derive(Debug)]
pub struct OvsdbServer {
    name: String,
    db: PathBuf,
    socket: PathBuf,
    rundir: PathBuf,
    netns: Option<String>,
    log: PathBuf,
    daemon: Option<Daemon>,
}

impl OvsdbServer {
    /// Creates `<rundir>/<name>.db` from `schema` (unless it exists) and serves it on
    /// `<rundir>/<name>.sock`; returns once the socket accepts connections.
    pub fn start(
        name: &str,
        schema: &Path,
        rundir: &Path,
        netns: Option<&str>,
        log: &Path,
    ) -> Result<Self> {
        let db = rundir.join(format!("{name}.db"));
        if !db.exists() {
            run(Command::new("ovsdb-tool")
                .arg("create")
                .arg(&db)
                .arg(schema))?;
        }
        let mut server = Self {
            name: name.to_owned(),
            db,
            socket: rundir.join(format!("{name}.sock")),
            rundir: rundir.to_owned(),
            netns: netns.map(str::to_owned),
            log: log.to_owned(),
            daemon: None,
        };
        server.resume()?;
        Ok(server)
    }

    /// Starts the server again after [`Self::stop`] or [`Self::kill`].
    pub fn resume(&mut self) -> Result<()> {
        if self.daemon.is_some() {
            return Ok(());
        }
        let _ = std::fs::remove_file(&self.socket);
        let mut cmd = daemon_command("ovsdb-server", self.netns.as_deref(), &self.rundir);
        cmd.arg(&self.db)
            .arg(format!("--remote=punix:{}", self.socket.display()))
            .arg(format!(
                "--unixctl={}",
                self.rundir.join(format!("{}.ctl", self.name)).display()
            ))
            .arg(format!(
                "--pidfile={}",
                self.rundir.join(format!("{}.pid", self.name)).display()
            ))
            .args(["-vconsole:info", "-vsyslog:off"]);
        let mut daemon = Daemon::spawn(format!("ovsdb-server {}", self.name), cmd, &self.log)?;
        let socket = self.socket.clone();
        daemon.wait_ready(READY, || socket_connectable(&socket))?;
        self.daemon = Some(daemon);
        Ok(())
    }

    /// Stops the server cleanly (SIGTERM); the database file stays.
    pub fn stop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop(Duration::from_secs(5));
        }
    }

    /// Kills the server (SIGKILL), as a crash would; the database file stays.
    pub fn kill(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.kill();
        }
    }

    /// Stops and starts the server on the same file and socket.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.resume()
    }

    /// True while the server process runs.
    pub fn is_running(&mut self) -> bool {
        self.daemon.as_mut().is_some_and(Daemon::is_running)
    }

    /// Freezes the server (SIGSTOP): connections stay open and requests go unanswered, as a
    /// hung server's would, until [`Self::unfreeze`].
    pub fn freeze(&self) -> Result<()> {
        self.signal("-STOP")
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn unfreeze(&self) -> Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> Result<()> {
        let pidfile = self.rundir.join(format!("{}.pid", self.name));
        let pid = std::fs::read_to_string(&pidfile)
            .map_err(|e| crate::error::Error::Other(format!("{}: {e}", pidfile.display())))?;
        run(Command::new("kill").arg(signal).arg(pid.trim()))?;
        Ok(())
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The database file.
    pub fn db_file(&self) -> &Path {
        &self.db
    }

    /// `unix:<socket>`, the remote syntax of OVS tools and of `nauti_ovn::Endpoint::parse`.
    pub fn remote(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    /// Runs `ovsdb-tool transact <db> <json>` on the file while the server is stopped (to change
    /// the database behind a client's back).
    pub fn offline_transact(&self, transaction: &str) -> Result<String> {
        if self.daemon.is_some() {
            return Err(Error::Other(format!(
                "{} is running; stop it first",
                self.name
            )));
        }
        run(Command::new("ovsdb-tool")
            .arg("transact")
            .arg(&self.db)
            .arg(transaction))
    }
}

/// OVN's central part: northbound and southbound databases and `ovn-northd`, in the machine's
/// namespace (unix sockets are reachable from every namespace).
#[derive(Debug)]
pub struct OvnCentral {
    // Fields drop in order: northd before the databases, the run folder last.
    northd: Daemon,
    nb: OvsdbServer,
    sb: OvsdbServer,
    run: RunDir,
}

impl OvnCentral {
    /// Starts NB, SB and northd; returns when northd is active.
    pub fn start(dir: &TestDir) -> Result<Self> {
        Self::start_in(dir, &std::env::temp_dir())
    }

    /// As [`OvnCentral::start`], with the run folder under `run_parent` (short: socket paths).
    pub fn start_in(dir: &TestDir, run_parent: &Path) -> Result<Self> {
        let run = RunDir::new_in(run_parent, "novc")?;
        let nb = OvsdbServer::start(
            "nb",
            Path::new(NB_SCHEMA),
            run.path(),
            None,
            &dir.log("ovn-nb"),
        )?;
        let sb = OvsdbServer::start(
            "sb",
            Path::new(SB_SCHEMA),
            run.path(),
            None,
            &dir.log("ovn-sb"),
        )?;
        let ctl = run.join("northd.ctl");
        let mut cmd = daemon_command("ovn-northd", None, run.path());
        cmd.arg(format!("--ovnnb-db={}", nb.remote()))
            .arg(format!("--ovnsb-db={}", sb.remote()))
            .arg(format!("--unixctl={}", ctl.display()))
            .arg(format!("--pidfile={}", run.join("northd.pid").display()))
            .args(["-vconsole:info", "-vsyslog:off"]);
        let mut northd = Daemon::spawn("ovn-northd", cmd, &dir.log("ovn-northd"))?;
        northd.wait_ready(READY, || {
            run_ok(Command::new("ovn-appctl").arg("-t").arg(&ctl).arg("status"))
                .is_some_and(|s| s.contains("active"))
        })?;
        Ok(Self {
            northd,
            nb,
            sb,
            run,
        })
    }

    pub fn nb_socket(&self) -> &Path {
        self.nb.socket()
    }

    pub fn sb_socket(&self) -> &Path {
        self.sb.socket()
    }

    /// `unix:<nb socket>`.
    pub fn nb_remote(&self) -> String {
        self.nb.remote()
    }

    /// `unix:<sb socket>`.
    pub fn sb_remote(&self) -> String {
        self.sb.remote()
    }

    /// The northbound server, to stop or restart it.
    pub fn nb_server(&mut self) -> &mut OvsdbServer {
        &mut self.nb
    }

    /// The run folder (sockets, databases).
    pub fn run_dir(&self) -> &Path {
        self.run.path()
    }

    /// `ovn-nbctl --db=<nb> <args>`.
    pub fn nbctl(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ovn-nbctl")
            .arg(format!("--db={}", self.nb.remote()))
            .args(args))
    }

    /// `ovn-sbctl --db=<sb> <args>`.
    pub fn sbctl(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ovn-sbctl")
            .arg(format!("--db={}", self.sb.remote()))
            .args(args))
    }

    /// True while NB, SB and northd run.
    pub fn is_running(&mut self) -> bool {
        self.northd.is_running() && self.nb.is_running() && self.sb.is_running()
    }

    /// Waits until the logical switch port is bound and up (`Logical_Switch_Port.up`).
    pub fn wait_port_up(&self, lsp: &str, timeout: Duration) -> Result<()> {
        let up = wait_until(timeout, || {
            self.nbctl(&["lsp-get-up", lsp])
                .is_ok_and(|s| s.trim() == "up")
        });
        if up {
            Ok(())
        } else {
            Err(Error::Other(format!(
                "logical switch port {lsp} not up after {timeout:?}"
            )))
        }
    }
}

fn run_ok(cmd: &mut Command) -> Option<String> {
    run(cmd).ok()
}

/// An OVN chassis in a network namespace: `ovsdb-server`, `ovs-vswitchd` (userspace datapath) and
/// `ovn-controller`, with `br-int` (`datapath_type=netdev`, `fail-mode=secure`) and `br-phy`
/// owning the underlay link and carrying the geneve encap IP.
#[derive(Debug)]
pub struct OvnNode {
    // Drop order: controller, vswitchd, database, then the run folder.
    controller: Daemon,
    vswitchd: Daemon,
    ovsdb: OvsdbServer,
    system_id: String,
    netns: String,
    encap_ip: String,
    run: RunDir,
}

impl OvnNode {
    /// Starts a chassis named `system_id` in `netns`; `underlay_link` (already in the namespace)
    /// joins `br-phy`, which gets `underlay_cidr` (e.g. `198.18.0.1/24`) as the encap address.
    /// Returns when the chassis is registered in the southbound database.
    pub fn start(
        dir: &TestDir,
        netns: &Netns,
        system_id: &str,
        underlay_link: &str,
        underlay_cidr: &str,
        central: &OvnCentral,
    ) -> Result<Self> {
        let run_parent = std::env::temp_dir();
        let link = (underlay_link, underlay_cidr);
        Self::start_in(dir, netns, system_id, link, central, &run_parent)
    }

    /// As [`OvnNode::start`] (`underlay` is the link and its CIDR), with the run folder under
    /// `run_parent` (short: socket paths).
    pub fn start_in(
        dir: &TestDir,
        netns: &Netns,
        system_id: &str,
        underlay: (&str, &str),
        central: &OvnCentral,
        run_parent: &Path,
    ) -> Result<Self> {
        let (underlay_link, underlay_cidr) = underlay;
        let run = RunDir::new_in(run_parent, "novn")?;
        let ns = netns.name();
        let ovsdb = OvsdbServer::start(
            "conf",
            Path::new(VSWITCH_SCHEMA),
            run.path(),
            Some(ns),
            &dir.log(&format!("{system_id}-ovsdb")),
        )?;
        let db = ovsdb.remote();
        let vsctl = |args: &[&str]| -> Result<String> { run_vsctl(ns, run.path(), &db, args) };
        vsctl(&["--no-wait", "init"])?;

        let ctl = run.join("vswitchd.ctl");
        let mut cmd = daemon_command("ovs-vswitchd", Some(ns), run.path());
        cmd.arg(&db)
            .arg(format!("--unixctl={}", ctl.display()))
            .arg(format!("--pidfile={}", run.join("vswitchd.pid").display()))
            .args(["-vconsole:info", "-vsyslog:off"]);
        let mut vswitchd = Daemon::spawn(
            format!("ovs-vswitchd {system_id}"),
            cmd,
            &dir.log(&format!("{system_id}-vswitchd")),
        )?;
        vswitchd.wait_ready(READY, || socket_connectable(&ctl))?;

        let encap_ip = underlay_cidr
            .split('/')
            .next()
            .unwrap_or(underlay_cidr)
            .to_owned();
        vsctl(&[
            "add-br",
            "br-phy",
            "--",
            "set",
            "bridge",
            "br-phy",
            "datapath_type=netdev",
        ])?;
        vsctl(&["add-port", "br-phy", underlay_link])?;
        netns.ip(&["link", "set", underlay_link, "up"])?;
        netns.add_addr("br-phy", underlay_cidr)?;
        vsctl(&[
            "set",
            "open",
            ".",
            &format!("external_ids:ovn-remote={}", central.sb_remote()),
            "external_ids:ovn-encap-type=geneve",
            &format!("external_ids:ovn-encap-ip={encap_ip}"),
            &format!("external_ids:system-id={system_id}"),
            "external_ids:ovn-bridge-datapath-type=netdev",
        ])?;
        vsctl(&[
            "add-br",
            "br-int",
            "--",
            "set",
            "bridge",
            "br-int",
            "datapath_type=netdev",
            "fail-mode=secure",
        ])?;

        let mut cmd = daemon_command("ovn-controller", Some(ns), run.path());
        // ovn-controller 23.03 has no --unixctl: its control socket is
        // `$OVN_RUNDIR/ovn-controller.<pid>.ctl`, in the node's run folder.
        cmd.arg(&db)
            .arg(format!(
                "--pidfile={}",
                run.join("ovn-controller.pid").display()
            ))
            .args(["-vconsole:info", "-vsyslog:off"]);
        let mut controller = Daemon::spawn(
            format!("ovn-controller {system_id}"),
            cmd,
            &dir.log(&format!("{system_id}-ovn-controller")),
        )?;
        controller.wait_ready(READY, || {
            central
                .sbctl(&[
                    "--bare",
                    "--columns=name",
                    "find",
                    "Chassis",
                    &format!("name={system_id}"),
                ])
                .is_ok_and(|s| s.trim() == system_id)
        })?;
        Ok(Self {
            controller,
            vswitchd,
            ovsdb,
            system_id: system_id.to_owned(),
            netns: ns.to_owned(),
            encap_ip,
            run,
        })
    }

    /// The chassis name (`external_ids:system-id`).
    pub fn system_id(&self) -> &str {
        &self.system_id
    }

    /// The node's namespace name.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The geneve encap address.
    pub fn encap_ip(&self) -> &str {
        &self.encap_ip
    }

    /// The node's Open_vSwitch database socket.
    pub fn db_socket(&self) -> &Path {
        self.ovsdb.socket()
    }

    /// `unix:<db socket>`.
    pub fn db_remote(&self) -> String {
        self.ovsdb.remote()
    }

    /// The node's Open vSwitch database server.
    pub fn ovsdb_server(&self) -> &OvsdbServer {
        &self.ovsdb
    }

    /// The run folder shared by the node's daemons.
    pub fn run_dir(&self) -> &Path {
        self.run.path()
    }

    /// `ovs-vsctl` against this node's database, inside its namespace.
    pub fn vsctl(&self, args: &[&str]) -> Result<String> {
        run_vsctl(&self.netns, self.run.path(), &self.ovsdb.remote(), args)
    }

    /// True while all three daemons run.
    pub fn is_running(&mut self) -> bool {
        self.controller.is_running() && self.vswitchd.is_running() && self.ovsdb.is_running()
    }
}

fn run_vsctl(ns: &str, rundir: &Path, db: &str, args: &[&str]) -> Result<String> {
    let mut cmd = daemon_command("ovs-vsctl", Some(ns), rundir);
    cmd.arg(format!("--db={db}")).arg("--timeout=20").args(args);
    run(&mut cmd)
}

/// A pod's second NIC as Nauti plumbs it, made with `ip`/`ethtool`: a veth from the node's
/// namespace (`host_if`) into the pod's (`eth-nauti`), with MAC, address, [`POD_MTU`] and TX
/// checksum offload off on the pod side (needed on the userspace datapath).
pub fn plumb_pod_nic(
    node: &Netns,
    pod: &Netns,
    host_if: &str,
    mac: &str,
    cidr: &str,
) -> Result<()> {
    node.ip(&[
        "link",
        "add",
        host_if,
        "type",
        "veth",
        "peer",
        "name",
        "eth-nauti",
        "netns",
        pod.name(),
    ])?;
    let mtu = POD_MTU.to_string();
    pod.ip(&["link", "set", "eth-nauti", "mtu", &mtu])?;
    pod.ip(&["link", "set", "eth-nauti", "address", mac])?;
    pod.add_addr("eth-nauti", cidr)?;
    pod.exec("ethtool", &["-K", "eth-nauti", "tx", "off"])?;
    node.ip(&["link", "set", host_if, "mtu", &mtu])?;
    node.ip(&["link", "set", host_if, "up"])?;
    Ok(())
}
