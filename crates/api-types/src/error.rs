//! The one table of errors the HTTP API can return: each error has a stable licensd code, the code
//! Microsoft Graph uses for it, an HTTP status and a default message (in the manner of
//! meilisearch's `make_error_codes!`), and the Graph error envelope that carries it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Declares [`ErrorCode`] from the table below: one line per error, so codes, statuses and
/// messages can be reviewed together and never disagree between handlers.
macro_rules! make_error_codes {
    ($(
        $(#[$documentation:meta])*
        $variant:ident => ($licensd_code:literal, $graph_code:literal, $http_status:literal, $default_message:literal);
    )*) => {
        /// Every error the API can answer with.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$documentation])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in table order (for documentation and tests).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// licensd's stable code (`innerError.licensdCode`): scripts may match on it.
            pub fn licensd_code(&self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $licensd_code,)*
                }
            }

            /// The code Microsoft Graph uses for this error (`error.code`).
            pub fn graph_code(&self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $graph_code,)*
                }
            }

            /// The HTTP status of the response.
            pub fn http_status(&self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $http_status,)*
                }
            }

            /// The message used when the error carries no more specific one.
            pub fn default_message(&self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $default_message,)*
                }
            }
        }
    };
}

make_error_codes! {
    /// The body is not JSON at all.
    MalformedJson => ("malformed_json", "Request_BadRequest", 400,
        "The request body is not valid JSON.");
    /// The body is JSON but not of the expected shape: an unknown property, a wrong type, a
    /// malformed GUID inside it.
    InvalidRequestBody => ("invalid_request_body", "Request_BadRequest", 400,
        "The request body does not have the expected shape.");
    /// A body was sent with a content type other than JSON.
    UnsupportedMediaType => ("unsupported_media_type", "Request_BadRequest", 415,
        "The request body must be JSON (Content-Type: application/json).");
    /// The body is larger than the server accepts.
    PayloadTooLarge => ("payload_too_large", "Request_EntityTooLarge", 413,
        "The request body is larger than the limit of 1 MiB.");
    /// A required parameter of an action is missing (`assignLicense` needs both arrays).
    MissingParameters => ("missing_parameters", "Request_BadRequest", 400,
        "One or more parameters of the operation are missing from the request payload.");
    /// An identifier in the address or the body is not a GUID.
    InvalidObjectIdentifier => ("invalid_object_identifier", "Request_BadRequest", 400,
        "Invalid object identifier.");
    /// A property has a value licensd cannot accept (usage location, proxy address, name, ...).
    InvalidValue => ("invalid_value", "Request_BadRequest", 400,
        "A property has an invalid value.");
    /// A query option cannot be parsed (`$filter` syntax, `$top` out of range, a bad `$skiptoken`).
    InvalidQuery => ("invalid_query", "Request_BadRequest", 400,
        "The query is not valid.");
    /// A well-formed query licensd does not support: it answers 400 rather than a wrong result.
    UnsupportedQuery => ("unsupported_query", "Request_UnsupportedQuery", 400,
        "The query is not supported.");
    /// The addressed user, group, product or plan does not exist.
    ResourceNotFound => ("resource_not_found", "Request_ResourceNotFound", 404,
        "The resource does not exist.");
    /// No endpoint exists at this address.
    RouteNotFound => ("route_not_found", "Request_ResourceNotFound", 404,
        "No resource exists at this address.");
    /// The endpoint exists but not with this method.
    MethodNotAllowed => ("method_not_allowed", "Request_BadRequest", 405,
        "This method is not allowed on this resource.");
    /// Another object already has this unique value (userPrincipalName, skuId, ...).
    ObjectConflict => ("object_conflict", "Request_BadRequest", 400,
        "Another object with the same value for a unique property already exists.");
    /// The user is already a member of the group.
    AlreadyMember => ("already_a_member", "Request_BadRequest", 400,
        "One or more added object references already exist for the following modified properties: 'members'.");
    /// The user is not a member of the group.
    NotAMember => ("not_a_member", "Request_ResourceNotFound", 404,
        "The user is not a member of the group.");
    /// Nesting the group would make a group a member of itself, directly or through other
    /// groups (nested groups, issue 17).
    NestingCycle => ("nesting_cycle", "Request_BadRequest", 400,
        "The group cannot be added: the group is already a member, directly or through nested groups, of the group being added.");
    /// A direct assignment broke a licensing rule (seats, exclusions, prerequisites, usage
    /// location, proxy addresses); `innerError.licenseError` names it.
    LicenseAssignmentFailed => ("license_assignment_failed", "Request_BadRequest", 400,
        "License assignment failed.");
    /// A license request that cannot be carried out as asked (nothing to change, a license that
    /// is not assigned or is inherited, a plan not in the product, a company-only product).
    InvalidLicenseRequest => ("invalid_license_request", "Request_BadRequest", 400,
        "The license request cannot be carried out.");
    /// A product or service plan named in the body does not exist in the tenant.
    UnknownProduct => ("unknown_product", "Request_BadRequest", 400,
        "The product or service plan does not exist in this tenant.");
    /// A group that still carries licenses (or still grants them) cannot be deleted.
    GroupHasLicenses => ("group_has_licenses", "Request_BadRequest", 400,
        "The group still has licenses; remove them before deleting it.");
    /// A service plan rule is inconsistent (a plan excluding itself, an unknown partner, ...).
    InvalidPlanRule => ("invalid_plan_rule", "Request_BadRequest", 400,
        "The service plan rule is not valid.");
    /// The request is understood but licensd does not model it.
    NotSupported => ("not_supported", "Request_NotSupported", 400,
        "licensd does not support this request.");
    /// A request of a `$batch` was not run because a request it depends on (`dependsOn`) failed.
    FailedDependency => ("failed_dependency", "FailedDependency", 424,
        "The request was not run because a request it depends on failed.");
    /// A delta token that no longer (or never) matched the change log: start a new delta round.
    SyncStateNotFound => ("sync_state_not_found", "syncStateNotFound", 410,
        "The delta token is no longer valid; start again without a token.");
    /// A failure inside licensd; the log has the details under the request id.
    Unauthenticated => ("unauthenticated", "InvalidAuthenticationToken", 401,
        "Access token is missing, invalid, expired or revoked.");
    Forbidden => ("forbidden", "Authorization_RequestDenied", 403,
        "Insufficient privileges to complete the operation.");
    TooManyRequests => ("too_many_requests", "TooManyRequests", 429,
        "Too many requests; retry later.");
    Internal => ("internal", "generalException", 500,
        "An internal error occurred; nothing was changed. The server log has the details under this request-id.");
    /// The database did not answer; nothing was changed.
    StorageUnavailable => ("storage_unavailable", "serviceNotAvailable", 503,
        "The database is not available; nothing was changed. Try again.");
}

