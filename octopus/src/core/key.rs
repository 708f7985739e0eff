//! WireGuard public keys as 32 bytes, with the base64 text `wg` prints.

use std::fmt;
use std::str::FromStr;

pub use nauti_api::core::wgkey::KeyError;
use nauti_api::core::wgkey::{encode_wireguard_key, parse_wireguard_key};

/// A Curve25519 public key. Ordered by bytes, so plans list peers in a stable order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The raw key bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        parse_wireguard_key(s).map(Self)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_wireguard_key(&self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}
