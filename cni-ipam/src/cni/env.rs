//! The `CNI_*` environment, validated as libcni's `skel` does.

use std::net::IpAddr;

use super::error::CniError;

/// The operation asked for in `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Allocate.
    Add,
    /// Release.
    Del,
    /// Verify an allocation.
    Check,
    /// Release everything not in `cni.dev/valid-attachments`.
    Gc,
    /// Report whether ADD can succeed.
    Status,
    /// Report supported versions.
    Version,
}

impl Command {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ADD" => Self::Add,
            "DEL" => Self::Del,
            "CHECK" => Self::Check,
            "GC" => Self::Gc,
            "STATUS" => Self::Status,
            "VERSION" => Self::Version,
            _ => return None,
        })
    }
}

/// The attachment an ADD, DEL or CHECK is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
}

/// The validated environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniEnv {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// Set for ADD, DEL and CHECK.
    pub attachment: Option<Attachment>,
    /// `IP=` from `CNI_ARGS` (host-local's way of asking for a specific address).
    pub requested_ip: Option<IpAddr>,
}

impl CniEnv {
    /// Reads and validates the variables through `get` (`std::env::var` in the binary).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, CniError> {
        let non_empty = |k: &str| get(k).filter(|v| !v.is_empty());
        let cmd = non_empty("CNI_COMMAND").ok_or_else(|| {
            CniError::env(
                "CNI_COMMAND",
                "missing (ADD, DEL, CHECK, GC, STATUS or VERSION)",
            )
        })?;
        let command = Command::parse(&cmd)
            .ok_or_else(|| CniError::env("CNI_COMMAND", format!("unknown command {cmd:?}")))?;
        let needs_attachment = matches!(command, Command::Add | Command::Del | Command::Check);
        let needs_netns = matches!(command, Command::Add | Command::Check);
        let mut missing = Vec::new();
        let container_id = non_empty("CNI_CONTAINERID");
        let ifname = non_empty("CNI_IFNAME");
        if needs_attachment && container_id.is_none() {
            missing.push("CNI_CONTAINERID");
        }
        if needs_netns && non_empty("CNI_NETNS").is_none() {
            missing.push("CNI_NETNS");
        }
        if needs_attachment && ifname.is_none() {
            missing.push("CNI_IFNAME");
        }
        if !missing.is_empty() {
            return Err(CniError::env(missing.join(","), "required but missing"));
        }
        let attachment = match (needs_attachment, container_id, ifname) {
            (true, Some(container_id), Some(ifname)) => {
                validate_container_id(&container_id)
                    .map_err(|reason| CniError::env("CNI_CONTAINERID", reason))?;
                validate_ifname(&ifname).map_err(|reason| CniError::env("CNI_IFNAME", reason))?;
                Some(Attachment {
                    container_id,
                    ifname,
                })
            }
            _ => None,
        };
        let requested_ip = match get("CNI_ARGS") {
            Some(args) if needs_attachment => parse_args_ip(&args)?,
            _ => None,
        };
        Ok(Self {
            command,
            attachment,
            requested_ip,
        })
    }
}

/// `CNI_ARGS` is `K=V;K=V`. Only `IP` matters to us; other keys (`K8S_POD_NAME`,
/// `IgnoreUnknown`, ...) are ignored as host-local does with `IgnoreUnknown=1`.
fn parse_args_ip(args: &str) -> Result<Option<IpAddr>, CniError> {
    let mut ip = None;
    for pair in args.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            CniError::env(
                "CNI_ARGS",
                format!("invalid pair {pair:?} (want KEY=VALUE)"),
            )
        })?;
        if k == "IP" {
            let parsed: IpAddr = v
                .parse()
                .map_err(|_| CniError::env("CNI_ARGS", format!("IP={v:?} is not an IP address")))?;
            ip = Some(parsed.to_canonical());
        }
    }
    Ok(ip)
}

/// libcni's rule: an alphanumeric, then alphanumerics, `_`, `.` or `-`.
pub fn validate_container_id(id: &str) -> Result<(), String> {
    validate_name(id).map_err(|r| format!("container ID {id:?} {r}"))
}

/// libcni's rule for network names (the same as container IDs).
pub fn validate_network_name(name: &str) -> Result<(), String> {
    validate_name(name).map_err(|r| format!("network name {name:?} {r}"))
}

fn validate_name(s: &str) -> Result<(), &'static str> {
    let mut chars = s.chars();
    match chars.next() {
        None => return Err("is empty"),
        Some(c) if !c.is_ascii_alphanumeric() => return Err("must start with a letter or digit"),
        Some(_) => {}
    }
    if chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        Ok(())
    } else {
        Err("may only contain letters, digits, '_', '.' and '-'")
    }
}

/// libcni's rule: at most 15 bytes, not `.` or `..`, no `/`, `:` or whitespace.
pub fn validate_ifname(name: &str) -> Result<(), String> {
    if name.len() > 15 {
        return Err(format!("interface name {name:?} is longer than 15 bytes"));
    }
    if name == "." || name == ".." {
        return Err(format!("interface name {name:?} is not allowed"));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "interface name {name:?} contains '/', ':' or whitespace"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<CniEnv, CniError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CniEnv::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn empty_environment_names_cni_command() {
        let e = env(&[]).unwrap_err();
        assert_eq!(e.code(), 4);
        assert!(e.msg().contains("CNI_COMMAND"));
    }

    #[test]
    fn add_needs_container_netns_and_ifname() {
        let e = env(&[("CNI_COMMAND", "ADD")]).unwrap_err();
        assert_eq!(e.code(), 4);
        let m = e.msg();
        assert!(
            m.contains("CNI_CONTAINERID") && m.contains("CNI_NETNS") && m.contains("CNI_IFNAME"),
            "{m}"
        );
    }

    #[test]
    fn del_does_not_need_a_netns() {
        let e = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap();
        assert_eq!(e.attachment.unwrap().container_id, "c1");
    }

    #[test]
    fn bad_container_id_and_ifname_are_rejected() {
        let base = [("CNI_COMMAND", "DEL"), ("CNI_IFNAME", "eth0")];
        let e = env(&[base[0], base[1], ("CNI_CONTAINERID", "-bad")]).unwrap_err();
        assert!(e.msg().contains("CNI_CONTAINERID"));
        let e = env(&[base[0], ("CNI_CONTAINERID", "ok"), ("CNI_IFNAME", "eth 0")]).unwrap_err();
        assert!(e.msg().contains("CNI_IFNAME"));
        let e = env(&[
            base[0],
            ("CNI_CONTAINERID", "ok"),
            ("CNI_IFNAME", "a-very-long-ifname"),
        ])
        .unwrap_err();
        assert!(e.msg().contains("CNI_IFNAME"));
    }

    #[test]
    fn ip_is_taken_from_cni_args_and_other_keys_are_ignored() {
        let e = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.0.0.9"),
        ])
        .unwrap();
        assert_eq!(e.requested_ip, Some("10.0.0.9".parse().unwrap()));
        let e = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "IP=banana"),
        ])
        .unwrap_err();
        assert!(e.msg().contains("CNI_ARGS"));
    }

    #[test]
    fn unknown_command_is_rejected() {
        let e = env(&[("CNI_COMMAND", "FROB")]).unwrap_err();
        assert_eq!(e.code(), 4);
    }

    #[test]
    fn version_status_and_gc_need_no_attachment() {
        for c in ["VERSION", "STATUS", "GC"] {
            assert!(env(&[("CNI_COMMAND", c)]).unwrap().attachment.is_none());
        }
    }
}
