//! The network configuration on stdin, in host-local's shape plus Nauti's `exclude`.
//!
//! Accepted (every field of host-local, so `"type": "host-local"` can become
//! `"type": "nauti-ipam"` with nothing else changed):
//!
//! ```json
//! { "cniVersion": "1.1.0", "name": "pods",
//!   "ipam": { "type": "nauti-ipam",
//!             "ranges": [[{"subnet": "10.112.1.0/24", "rangeStart": "10.112.1.10",
//!                          "rangeEnd": "10.112.1.200", "gateway": "10.112.1.1"}]],
//!             "subnet": "...", "rangeStart": "...", "rangeEnd": "...", "gateway": "...",
//!             "routes": [{"dst": "0.0.0.0/0", "gw": "10.112.1.1"}],
//!             "dataDir": "/var/lib/cni/networks", "resolvConf": "/etc/resolv.conf",
//!             "exclude": ["10.112.1.100", "10.112.1.128/28"] },
//!   "args": {"cni": {"ips": ["10.112.1.50"]}},
//!   "runtimeConfig": {"ips": ["10.112.1.50/24"], "ipRanges": [[{"subnet": "..."}]]} }
//! ```
//!
//! Gateway rule: a gateway must be a usable address of its subnet (not the network or broadcast
//! address, not outside); one that falls between `rangeStart` and `rangeEnd` is accepted and never
//! handed out, exactly as host-local does. Unknown fields are ignored, as in host-local.
//!
//! Nauti's own field: `exclude` (addresses or CIDRs never handed out).
//!
//! The parser works on a `serde_json::Value` by hand so that every error names the JSON path of
//! the bad field.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde_json::{Map, Value};

use super::error::CniError;
use super::version::CniVersion;
use crate::core::{RangeSetPool, RangeSpec};
use crate::store::DEFAULT_DATA_DIR;

/// The parsed configuration.
#[derive(Debug, Clone)]
pub struct NetConf {
    /// `cniVersion` (0.1.0 when absent, as libcni assumes).
    pub cni_version: CniVersion,
    /// `name`: the network, and the folder under `dataDir`.
    pub name: String,
    /// The `ipam` section.
    pub ipam: IpamConf,
    /// Addresses asked for in `args.cni.ips` and `runtimeConfig.ips`.
    pub requested_ips: Vec<IpAddr>,
    /// `prevResult.ips[].address` (CHECK).
    pub prev_result_ips: Option<Vec<IpAddr>>,
    /// `cni.dev/valid-attachments` as (containerID, ifname) (GC).
    pub valid_attachments: Option<Vec<(String, String)>>,
}

/// The `ipam` section, validated.
#[derive(Debug, Clone)]
pub struct IpamConf {
    /// One entry per range set; each yields one address.
    pub range_sets: Vec<Vec<RangeSpec>>,
    /// `routes`, passed through to the result (each has a valid `dst`).
    pub routes: Vec<Map<String, Value>>,
    /// `dataDir`.
    pub data_dir: PathBuf,
    /// `resolvConf`.
    pub resolv_conf: Option<PathBuf>,
}

impl IpamConf {
    /// Allocators for the range sets (empty of allocations).
    pub fn pools(&self) -> Vec<RangeSetPool> {
        // Validated in `parse`; an error here cannot happen, but is not worth a panic either.
        self.range_sets
            .iter()
            .filter_map(|set| RangeSetPool::new(set.clone()).ok())
            .collect()
    }
}

/// Reads the `cniVersion` alone (for VERSION and for the version of an error object).
pub fn peek_version(stdin: &[u8]) -> Option<String> {
    version_of(&decode(stdin).ok()?).map(str::to_owned)
}

/// The `cniVersion` of decoded stdin, if it is a string.
pub fn version_of(root: &Value) -> Option<&str> {
    root.get("cniVersion")?.as_str()
}

/// Decodes stdin as JSON, without validating anything else.
pub fn decode(stdin: &[u8]) -> Result<Value, CniError> {
    serde_json::from_slice(stdin).map_err(|e| CniError::Decode {
        what: "network configuration on stdin",
        reason: e.to_string(),
    })
}

/// Parses and validates stdin.
pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
    from_value(&decode(stdin)?)
}

