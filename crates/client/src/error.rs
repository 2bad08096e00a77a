//! What can go wrong talking to licensd: the server refused the request (its Graph error envelope,
//! kept whole), the server failed or could not be reached, or the answer was not what the API
//! promises. Each error says which of these it is ([`FailureKind`]), so a caller can decide what to
//! tell its user (the CLI turns the kind into its exit code).

use licensd_api_types::ErrorBody;

/// The three kinds of failure a caller of the client has to tell apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The server understood the request and refused it (a 4xx answer: a licensing rule, an
    /// unknown user or product, an invalid value), or the request names something the tenant does
    /// not have. Sending it again will not help.
    Refused,
    /// The server could not be reached, did not answer in time, failed (a 5xx answer), or answered
    /// something that is not licensd's API. Trying again later may help.
    Unavailable,
    /// The client itself is configured wrongly (a server address that is not a URL, a token that
    /// cannot be sent in a header, a configuration file that cannot be read).
    Configuration,
}

/// An error of a call to licensd's API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with Graph's error envelope: a refusal (4xx) or its own failure (5xx).
    #[error("{}", describe_server_error(*.status, .error))]
    Server {
        /// The HTTP status of the answer.
        status: u16,
        /// The envelope's `error` object: Graph's code, the message, and `innerError` with the
        /// request id, licensd's stable code and, for licensing rules, the rule's Graph name.
        error: Box<ErrorBody>,
    },
    /// The server answered with an error status but without Graph's error envelope (a reverse
    /// proxy's page, or a server that is not licensd).
    #[error(
        "the server answered {url} with HTTP {status}{} and no licensd error envelope: {body_excerpt}",
        request_id.as_deref().map(|id| format!(" (request-id {id})")).unwrap_or_default()
    )]
    UnexpectedStatus {
        url: String,
        status: u16,
        request_id: Option<String>,
        body_excerpt: String,
    },
    /// No answer: the connection was refused, the name did not resolve, the server did not answer
    /// in time, or the connection broke.
    #[error("cannot reach licensd at {server}: {reason}. Is `licensd serve` running there? (set the address with --server, LICENSD_SERVER or the configuration file)")]
    Unreachable {
        server: String,
        reason: String,
        #[source]
        source: reqwest::Error,
    },
    /// A successful answer whose body is not the shape the API documents.
    #[error("the answer of {url} is not the expected JSON: {reason}")]
    InvalidResponse { url: String, reason: String },
    /// The server address is not an http(s) URL.
    #[error("invalid server address '{address}': {reason}")]
    InvalidServerAddress { address: String, reason: String },
    /// The token contains characters an HTTP header cannot carry.
    #[error("the token cannot be sent in an Authorization header (it contains control characters or non-ASCII text)")]
    InvalidToken,
    /// The HTTP client could not be built (no usable TLS or resolver on this system).
    #[error("cannot set up the HTTP client: {reason}")]
    HttpClientSetup { reason: String },
    /// A product named by `skuPartNumber` that the tenant does not subscribe to.
    #[error("the tenant has no product '{sku}'; its products are: {known}")]
    UnknownProduct { sku: String, known: String },
    /// A service plan that the product does not contain.
    #[error("{sku_part_number} has no service plan '{plan}'; its plans are: {known}")]
    UnknownServicePlan {
        plan: String,
        sku_part_number: String,
        known: String,
    },
    /// No group has this display name.
    #[error("no group is named '{name}' (give the group's id, or its exact display name)")]
    UnknownGroup { name: String },
    /// Several groups have this display name.
    #[error("{count} groups are named '{name}': give the group's id instead ({ids})")]
    AmbiguousGroup { name: String, count: usize, ids: String },
    /// Several products have this `skuPartNumber`.
    #[error("{count} products have the skuPartNumber '{sku}': give the product's skuId instead ({ids})")]
    AmbiguousProduct { sku: String, count: usize, ids: String },
}

impl ClientError {
    /// Which kind of failure this is.
    pub fn kind(&self) -> FailureKind {
        match self {
            ClientError::Server { status, .. } | ClientError::UnexpectedStatus { status, .. } => {
                if *status >= 500 {
                    FailureKind::Unavailable
                } else {
                    FailureKind::Refused
                }
            }
            ClientError::Unreachable { .. } | ClientError::InvalidResponse { .. } => FailureKind::Unavailable,
            ClientError::InvalidServerAddress { .. }
            | ClientError::InvalidToken
            | ClientError::HttpClientSetup { .. } => FailureKind::Configuration,
            ClientError::UnknownProduct { .. }
            | ClientError::UnknownServicePlan { .. }
            | ClientError::UnknownGroup { .. }
            | ClientError::AmbiguousGroup { .. }
            | ClientError::AmbiguousProduct { .. } => FailureKind::Refused,
        }
    }

