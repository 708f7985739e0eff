//! The `nauti.io/*` annotations: the contract between `nauti-nri` (which writes them on a pod
//! after plumbing its second NIC) and everything that reads them (`nautictl show`, the MCS
//! EndpointSlice controller, tests).
//!
//! Annotation values are strings, so the formats are fixed here once: bare IPs, canonical
//! CIDRs, `0a:58:..` MACs, `"true"`/`"false"`, and a compact JSON list for routes. Parsing is
//! strict and every error names the key and the value, because a pod annotation may have been
//! edited by hand and the reader has to say which one is wrong.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::mac::MacAddr;
use super::net::{IpFamily, parse_canonical_cidr};

/// Annotation keys, exactly as they appear on objects.
pub mod keys {
    /// Prefix shared by every Nauti annotation.
    pub const PREFIX: &str = "nauti.io/";
    /// The pod's global IP, bare (no prefix length).
    pub const IP_ADDRESS: &str = "nauti.io/ip_address";
    /// The MAC of the pod's `eth-nauti`.
    pub const MAC_ADDRESS: &str = "nauti.io/mac_address";
    /// The cluster subnet the IP belongs to, as a canonical CIDR.
    pub const CIDR: &str = "nauti.io/cidr";
    /// The subnet's gateway (the CNF pod), bare.
    pub const GATEWAY: &str = "nauti.io/gateway";
    /// The OVN logical switch the pod's port lives on.
    pub const LOGICAL_SWITCH: &str = "nauti.io/logical_switch";
    /// How the NIC is plumbed; `veth-pair` today.
    pub const POD_NIC_TYPE: &str = "nauti.io/pod_nic_type";
    /// JSON `[{"dst":"<cidr>","gw":"<ip>"}]`: routes installed in the pod.
    pub const ROUTES: &str = "nauti.io/routes";
    /// `"true"` once the address is held for the pod.
    pub const ALLOCATED: &str = "nauti.io/allocated";
    /// Pod opt-out: `"false"` keeps Nauti away from the pod. Written by users, never by Nauti.
    pub const ENABLED: &str = "nauti.io/enabled";
    /// `"true"` on a CNF (gateway) pod: it forwards packets of other clusters, so its port has no
    /// port security. Honoured only in the namespaces `nauti-nri` trusts with it.
    pub const FORWARDER: &str = "nauti.io/forwarder";
    /// On a Node: the canonical CIDR of the node's address block, written by `nauti-ovnmaster`.
    pub const NODE_CIDR: &str = "nauti.io/node-cidr";

    /// The keys [`PodNetwork`](super::PodNetwork) reads and writes, in a stable order.
    pub const POD_NETWORK: [&str; 8] = [
        IP_ADDRESS,
        MAC_ADDRESS,
        CIDR,
        GATEWAY,
        LOGICAL_SWITCH,
        POD_NIC_TYPE,
        ROUTES,
        ALLOCATED,
    ];

    /// Every key Nauti itself writes, on pods and on nodes, for `nautictl clean` to strip.
    /// [`ENABLED`] is deliberately absent: it is the user's decision and survives a clean.
    pub const ALL: [&str; 9] = [
        IP_ADDRESS,
        MAC_ADDRESS,
        CIDR,
        GATEWAY,
        LOGICAL_SWITCH,
        POD_NIC_TYPE,
        ROUTES,
        ALLOCATED,
        NODE_CIDR,
    ];
}

/// A Nauti annotation that is missing or cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// A key that must be present is absent.
    #[error("annotation {key} is missing")]
    Missing {
        /// The absent key.
        key: &'static str,
    },
    /// The value does not have the documented format, or contradicts another annotation.
    #[error("annotation {key}={value:?}: {reason}")]
    Invalid {
        /// The offending key.
        key: &'static str,
        /// The value as found on the object.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl AnnotationError {
    fn invalid(key: &'static str, value: &str, reason: impl fmt::Display) -> Self {
        Self::Invalid {
            key,
            value: value.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// How the pod's second NIC is plumbed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum PodNicType {
    /// A veth pair whose host end is an OVS port on `br-int`.
    #[default]
    VethPair,
}

impl PodNicType {
    /// The annotation text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::VethPair => "veth-pair",
        }
    }
}

impl fmt::Display for PodNicType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PodNicType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "veth-pair" => Ok(Self::VethPair),
            _ => Err("unknown NIC type, expected \"veth-pair\"".to_owned()),
        }
    }
}

/// One route installed in the pod: traffic for `dst` goes to `gw` over `eth-nauti`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Route {
    /// Destination network, canonical.
    pub dst: IpNet,
    /// Next hop, a bare IP on the pod's subnet.
    pub gw: IpAddr,
}