/// Validates stdin already decoded by [`decode`].
pub fn from_value(root: &Value) -> Result<NetConf, CniError> {
    let root = root.as_object().ok_or_else(|| CniError::Decode {
        what: "network configuration on stdin",
        reason: "not a JSON object".into(),
    })?;
    let cni_version = match root.get("cniVersion") {
        None | Some(Value::Null) => CniVersion::V0_1_0,
        Some(Value::String(s)) if s.is_empty() => CniVersion::V0_1_0,
        Some(Value::String(s)) => {
            CniVersion::parse(s).ok_or_else(|| CniError::IncompatibleVersion {
                version: s.clone(),
                reason: format!(
                    "cniVersion {s:?} is not supported (supported: {})",
                    super::version::SUPPORTED.map(|v| v.as_str()).join(", ")
                ),
            })?
        }
        Some(other) => {
            return Err(CniError::config(
                "cniVersion",
                format!("must be a string, not {other}"),
            ));
        }
    };
    let name = match root.get("name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        None | Some(Value::Null) => return Err(CniError::config("name", "missing network name")),
        Some(other) => {
            return Err(CniError::config(
                "name",
                format!("must be a non-empty string, not {other}"),
            ));
        }
    };
    super::env::validate_network_name(&name).map_err(|r| CniError::config("name", r))?;
    let ipam = match root.get("ipam") {
        Some(Value::Object(m)) => m,
        None | Some(Value::Null) => {
            return Err(CniError::config(
                "ipam",
                "missing: the IPAM configuration is required",
            ));
        }
        Some(other) => {
            return Err(CniError::config(
                "ipam",
                format!("must be an object, not {other}"),
            ));
        }
    };
    let runtime = optional_object(root, "runtimeConfig", "runtimeConfig")?;

    // Range sets: runtimeConfig.ipRanges first, then the legacy single range, then ipam.ranges
    // (host-local's order).
    let mut set_paths: Vec<Vec<(String, &Map<String, Value>)>> = Vec::new();
    if let Some(v) = runtime.and_then(|rt| rt.get("ipRanges")) {
        collect_sets(v, "runtimeConfig.ipRanges", &mut set_paths)?;
    }
    let legacy = matches!(ipam.get("subnet"), Some(Value::String(s)) if !s.is_empty());
    if legacy {
        set_paths.push(vec![("ipam".to_owned(), ipam)]);
    }
    if let Some(v) = ipam.get("ranges") {
        collect_sets(v, "ipam.ranges", &mut set_paths)?;
    }
    if set_paths.is_empty() {
        return Err(CniError::config(
            "ipam.ranges",
            "no IP ranges specified (set ipam.ranges or ipam.subnet)",
        ));
    }
    let exclude = parse_exclude(ipam.get("exclude"))?;

    let mut range_sets = Vec::with_capacity(set_paths.len());
    let mut pools: Vec<(String, RangeSetPool)> = Vec::new();
    for (i, set) in set_paths.iter().enumerate() {
        let mut specs = Vec::with_capacity(set.len());
        for (path, obj) in set {
            specs.push(parse_range(path, obj, &exclude)?);
        }
        let set_path = set.first().map(|(p, _)| p.clone()).unwrap_or_default();
        let pool = RangeSetPool::new(specs.clone())
            .map_err(|e| CniError::config(format!("range set {i} ({set_path})"), e.to_string()))?;
        for (j, (other_path, other)) in pools.iter().enumerate() {
            if pool.overlaps(other) {
                return Err(CniError::config(
                    format!("range set {i} ({set_path})"),
                    format!("overlaps range set {j} ({other_path})"),
                ));
            }
        }
        pools.push((set_path, pool));
        range_sets.push(specs);
    }
    if cni_version.legacy_result() {
        let v4 = range_sets
            .iter()
            .filter(|s| {
                s.first()
                    .is_some_and(|r| r.family() == crate::core::Family::V4)
            })
            .count();
        let v6 = range_sets.len() - v4;
        if v4 > 1 || v6 > 1 {
            return Err(CniError::IncompatibleVersion {
                version: cni_version.to_string(),
                reason: format!(
                    "CNI version {cni_version} does not support more than one address per family"
                ),
            });
        }
    }

    let routes = parse_routes(ipam.get("routes"))?;
    let data_dir = match ipam.get("dataDir") {
        None | Some(Value::Null) => PathBuf::from(DEFAULT_DATA_DIR),
        Some(Value::String(s)) if s.is_empty() => PathBuf::from(DEFAULT_DATA_DIR),
        Some(Value::String(s)) => PathBuf::from(s),
        Some(other) => {
            return Err(CniError::config(
                "ipam.dataDir",
                format!("must be a string, not {other}"),
            ));
        }
    };
    let resolv_conf = match ipam.get("resolvConf") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(PathBuf::from(s)),
        Some(other) => {
            return Err(CniError::config(
                "ipam.resolvConf",
                format!("must be a string, not {other}"),
            ));
        }
    };

    let mut requested_ips = Vec::new();
    if let Some(args) = optional_object(root, "args", "args")?
        && let Some(cni) = optional_object(args, "cni", "args.cni")?
    {
        parse_ip_list(cni.get("ips"), "args.cni.ips", &mut requested_ips)?;
    }
    if let Some(rt) = runtime {
        parse_ip_list(rt.get("ips"), "runtimeConfig.ips", &mut requested_ips)?;
    }

    let prev_result_ips = parse_prev_result(root.get("prevResult"))?;
    let valid_attachments = parse_valid_attachments(root.get("cni.dev/valid-attachments"))?;

    Ok(NetConf {
        cni_version,
        name,
        ipam: IpamConf {
            range_sets,
            routes,
            data_dir,
            resolv_conf,
        },
        requested_ips,
        prev_result_ips,
        valid_attachments,
    })
}

