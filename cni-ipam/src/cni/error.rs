//! The plugin's errors and their CNI wire form.

use std::net::IpAddr;

use crate::store::StoreError;

/// Everything the plugin can answer with instead of a result.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// The configuration's `cniVersion` is not one we speak, or forbids the command.
    #[error("{reason}")]
    IncompatibleVersion {
        /// The version asked for.
        version: String,
        /// Why it does not fit.
        reason: String,
    },
    /// CHECK of an attachment that holds no address here.
    #[error(
        "no address allocated to container {container_id} interface {ifname} in network {network}"
    )]
    UnknownContainer {
        /// `CNI_CONTAINERID`.
        container_id: String,
        /// `CNI_IFNAME`.
        ifname: String,
        /// The network name.
        network: String,
    },
    /// A missing or malformed `CNI_*` environment variable.
    #[error("{var}: {reason}")]
    InvalidEnv {
        /// The variable(s), e.g. `CNI_IFNAME`.
        var: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading stdin or a referenced file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being read.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// stdin is not JSON (or not a JSON object).
    #[error("{what}: {reason}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// A configuration field with a bad value.
    #[error("{field}: {reason}")]
    InvalidConfig {
        /// The JSON path of the field, e.g. `ipam.ranges[0][1].rangeStart`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The store failed (I/O, lock timeout or unreadable state).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// STATUS: a range set has no free address, so ADD cannot succeed.
    #[error("no free address in range set {range_set} ({range})")]
    Unavailable {
        /// Index of the exhausted range set.
        range_set: usize,
        /// Its ranges.
        range: String,
    },
    /// ADD: a range set has no free address.
    #[error("no free address in range set {range_set} ({range})")]
    Exhausted {
        /// Index of the exhausted range set.
        range_set: usize,
        /// Its ranges.
        range: String,
    },
    /// ADD: a requested address (CNI_ARGS `IP`, `args.cni.ips`, `runtimeConfig.ips`) cannot be given.
    #[error("requested address {ip} cannot be allocated: {reason}")]
    RequestedUnavailable {
        /// The address.
        ip: IpAddr,
        /// Why.
        reason: String,
    },
    /// CHECK: the stored allocation differs from `prevResult`.
    #[error("{reason}")]
    CheckMismatch {
        /// What differs.
        reason: String,
    },
    /// Two different attachments hash to one owner digest; refused rather than share an address.
    #[error("owner digest collision on {ip} (held by {holder}); refusing to share the address")]
    OwnerCollision {
        /// The address at stake.
        ip: IpAddr,
        /// `containerID/ifname` of the current holder.
        holder: String,
    },
}

impl CniError {
    /// The CNI error code: 1–11 and 50 from the spec ("Well-known Error Codes"), 100+ ours.
    pub fn code(&self) -> u32 {
        match self {
            Self::IncompatibleVersion { .. } => 1,
            Self::UnknownContainer { .. } => 3,
            Self::InvalidEnv { .. } => 4,
            Self::Io { .. } => 5,
            Self::Decode { .. } => 6,
            Self::InvalidConfig { .. } => 7,
            Self::Store(StoreError::Io { .. }) => 5,
            Self::Store(StoreError::Busy { .. }) => 11,
            Self::Unavailable { .. } => 50,
            Self::Exhausted { .. } => 100,
            Self::RequestedUnavailable { .. } => 101,
            Self::CheckMismatch { .. } => 102,
            Self::Store(StoreError::Corrupt { .. }) => 103,
            Self::OwnerCollision { .. } => 104,
        }
    }

    /// The short `msg`: a fixed text, plus the variable or field name where the spec asks for it.
    pub fn msg(&self) -> String {
        match self {
            Self::IncompatibleVersion { .. } => "incompatible CNI version".into(),
            Self::UnknownContainer { .. } => "unknown container".into(),
            Self::InvalidEnv { var, .. } => format!("invalid environment variable {var}"),
            Self::Io { .. } | Self::Store(StoreError::Io { .. }) => "I/O failure".into(),
            Self::Decode { .. } => "failed to decode network configuration".into(),
            Self::InvalidConfig { field, .. } => format!("invalid network configuration: {field}"),
            Self::Store(StoreError::Busy { .. }) => "try again later".into(),
            Self::Unavailable { .. } => "plugin not available: address pool exhausted".into(),
            Self::Exhausted { .. } => "address pool exhausted".into(),
            Self::RequestedUnavailable { .. } => "requested address not available".into(),
            Self::CheckMismatch { .. } => "allocation does not match prevResult".into(),
            Self::Store(StoreError::Corrupt { .. }) => "state file corrupt".into(),
            Self::OwnerCollision { .. } => "owner digest collision".into(),
        }
    }

    /// Shorthand for a configuration error.
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for an environment error.
    pub fn env(var: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidEnv {
            var: var.into(),
            reason: reason.into(),
        }
    }

    /// The error object written to stdout.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        serde_json::json!({
            "cniVersion": cni_version,
            "code": self.code(),
            "msg": self.msg(),
            "details": self.to_string(),
        })
    }
}
