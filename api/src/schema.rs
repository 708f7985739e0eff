//! Hand-written OpenAPI fragments for fields whose Rust type says less than the wire format.
//!
//! The apiserver enforces these before a controller ever sees the object; the Rust
//! `validate()` functions stay the authority (they also catch what a regular expression
//! cannot, such as overlapping networks), so the two must agree but need not be equally
//! precise.

use schemars::{Schema, SchemaGenerator, json_schema};

use crate::core::names::{DNS1123_LABEL_MAX_LEN, DNS1123_LABEL_PATTERN, DNS1123_SUBDOMAIN_MAX_LEN};
use crate::core::wgkey::{WG_KEY_BASE64_LEN, WG_KEY_PATTERN};

/// An IPv4 CIDR with a prefix of at most 32, or an IPv6-looking CIDR with a prefix of at most
/// 128. Canonical form is checked by `PeerSpec::validate`, not here.
pub(crate) const CIDR_PATTERN: &str = concat!(
    r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])",
    r"/(3[0-2]|[12]?[0-9])$",
    r"|^[0-9a-fA-F:.]*:[0-9a-fA-F:.]*/(12[0-8]|1[01][0-9]|[1-9]?[0-9])$"
);

/// A lower-case host name or an IP address (IPv6 hex digits may be upper-case). No port, no
/// brackets: the port has its own field.
pub(crate) const ENDPOINT_PATTERN: &str = r"^[a-z0-9.-]+$|^[0-9a-fA-F:.]*:[0-9a-fA-F:.]*$";

/// Longest textual CIDR: a full IPv6 address (39) plus `/128`.
const CIDR_MAX_LEN: usize = 43;

pub(crate) fn cluster_id(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "ID of the member cluster: a DNS-1123 label, unique in the cluster set. The Peer's name must equal it.",
        "type": "string",
        "minLength": 1,
        "maxLength": DNS1123_LABEL_MAX_LEN,
        "pattern": DNS1123_LABEL_PATTERN,
    })
}

pub(crate) fn cluster_cidrs(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "The cluster's slices of the global network, as canonical CIDRs that do not overlap.",
        "type": "array",
        "minItems": 1,
        "maxItems": 16,
        "items": {
            "type": "string",
            "maxLength": CIDR_MAX_LEN,
            "pattern": CIDR_PATTERN,
        },
        "x-kubernetes-list-type": "set",
    })
}

pub(crate) fn endpoint(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Host name or IP address (no port, no brackets) where the cluster's WireGuard gateway is reachable. Required for the hub and for public members.",
        "type": "string",
        "minLength": 1,
        "maxLength": DNS1123_SUBDOMAIN_MAX_LEN,
        "pattern": ENDPOINT_PATTERN,
    })
}

pub(crate) fn port(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "UDP port of the WireGuard gateway.",
        "type": "integer",
        "format": "int32",
        "minimum": 1,
        "maximum": 65535,
        "default": crate::peer::DEFAULT_WIREGUARD_PORT,
    })
}

pub(crate) fn public_key(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "The gateway's WireGuard public key: standard base64 of exactly 32 bytes, as `wg pubkey` prints it.",
        "type": "string",
        "minLength": WG_KEY_BASE64_LEN,
        "maxLength": WG_KEY_BASE64_LEN,
        "pattern": WG_KEY_PATTERN,
    })
}

pub(crate) fn latency_ms(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Round-trip time to this cluster's gateway in milliseconds, as last measured by the hub.",
        "type": "integer",
        "format": "int64",
        "minimum": 0,
        "nullable": true,
    })
}

/// Conditions keyed by `type`, so server-side apply merges them per condition as every
/// built-in API does.
pub(crate) fn conditions(generator: &mut SchemaGenerator) -> Schema {
    let item =
        generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>();
    json_schema!({
        "description": "Standard conditions (`Ready`, `Valid`), one per type, each with observedGeneration.",
        "type": "array",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    })
}
