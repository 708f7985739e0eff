//! The identity a member's certificate carries on the hub: user `nauti:member:<clusterID>` in
//! group [`MEMBERS_GROUP`], and the hub namespace that holds its exports.

use nauti_api::core::names::validate_dns1123_label;

/// The group (certificate `O`) of every member identity.
pub const MEMBERS_GROUP: &str = "nauti:members";
const USER_PREFIX: &str = "nauti:member:";
const NAMESPACE_PREFIX: &str = "nauti-member-";

/// `nauti:member:<clusterID>`, the certificate's CN and the user kube-apiserver sees.
pub fn member_user(cluster_id: &str) -> String {
    format!("{USER_PREFIX}{cluster_id}")
}

/// The cluster ID of a member user name, when it is one and the ID is a DNS label.
pub fn cluster_of_user(user: &str) -> Option<&str> {
    let id = user.strip_prefix(USER_PREFIX)?;
    validate_dns1123_label(id).ok().map(|()| id)
}

/// `nauti-member-<clusterID>`: the member's namespace on the hub, where it writes its exports.
pub fn member_namespace(cluster_id: &str) -> String {
    format!("{NAMESPACE_PREFIX}{cluster_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_round_trip_and_reject_non_labels() {
        assert_eq!(cluster_of_user(&member_user("cluster1")), Some("cluster1"));
        assert_eq!(cluster_of_user("nauti:member:Bad_ID"), None);
        assert_eq!(cluster_of_user("nauti:member:"), None);
        assert_eq!(cluster_of_user("system:bootstrap:abcdef"), None);
    }
}
