//! This node's block (`nauti.io/node-cidr`), followed by watching the Node: the plugin starts on
//! a node that has none yet (the controller writes it after the node joins) and follows a block
//! that changes or vanishes under it.

use futures::StreamExt as _;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::sync::watch;
use tracing::{Instrument as _, debug, info, info_span, warn};

/// What the Node says about its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockState {
    /// Not read yet.
    Unknown,
    /// The Node does not exist or has no `nauti.io/node-cidr`.
    Missing,
    /// The annotation does not parse (the reason says why).
    Invalid(String),
    /// The node's block.
    Block(IpNet),
}

impl BlockState {
    /// The state a Node object gives.
    pub fn of(node: &Node) -> Self {
        let annotations = node.metadata.annotations.clone().unwrap_or_default();
        match nauti_api::core::annotations::node_cidr(&annotations) {
            Ok(Some(block)) => Self::Block(block),
            Ok(None) => Self::Missing,
            Err(e) => Self::Invalid(e.to_string()),
        }
    }
}

/// Watches the Node `name` for as long as the receiver lives; reconnects with backoff.
pub fn watch_node_block(kube: kube::Client, name: &str) -> watch::Receiver<BlockState> {
    let (tx, rx) = watch::channel(BlockState::Unknown);
    let api = Api::<Node>::all(kube);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let node = name.to_owned();
    let task = async move {
        let mut events = std::pin::pin!(watcher(api, config).default_backoff());
        // Nodes seen in the current (re)list, so that a relist without ours says Missing.
        let mut seen = false;
        while let Some(event) = events.next().await {
            let state = match event {
                Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => {
                    seen = true;
                    BlockState::of(&obj)
                }
                Ok(watcher::Event::Delete(_)) => BlockState::Missing,
                Ok(watcher::Event::Init) => {
                    seen = false;
                    continue;
                }
                Ok(watcher::Event::InitDone) => {
                    if seen {
                        continue;
                    }
                    BlockState::Missing
                }
                Err(error) => {
                    warn!(%error, "watching the Node failed; retrying");
                    continue;
                }
            };
            if tx.send_if_modified(|current| {
                let changed = *current != state;
                *current = state.clone();
                changed
            }) {
                match &state {
                    BlockState::Block(block) => info!(%block, "node block"),
                    BlockState::Missing => info!("node has no nauti.io/node-cidr"),
                    BlockState::Invalid(reason) => warn!(reason, "node block annotation invalid"),
                    BlockState::Unknown => {}
                }
            }
            if tx.is_closed() {
                debug!("nobody follows the node block any more");
                return;
            }
        }
    };
    tokio::spawn(task.instrument(info_span!("node_block", node = %node)));
    rx
}
