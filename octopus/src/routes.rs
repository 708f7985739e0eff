//! `octopus routes`: the routes the gateway holds on its WireGuard interface in this network
//! namespace, as one JSON object. A CNF pod's image holds only `/octopus`, no `ip`: this is how
//! `nautictl diagnose` sees the tunnel routes from outside, through an exec.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::gateway::GatewayError;
use crate::gateway::netlink::Links;

/// The tunnel routes of one interface, as `octopus routes` prints them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceRoutes {
    /// The interface asked about.
    pub interface: String,
    /// False when no link of that name is in the namespace.
    pub exists: bool,
    /// The main table's `proto static` routes leaving by the interface (the ones the gateway
    /// adds), sorted; empty when it does not exist.
    pub routes: Vec<IpNet>,
}

impl InterfaceRoutes {
    /// The interface `ifname` with `routes`, sorted and each once; `None` for a missing link.
    pub fn new(ifname: &str, routes: Option<Vec<IpNet>>) -> Self {
        let exists = routes.is_some();
        let mut routes = routes.unwrap_or_default();
        routes.sort();
        routes.dedup();
        Self {
            interface: ifname.to_owned(),
            exists,
            routes,
        }
    }

    /// One line of JSON: `{"interface":"nauti-wg","exists":true,"routes":["10.114.0.0/16"]}`.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "interface": self.interface,
            "exists": self.exists,
            "routes": self.routes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })
        .to_string()
    }

    /// Parses [`Self::to_json`]'s output.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text.trim())
    }
}

/// Reads the routes of `ifname` from the kernel with the gateway's own rtnetlink listing.
pub async fn read(ifname: &str) -> Result<InterfaceRoutes, GatewayError> {
    let links = Links::connect()?;
    match links.find(ifname).await {
        Ok(link) => Ok(InterfaceRoutes::new(
            ifname,
            Some(links.routes(&link).await?),
        )),
        Err(GatewayError::LinkNotFound(_)) => Ok(InterfaceRoutes::new(ifname, None)),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn routes_print_sorted_once_and_read_back() {
        let routes = InterfaceRoutes::new(
            "nauti-wg",
            Some(vec![
                net("10.114.0.0/16"),
                net("10.112.0.0/12"),
                net("10.114.0.0/16"),
                net("fd00:112::/48"),
            ]),
        );
        let json = routes.to_json();
        assert_eq!(
            json,
            r#"{"exists":true,"interface":"nauti-wg","routes":["10.112.0.0/12","10.114.0.0/16","fd00:112::/48"]}"#
        );
        assert_eq!(
            InterfaceRoutes::from_json(&format!("{json}\n")).unwrap(),
            routes
        );
    }

    #[test]
    fn a_missing_interface_says_so_with_no_routes() {
        let json = InterfaceRoutes::new("nauti-wg", None).to_json();
        assert_eq!(
            json,
            r#"{"exists":false,"interface":"nauti-wg","routes":[]}"#
        );
        assert!(!InterfaceRoutes::from_json(&json).unwrap().exists);
    }
}
