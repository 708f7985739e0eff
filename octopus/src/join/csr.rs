//! The member side of joining and renewing: generate a key that never leaves the member, ask
//! the hub's `kubernetes.io/kube-apiserver-client` signer for a certificate of
//! [`member_user`](super::member_user) in [`MEMBERS_GROUP`](super::MEMBERS_GROUP), and wait
//! for the hub to approve it and kube-controller-manager to sign it.

use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use rcgen::{CertificateParams, DnType, KeyPair};

use super::identity::{MEMBERS_GROUP, member_user};

/// The signer whose certificates kube-apiserver accepts as client identities.
pub const SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// The usages a member asks for: a TLS client key.
pub const USAGES: [&str; 2] = ["digital signature", "client auth"];
const POLL: Duration = Duration::from_millis(500);

/// Why no certificate came back.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    #[error("cannot build the certificate request: {0}")]
    Build(#[from] rcgen::Error),
    #[error("hub API refused the certificate request: {0}")]
    Api(#[from] kube::Error),
    #[error("the hub denied certificate request {name}: {reason}")]
    Denied { name: String, reason: String },
    #[error(
        "certificate request {name} not signed after {waited:?} (is the hub's octopus and csrsigning running?)"
    )]
    Timeout { name: String, waited: Duration },
}

/// A freshly generated private key and the PEM request for `cluster_id`'s identity.
pub struct MemberRequest {
    pub key_pem: String,
    pub csr_pem: String,
}

impl std::fmt::Debug for MemberRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberRequest").finish_non_exhaustive()
    }
}

/// Generates a key (ECDSA P-256) and a PKCS#10 request with CN `nauti:member:<id>`, O
/// `nauti:members`.
pub fn build_request(cluster_id: &str) -> Result<MemberRequest, CsrError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, member_user(cluster_id));
    params
        .distinguished_name
        .push(DnType::OrganizationName, MEMBERS_GROUP);
    let csr_pem = params.serialize_request(&key)?.pem()?;
    Ok(MemberRequest {
        key_pem: key.serialize_pem(),
        csr_pem,
    })
}

/// The CertificateSigningRequest object for `request`.
pub fn csr_object(
    cluster_id: &str,
    request: &MemberRequest,
    lifetime: Duration,
) -> CertificateSigningRequest {
    CertificateSigningRequest {
        metadata: ObjectMeta {
            generate_name: Some(format!("nauti-member-{cluster_id}-")),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.csr_pem.as_bytes().to_vec()),
            signer_name: SIGNER.to_owned(),
            usages: Some(USAGES.iter().map(|u| (*u).to_owned()).collect()),
            expiration_seconds: i32::try_from(lifetime.as_secs()).ok(),
            ..Default::default()
        },
        status: None,
    }
}

/// Creates the CSR with `hub` (a bootstrap-token client to join, the member's own client to
/// renew) and waits up to `timeout` for the certificate; returns (key PEM, certificate PEM).
pub async fn request_certificate(
    hub: kube::Client,
    cluster_id: &str,
    lifetime: Duration,
    timeout: Duration,
) -> Result<(String, String), CsrError> {
    let request = build_request(cluster_id)?;
    let api: Api<CertificateSigningRequest> = Api::all(hub);
    let created = api
        .create(
            &PostParams::default(),
            &csr_object(cluster_id, &request, lifetime),
        )
        .await?;
    let name = created.metadata.name.unwrap_or_default();
    tracing::info!(csr = %name, cluster = cluster_id, "certificate requested");
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let csr = api.get(&name).await?;
        let status = csr.status.unwrap_or_default();
        if let Some(c) = status
            .conditions
            .iter()
            .flatten()
            .find(|c| (c.type_ == "Denied" || c.type_ == "Failed") && c.status == "True")
        {
            return Err(CsrError::Denied {
                name,
                reason: c.message.clone().unwrap_or_else(|| c.type_.clone()),
            });
        }
        if let Some(cert) = status.certificate.filter(|c| !c.0.is_empty()) {
            let cert_pem = String::from_utf8_lossy(&cert.0).into_owned();
            return Ok((request.key_pem, cert_pem));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(CsrError::Timeout {
                name,
                waited: timeout,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
