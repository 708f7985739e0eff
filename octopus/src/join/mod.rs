//! Joining the cluster set the way kubelets join a cluster (TLS bootstrap): a member presents a
//! bootstrap token once, asks for a client certificate with a `CertificateSigningRequest`, and
//! from then on talks to the hub with that certificate, renewing it under its own identity.
//!
//! - [`token`]: bootstrap tokens and the Secrets that make kube-apiserver accept them.
//! - [`identity`]: the names and groups a member's certificate carries, and their parsing.
//! - [`credential`]: the member's key, certificate, hub CA and URL, as a Secret and a client.
//! - [`csr`]: the member side: generate a key, create the CSR, wait for the certificate.

pub mod credential;
pub mod csr;
pub mod identity;
pub mod token;

pub use credential::{Credential, CredentialError};
pub use identity::{MEMBERS_GROUP, member_namespace, member_user};
pub use token::{BOOTSTRAP_GROUP, BootstrapToken, TokenError};
