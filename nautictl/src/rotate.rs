//! `nautictl rotate-keys`: the pure parts. Which of the hub's Peers is the rotated cluster's,
//! whether it carries the new key yet, and what is printed.

use nauti_api::peer::Peer;
use nauti_octopus::core::PublicKey;

/// Where the rotated cluster's Peer on the hub stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerKey {
    /// The Peer `name` carries the new public key.
    Rotated { name: String },
    /// The Peer `name` still carries another key (`shows`).
    Waiting { name: String, shows: String },
    /// No Peer to wait for: none named `--cluster`, or (without it) none with the old or the
    /// new key.
    NoPeer,
}

/// The rotated cluster's Peer among `peers`: the one named `cluster` when given, otherwise the
/// one carrying the new key or, until then, the old one.
pub fn peer_key(
    peers: &[Peer],
    cluster: Option<&str>,
    old: Option<&PublicKey>,
    new: &PublicKey,
) -> PeerKey {
    let (old, new) = (old.map(ToString::to_string), new.to_string());
    let peer = match cluster {
        Some(name) => peers
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name)),
        None => peers.iter().find(|p| p.spec.public_key == new).or_else(|| {
            peers
                .iter()
                .find(|p| old.as_ref().is_some_and(|o| p.spec.public_key == *o))
        }),
    };
    let Some(peer) = peer else {
        return PeerKey::NoPeer;
    };
    let name = peer.metadata.name.clone().unwrap_or_default();
    if peer.spec.public_key == new {
        PeerKey::Rotated { name }
    } else {
        PeerKey::Waiting {
            name,
            shows: peer.spec.public_key.clone(),
        }
    }
}

/// What `rotate-keys` prints once the key is written.
pub fn render_rotation(secret: &str, old: Option<&PublicKey>, new: &PublicKey) -> String {
    let old = old.map_or_else(
        || "(none: the Secret held no valid key)".to_owned(),
        ToString::to_string,
    );
    format!(
        "rotated the WireGuard key in Secret {secret}\nold public key: {old}\nnew public key: {new}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use nauti_api::testutil::mk_peer;

    fn peer(name: &str, key: &PublicKey) -> Peer {
        let mut p = mk_peer(name, ["10.113.0.0/16".parse().unwrap()]);
        p.spec.public_key = key.to_string();
        p
    }

    #[test]
    fn the_rotated_peer_is_found_by_name_or_by_its_old_key_until_it_shows_the_new_one() {
        let (old, new, other) = (PublicKey([1; 32]), PublicKey([2; 32]), PublicKey([3; 32]));
        let before = [peer("west", &other), peer("east", &old)];
        let waiting = PeerKey::Waiting {
            name: "east".into(),
            shows: old.to_string(),
        };
        assert_eq!(peer_key(&before, None, Some(&old), &new), waiting);
        assert_eq!(peer_key(&before, Some("east"), Some(&old), &new), waiting);
        let after = [peer("west", &other), peer("east", &new)];
        let rotated = PeerKey::Rotated {
            name: "east".into(),
        };
        assert_eq!(peer_key(&after, None, Some(&old), &new), rotated);
        assert_eq!(peer_key(&after, Some("east"), None, &new), rotated);
        // Another cluster's Peer never counts, and an unknown one is reported as such.
        assert_eq!(
            peer_key(&after, Some("west"), Some(&old), &new),
            PeerKey::Waiting {
                name: "west".into(),
                shows: other.to_string()
            }
        );
        assert_eq!(peer_key(&after, Some("north"), None, &new), PeerKey::NoPeer);
        assert_eq!(peer_key(&before, None, None, &new), PeerKey::NoPeer);
    }

    #[test]
    fn the_report_names_both_keys() {
        let text = render_rotation(
            "nauti-system/octopus-wireguard-key",
            Some(&PublicKey([1; 32])),
            &PublicKey([2; 32]),
        );
        assert!(text.contains(&format!("old public key: {}", PublicKey([1; 32]))));
        assert!(text.contains(&format!("new public key: {}", PublicKey([2; 32]))));
        assert!(render_rotation("s", None, &PublicKey([2; 32])).contains("(none"));
    }
}
