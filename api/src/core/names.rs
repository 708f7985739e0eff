//! Kubernetes name rules Nauti relies on.
//!
//! A cluster ID ends up in object names (`Peer` names, EndpointSlice labels), DNS names served
//! by crossdns and OVN external_ids, so it must be a DNS-1123 label: the strictest of those.

/// Longest DNS-1123 label (RFC 1123 / Kubernetes `IsDNS1123Label`).
pub const DNS1123_LABEL_MAX_LEN: usize = 63;

/// The same rule as [`validate_dns1123_label`], as a regular expression for OpenAPI schemas.
pub const DNS1123_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// Longest DNS-1123 subdomain (a host name), as Kubernetes counts it.
pub const DNS1123_SUBDOMAIN_MAX_LEN: usize = 253;

/// Why a string is not a DNS-1123 label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// Empty string.
    #[error("must not be empty")]
    Empty,
    /// Longer than 63 characters.
    #[error("is {len} characters long, at most {DNS1123_LABEL_MAX_LEN} are allowed")]
    TooLong {
        /// Actual length in bytes.
        len: usize,
    },
    /// A character outside `a-z`, `0-9` and `-`.
    #[error("contains {found:?}; only lower-case letters, digits and '-' are allowed")]
    BadChar {
        /// The first offending character.
        found: char,
    },
    /// Starts or ends with `-`.
    #[error("must start and end with a lower-case letter or digit")]
    BadEdge,
}

/// Checks the DNS-1123 label rule (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters).
pub fn validate_dns1123_label(s: &str) -> Result<(), LabelError> {
    if s.is_empty() {
        return Err(LabelError::Empty);
    }
    if s.len() > DNS1123_LABEL_MAX_LEN {
        return Err(LabelError::TooLong { len: s.len() });
    }
    if let Some(found) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(LabelError::BadChar { found });
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(LabelError::BadEdge);
    }
    Ok(())
}

/// Checks a DNS-1123 subdomain (dot-separated labels, at most 253 characters), the rule for a
/// host name an operator may give as a WireGuard endpoint.
pub fn validate_dns1123_subdomain(s: &str) -> Result<(), LabelError> {
    if s.len() > DNS1123_SUBDOMAIN_MAX_LEN {
        return Err(LabelError::TooLong { len: s.len() });
    }
    s.split('.').try_for_each(validate_dns1123_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_follow_rfc1123() {
        for ok in ["a", "member-1", "0", &"x".repeat(63)] {
            assert_eq!(validate_dns1123_label(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_dns1123_label(""), Err(LabelError::Empty));
        assert_eq!(
            validate_dns1123_label(&"x".repeat(64)),
            Err(LabelError::TooLong { len: 64 })
        );
        assert_eq!(
            validate_dns1123_label("Member"),
            Err(LabelError::BadChar { found: 'M' })
        );
        assert_eq!(
            validate_dns1123_label("a.b"),
            Err(LabelError::BadChar { found: '.' })
        );
        assert_eq!(validate_dns1123_label("-a"), Err(LabelError::BadEdge));
        assert_eq!(validate_dns1123_label("a-"), Err(LabelError::BadEdge));
    }

    #[test]
    fn host_names_are_dot_separated_labels() {
        assert_eq!(validate_dns1123_subdomain("hub.example.com"), Ok(()));
        assert!(validate_dns1123_subdomain("hub..example").is_err());
        assert!(validate_dns1123_subdomain("hub.example.").is_err());
        assert!(validate_dns1123_subdomain(&"a.".repeat(127)).is_err());
    }
}
