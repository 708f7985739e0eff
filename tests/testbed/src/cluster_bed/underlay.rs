//! The underlay: a "WAN" namespace with a bridge where the clusters meet, and per cluster a router
//! namespace holding the cluster's LAN (a bridge every node and the control plane plug into) and
//! its NAT towards the WAN (see [`plan::router_ruleset`]).

use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::{Error, IoContext, Result};
use crate::netns::Netns;

use super::plan::{self, ClusterPlan};

/// The WAN: one bridge, no address of its own; routers plug in.
#[derive(Debug)]
pub struct Wan {
    pub netns: Netns,
}

impl Wan {
    pub fn start(bed: &str) -> Result<Self> {
        let netns = Netns::new(&format!("{}wan-", plan::netns_prefix(bed)))?;
        netns.ip(&["link", "add", "br0", "type", "bridge"])?;
        netns.ip(&["link", "set", "br0", "up"])?;
        Ok(Self { netns })
    }
}

/// A cluster's router: `wan0` on the WAN with the cluster's public address, `lan0` the LAN bridge.
#[derive(Debug)]
pub struct Router {
    pub netns: Netns,
    plan: ClusterPlan,
    public: bool,
}

impl Router {
    pub fn start(
        bed: &str,
        cluster: &str,
        plan: ClusterPlan,
        wan: &Wan,
        public: bool,
    ) -> Result<Self> {
        let netns = Netns::new(&format!("{}{cluster}-rt-", plan::netns_prefix(bed)))?;
        let wan_port = format!("r{}", plan.index);
        netns.veth_to("wan0", &wan.netns, &wan_port)?;
        wan.netns.ip(&["link", "set", &wan_port, "master", "br0"])?;
        netns.add_addr("wan0", &format!("{}/24", plan.router_wan_ip()))?;
        netns.ip(&["link", "add", "lan0", "type", "bridge"])?;
        netns.add_addr("lan0", &format!("{}/24", plan.router_lan_ip()))?;
        netns.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
        let router = Self {
            netns,
            plan,
            public,
        };
        router.load_rules()?;
        Ok(router)
    }

    pub fn is_public(&self) -> bool {
        self.public
    }

    /// Opens (or closes) the LAN and the API port to new connections from the WAN.
    pub fn set_public(&mut self, public: bool) -> Result<()> {
        self.public = public;
        self.load_rules()
    }

    fn load_rules(&self) -> Result<()> {
        let rules = plan::router_ruleset(&self.plan, self.public);
        let mut child = self
            .netns
            .command("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .io_context(|| "spawn nft".into())?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(rules.as_bytes())
                .io_context(|| "write the router's rules to nft".into())?;
        }
        let output = child
            .wait_with_output()
            .io_context(|| "wait for nft".into())?;
        if !output.status.success() {
            return Err(Error::Other(format!(
                "nft in {}: {}\n{rules}",
                self.netns.name(),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(())
    }

    /// Plugs `other` into the LAN: `port` on the router's bridge, `inside` in `other`. TX checksum
    /// offload is off on both ends: a node's end joins a userspace OVS bridge (TESTBED.md).
    pub fn attach(&self, other: &Netns, port: &str, inside: &str) -> Result<()> {
        self.netns.veth_to(port, other, inside)?;
        self.netns.ip(&["link", "set", port, "master", "lan0"])?;
        self.netns.exec("ethtool", &["-K", port, "tx", "off"])?;
        other.exec("ethtool", &["-K", inside, "tx", "off"])?;
        Ok(())
    }

    /// `ip route replace <dst> via <via>` in the router.
    pub fn route(&self, dst: &str, via: &str) -> Result<()> {
        self.netns.ip(&["route", "replace", dst, "via", via])?;
        Ok(())
    }

    /// Removes a route if present.
    pub fn unroute(&self, dst: &str) {
        let _ = self.netns.ip(&["route", "del", dst]);
    }
}

/// `ip -n <ns> route replace <dst> via <via>`.
pub fn route(netns: &Netns, dst: &str, via: &str) -> Result<()> {
    netns.ip(&["route", "replace", dst, "via", via])?;
    Ok(())
}

/// A command run in `netns` with `nsenter --net` (the mount namespace stays the machine's, so
/// cgroup mounts and bind-mounted pod namespaces are visible, unlike with `ip netns exec`).
pub fn nsenter(netns: &Netns, program: &std::path::Path, bed: &str) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", netns.path().display()))
        .arg(program)
        .env(super::sweep::BED_ENV, bed);
    cmd
}
