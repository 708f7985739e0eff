//! Which certificate requests the hub approves, and the loop that approves them.
//!
//! A request is Nauti's when it asks the `kube-apiserver-client` signer for a subject
//! `CN=nauti:member:<id>`. The hub approves it when the requester is a Nauti bootstrap token and
//! no joined member holds `<id>` (a join), or when the requester is that member itself (a
//! renewal). Every other Nauti request is denied with the reason; requests that are not Nauti's
//! are left to whoever approves them.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use x509_parser::prelude::FromDer;

use super::grants;
use crate::join::csr::{SIGNER, USAGES};
use crate::join::identity::{MEMBERS_GROUP, cluster_of_user, member_user};
use crate::join::token::{BOOTSTRAP_GROUP, token_id_of_user};

/// What the hub does with one CSR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsrVerdict {
    /// Not a Nauti member request: leave it alone.
    NotOurs,
    /// Approve; `renewal` when the member asked under its own identity.
    Approve { cluster_id: String, renewal: bool },
    /// Deny with this reason.
    Deny(String),
}

/// The parts of a CSR the verdict depends on (`username`/`groups` are set by kube-apiserver,
/// not by the requester).
#[derive(Debug, Clone, Copy)]
pub struct CsrFacts<'a> {
    pub signer: &'a str,
    pub username: &'a str,
    pub groups: &'a [String],
    pub usages: &'a [String],
    pub request_pem: &'a [u8],
}

/// Decides about one CSR; `joined(id)` tells whether a member already holds cluster ID `id`.
pub fn review_csr(facts: &CsrFacts<'_>, joined: impl Fn(&str) -> bool) -> CsrVerdict {
    if facts.signer != SIGNER {
        return CsrVerdict::NotOurs;
    }
    let Ok((common_names, organizations)) = subject_of(facts.request_pem) else {
        return CsrVerdict::NotOurs;
    };
    let [cn] = common_names.as_slice() else {
        return CsrVerdict::NotOurs;
    };
    if !cn.starts_with("nauti:member:") {
        return CsrVerdict::NotOurs;
    }
    let Some(cluster_id) = cluster_of_user(cn) else {
        return CsrVerdict::Deny(format!("{cn:?}: the cluster ID is not a DNS-1123 label"));
    };
    if organizations != [MEMBERS_GROUP] {
        return CsrVerdict::Deny(format!(
            "subject O must be exactly {MEMBERS_GROUP:?}, got {organizations:?}"
        ));
    }
    if facts.usages.iter().any(|u| !USAGES.contains(&u.as_str()))
        || !facts.usages.iter().any(|u| u == "client auth")
    {
        return CsrVerdict::Deny(format!(
            "usages {:?} are not a subset of {USAGES:?} with client auth",
            facts.usages
        ));
    }
    if facts.username == member_user(cluster_id) {
        return CsrVerdict::Approve {
            cluster_id: cluster_id.to_owned(),
            renewal: true,
        };
    }
    if !facts.groups.iter().any(|g| g == BOOTSTRAP_GROUP) {
        return CsrVerdict::Deny(format!(
            "requester {:?} is neither a Nauti bootstrap token nor member {cluster_id:?}",
            facts.username
        ));
    }
    if joined(cluster_id) {
        return CsrVerdict::Deny(format!(
            "cluster ID {cluster_id:?} is held by a joined member; it must leave first"
        ));
    }
    CsrVerdict::Approve {
        cluster_id: cluster_id.to_owned(),
        renewal: false,
    }
}

/// (CNs, Os) of a PEM PKCS#10 request.
fn subject_of(pem: &[u8]) -> Result<(Vec<String>, Vec<String>), String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| e.to_string())?;
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents)
            .map_err(|e| e.to_string())?;
    let subject = &csr.certification_request_info.subject;
    let texts = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
        it.filter_map(|a| a.as_str().ok().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    Ok((
        texts(&mut subject.iter_common_name()),
        texts(&mut subject.iter_organization()),
    ))
}

fn is_decided(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| matches!(c.type_.as_str(), "Approved" | "Denied"))
        })
}

