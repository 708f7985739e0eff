//! CNI specification versions and what changes between them.

use std::fmt;

/// A specification version this plugin speaks (the reference plugins' set, plus 1.1.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    /// 0.1.0: `ip4`/`ip6` result.
    V0_1_0,
    /// 0.2.0: adds VERSION.
    V0_2_0,
    /// 0.3.0: `ips` list with `version`.
    V0_3_0,
    /// 0.3.1.
    V0_3_1,
    /// 0.4.0: CHECK.
    V0_4_0,
    /// 1.0.0: `ips` without `version`.
    V1_0_0,
    /// 1.1.0: GC and STATUS.
    V1_1_0,
}

/// Every version we accept, in order.
pub const SUPPORTED: [CniVersion; 7] = [
    CniVersion::V0_1_0,
    CniVersion::V0_2_0,
    CniVersion::V0_3_0,
    CniVersion::V0_3_1,
    CniVersion::V0_4_0,
    CniVersion::V1_0_0,
    CniVersion::V1_1_0,
];

impl CniVersion {
    /// The newest version.
    pub const LATEST: Self = Self::V1_1_0;

    /// The version string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V0_1_0 => "0.1.0",
            Self::V0_2_0 => "0.2.0",
            Self::V0_3_0 => "0.3.0",
            Self::V0_3_1 => "0.3.1",
            Self::V0_4_0 => "0.4.0",
            Self::V1_0_0 => "1.0.0",
            Self::V1_1_0 => "1.1.0",
        }
    }

    /// Parses a supported version string.
    pub fn parse(s: &str) -> Option<Self> {
        SUPPORTED.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether results use the old `ip4`/`ip6` shape.
    pub fn legacy_result(self) -> bool {
        self < Self::V0_3_0
    }

    /// Whether `ips` entries carry `"version"` (0.3.x and 0.4.0).
    pub fn ip_version_field(self) -> bool {
        (Self::V0_3_0..Self::V1_0_0).contains(&self)
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_version_parses_back() {
        for v in SUPPORTED {
            assert_eq!(CniVersion::parse(v.as_str()), Some(v));
        }
        assert_eq!(CniVersion::parse("2.0.0"), None);
        assert_eq!(CniVersion::parse(""), None);
    }

    #[test]
    fn result_shape_follows_the_version() {
        assert!(CniVersion::V0_2_0.legacy_result());
        assert!(!CniVersion::V0_3_0.legacy_result());
        assert!(CniVersion::V0_4_0.ip_version_field());
        assert!(!CniVersion::V1_0_0.ip_version_field());
    }
}
