//! WireGuard public keys as they travel in a `Peer`.
//!
//! WireGuard keys are Curve25519 points: exactly 32 bytes, written as standard base64 with
//! padding (44 characters), as `wg pubkey` prints them. Anything else would only fail later,
//! deep inside the tunnel setup of every other cluster, so it is refused at the edge.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Length of a WireGuard key in bytes.
pub const WG_KEY_LEN: usize = 32;

/// Length of the base64 text of a key: `ceil(32 / 3) * 4`.
pub const WG_KEY_BASE64_LEN: usize = 44;

/// The exact shape of a padded base64 encoding of 32 bytes, for the OpenAPI schema: 42 free
/// characters, a 43rd whose low two bits are zero (32 bytes use 256 of the 258 bits) and `=`.
pub const WG_KEY_PATTERN: &str = "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$";

/// Why a string is not a WireGuard key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not standard, padded base64.
    #[error("not standard base64: {reason}")]
    Base64 {
        /// The decoder's explanation.
        reason: String,
    },
    /// Decodes, but not to 32 bytes.
    #[error("decodes to {len} bytes, a WireGuard key has exactly {WG_KEY_LEN}")]
    Length {
        /// Decoded length in bytes.
        len: usize,
    },
}

/// Decodes a base64 WireGuard key and checks that it is 32 bytes.
pub fn parse_wireguard_key(s: &str) -> Result<[u8; WG_KEY_LEN], KeyError> {
    let bytes = STANDARD.decode(s).map_err(|e| KeyError::Base64 {
        reason: e.to_string(),
    })?;
    let len = bytes.len();
    bytes.try_into().map_err(|_| KeyError::Length { len })
}

/// Encodes 32 key bytes the way `wg pubkey` prints them.
pub fn encode_wireguard_key(key: &[u8; WG_KEY_LEN]) -> String {
    STANDARD.encode(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_32_byte_key_round_trips_through_base64() {
        let key = [7u8; 32];
        let text = encode_wireguard_key(&key);
        assert_eq!(text.len(), WG_KEY_BASE64_LEN);
        assert_eq!(parse_wireguard_key(&text), Ok(key));
    }

    #[test]
    fn a_31_byte_key_is_refused_with_its_length() {
        let text = STANDARD.encode([1u8; 31]);
        assert_eq!(
            parse_wireguard_key(&text),
            Err(KeyError::Length { len: 31 })
        );
        assert!(parse_wireguard_key("not base64!").is_err());
    }
}
