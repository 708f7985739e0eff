//! The address plan of a bed: plain functions of a cluster's and a node's index, so every part of
//! the bed (and every test) derives the same addresses.
//!
//! - WAN `198.18.0.0/24`: the router of cluster `c` has `198.18.0.<10+c>`, its public address
//!   when the cluster is public.
//! - LAN of cluster `c`: `198.19.<c>.0/24`; router `.1`, control plane `.2`, node `n` `.<10+n>`.
//! - Pods of cluster `c`: `10.<32+c>.0.0/16`, node `n` gets `10.<32+c>.<n>.0/24`.
//! - Services of cluster `c`: `10.<96+c>.0.0/16`; `kubernetes` is `.0.1`, `kube-dns` `.0.10`.
//! - A cluster may take another's pod and service ranges instead ([`ClusterPlan::ranges`]),
//!   to show that clusters' own ranges may overlap.

/// The most clusters a bed holds (the service ranges must stay below the global `10.112.0.0/12`).
pub const MAX_CLUSTERS: u8 = 16;
/// The most nodes a cluster holds.
pub const MAX_NODES: u8 = 200;

/// The WAN subnet every router joins.
pub const WAN_CIDR: &str = "198.18.0.0/24";
/// The port kube-apiserver listens on in its control-plane namespace (and, for a public cluster,
/// on the router's public address).
pub const APISERVER_PORT: u16 = 6443;
/// The WireGuard port a public router forwards to its first node (where a gateway pod listens
/// on a `hostPort`), as a cloud load balancer in front of the hub's gateway would.
pub const WIREGUARD_PORT: u16 = 51820;
/// Index of a cluster's first node (`<cluster>-n0`).
pub const FIRST_NODE: u8 = 0;
/// The cluster's DNS domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// Addresses of one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterPlan {
    pub index: u8,
    /// Whose pod and service ranges the cluster takes: its own index, or another cluster's
    /// when the two overlap on purpose (they never meet: each is behind its own router).
    pub ranges: u8,
}

impl ClusterPlan {
    pub fn new(index: u8) -> Option<Self> {
        (index < MAX_CLUSTERS).then_some(Self {
            index,
            ranges: index,
        })
    }

    /// The plan of cluster `index` with the pod and service ranges of cluster `ranges`.
    pub fn with_ranges_of(self, ranges: u8) -> Option<Self> {
        (ranges < MAX_CLUSTERS).then_some(Self { ranges, ..self })
    }

    pub fn router_wan_ip(&self) -> String {
        format!("198.18.0.{}", 10 + u32::from(self.index))
    }

    pub fn lan_cidr(&self) -> String {
        format!("198.19.{}.0/24", self.index)
    }

    pub fn router_lan_ip(&self) -> String {
        format!("198.19.{}.1", self.index)
    }

    /// Where kube-apiserver, etcd, the controller-manager and the scheduler run.
    pub fn control_plane_ip(&self) -> String {
        format!("198.19.{}.2", self.index)
    }

    pub fn node_ip(&self, node: u8) -> String {
        format!("198.19.{}.{}", self.index, 10 + u32::from(node))
    }

    pub fn pod_cidr(&self) -> String {
        format!("10.{}.0.0/16", 32 + u32::from(self.ranges))
    }

    pub fn node_pod_cidr(&self, node: u8) -> String {
        format!("10.{}.{node}.0/24", 32 + u32::from(self.ranges))
    }

    pub fn service_cidr(&self) -> String {
        format!("10.{}.0.0/16", 96 + u32::from(self.ranges))
    }

    /// The ClusterIP of `default/kubernetes`.
    pub fn kubernetes_service_ip(&self) -> String {
        format!("10.{}.0.1", 96 + u32::from(self.ranges))
    }

    /// The ClusterIP of `kube-system/kube-dns`.
    pub fn dns_ip(&self) -> String {
        format!("10.{}.0.10", 96 + u32::from(self.ranges))
    }

    /// `https://<control plane>:6443`, as nodes and pods reach the API.
    pub fn apiserver_url(&self) -> String {
        format!("https://{}:{APISERVER_PORT}", self.control_plane_ip())
    }
}

