//! Graph's audit log shapes (`/v1.0/auditLogs/directoryAudits`): `directoryAudit` with who
//! initiated the change, its targets and the properties it modified, as Entra ID returns them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Graph `directoryAudit`: one change (or one background run) in the tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryAudit {
    pub id: Uuid,
    /// `UserManagement`, `GroupManagement`, `DirectoryManagement`, `Authorization`.
    #[schema(example = "UserManagement")]
    pub category: String,
    /// The request id of the change.
    pub correlation_id: String,
    /// `success` or `failure`.
    #[schema(example = "success")]
    pub result: String,
    pub result_reason: String,
    #[schema(example = "Change user license")]
    pub activity_display_name: String,
    #[schema(example = "2024-05-01T09:30:00Z")]
    pub activity_date_time: String,
    #[schema(example = "Core Directory")]
    pub logged_by_service: String,
    #[schema(example = "Assign")]
    pub operation_type: String,
    pub initiated_by: AuditActivityInitiator,
    pub target_resources: Vec<TargetResource>,
    pub additional_details: Vec<KeyValue>,
}

/// Graph `auditActivityInitiator`: a token (as an app) or licensd itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditActivityInitiator {
    pub app: Option<AppIdentity>,
    pub user: Option<serde_json::Value>,
}

/// Graph `appIdentity`: the token that made the change (`appId` is the token id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppIdentity {
    pub app_id: Option<String>,
    pub display_name: String,
    pub service_principal_id: Option<String>,
    pub service_principal_name: Option<String>,
}

/// Graph `targetResource`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetResource {
    pub id: Option<Uuid>,
    pub display_name: String,
    /// `User`, `Group`, `Product`, `ServicePlan`, `Tenant`, `Token`.
    #[serde(rename = "type")]
    pub resource_type: String,
    pub user_principal_name: Option<String>,
    pub modified_properties: Vec<ModifiedProperty>,
}

/// Graph `modifiedProperty`: old and new values as text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModifiedProperty {
    pub display_name: String,
    pub old_value: String,
    pub new_value: String,
}

/// Graph `keyValue`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// A page of audit records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DirectoryAuditCollectionResponse {
    #[serde(rename = "@odata.context")]
    pub context: String,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
    pub value: Vec<DirectoryAudit>,
}