fn optional_object<'a>(
    m: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, CniError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(other) => Err(CniError::config(
            path,
            format!("must be an object, not {other}"),
        )),
    }
}

fn collect_sets<'a>(
    v: &'a Value,
    path: &str,
    out: &mut Vec<Vec<(String, &'a Map<String, Value>)>>,
) -> Result<(), CniError> {
    let sets = match v {
        Value::Null => return Ok(()),
        Value::Array(a) => a,
        other => {
            return Err(CniError::config(
                path,
                format!("must be a list of range sets, not {other}"),
            ));
        }
    };
    for (i, set) in sets.iter().enumerate() {
        let ranges = set
            .as_array()
            .ok_or_else(|| CniError::config(format!("{path}[{i}]"), "must be a list of ranges"))?;
        if ranges.is_empty() {
            return Err(CniError::config(format!("{path}[{i}]"), "empty range set"));
        }
        let mut set_out = Vec::with_capacity(ranges.len());
        for (j, r) in ranges.iter().enumerate() {
            let obj = r.as_object().ok_or_else(|| {
                CniError::config(
                    format!("{path}[{i}][{j}]"),
                    "must be an object with a subnet",
                )
            })?;
            set_out.push((format!("{path}[{i}][{j}]"), obj));
        }
        out.push(set_out);
    }
    Ok(())
}

fn get_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, CniError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(CniError::config(
            format!("{path}.{key}"),
            format!("must be a string, not {other}"),
        )),
    }
}

fn parse_ip_field(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<IpAddr>, CniError> {
    get_str(obj, key, path)?
        .map(|s| {
            s.parse::<IpAddr>()
                .map(|ip| ip.to_canonical())
                .map_err(|_| {
                    CniError::config(
                        format!("{path}.{key}"),
                        format!("{s:?} is not an IP address"),
                    )
                })
        })
        .transpose()
}

fn parse_range(
    path: &str,
    obj: &Map<String, Value>,
    exclude: &[IpNet],
) -> Result<RangeSpec, CniError> {
    let subnet_s = get_str(obj, "subnet", path)?
        .ok_or_else(|| CniError::config(format!("{path}.subnet"), "missing"))?;
    let subnet: IpNet = subnet_s.parse().map_err(|_| {
        CniError::config(
            format!("{path}.subnet"),
            format!("{subnet_s:?} is not a CIDR subnet (e.g. 10.112.1.0/24)"),
        )
    })?;
    let start = parse_ip_field(obj, "rangeStart", path)?;
    let end = parse_ip_field(obj, "rangeEnd", path)?;
    // host-local's default gateway: the first address after the network address, when the
    // subnet has one (a /32 or /128 has none and is rejected below as too small).
    let gateway = match parse_ip_field(obj, "gateway", path)? {
        Some(gw) => Some(gw),
        None => {
            let (first, last) = crate::core::addr::net_bounds(&subnet);
            (first < last).then(|| {
                crate::core::addr::from_bits(crate::core::Family::of_net(&subnet), first + 1)
            })
        }
    };
    let spec = RangeSpec::new(subnet, start, end, gateway).map_err(|e| {
        use crate::core::RangeError as R;
        let field = match &e {
            R::FamilyMismatch { field, .. } | R::OutsideSubnet { field, .. } => {
                format!("{path}.{field}")
            }
            R::EndBeforeStart { .. } => format!("{path}.rangeEnd"),
            R::GatewayNotUsable { .. } => format!("{path}.gateway"),
            _ => format!("{path}.subnet"),
        };
        CniError::config(field, e.to_string())
    })?;
    let family = spec.family();
    spec.with_exclusions(
        exclude
            .iter()
            .copied()
            .filter(|n| crate::core::Family::of_net(n) == family),
    )
    .map_err(|e| CniError::config("ipam.exclude", e.to_string()))
}

fn parse_exclude(v: Option<&Value>) -> Result<Vec<IpNet>, CniError> {
    let list = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(CniError::config(
                "ipam.exclude",
                format!("must be a list of addresses or CIDRs, not {other}"),
            ));
        }
    };
    list.iter()
        .enumerate()
        .map(|(i, e)| {
            let s = e.as_str().ok_or_else(|| {
                CniError::config(format!("ipam.exclude[{i}]"), "must be a string")
            })?;
            parse_ip_or_cidr(s)
                .map(|(ip, len)| match len {
                    Some(len) => IpNet::new(ip, len)
                        .map(|n| n.trunc())
                        .unwrap_or(IpNet::from(ip)),
                    None => IpNet::from(ip),
                })
                .ok_or_else(|| {
                    CniError::config(
                        format!("ipam.exclude[{i}]"),
                        format!("{s:?} is not an address or CIDR"),
                    )
                })
        })
        .collect()
}