    /// The server's error envelope, when the server sent one.
    pub fn server_error(&self) -> Option<&ErrorBody> {
        match self {
            ClientError::Server { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The HTTP status of the server's answer, when there was one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ClientError::Server { status, .. } | ClientError::UnexpectedStatus { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// Whether the server answered 404 because it has no such endpoint (an older licensd, or a
    /// server that only speaks Graph), as opposed to a missing user, group or product.
    pub fn is_missing_endpoint(&self) -> bool {
        match self {
            ClientError::Server { status: 404, error } => error.inner_error.licensd_code == "route_not_found",
            ClientError::UnexpectedStatus { status: 404, .. } => true,
            _ => false,
        }
    }
}

/// `message [Graph code, licensd code, license error; HTTP status; request-id]`.
fn describe_server_error(status: u16, error: &ErrorBody) -> String {
    let mut codes = vec![error.code.clone()];
    if !error.inner_error.licensd_code.is_empty() {
        codes.push(format!("licensdCode {}", error.inner_error.licensd_code));
    }
    if let Some(license_error) = &error.inner_error.license_error {
        codes.push(format!("licenseError {license_error}"));
    }
    let mut text = format!("{} [{}; HTTP {status}", error.message, codes.join(", "));
    if !error.inner_error.request_id.is_empty() {
        text.push_str(&format!("; request-id {}", error.inner_error.request_id));
    }
    text.push(']');
    text
}

/// The first characters of a body, on one line, for an error message.
pub(crate) fn excerpt(body: &str) -> String {
    const LIMIT: usize = 200;
    let single_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if single_line.is_empty() {
        return "(empty body)".to_string();
    }
    let mut shortened: String = single_line.chars().take(LIMIT).collect();
    if single_line.chars().count() > LIMIT {
        shortened.push('…');
    }
    shortened
}

/// The innermost cause of a transport error, in plain words ("Connection refused (os error 111)").
pub(crate) fn transport_reason(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "no answer in time (timed out)".to_string();
    }
    let mut innermost: &dyn std::error::Error = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    let reason = innermost.to_string();
    if error.is_connect() && !reason.to_lowercase().contains("connect") {
        format!("could not connect ({reason})")
    } else {
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use licensd_api_types::InnerError;

    fn envelope(status: u16, licensd_code: &str, license_error: Option<&str>) -> ClientError {
        ClientError::Server {
            status,
            error: Box::new(ErrorBody {
                code: "Request_BadRequest".to_string(),
                message: "License assignment failed.".to_string(),
                inner_error: InnerError {
                    date: "2026-01-01T00:00:00".to_string(),
                    request_id: "abc".to_string(),
                    client_request_id: "abc".to_string(),
                    licensd_code: licensd_code.to_string(),
                    license_error: license_error.map(str::to_string),
                },
            }),
        }
    }

    #[test]
    fn a_refusal_names_every_code_and_the_request_id() {
        let error = envelope(400, "license_assignment_failed", Some("CountViolation"));
        assert_eq!(error.kind(), FailureKind::Refused);
        assert_eq!(
            error.to_string(),
            "License assignment failed. [Request_BadRequest, licensdCode license_assignment_failed, \
             licenseError CountViolation; HTTP 400; request-id abc]"
        );
    }

    #[test]
    fn server_failures_and_missing_endpoints_are_told_apart() {
        assert_eq!(
            envelope(503, "storage_unavailable", None).kind(),
            FailureKind::Unavailable
        );
        assert!(envelope(404, "route_not_found", None).is_missing_endpoint());
        assert!(!envelope(404, "resource_not_found", None).is_missing_endpoint());
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(
            excerpt("<html>\n  <h1>Bad gateway</h1>\n</html>"),
            "<html> <h1>Bad gateway</h1> </html>"
        );
        assert_eq!(excerpt(""), "(empty body)");
        assert_eq!(excerpt(&"x".repeat(300)).chars().count(), 201);
    }
}
