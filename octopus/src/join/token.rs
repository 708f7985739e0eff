//! Bootstrap tokens (`<id>.<secret>`, 6 + 16 characters of `[a-z0-9]`) and the
//! `kube-system/bootstrap-token-<id>` Secrets that kube-apiserver's bootstrap authenticator
//! reads. A token authenticates as `system:bootstrap:<id>` in `system:bootstrappers` and
//! [`BOOTSTRAP_GROUP`]; RBAC lets that group do nothing but create a CSR.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The extra group of Nauti's tokens; the join ClusterRoleBinding names it.
pub const BOOTSTRAP_GROUP: &str = "system:bootstrappers:nauti";
/// The Secret type kube-apiserver's bootstrap authenticator reads.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// Where bootstrap-token Secrets live.
pub const SECRET_NAMESPACE: &str = "kube-system";
/// Label that marks the tokens Nauti issued.
pub const ISSUER_LABEL: &str = "nauti.io/bootstrap-token";

const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Why a token string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("a bootstrap token has the form <6 chars>.<16 chars> of [a-z0-9]")]
    Malformed,
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// A bootstrap token; `Display` prints `<id>.<secret>`, `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    id: String,
    secret: String,
}

impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootstrapToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.id, self.secret)
    }
}

impl FromStr for BootstrapToken {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, TokenError> {
        let (id, secret) = s.trim().split_once('.').ok_or(TokenError::Malformed)?;
        let valid = |part: &str, len: usize| {
            part.len() == len && part.bytes().all(|b| ALPHABET.contains(&b))
        };
        if !valid(id, ID_LEN) || !valid(secret, SECRET_LEN) {
            return Err(TokenError::Malformed);
        }
        Ok(Self {
            id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }
}

impl BootstrapToken {
    /// A new token from the operating system's randomness.
    pub fn generate() -> Result<Self, TokenError> {
        Ok(Self {
            id: random_chars(ID_LEN)?,
            secret: random_chars(SECRET_LEN)?,
        })
    }

    /// The public half, also the Secret's name suffix and the user name's suffix.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The name of the Secret that holds this token.
    pub fn secret_name(&self) -> String {
        format!("bootstrap-token-{}", self.id)
    }

    /// The Secret kube-apiserver accepts until `expiration` (RFC 3339); kube-controller-manager's
    /// `tokencleaner` deletes it after that.
    pub fn to_secret(&self, expiration: jiff::Timestamp, description: &str) -> Secret {
        let data: BTreeMap<String, ByteString> = [
            ("token-id", self.id.as_str()),
            ("token-secret", self.secret.as_str()),
            ("expiration", &expiration.to_string()),
            ("usage-bootstrap-authentication", "true"),
            ("auth-extra-groups", BOOTSTRAP_GROUP),
            ("description", description),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect();
        Secret {
            metadata: ObjectMeta {
                name: Some(self.secret_name()),
                namespace: Some(SECRET_NAMESPACE.to_owned()),
                labels: Some(BTreeMap::from([(
                    ISSUER_LABEL.to_owned(),
                    "true".to_owned(),
                )])),
                ..Default::default()
            },
            type_: Some(SECRET_TYPE.to_owned()),
            data: Some(data),
            ..Default::default()
        }
    }
}

/// The token ID of a bootstrap token's user name (`system:bootstrap:<id>`).
pub fn token_id_of_user(user: &str) -> Option<&str> {
    user.strip_prefix("system:bootstrap:")
        .filter(|id| id.len() == ID_LEN && id.bytes().all(|b| ALPHABET.contains(&b)))
}

fn random_chars(len: usize) -> Result<String, TokenError> {
    // 252 is the largest multiple of 36 below 256: rejecting bytes above it keeps every
    // character equally likely.
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(|e| TokenError::Random(e.to_string()))?;
        for b in buf.iter().copied().filter(|b| *b < 252) {
            if out.len() == len {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(b % 36)]));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = BootstrapToken::generate().unwrap();
        let b = BootstrapToken::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.to_string().parse::<BootstrapToken>().unwrap(), a);
        assert_eq!(a.to_string().len(), 23);
    }

    #[test]
    fn seed_shaped_token_parses_and_bad_ones_do_not() {
        let t: BootstrapToken = "re51os.131tn13kek2iaqoz".parse().unwrap();
        assert_eq!(t.id(), "re51os");
        for bad in [
            "",
            "re51os",
            "RE51OS.131tn13kek2iaqoz",
            "re51o.131tn13kek2iaqoz",
            "re51os.131tn13kek2iaqo!",
        ] {
            assert_eq!(
                bad.parse::<BootstrapToken>(),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn token_ids_come_only_from_bootstrap_users() {
        assert_eq!(token_id_of_user("system:bootstrap:re51os"), Some("re51os"));
        assert_eq!(token_id_of_user("system:bootstrap:RE51OS"), None);
        assert_eq!(token_id_of_user("system:bootstrap:../x"), None);
        assert_eq!(token_id_of_user("nauti:member:re51os"), None);
    }

    #[test]
    fn debug_hides_the_secret() {
        let t: BootstrapToken = "re51os.131tn13kek2iaqoz".parse().unwrap();
        assert!(!format!("{t:?}").contains("131tn13kek2iaqoz"));
    }

    #[test]
    fn secret_carries_what_the_authenticator_reads() {
        let t: BootstrapToken = "re51os.131tn13kek2iaqoz".parse().unwrap();
        let s = t.to_secret("2026-12-04T00:00:00Z".parse().unwrap(), "test");
        assert_eq!(s.metadata.name.as_deref(), Some("bootstrap-token-re51os"));
        assert_eq!(s.type_.as_deref(), Some(SECRET_TYPE));
        let data = s.data.unwrap();
        assert_eq!(data["auth-extra-groups"].0, BOOTSTRAP_GROUP.as_bytes());
        assert_eq!(data["expiration"].0, b"2026-12-04T00:00:00Z");
        assert_eq!(data["usage-bootstrap-authentication"].0, b"true");
    }
}