/// Why a CSR could not be acted on.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("hub API: {0}")]
    Api(#[from] kube::Error),
    #[error("watch of CertificateSigningRequests: {0}")]
    Watch(#[from] watcher::Error),
    #[error("granting member {cluster_id}: {source}")]
    Grant {
        cluster_id: String,
        #[source]
        source: kube::Error,
    },
}

/// A join under a `reserved` cluster ID (the hub's own) is denied: the member would get the
/// rights on that cluster's Peer.
pub fn refuse_reserved(verdict: CsrVerdict, reserved: &[String]) -> CsrVerdict {
    match verdict {
        CsrVerdict::Approve {
            cluster_id,
            renewal: false,
        } if reserved.contains(&cluster_id) => CsrVerdict::Deny(format!(
            "cluster ID {cluster_id:?} is the hub's own; a member cannot take it"
        )),
        other => other,
    }
}

/// Watches CSRs and approves or denies Nauti's until the watch ends.
pub async fn run(hub: kube::Client) -> Result<(), ApprovalError> {
    run_reserving(hub, &[]).await
}

/// [`run`], denying joins under the cluster IDs in `reserved`.
pub async fn run_reserving(hub: kube::Client, reserved: &[String]) -> Result<(), ApprovalError> {
    let api: Api<CertificateSigningRequest> = Api::all(hub.clone());
    let mut events = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(csr) = events.try_next().await? {
        if is_decided(&csr) {
            continue;
        }
        let name = csr.metadata.name.clone().unwrap_or_default();
        let span = tracing::info_span!("csr", csr = %name);
        let _entered = span.enter();
        if let Err(e) = decide(&hub, &api, csr, reserved).await {
            tracing::warn!(error = %e, "certificate request left pending; retried on the next event");
        }
    }
    Ok(())
}

async fn decide(
    hub: &kube::Client,
    api: &Api<CertificateSigningRequest>,
    csr: CertificateSigningRequest,
    reserved: &[String],
) -> Result<(), ApprovalError> {
    let joined_ids = grants::joined_members(hub.clone()).await?;
    let empty = Vec::new();
    let facts = CsrFacts {
        signer: &csr.spec.signer_name,
        username: csr.spec.username.as_deref().unwrap_or_default(),
        groups: csr.spec.groups.as_ref().unwrap_or(&empty),
        usages: csr.spec.usages.as_ref().unwrap_or(&empty),
        request_pem: &csr.spec.request.0,
    };
    let verdict = refuse_reserved(
        review_csr(&facts, |id| joined_ids.iter().any(|j| j == id)),
        reserved,
    );
    let (kind, reason, message) = match &verdict {
        CsrVerdict::NotOurs => return Ok(()),
        CsrVerdict::Approve {
            cluster_id,
            renewal,
        } => {
            let join_token = (!*renewal)
                .then(|| token_id_of_user(facts.username))
                .flatten();
            grants::grant(hub.clone(), cluster_id, join_token)
                .await
                .map_err(|source| ApprovalError::Grant {
                    cluster_id: cluster_id.clone(),
                    source,
                })?;
            let what = if *renewal { "renewal" } else { "join" };
            tracing::info!(cluster = %cluster_id, what, "member certificate approved");
            (
                "Approved",
                "NautiMemberApproved",
                format!("Nauti member {cluster_id} ({what})"),
            )
        }
        CsrVerdict::Deny(reason) => {
            tracing::warn!(%reason, "member certificate denied");
            ("Denied", "NautiMemberDenied", reason.clone())
        }
    };
    let mut csr = csr;
    let status = csr.status.get_or_insert_with(Default::default);
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .push(CertificateSigningRequestCondition {
            type_: kind.to_owned(),
            status: "True".to_owned(),
            reason: Some(reason.to_owned()),
            message: Some(message),
            last_update_time: Some(Time(jiff::Timestamp::now())),
            ..Default::default()
        });
    let name = csr.metadata.name.clone().unwrap_or_default();
    api.replace_subresource("approval", &name, &PostParams::default(), &csr)
        .await?;
    Ok(())
}

#[cfg(test)]
#[path = "approval_tests.rs"]
mod tests;
