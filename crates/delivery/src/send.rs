//! One outbound request: a delivery's POST (answered 2xx: delivered) and Graph's validation
//! handshake on subscription create (`POST <notificationUrl>?validationToken=<token>`, answered
//! `200 OK` with the token as `text/plain` within 10 seconds).

use std::time::Duration;

use crate::guard::{TargetError, TargetPolicy};

/// How long an endpoint has to answer the validation handshake (Graph's limit).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a delivery attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendResult {
    /// Answered 2xx.
    Delivered { status: u16 },
    /// Answered something else, or not at all: try again later.
    Failed { status: Option<u16>, error: String },
    /// The target is refused (SSRF guard, not a URL): never try again.
    Refused { error: String },
}

/// POSTs `body` with `headers` to `url` through `client`, within `timeout`.
pub async fn send(
    client: &reqwest::Client,
    policy: &TargetPolicy,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> SendResult {
    let url = match policy.check_url(url) {
        Ok(url) => url,
        Err(error) => {
            return SendResult::Refused {
                error: error.to_string(),
            }
        }
    };
    let mut request = client.post(url).timeout(timeout).body(body);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            if response.status().is_success() {
                SendResult::Delivered { status }
            } else {
                SendResult::Failed {
                    status: Some(status),
                    error: format!("the endpoint answered {status}"),
                }
            }
        }
        Err(error) => match guard_refusal(&error) {
            Some(refusal) => SendResult::Refused {
                error: refusal.to_string(),
            },
            None => SendResult::Failed {
                status: None,
                error: describe(&error),
            },
        },
    }
}

/// The guard's refusal inside a client error (a name that resolved only to refused addresses).
fn guard_refusal(error: &reqwest::Error) -> Option<TargetError> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(refusal) = current.downcast_ref::<TargetError>() {
            return Some(refusal.clone());
        }
        source = current.source();
    }
    None
}

/// A client error with its causes, on one line.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(current) = source {
        text.push_str(": ");
        text.push_str(&current.to_string());
        source = current.source();
    }
    text
}

/// Why an endpoint failed the validation handshake.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error(transparent)]
    Refused(#[from] TargetError),
    #[error("the validation request to {url} failed: {error}")]
    Unreachable { url: String, error: String },
    #[error("{url} answered the validation request with {status}, not 200")]
    Status { url: String, status: u16 },
    #[error("{url} did not answer the validation request with the validationToken")]
    WrongToken { url: String },
}

/// Graph's validation handshake: POSTs to `url` with `validationToken=<token>` added to its
/// query and expects `200` with exactly the token as the body within [`HANDSHAKE_TIMEOUT`].
pub async fn validate_endpoint(
    client: &reqwest::Client,
    policy: &TargetPolicy,
    url: &str,
    token: &str,
) -> Result<(), HandshakeError> {
    let mut target = policy.check_url(url)?;
    target.query_pairs_mut().append_pair("validationToken", token);
    let unreachable = |error: reqwest::Error| match guard_refusal(&error) {
        Some(refusal) => HandshakeError::Refused(refusal),
        None => HandshakeError::Unreachable {
            url: url.to_string(),
            error: describe(&error),
        },
    };
    let response = client
        .post(target)
        .header("Content-Type", "text/plain")
        .timeout(HANDSHAKE_TIMEOUT)
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(HandshakeError::Status {
            url: url.to_string(),
            status,
        });
    }
    let body = response.text().await.map_err(unreachable)?;
    if body != token {
        return Err(HandshakeError::WrongToken { url: url.to_string() });
    }
    Ok(())
}

/// What the API uses to check a subscriber's endpoint before storing a subscription: the
/// guard's policy and a client through it.
#[derive(Clone, Debug)]
pub struct EndpointValidator {
    pub policy: TargetPolicy,
    client: reqwest::Client,
}

impl EndpointValidator {
    pub fn new(policy: TargetPolicy) -> Result<EndpointValidator, reqwest::Error> {
        Ok(EndpointValidator {
            policy,
            client: crate::guard::guarded_client(policy)?,
        })
    }

    /// The guard's check of a URL (no request).
    pub fn check_url(&self, url: &str) -> Result<(), TargetError> {
        self.policy.check_url(url).map(|_| ())
    }

    /// Graph's validation handshake ([`validate_endpoint`]).
    pub async fn validate(&self, url: &str, token: &str) -> Result<(), HandshakeError> {
        validate_endpoint(&self.client, &self.policy, url, token).await
    }
}
