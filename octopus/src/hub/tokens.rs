//! Issuing bootstrap tokens on the hub.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};

use crate::join::token::{BootstrapToken, SECRET_NAMESPACE, TokenError};

/// How long a token is accepted when nobody says otherwise.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// Why no token was issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("token lifetime {0:?} is out of range")]
    Ttl(Duration),
    #[error("cannot store the bootstrap token Secret: {0}")]
    Api(#[from] kube::Error),
}

/// Creates a new random token valid for `ttl` and returns it (the only place it is shown).
pub async fn issue_token(hub: kube::Client, ttl: Duration) -> Result<BootstrapToken, IssueError> {
    let token = BootstrapToken::generate()?;
    let ttl_span = jiff::SignedDuration::try_from(ttl).map_err(|_| IssueError::Ttl(ttl))?;
    let expiration = jiff::Timestamp::now()
        .checked_add(ttl_span)
        .map_err(|_| IssueError::Ttl(ttl))?;
    let secret = token.to_secret(expiration, "Nauti member join token");
    let api: Api<Secret> = Api::namespaced(hub, SECRET_NAMESPACE);
    api.create(&PostParams::default(), &secret).await?;
    tracing::info!(token_id = token.id(), %expiration, "bootstrap token issued");
    Ok(token)
}
