//! The shapes of reclamation policies under `/licensd/v1`: a policy (inactive for N days,
//! disabled account, left the company; for one product or every product; a notice period;
//! exempt users and groups), a run of it (dry or real) with what it does to each seat, the
//! notices pending, and the revert of a reclamation from its audit record.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /licensd/v1/reclamationPolicies`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateReclamationPolicy {
    #[schema(example = "Leavers' E3 seats", min_length = 1, max_length = 256)]
    pub display_name: String,
    /// `inactive`, `disabled` or `left`.
    #[schema(example = "inactive", pattern = "^(inactive|disabled|left)$")]
    pub reason: String,
    /// For `inactive`: days without a sign-in (default 90, 1 to 3650).
    #[serde(default, deserialize_with = "crate::integers::optional_u32_whole")]
    #[schema(minimum = 1, maximum = 3650)]
    pub inactive_days: Option<u32>,
    /// One product; absent: every product.
    #[serde(default)]
    pub sku_id: Option<Uuid>,
    /// Days between the notice and the action (default 14, 0 to 3650; 0: act at once).
    #[serde(default, deserialize_with = "crate::integers::optional_u32_whole")]
    #[schema(minimum = 0, maximum = 3650)]
    pub notice_days: Option<u32>,
    /// Whether the background processor runs it (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Users never acted on.
    #[serde(default)]
    pub excluded_user_ids: Vec<Uuid>,
    /// Members of these groups are never acted on.
    #[serde(default)]
    pub excluded_group_ids: Vec<Uuid>,
}

/// `PATCH /licensd/v1/reclamationPolicies/{id}`: what to change (absent: unchanged).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateReclamationPolicy {
    /// Whether the background processor runs it.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Days between a notice and the action (0 to 3650); notices already given keep their date.
    #[serde(default, deserialize_with = "crate::integers::optional_u32_whole")]
    #[schema(minimum = 0, maximum = 3650)]
    pub notice_days: Option<u32>,
}

/// A reclamation policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReclamationPolicy {
    pub id: Uuid,
    pub display_name: String,
    pub reason: String,
    pub inactive_days: u32,
    /// The product the policy is about (absent: every product).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku_id: Option<Uuid>,
    pub notice_days: u32,
    pub enabled: bool,
    pub excluded_user_ids: Vec<Uuid>,
    pub excluded_group_ids: Vec<Uuid>,
    pub created_date_time: String,
    pub last_run_date_time: Option<String>,
}

/// Every reclamation policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReclamationPolicyList {
    pub value: Vec<ReclamationPolicy>,
}

/// `POST /licensd/v1/reclamationPolicies/{id}/run`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunReclamationPolicy {
    /// `true` (the default): report what would happen and change nothing.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// One step of a reclamation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReclamationStep {
    /// `removeDirectLicense`, `removeFromGroup` or `review` (a dynamic or nested group: not
    /// edited by hand).
    pub action: String,
    pub group_id: Option<Uuid>,
    pub group_display_name: Option<String>,
    /// For `review`: `dynamicGroup` or `nestedMembership`.
    pub review_reason: Option<String>,
}

/// What a run does to one seat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReclamationSeat {
    pub user_id: Uuid,
    pub user_principal_name: String,
    pub sku_id: Uuid,
    pub sku_part_number: String,
    /// `inactive`, `disabled` or `left`.
    pub reason: String,
    /// The last sign-in or leave date that decided it.
    pub since_date_time: Option<String>,
    /// `noticed` (a notice given now; in a dry run: would be), `pending` (noticed earlier),
    /// `wouldReclaim` (dry run: acted on now), `reclaimed`, `review`, `failed`.
    pub outcome: String,
    pub noticed_date_time: Option<String>,
    /// When the seat is (or was) acted on.
    pub action_date_time: String,
    pub steps: Vec<ReclamationStep>,
    /// The "Reclaim license" audit record (what was removed; revert with it).
    pub audit_id: Option<Uuid>,
    /// Why a step was refused.
    pub error: Option<String>,
    /// The seat's price per month, when the product has one.
    pub price_per_seat: Option<String>,
    pub currency: Option<String>,
}

/// The answer of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReclamationRun {
    pub policy_id: Uuid,
    pub dry_run: bool,
    pub run_date_time: String,
    pub seats: Vec<ReclamationSeat>,
    /// Seats reclaimed (a dry run: that would be reclaimed now).
    pub reclaimed: u64,
    /// Seats with a notice, not yet acted on.
    pub pending: u64,
    /// Seats to review by hand.
    pub review: u64,
    /// Notices withdrawn because the policy no longer applies (the user signed in again...).
    pub withdrawn_notices: u64,
    /// What the reclaimed seats cost per month, per currency.
    pub money_saved_per_month: Vec<crate::spend::Amount>,
}

/// A notice: a seat a policy will act on, or that needs a review.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReclamationNotice {
    pub policy_id: Uuid,
    pub policy_display_name: String,
    pub user_id: Uuid,
    /// Empty when the user no longer exists.
    pub user_principal_name: String,
    pub sku_id: Uuid,
    pub sku_part_number: String,
    /// `pending` or `review`.
    pub state: String,
    pub noticed_date_time: String,
    pub action_date_time: String,
}

/// `GET /licensd/v1/reclamationNotices`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReclamationNoticeList {
    pub value: Vec<ReclamationNotice>,
}

/// The answer of `POST /licensd/v1/reclamations/{auditId}/revert`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReclamationRevert {
    /// The "Reclaim license" record reverted.
    pub reclamation_audit_id: Uuid,
    /// The "Revert license reclamation" record.
    pub audit_id: Uuid,
    pub user_id: Uuid,
    /// Products assigned directly again.
    pub restored_sku_ids: Vec<Uuid>,
    /// Groups the user is a member of again.
    pub restored_group_ids: Vec<Uuid>,
    /// Steps refused (a group deleted meanwhile...).
    pub failures: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// JSON Schema counts `126.0` as an integer, so a policy's day counts accept it (schemathesis
    /// sends such numbers); a fraction is still refused.
    #[test]
    fn day_counts_are_whole_numbers_in_either_spelling() {
        let update: UpdateReclamationPolicy =
            serde_json::from_str(r#"{"noticeDays": 126.0, "enabled": true}"#).expect("a whole number");
        assert_eq!(update.notice_days, Some(126));
        let create: CreateReclamationPolicy = serde_json::from_str(
            r#"{"displayName": "x", "reason": "inactive", "inactiveDays": 90.0, "noticeDays": 0.0}"#,
        )
        .expect("whole numbers");
        assert_eq!((create.inactive_days, create.notice_days), (Some(90), Some(0)));
        assert!(serde_json::from_str::<UpdateReclamationPolicy>(r#"{"noticeDays": 1.5}"#).is_err());
    }
}