/// Graph's error envelope: `{"error": {"code", "message", "innerError": {...}}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

/// The error itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Graph's code, such as `Request_BadRequest` or `Request_ResourceNotFound`.
    #[schema(example = "Request_BadRequest")]
    pub code: String,
    /// A sentence for the administrator.
    #[schema(example = "License assignment cannot be done for user with invalid usage location.")]
    pub message: String,
    pub inner_error: InnerError,
}

/// Where and when the error happened, and licensd's own precise codes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InnerError {
    /// When the error happened (UTC, `YYYY-MM-DDThh:mm:ss`, as Graph writes it).
    pub date: String,
    /// The id of this request, also in the `request-id` response header and in the server log.
    #[serde(rename = "request-id")]
    pub request_id: String,
    /// The client's `client-request-id` header, or the request id when the client sent none.
    #[serde(rename = "client-request-id")]
    pub client_request_id: String,
    /// licensd's stable code for the error (see [`ErrorCode::licensd_code`]).
    #[serde(rename = "licensdCode")]
    #[schema(example = "license_assignment_failed")]
    pub licensd_code: String,
    /// For licensing rule violations, Graph's `licenseAssignmentState.error` value of the rule.
    #[serde(rename = "licenseError", default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "MutuallyExclusiveViolation")]
    pub license_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn every_licensd_code_is_unique_and_every_status_is_an_error() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.licensd_code()), "{} twice", code.licensd_code());
            assert!((400..600).contains(&code.http_status()));
            assert!(code.default_message().ends_with('.'));
        }
    }

    #[test]
    fn every_code_is_in_the_api_documentation() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md");
        let documentation = std::fs::read_to_string(path).expect("docs/api.md");
        for code in ErrorCode::ALL {
            let row = format!(
                "| `{}` | `{}` | {} |",
                code.licensd_code(),
                code.graph_code(),
                code.http_status()
            );
            assert!(documentation.contains(&row), "docs/api.md lacks the row {row}");
        }
    }
}
