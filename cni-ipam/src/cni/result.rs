//! The IPAM result, shaped for the requested version.
//!
//! - 1.0.0, 1.1.0: `{"cniVersion","ips":[{"address","gateway"}],"routes","dns"}`
//! - 0.3.0, 0.3.1, 0.4.0: the same, with `"version": "4"|"6"` in each `ips` entry
//! - 0.1.0, 0.2.0: `{"cniVersion","ip4":{"ip","gateway","routes"},"ip6":{...},"dns"}`
//!
//! As a delegated (IPAM) plugin we omit `interfaces` and the `interface` index of `ips`.

use std::net::IpAddr;
use std::path::Path;

use serde_json::{Map, Value, json};

use super::error::CniError;
use super::version::CniVersion;
use crate::core::Lease;

/// DNS settings read from `resolvConf`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dns {
    /// `nameserver` lines.
    pub nameservers: Vec<String>,
    /// `domain`.
    pub domain: Option<String>,
    /// `search`.
    pub search: Vec<String>,
    /// `options`.
    pub options: Vec<String>,
}

impl Dns {
    /// Parses resolv.conf text (the same subset as host-local).
    pub fn parse(text: &str) -> Self {
        let mut dns = Self::default();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => dns.nameservers.extend(words.next().map(str::to_owned)),
                Some("domain") => dns.domain = words.next().map(str::to_owned),
                Some("search") => dns.search = words.map(str::to_owned).collect(),
                Some("options") => dns.options.extend(words.map(str::to_owned)),
                _ => {}
            }
        }
        dns
    }

    /// Reads and parses a resolv.conf file.
    pub fn read(path: &Path) -> Result<Self, CniError> {
        std::fs::read_to_string(path)
            .map(|t| Self::parse(&t))
            .map_err(|source| CniError::Io {
                context: format!("reading ipam.resolvConf {}", path.display()),
                source,
            })
    }

    fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        if !self.nameservers.is_empty() {
            m.insert("nameservers".into(), json!(self.nameservers));
        }
        if let Some(d) = &self.domain {
            m.insert("domain".into(), json!(d));
        }
        if !self.search.is_empty() {
            m.insert("search".into(), json!(self.search));
        }
        if !self.options.is_empty() {
            m.insert("options".into(), json!(self.options));
        }
        Value::Object(m)
    }
}

/// Renders an ADD result.
pub fn render(
    version: CniVersion,
    leases: &[Lease],
    routes: &[Map<String, Value>],
    dns: &Dns,
) -> Value {
    let mut out = Map::new();
    out.insert("cniVersion".into(), json!(version.as_str()));
    if version.legacy_result() {
        for (key, v4) in [("ip4", true), ("ip6", false)] {
            if let Some(lease) = leases.iter().find(|l| l.address.is_ipv4() == v4) {
                let mut ip = Map::new();
                ip.insert("ip".into(), json!(lease.ipnet().to_string()));
                if let Some(gw) = lease.gateway {
                    ip.insert("gateway".into(), json!(gw.to_string()));
                }
                let family_routes: Vec<Value> = routes
                    .iter()
                    .filter(|r| route_is_v4(r) == Some(v4))
                    .map(|r| {
                        let mut m = Map::new();
                        for k in ["dst", "gw"] {
                            if let Some(v) = r.get(k) {
                                m.insert(k.into(), v.clone());
                            }
                        }
                        Value::Object(m)
                    })
                    .collect();
                if !family_routes.is_empty() {
                    ip.insert("routes".into(), Value::Array(family_routes));
                }
                out.insert(key.into(), Value::Object(ip));
            }
        }
    } else {
        let ips: Vec<Value> = leases
            .iter()
            .map(|l| {
                let mut m = Map::new();
                if version.ip_version_field() {
                    m.insert(
                        "version".into(),
                        json!(if l.address.is_ipv4() { "4" } else { "6" }),
                    );
                }
                m.insert("address".into(), json!(l.ipnet().to_string()));
                if let Some(gw) = l.gateway {
                    m.insert("gateway".into(), json!(gw.to_string()));
                }
                Value::Object(m)
            })
            .collect();
        out.insert("ips".into(), Value::Array(ips));
        if !routes.is_empty() {
            let routes = routes.iter().map(|r| Value::Object(r.clone())).collect();
            out.insert("routes".into(), Value::Array(routes));
        }
    }
    if !dns.is_empty() {
        out.insert("dns".into(), dns.to_json());
    }
    Value::Object(out)
}

