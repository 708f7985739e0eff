//! The contract of a pod's logical switch port, shared by the NRI plugin that writes it and the
//! cluster controller that garbage-collects it and keeps node blocks: its name and the
//! `external_ids` both sides read.

/// `external_ids` keys on Nauti's logical switch ports.
pub mod external_ids {
    /// Which Nauti component owns the row; rows without it are never touched, so an operator's
    /// own ports on the switch are safe.
    pub const OWNER: &str = "nauti.io/owner";
    /// [`OWNER`] on pod ports (written by the NRI plugin).
    pub const OWNER_POD: &str = "pod";
    /// [`OWNER`] on the gateway port (written by the cluster controller).
    pub const OWNER_CNF: &str = "cnf";
    /// The cluster a switch serves.
    pub const CLUSTER: &str = "nauti.io/cluster";
    /// The pod's name.
    pub const POD: &str = "pod";
    /// The pod's namespace.
    pub const NAMESPACE: &str = "namespace";
    /// The pod's UID, which tells a recreated pod of the same name apart.
    pub const UID: &str = "uid";
    /// The node whose plugin owns the port; its block holds the port's address.
    pub const NODE: &str = "node";
    /// The runtime's sandbox ID: the allocation owner, and how a restarted plugin recognises the
    /// ports of sandboxes it plumbed before.
    pub const SANDBOX: &str = "sandbox";
}

/// `external_ids` key on a pod's OVS interface naming its sandbox, so that a restarted plugin
/// finds the interface rows of sandboxes that are gone.
pub const OVS_SANDBOX: &str = "nauti.io/sandbox";

/// The logical switch port of a pod: `<namespace>_<pod>` (DESIGN.md, step 4).
pub fn lsp_name(namespace: &str, pod: &str) -> String {
    format!("{namespace}_{pod}")
}

/// The port name of a pod whose plain name is still held by another sandbox (a pod of the same
/// name on another node, after a force delete): `<namespace>_<pod>_<first 12 of the sandbox>`.
pub fn lsp_name_of_sandbox(namespace: &str, pod: &str, sandbox: &str) -> String {
    let short: String = sandbox.chars().take(12).collect();
    format!("{namespace}_{pod}_{short}")
}

/// Whether a port's `external_ids` mark it as a pod port of `node`.
pub fn is_pod_port_of(ids: &std::collections::BTreeMap<String, String>, node: &str) -> bool {
    ids.get(external_ids::OWNER).map(String::as_str) == Some(external_ids::OWNER_POD)
        && ids.get(external_ids::NODE).map(String::as_str) == Some(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_namespace_and_pod() {
        assert_eq!(lsp_name("default", "web-0"), "default_web-0");
        assert_eq!(
            lsp_name_of_sandbox("default", "web-0", "0123456789abcdef"),
            "default_web-0_0123456789ab"
        );
    }

    #[test]
    fn pod_ports_belong_to_the_node_they_name() {
        let ids = [
            (external_ids::OWNER, external_ids::OWNER_POD),
            (external_ids::NODE, "node-1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        assert!(is_pod_port_of(&ids, "node-1"));
        assert!(!is_pod_port_of(&ids, "node-2"));
        let cnf = [(external_ids::OWNER.to_owned(), "cnf".to_owned())].into();
        assert!(!is_pod_port_of(&cnf, "node-1"));
    }
}
