//! MTUs on the cross-cluster path, derived from the underlay (DESIGN.md, TESTBED.md "MTU").
//!
//! A pod packet crosses Geneve between nodes (58 bytes) on its way to the gateway, then
//! WireGuard between clusters (60 bytes over IPv4, 80 over IPv6). The pods' second NIC gets what
//! is left of the underlay MTU after both; the WireGuard interface gets the underlay minus
//! WireGuard, the largest inner packet whose encrypted datagram still fits the underlay unsplit.

use std::fmt;

use nauti_api::IpFamily;
use nauti_api::core::config::{GENEVE_OVERHEAD, MtuConfig, MtuError, wireguard_overhead};

/// The MTUs chosen, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MtuPlan {
    /// MTU of the gateway's WireGuard interface.
    pub tunnel_mtu: u16,
    /// MTU of the pods' `eth-nauti`.
    pub pod_mtu: u16,
    /// How `pod_mtu` was chosen.
    pub reason: MtuReason,
}

/// How the pod MTU was chosen, printable for the log line that reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtuReason {
    /// Underlay minus Geneve minus WireGuard.
    Derived {
        /// The underlay MTU.
        underlay: u16,
        /// WireGuard's share.
        wireguard: u16,
        /// The family WireGuard runs over.
        tunnel: IpFamily,
    },
    /// Set explicitly by the operator.
    Explicit {
        /// The value set.
        value: u16,
    },
}

impl fmt::Display for MtuReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Derived {
                underlay,
                wireguard,
                tunnel,
            } => write!(
                f,
                "underlay {underlay} - geneve {GENEVE_OVERHEAD} - WireGuard over {tunnel} {wireguard}"
            ),
            Self::Explicit { value } => write!(f, "pod_mtu {value} set explicitly"),
        }
    }
}

/// MTU settings that cannot carry pod traffic unsplit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MtuPlanError {
    /// The shared rules refuse the pod MTU.
    #[error(transparent)]
    Pod(#[from] MtuError),
    /// An explicit pod MTU larger than what fits through the tunnel.
    #[error(
        "pod_mtu {pod_mtu} is larger than the WireGuard interface's {tunnel_mtu} (underlay {underlay} - \
         {wireguard}); full-size pod packets would be dropped at the gateway"
    )]
    PodAboveTunnel {
        /// The explicit pod MTU.
        pod_mtu: u16,
        /// The tunnel MTU.
        tunnel_mtu: u16,
        /// The underlay MTU.
        underlay: u16,
        /// WireGuard's share.
        wireguard: u16,
    },
}

/// The MTUs for pods of family `pod` under `config`.
pub fn plan_mtu(config: &MtuConfig, pod: IpFamily) -> Result<MtuPlan, MtuPlanError> {
    let wireguard = wireguard_overhead(config.tunnel_family);
    let tunnel_mtu = config.underlay_mtu.saturating_sub(wireguard);
    let pod_mtu = config.pod_mtu(pod)?;
    let reason = match config.pod_mtu {
        Some(value) => MtuReason::Explicit { value },
        None => MtuReason::Derived {
            underlay: config.underlay_mtu,
            wireguard,
            tunnel: config.tunnel_family,
        },
    };
    if pod_mtu > tunnel_mtu {
        return Err(MtuPlanError::PodAboveTunnel {
            pod_mtu,
            tunnel_mtu,
            underlay: config.underlay_mtu,
            wireguard,
        });
    }
    Ok(MtuPlan {
        tunnel_mtu,
        pod_mtu,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(underlay: u16, tunnel: IpFamily, pod_mtu: Option<u16>) -> MtuConfig {
        MtuConfig {
            underlay_mtu: underlay,
            tunnel_family: tunnel,
            pod_mtu,
        }
    }

    #[test]
    fn a_1500_underlay_gives_1382_pods_and_a_1440_tunnel() {
        let plan = plan_mtu(&config(1500, IpFamily::V4, None), IpFamily::V4).unwrap();
        assert_eq!((plan.pod_mtu, plan.tunnel_mtu), (1382, 1440));
        assert_eq!(
            plan.reason.to_string(),
            "underlay 1500 - geneve 58 - WireGuard over IPv4 60"
        );
    }

    #[test]
    fn an_ipv6_underlay_costs_20_more() {
        let plan = plan_mtu(&config(1500, IpFamily::V6, None), IpFamily::V6).unwrap();
        assert_eq!((plan.pod_mtu, plan.tunnel_mtu), (1362, 1420));
    }

    #[test]
    fn an_explicit_pod_mtu_is_kept_and_said_so() {
        let plan = plan_mtu(&config(9000, IpFamily::V4, Some(8000)), IpFamily::V4).unwrap();
        assert_eq!(plan.pod_mtu, 8000);
        assert_eq!(plan.reason, MtuReason::Explicit { value: 8000 });
    }

    #[test]
    fn an_explicit_pod_mtu_above_the_tunnel_is_refused() {
        let err = plan_mtu(&config(1500, IpFamily::V4, Some(1500)), IpFamily::V4).unwrap_err();
        assert!(
            matches!(
                err,
                MtuPlanError::PodAboveTunnel {
                    tunnel_mtu: 1440,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn an_underlay_too_small_for_ipv6_pods_is_refused() {
        let err = plan_mtu(&config(1390, IpFamily::V4, None), IpFamily::V6).unwrap_err();
        assert!(
            matches!(err, MtuPlanError::Pod(MtuError::DerivedTooSmall { .. })),
            "{err}"
        );
    }
}