fn route_is_v4(r: &Map<String, Value>) -> Option<bool> {
    let dst = r.get("dst")?.as_str()?;
    let addr = dst.split('/').next()?;
    addr.parse::<IpAddr>().ok().map(|a| a.is_ipv4())
}

/// The VERSION answer.
pub fn version_info(asked: Option<&str>) -> Value {
    let echoed = asked
        .and_then(CniVersion::parse)
        .unwrap_or(CniVersion::LATEST);
    json!({
        "cniVersion": echoed.as_str(),
        "supportedVersions": super::version::SUPPORTED.map(|v| v.as_str()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leases() -> Vec<Lease> {
        vec![
            Lease {
                address: "10.112.1.5".parse().unwrap(),
                prefix_len: 24,
                gateway: Some("10.112.1.1".parse().unwrap()),
            },
            Lease {
                address: "fd00::5".parse().unwrap(),
                prefix_len: 64,
                gateway: None,
            },
        ]
    }

    fn routes() -> Vec<Map<String, Value>> {
        vec![
            json!({"dst": "0.0.0.0/0", "gw": "10.112.1.1"})
                .as_object()
                .unwrap()
                .clone(),
            json!({"dst": "::/0"}).as_object().unwrap().clone(),
        ]
    }

    #[test]
    fn v1_result_has_ips_without_version() {
        let r = render(CniVersion::V1_1_0, &leases(), &routes(), &Dns::default());
        assert_eq!(
            r,
            json!({
                "cniVersion": "1.1.0",
                "ips": [{"address": "10.112.1.5/24", "gateway": "10.112.1.1"}, {"address": "fd00::5/64"}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.112.1.1"}, {"dst": "::/0"}],
            })
        );
    }

    #[test]
    fn v0_3_result_has_ips_with_version() {
        let r = render(CniVersion::V0_3_1, &leases(), &[], &Dns::default());
        assert_eq!(r["ips"][0]["version"], "4");
        assert_eq!(r["ips"][1]["version"], "6");
    }

    #[test]
    fn v0_2_result_has_ip4_and_ip6() {
        let r = render(CniVersion::V0_2_0, &leases(), &routes(), &Dns::default());
        assert_eq!(
            r,
            json!({
                "cniVersion": "0.2.0",
                "ip4": {"ip": "10.112.1.5/24", "gateway": "10.112.1.1",
                        "routes": [{"dst": "0.0.0.0/0", "gw": "10.112.1.1"}]},
                "ip6": {"ip": "fd00::5/64", "routes": [{"dst": "::/0"}]},
            })
        );
    }

    #[test]
    fn resolv_conf_becomes_dns() {
        let d = Dns::parse(
            "# c\nnameserver 10.0.0.10\nnameserver 10.0.0.11\nsearch a.local b.local\ndomain a.local\noptions ndots:5\n",
        );
        assert_eq!(d.nameservers, ["10.0.0.10", "10.0.0.11"]);
        assert_eq!(d.search, ["a.local", "b.local"]);
        let r = render(CniVersion::V1_0_0, &leases()[..1], &[], &d);
        assert_eq!(r["dns"]["domain"], "a.local");
        assert_eq!(r["dns"]["options"][0], "ndots:5");
    }

    #[test]
    fn version_answer_echoes_a_supported_version() {
        assert_eq!(version_info(Some("0.4.0"))["cniVersion"], "0.4.0");
        assert_eq!(version_info(Some("9.9.9"))["cniVersion"], "1.1.0");
        assert_eq!(
            version_info(None)["supportedVersions"]
                .as_array()
                .unwrap()
                .len(),
            7
        );
    }
}