/// Everything Nauti records on a pod about its second NIC, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodNetwork {
    /// The pod's address on the global network.
    pub ip_address: IpAddr,
    /// MAC of `eth-nauti`, normally `MacAddr::from_ip(ip_address)`.
    pub mac_address: MacAddr,
    /// The cluster subnet `ip_address` belongs to.
    pub cidr: IpNet,
    /// The subnet's gateway (the CNF pod's address).
    pub gateway: IpAddr,
    /// Name of the OVN logical switch holding the pod's port.
    pub logical_switch: String,
    /// How the NIC is plumbed.
    pub pod_nic_type: PodNicType,
    /// Routes installed in the pod, normally one for the global CIDR via the gateway.
    pub routes: Vec<Route>,
    /// Whether the address is currently held for the pod.
    pub allocated: bool,
}

impl PodNetwork {
    /// Reads the pod network from an annotation map, failing if any of its keys is absent.
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
    ) -> Result<Self, AnnotationError> {
        let get = |key: &'static str| {
            annotations
                .get(key)
                .map(String::as_str)
                .ok_or(AnnotationError::Missing { key })
        };

        let ip_address = parse_ip(keys::IP_ADDRESS, get(keys::IP_ADDRESS)?)?;
        let mac_raw = get(keys::MAC_ADDRESS)?;
        let mac_address: MacAddr = mac_raw.parse().map_err(|_| {
            AnnotationError::invalid(
                keys::MAC_ADDRESS,
                mac_raw,
                "not a MAC address like 0a:58:0a:70:00:05",
            )
        })?;
        let cidr_raw = get(keys::CIDR)?;
        let cidr = parse_canonical_cidr(cidr_raw)
            .map_err(|e| AnnotationError::invalid(keys::CIDR, cidr_raw, e))?;
        let gateway = parse_ip(keys::GATEWAY, get(keys::GATEWAY)?)?;
        let logical_switch = get(keys::LOGICAL_SWITCH)?;
        if logical_switch.is_empty() {
            return Err(AnnotationError::invalid(
                keys::LOGICAL_SWITCH,
                logical_switch,
                "must not be empty",
            ));
        }
        let nic_raw = get(keys::POD_NIC_TYPE)?;
        let pod_nic_type = nic_raw
            .parse()
            .map_err(|e| AnnotationError::invalid(keys::POD_NIC_TYPE, nic_raw, e))?;
        let routes = parse_routes(get(keys::ROUTES)?)?;
        let allocated = parse_bool(keys::ALLOCATED, get(keys::ALLOCATED)?)?;

        let this = Self {
            ip_address,
            mac_address,
            cidr,
            gateway,
            logical_switch: logical_switch.to_owned(),
            pod_nic_type,
            routes,
            allocated,
        };
        this.check_consistent()?;
        Ok(this)
    }

    /// Like [`from_annotations`](Self::from_annotations), but `Ok(None)` when the pod carries
    /// none of the pod-network keys (Nauti never touched it, or it opted out). A pod with only
    /// some of them is an error: a half-written record must not pass as "absent".
    pub fn try_from_annotations(
        annotations: &BTreeMap<String, String>,
    ) -> Result<Option<Self>, AnnotationError> {
        if keys::POD_NETWORK
            .iter()
            .any(|k| annotations.contains_key(*k))
        {
            Self::from_annotations(annotations).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Renders the record as annotations (all eight keys), ready for one merge patch.
    pub fn to_annotations(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        self.render_into(&mut out);
        out
    }

    /// Writes the eight keys into an existing map, replacing older values and leaving other
    /// keys alone.
    pub fn render_into(&self, annotations: &mut BTreeMap<String, String>) {
        let pairs = [
            (keys::IP_ADDRESS, self.ip_address.to_string()),
            (keys::MAC_ADDRESS, self.mac_address.to_string()),
            (keys::CIDR, self.cidr.to_string()),
            (keys::GATEWAY, self.gateway.to_string()),
            (keys::LOGICAL_SWITCH, self.logical_switch.clone()),
            (keys::POD_NIC_TYPE, self.pod_nic_type.to_string()),
            (keys::ROUTES, render_routes(&self.routes)),
            (keys::ALLOCATED, self.allocated.to_string()),
        ];
        for (key, value) in pairs {
            annotations.insert(key.to_owned(), value);
        }
    }

    /// The address with the subnet's prefix length, as it is configured on `eth-nauti`.
    pub fn interface_address(&self) -> IpNet {
        // The prefix length comes from a parsed IpNet of the same family (checked on parse and
        // by `check_consistent`), so construction cannot fail; fall back to a host route if a
        // hand-built value mixes families.
        IpNet::new(self.ip_address, self.cidr.prefix_len())
            .unwrap_or_else(|_| IpNet::from(self.ip_address))
    }

    /// Checks the relations between fields: the IP and the gateway lie in `cidr`, they differ,
    /// and every route's next hop is of the same family as the pod.
    pub fn check_consistent(&self) -> Result<(), AnnotationError> {
        if !self.cidr.contains(&self.ip_address) {
            return Err(AnnotationError::invalid(
                keys::IP_ADDRESS,
                &self.ip_address.to_string(),
                format_args!("not inside {}={}", keys::CIDR, self.cidr),
            ));
        }
        if !self.cidr.contains(&self.gateway) {
            return Err(AnnotationError::invalid(
                keys::GATEWAY,
                &self.gateway.to_string(),
                format_args!("not inside {}={}", keys::CIDR, self.cidr),
            ));
        }
        if self.gateway == self.ip_address {
            return Err(AnnotationError::invalid(
                keys::GATEWAY,
                &self.gateway.to_string(),
                format_args!("equals {}", keys::IP_ADDRESS),
            ));
        }
        let family = IpFamily::of_addr(&self.ip_address);
        if let Some(route) = self
            .routes
            .iter()
            .find(|r| IpFamily::of_addr(&r.gw) != family || IpFamily::of_net(&r.dst) != family)
        {
            return Err(AnnotationError::invalid(
                keys::ROUTES,
                &render_routes(&self.routes),
                format_args!(
                    "route {} via {} is not {family} like the pod address",
                    route.dst, route.gw
                ),
            ));
        }
        Ok(())
    }
}

fn parse_ip(key: &'static str, value: &str) -> Result<IpAddr, AnnotationError> {
    value
        .parse()
        .map_err(|_| AnnotationError::invalid(key, value, "not a bare IP address"))
}

fn parse_bool(key: &'static str, value: &str) -> Result<bool, AnnotationError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(AnnotationError::invalid(
            key,
            value,
            "must be \"true\" or \"false\"",
        )),
    }
}

