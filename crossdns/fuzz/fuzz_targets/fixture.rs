//! What both fuzz targets answer from: crossdns's request handler over an index holding a
//! ClusterSetIP service, a headless service too big for one datagram, and the version record.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, LazyLock, RwLock};

use nauti_crossdns::core::{
    EndpointView, ImportKind, ImportView, Index, PortView, ServiceKey, SliceKey, SliceView,
};
use nauti_crossdns::dns::Handler;
use nauti_crossdns::metrics::Metrics;

/// `--max-udp-payload`'s default.
pub const MAX_UDP_PAYLOAD: u16 = 1232;

fn index() -> Index {
    let mut index = Index::new();
    let http = PortView::new("http", "TCP", 80);
    index.reset_imports([
        (
            ServiceKey::new("shop", "web"),
            ImportView {
                kind: ImportKind::ClusterSetIp(vec![IpAddr::V4(Ipv4Addr::new(10, 127, 0, 10))]),
                ports: vec![http.clone(), PortView::new("", "UDP", 53)],
            },
        ),
        (
            ServiceKey::new("shop", "big"),
            ImportView {
                kind: ImportKind::Headless,
                ports: vec![http.clone()],
            },
        ),
    ]);
    let endpoints = |count: u8, hostnames: bool| -> Vec<EndpointView> {
        (1..=count)
            .map(|i| EndpointView {
                addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 113, 2, i))],
                hostname: hostnames.then(|| format!("big-{i}")),
                ready: i % 7 != 0,
            })
            .collect()
    };
    index.reset_slices([
        (
            SliceKey::new("shop", "web-east"),
            SliceView {
                service: ServiceKey::new("shop", "web"),
                cluster: "east".into(),
                ports: vec![PortView::new("http", "TCP", 8080)],
                endpoints: endpoints(3, false),
            },
        ),
        (
            SliceKey::new("shop", "big-east"),
            SliceView {
                service: ServiceKey::new("shop", "big"),
                cluster: "east".into(),
                ports: vec![PortView::new("http", "TCP", 8080)],
                endpoints: endpoints(120, true),
            },
        ),
    ]);
    index
}

pub static HANDLER: LazyLock<Handler> = LazyLock::new(|| {
    Handler::new(
        Arc::new(RwLock::new(index())),
        Arc::new(Metrics::new()),
        MAX_UDP_PAYLOAD,
    )
});
