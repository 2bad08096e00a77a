//! API errors: [`ApiError`] names an entry of the error table (`licensd_api_types::ErrorCode`) with
//! a message, turns engine refusals and storage failures into it, and renders Graph's error
//! envelope. The request ids of `innerError` are filled in by [`request_context`], the middleware
//! that gives every request its id; internal details go to the log, never to the client.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use licensd_api_types::time::format_error_date;
use licensd_api_types::{ErrorBody, ErrorCode, ErrorResponse, InnerError};
use licensd_engine::{CommandError, LicenseErrorKind};

use licensd_runtime::tenants::{now, ExecuteError};

/// An error answered to the client, from the one table of error codes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// For licensing rule violations: the rule, as Graph's `licenseAssignmentState.error`.
    pub license_error: Option<LicenseErrorKind>,
    /// What the log should say (internal errors only; never sent to the client).
    pub log_detail: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            license_error: None,
            log_detail: None,
        }
    }

    /// The error with its table's default message.
    pub fn of(code: ErrorCode) -> ApiError {
        ApiError::new(code, code.default_message())
    }

    /// An internal failure: the client sees the generic message, the log sees `detail`.
    pub fn internal(detail: impl Into<String>) -> ApiError {
        ApiError {
            log_detail: Some(detail.into()),
            ..ApiError::of(ErrorCode::Internal)
        }
    }

    /// Graph's message for a user, group, product or plan that does not exist.
    pub fn not_found(identifier: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            ErrorCode::ResourceNotFound,
            format!(
                "Resource '{identifier}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    /// Graph's message for an identifier that is not a GUID.
    pub fn invalid_object_identifier(identifier: &str) -> ApiError {
        ApiError::new(
            ErrorCode::InvalidObjectIdentifier,
            format!("Invalid object identifier '{identifier}'."),
        )
    }

    pub fn invalid_query(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidQuery, message)
    }

    pub fn unsupported_query(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::UnsupportedQuery, message)
    }

    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn envelope(&self, request_id: &str, client_request_id: &str) -> ErrorResponse {
        ErrorResponse {
            error: ErrorBody {
                code: self.code.graph_code().to_string(),
                message: self.message.clone(),
                inner_error: InnerError {
                    date: format_error_date(now().0),
                    request_id: request_id.to_string(),
                    client_request_id: client_request_id.to_string(),
                    licensd_code: self.code.licensd_code().to_string(),
                    license_error: self.license_error.map(|kind| kind.as_str().to_string()),
                },
            },
        }
    }
}

impl From<CommandError> for ApiError {
    /// Every refusal of the engine, decided one by one (no wildcard: a new refusal needs a
    /// decision here). Messages are the engine's, which carry Graph's wording where admins know it.
    fn from(error: CommandError) -> ApiError {
        let message = error.to_string();
        let code = match &error {
            CommandError::UnknownUser { user_id } => return ApiError::not_found(user_id),
            CommandError::UnknownGroup { group_id } => return ApiError::not_found(group_id),
            CommandError::UnknownSku { .. } | CommandError::UnknownServicePlan { .. } => {
                ErrorCode::UnknownProduct
            }
            CommandError::DuplicateUserPrincipalName { .. } => {
                return ApiError::new(
                    ErrorCode::ObjectConflict,
                    format!("Another object with the same value for property userPrincipalName already exists. ({message})"),
                )
            }
            CommandError::DuplicateUserId { .. }
            | CommandError::DuplicateGroupId { .. }
            | CommandError::DuplicateSkuId { .. } => ErrorCode::ObjectConflict,
            CommandError::DuplicateServicePlanInSku { .. }
            | CommandError::TooManyServicePlans { .. }
            | CommandError::InvalidUsageLocation { .. }
            | CommandError::InvalidProxyAddress { .. }
            | CommandError::InvalidUserPrincipalName { .. }
            | CommandError::InvalidValue { .. }
            | CommandError::InvalidMembershipRule { .. }
            | CommandError::DynamicMembershipGroup { .. } => ErrorCode::InvalidValue,
            CommandError::InvalidPlanRule { .. } => ErrorCode::InvalidPlanRule,
            CommandError::AlreadyMember { .. } => return ApiError::of(ErrorCode::AlreadyMember),
            CommandError::NotAMember { .. } => ErrorCode::NotAMember,
            CommandError::AlreadyNested { .. } => return ApiError::of(ErrorCode::AlreadyMember),
            CommandError::NotNested { .. } => ErrorCode::NotAMember,
            CommandError::NestingCycle { .. } => ErrorCode::NestingCycle,
            CommandError::SkuNotAssignableToUsers { .. }
            | CommandError::DisabledPlanNotInSku { .. }
            | CommandError::DuplicateLicenseInRequest { .. }
            | CommandError::LicenseAddedAndRemoved { .. }
            | CommandError::NoLicenseChanges
            | CommandError::LicenseNotAssigned { .. }
            | CommandError::LicenseInheritedFromGroup { .. } => ErrorCode::InvalidLicenseRequest,
            CommandError::UsageLocationRequired { .. }
            | CommandError::ProhibitedInUsageLocation { .. }
            | CommandError::MutuallyExclusive { .. }
            | CommandError::Dependency { .. }
            | CommandError::NotEnoughLicenses { .. }
            | CommandError::ProxyAddressInUse { .. }
            | CommandError::GroupPrerequisiteMissing { .. } => ErrorCode::LicenseAssignmentFailed,
            CommandError::GroupHasLicenses { .. } | CommandError::GroupStillGrantsLicenses { .. } => {
                ErrorCode::GroupHasLicenses
            }
        };
        ApiError {
            license_error: error.license_error_kind(),
            ..ApiError::new(code, message)
        }
    }
}