/// The nftables ruleset of a cluster's router (loaded with `nft -f -` in the router namespace).
///
/// The LAN may go anywhere; from the WAN only answers come back, unless the cluster is public: then
/// its LAN takes new connections and the router's public address forwards the API port to the
/// control plane. A private cluster masquerades everything it sends to the WAN (it is behind NAT);
/// a public one masquerades only its pods, whose addresses the WAN does not route.
pub fn router_ruleset(plan: &ClusterPlan, public: bool) -> String {
    let lan = plan.lan_cidr();
    let pods = plan.pod_cidr();
    let wan_ip = plan.router_wan_ip();
    let cp = plan.control_plane_ip();
    let mut forward = vec![
        "ct state established,related accept".to_owned(),
        "iifname \"lan0\" accept".to_owned(),
    ];
    let mut prerouting = Vec::new();
    let mut postrouting = vec![format!("oifname \"wan0\" ip saddr {pods} masquerade")];
    if public {
        forward.push(format!("iifname \"wan0\" ip daddr {lan} accept"));
        prerouting.push(format!(
            "iifname \"wan0\" ip daddr {wan_ip} tcp dport {APISERVER_PORT} dnat to {cp}:{APISERVER_PORT}"
        ));
        prerouting.push(format!(
            "iifname \"wan0\" ip daddr {wan_ip} udp dport {WIREGUARD_PORT} dnat to {}:{WIREGUARD_PORT}",
            plan.node_ip(FIRST_NODE)
        ));
    } else {
        postrouting.push("oifname \"wan0\" masquerade".to_owned());
    }
    let block = |rules: &[String]| {
        rules
            .iter()
            .map(|r| format!("    {r}\n"))
            .collect::<String>()
    };
    format!(
        "flush ruleset\n\
         table ip nauti_router {{\n\
         \x20 chain forward {{\n    type filter hook forward priority 0; policy drop;\n{}  }}\n\
         \x20 chain prerouting {{\n    type nat hook prerouting priority -100; policy accept;\n{}  }}\n\
         \x20 chain postrouting {{\n    type nat hook postrouting priority 100; policy accept;\n{}  }}\n\
         }}\n",
        block(&forward),
        block(&prerouting),
        block(&postrouting),
    )
}

/// A cgroup name of a node, unique to the bed: `nauti-<bed>-<cluster>-<node>`.
pub fn cgroup_name(bed: &str, cluster: &str, node: &str) -> String {
    format!("{}{cluster}-{node}", cgroup_prefix(bed))
}

/// The prefix of every cgroup a bed creates (what the sweeper looks for).
pub fn cgroup_prefix(bed: &str) -> String {
    format!("nauti-{bed}-")
}

/// The prefix of every network namespace a bed creates.
pub fn netns_prefix(bed: &str) -> String {
    format!("{bed}-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_a_cluster_and_its_nodes() {
        let plan = ClusterPlan::new(2).unwrap();
        assert_eq!(plan.router_wan_ip(), "198.18.0.12");
        assert_eq!(plan.lan_cidr(), "198.19.2.0/24");
        assert_eq!(plan.control_plane_ip(), "198.19.2.2");
        assert_eq!(plan.node_ip(1), "198.19.2.11");
        assert_eq!(plan.node_pod_cidr(1), "10.34.1.0/24");
        assert_eq!(plan.dns_ip(), "10.98.0.10");
        assert_eq!(plan.apiserver_url(), "https://198.19.2.2:6443");
    }

    #[test]
    fn a_cluster_may_take_another_ones_pod_and_service_ranges() {
        let plan = ClusterPlan::new(2).unwrap().with_ranges_of(1).unwrap();
        assert_eq!(plan.node_ip(0), "198.19.2.10");
        assert_eq!(plan.pod_cidr(), "10.33.0.0/16");
        assert_eq!(plan.node_pod_cidr(0), "10.33.0.0/24");
        assert_eq!(plan.service_cidr(), "10.97.0.0/16");
        assert_eq!(plan.dns_ip(), "10.97.0.10");
        assert!(plan.with_ranges_of(MAX_CLUSTERS).is_none());
    }

    #[test]
    fn service_ranges_stay_below_the_global_network() {
        assert!(ClusterPlan::new(MAX_CLUSTERS).is_none());
        let last = ClusterPlan::new(MAX_CLUSTERS - 1).unwrap();
        assert_eq!(last.service_cidr(), "10.111.0.0/16");
    }

    #[test]
    fn a_private_router_masquerades_and_takes_no_new_connections() {
        let rules = router_ruleset(&ClusterPlan::new(1).unwrap(), false);
        assert!(rules.contains("oifname \"wan0\" masquerade"));
        assert!(!rules.contains("iifname \"wan0\" ip daddr"));
        assert!(!rules.contains("dnat"));
        assert!(rules.contains("policy drop"));
    }

    #[test]
    fn a_public_router_forwards_to_its_lan_and_the_api() {
        let rules = router_ruleset(&ClusterPlan::new(0).unwrap(), true);
        assert!(rules.contains("iifname \"wan0\" ip daddr 198.19.0.0/24 accept"));
        assert!(rules.contains("dnat to 198.19.0.2:6443"));
        assert!(rules.contains("udp dport 51820 dnat to 198.19.0.10:51820"));
        assert!(!rules.contains("oifname \"wan0\" masquerade\n"));
        assert!(rules.contains("ip saddr 10.32.0.0/16 masquerade"));
    }
}
