//! SCIM errors (RFC 7644 §3.12): `urn:ietf:params:scim:api:messages:2.0:Error` with `status` as a
//! string and, for 400 and 409, a `scimType`. Refusals of the SCIM grammar arrive as
//! `licensd_protocols::scim::BadRequest`, engine refusals and storage failures as the API's
//! [`ApiError`]; both keep their message; internal details go to the log only.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use licensd_api_types::ErrorCode;
use licensd_protocols::scim::BadRequest;
pub use licensd_protocols::scim::ScimType;
use serde_json::json;

use super::schema::ERROR;
use super::SCIM_CONTENT_TYPE;
use crate::api::ApiError;

/// An error answered to a SCIM client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status} {detail}")]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<ScimType>,
    pub detail: String,
    /// What the log should say (internal errors only).
    log_detail: Option<String>,
}

impl ScimError {
    pub fn new(status: StatusCode, scim_type: Option<ScimType>, detail: impl Into<String>) -> ScimError {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
            log_detail: None,
        }
    }

    /// 400 with a `scimType`.
    pub fn bad_request(scim_type: ScimType, detail: impl Into<String>) -> ScimError {
        ScimError::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }

    pub fn invalid_value(detail: impl Into<String>) -> ScimError {
        ScimError::bad_request(ScimType::InvalidValue, detail)
    }

    pub fn invalid_syntax(detail: impl Into<String>) -> ScimError {
        ScimError::bad_request(ScimType::InvalidSyntax, detail)
    }

    pub fn invalid_filter(detail: impl Into<String>) -> ScimError {
        ScimError::bad_request(ScimType::InvalidFilter, detail)
    }

    pub fn invalid_path(detail: impl Into<String>) -> ScimError {
        ScimError::bad_request(ScimType::InvalidPath, detail)
    }

    pub fn no_target(detail: impl Into<String>) -> ScimError {
        ScimError::bad_request(ScimType::NoTarget, detail)
    }

    pub fn mutability(detail: impl Into<String>) -> ScimError {
        ScimError::bad_request(ScimType::Mutability, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> ScimError {
        ScimError::new(StatusCode::NOT_FOUND, None, detail)
    }

    pub fn internal(detail: impl Into<String>) -> ScimError {
        ScimError {
            log_detail: Some(detail.into()),
            ..ScimError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "An internal error occurred; it has been logged.",
            )
        }
    }
}

impl From<BadRequest> for ScimError {
    fn from(refusal: BadRequest) -> ScimError {
        let status = StatusCode::from_u16(BadRequest::STATUS).unwrap_or(StatusCode::BAD_REQUEST);
        ScimError::new(status, Some(refusal.scim_type), refusal.detail)
    }
}

impl From<ApiError> for ScimError {
    fn from(error: ApiError) -> ScimError {
        let status =
            StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (status, scim_type) = match error.code {
            ErrorCode::ObjectConflict => (StatusCode::CONFLICT, Some(ScimType::Uniqueness)),
            ErrorCode::ResourceNotFound => (StatusCode::NOT_FOUND, None),
            ErrorCode::MalformedJson => (StatusCode::BAD_REQUEST, Some(ScimType::InvalidSyntax)),
            ErrorCode::Internal => {
                return ScimError {
                    log_detail: error.log_detail.or_else(|| Some(error.message.clone())),
                    ..ScimError::internal(error.message)
                }
            }
            _ if status == StatusCode::BAD_REQUEST => (status, Some(ScimType::InvalidValue)),
            _ => (status, None),
        };
        ScimError {
            status,
            scim_type,
            detail: error.message,
            log_detail: error.log_detail,
        }
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        if let Some(detail) = &self.log_detail {
            tracing::error!(status = self.status.as_u16(), detail = %detail, "SCIM request failed");
        }
        let mut body = json!({
            "schemas": [ERROR],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(scim_type) = self.scim_type {
            body["scimType"] = json!(scim_type.as_str());
        }
        (
            self.status,
            [(header::CONTENT_TYPE, SCIM_CONTENT_TYPE)],
            body.to_string(),
        )
            .into_response()
    }
}