fn parse_routes(value: &str) -> Result<Vec<Route>, AnnotationError> {
    let err = |reason: String| AnnotationError::invalid(keys::ROUTES, value, reason);
    let routes: Vec<Route> = serde_json::from_str(value).map_err(|e| {
        err(format!(
            "not a JSON list of {{\"dst\":\"<cidr>\",\"gw\":\"<ip>\"}}: {e}"
        ))
    })?;
    for route in &routes {
        super::net::ensure_canonical(route.dst)
            .map_err(|e| err(format!("dst {}: {e}", route.dst)))?;
    }
    Ok(routes)
}

/// Compact JSON with the keys in the documented order. Written by hand rather than through
/// serde so rendering cannot fail; addresses and networks never need escaping.
fn render_routes(routes: &[Route]) -> String {
    let items: Vec<String> = routes
        .iter()
        .map(|r| format!(r#"{{"dst":"{}","gw":"{}"}}"#, r.dst, r.gw))
        .collect();
    format!("[{}]", items.join(","))
}

/// Whether Nauti should give the pod a second NIC: yes unless it is annotated
/// `nauti.io/enabled: "false"`. Any value other than `"true"`/`"false"` is an error rather than
/// a guess, so a typo such as `"no"` is reported instead of silently plumbing the pod.
pub fn pod_enabled(annotations: &BTreeMap<String, String>) -> Result<bool, AnnotationError> {
    match annotations.get(keys::ENABLED) {
        None => Ok(true),
        Some(v) => parse_bool(keys::ENABLED, v),
    }
}

/// Whether the pod asks to forward other addresses' packets (`nauti.io/forwarder: "true"`).
/// Anything else, also a malformed value, keeps port security: the safe side.
pub fn pod_forwards(annotations: &BTreeMap<String, String>) -> bool {
    annotations.get(keys::FORWARDER).map(String::as_str) == Some("true")
}

/// The node's address block from its `nauti.io/node-cidr` annotation; `Ok(None)` while
/// `nauti-ovnmaster` has not assigned one yet.
pub fn node_cidr(annotations: &BTreeMap<String, String>) -> Result<Option<IpNet>, AnnotationError> {
    annotations
        .get(keys::NODE_CIDR)
        .map(|v| {
            parse_canonical_cidr(v).map_err(|e| AnnotationError::invalid(keys::NODE_CIDR, v, e))
        })
        .transpose()
}

#[cfg(test)]
mod tests;