impl From<ExecuteError> for ApiError {
    fn from(error: ExecuteError) -> ApiError {
        match error {
            ExecuteError::Refused(refusal) => refusal.into(),
            ExecuteError::Store(store_error) => ApiError {
                log_detail: Some(store_error.to_string()),
                ..ApiError::of(ErrorCode::StorageUnavailable)
            },
            ExecuteError::UnknownTenant(tenant_id) => ApiError::not_found(tenant_id),
            ExecuteError::Forbidden { .. } => ApiError::new(
                ErrorCode::Forbidden,
                format!("Insufficient privileges to complete the operation: {error}."),
            ),
            ExecuteError::Load(_) | ExecuteError::Poisoned => ApiError::internal(error.to_string()),
        }
    }
}

/// Marks a response as an error whose envelope still needs the request's ids.
#[derive(Clone)]
struct PendingError(ApiError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The body is complete already (ids empty), so the error reads well even without the
        // middleware; `request_context` rewrites it with the request's ids.
        let body = serde_json::to_vec(&self.envelope("", "")).unwrap_or_default();
        let mut response = (
            self.status(),
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        response.extensions_mut().insert(PendingError(self));
        response
    }
}

/// The ids of one request: ours, and the client's `client-request-id` (Microsoft's SDKs send one).
#[derive(Clone, Debug)]
pub struct RequestIds {
    pub request_id: String,
    pub client_request_id: String,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("client-request-id");

/// Gives each request an id, answers with `request-id` and `client-request-id` headers as Graph
/// does, completes error envelopes with them and logs internal errors under the request id.
pub async fn request_context(mut request: Request, next: Next) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = request
        .headers()
        .get(&CLIENT_REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty() && value.len() <= 128)
        .map(str::to_string)
        .unwrap_or_else(|| request_id.clone());
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    request.extensions_mut().insert(RequestIds {
        request_id: request_id.clone(),
        client_request_id: client_request_id.clone(),
    });
    let mut response = next.run(request).await;
    if let Some(PendingError(error)) = response.extensions_mut().remove::<PendingError>() {
        if let Some(detail) = &error.log_detail {
            tracing::error!(request_id = %request_id, %method, %path, code = error.code.licensd_code(), %detail, "request failed");
        } else {
            tracing::debug!(request_id = %request_id, %method, %path, code = error.code.licensd_code(), message = %error.message, "request refused");
        }
        let body = serde_json::to_vec(&error.envelope(&request_id, &client_request_id)).unwrap_or_default();
        let status = response.status();
        let mut rebuilt = (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        for (name, value) in response.headers() {
            if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
                rebuilt.headers_mut().append(name.clone(), value.clone());
            }
        }
        if error.code == ErrorCode::PayloadTooLarge {
            // The rest of the body is not read, so the connection cannot carry another request:
            // say so, so that clients do not reuse it.
            rebuilt
                .headers_mut()
                .insert(axum::http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        response = rebuilt;
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    if let Ok(value) = HeaderValue::from_str(&client_request_id) {
        response.headers_mut().insert(CLIENT_REQUEST_ID, value);
    }
    response
}

/// Answers for addresses no endpoint serves.
pub async fn route_not_found(uri: axum::http::Uri) -> ApiError {
    let segment = uri
        .path()
        .rsplit('/')
        .find(|segment| !segment.is_empty())
        .unwrap_or("");
    ApiError::new(
        ErrorCode::RouteNotFound,
        format!("Resource not found for the segment '{segment}'."),
    )
}

/// Answers for a known address with a method it does not serve.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("The method {method} is not allowed on {}.", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use licensd_engine::Uuid;

    #[test]
    fn refusals_map_to_the_table() {
        let missing = ApiError::from(CommandError::UnknownUser { user_id: Uuid::nil() });
        assert_eq!(missing.code, ErrorCode::ResourceNotFound);
        let no_changes = ApiError::from(CommandError::NoLicenseChanges);
        assert_eq!(no_changes.code, ErrorCode::InvalidLicenseRequest);
        assert_eq!(
            no_changes.message,
            "No license changes provided. At least one license to add or remove must be specified."
        );
        let seats = ApiError::from(CommandError::NotEnoughLicenses {
            user_id: Uuid::nil(),
            sku_id: Uuid::nil(),
            sku_part_number: "ENTERPRISEPACK".into(),
            prepaid_units: 1,
            consumed_units: 1,
        });
        assert_eq!(seats.code, ErrorCode::LicenseAssignmentFailed);
        assert_eq!(seats.license_error, Some(LicenseErrorKind::CountViolation));
    }

    #[test]
    fn the_envelope_is_graphs() {
        let envelope = ApiError::of(ErrorCode::MalformedJson).envelope("r", "c");
        let json = serde_json::to_value(&envelope).expect("serializable");
        assert_eq!(json["error"]["code"], "Request_BadRequest");
        assert_eq!(json["error"]["innerError"]["request-id"], "r");
        assert_eq!(json["error"]["innerError"]["client-request-id"], "c");
        assert!(json["error"]["innerError"]["date"].is_string());
    }
}