/// `10.0.0.5` or `10.0.0.5/24` (host-local's `ip.IP` accepts both).
fn parse_ip_or_cidr(s: &str) -> Option<(IpAddr, Option<u8>)> {
    match s.split_once('/') {
        Some(_) => s
            .parse::<IpNet>()
            .ok()
            .map(|n| (n.addr().to_canonical(), Some(n.prefix_len()))),
        None => s.parse::<IpAddr>().ok().map(|ip| (ip.to_canonical(), None)),
    }
}

fn parse_ip_list(v: Option<&Value>, path: &str, out: &mut Vec<IpAddr>) -> Result<(), CniError> {
    let list = match v {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(CniError::config(
                path,
                format!("must be a list of addresses, not {other}"),
            ));
        }
    };
    for (i, e) in list.iter().enumerate() {
        let ip = e.as_str().and_then(parse_ip_or_cidr).ok_or_else(|| {
            CniError::config(format!("{path}[{i}]"), format!("{e} is not an IP address"))
        })?;
        out.push(ip.0);
    }
    Ok(())
}

fn parse_routes(v: Option<&Value>) -> Result<Vec<Map<String, Value>>, CniError> {
    let list = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(CniError::config(
                "ipam.routes",
                format!("must be a list, not {other}"),
            ));
        }
    };
    let mut routes = Vec::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        let path = format!("ipam.routes[{i}]");
        let obj = r
            .as_object()
            .ok_or_else(|| CniError::config(&path, "must be an object with dst"))?;
        let dst = get_str(obj, "dst", &path)?
            .ok_or_else(|| CniError::config(format!("{path}.dst"), "missing"))?;
        let dst_net: IpNet = dst.parse().map_err(|_| {
            CniError::config(format!("{path}.dst"), format!("{dst:?} is not a CIDR"))
        })?;
        if let Some(gw) = parse_ip_field(obj, "gw", &path)?
            && gw.is_ipv4() != dst_net.addr().is_ipv4()
        {
            return Err(CniError::config(
                format!("{path}.gw"),
                format!("{gw} is not of the family of {dst}"),
            ));
        }
        routes.push(obj.clone());
    }
    Ok(routes)
}

fn parse_prev_result(v: Option<&Value>) -> Result<Option<Vec<IpAddr>>, CniError> {
    let obj = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(other) => {
            return Err(CniError::config(
                "prevResult",
                format!("must be an object, not {other}"),
            ));
        }
    };
    let mut ips = Vec::new();
    if let Some(list) = obj.get("ips").and_then(Value::as_array) {
        for (i, e) in list.iter().enumerate() {
            let addr = e.get("address").and_then(Value::as_str).ok_or_else(|| {
                CniError::config(format!("prevResult.ips[{i}].address"), "missing")
            })?;
            let (ip, _) = parse_ip_or_cidr(addr).ok_or_else(|| {
                CniError::config(
                    format!("prevResult.ips[{i}].address"),
                    format!("{addr:?} is not a CIDR address"),
                )
            })?;
            ips.push(ip);
        }
    }
    Ok(Some(ips))
}

fn parse_valid_attachments(v: Option<&Value>) -> Result<Option<Vec<(String, String)>>, CniError> {
    let key = "cni.dev/valid-attachments";
    let list = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(CniError::config(
                key,
                format!("must be a list, not {other}"),
            ));
        }
    };
    list.iter()
        .enumerate()
        .map(|(i, e)| {
            let cid = e.get("containerID").and_then(Value::as_str);
            let ifname = e.get("ifname").and_then(Value::as_str);
            match (cid, ifname) {
                (Some(c), Some(f)) => Ok((c.to_owned(), f.to_owned())),
                _ => Err(CniError::config(
                    format!("{key}[{i}]"),
                    "needs string containerID and ifname",
                )),
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests;
