//! licensd's access token shapes (`/licensd/v1/tokens`): what a Global Administrator sees of the
//! tenant's tokens (never a secret), and the one answer that shows a new token's secret.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// An access token of the tenant, without its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessToken {
    pub id: Uuid,
    pub display_name: String,
    /// `GlobalAdministrator`, `LicenseAdministrator`, `UserAdministrator`, `GlobalReader`,
    /// `ReportsReader` or `ProvisioningAgent`.
    #[schema(example = "LicenseAdministrator")]
    pub role: String,
    pub created_date_time: String,
    pub created_by: String,
    pub expiration_date_time: Option<String>,
    pub revoked_date_time: Option<String>,
    /// `active`, `expired` or `revoked`.
    #[schema(example = "active")]
    pub status: String,
}

/// The tenant's tokens, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccessTokenList {
    pub value: Vec<AccessToken>,
}

/// `POST /licensd/v1/tokens`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAccessToken {
    /// Who or what uses the token (shown in the audit log), 1–128 characters.
    #[schema(example = "license automation", max_length = 128, pattern = "\\S")]
    pub display_name: String,
    /// `GlobalAdministrator`, `LicenseAdministrator`, `UserAdministrator`, `GlobalReader`,
    /// `ReportsReader` or `ProvisioningAgent` (any case; display names are read too).
    #[schema(schema_with = crate::schemas::role)]
    pub role: String,
    /// Days until the token expires (1–3650); without it the token does not expire.
    #[serde(default, deserialize_with = "crate::integers::optional_u32_whole")]
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<u32>,
}

/// A new token: the only answer that carries its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedAccessToken {
    #[serde(flatten)]
    pub token: AccessToken,
    /// `lsd_…`: send it as `Authorization: Bearer <secret>`. Shown once; only its hash is stored.
    pub secret: String,
}
