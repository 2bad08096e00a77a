//! `/licensd/v1/settings`, `/licensd/v1/overview` and explained license states: the tenant's
//! default usage location and self-healing, what needs attention, and for each error of a user
//! what went wrong and how to resolve it.

use axum::Json;
use licensd_api_types::admin::{
    ExplainedLicenseState, ExplainedLicenseStateList, GroupNeedingAttention, LicensingPath, TenantOverview,
    TenantSettings, UpdateSettingsRequest,
};
use licensd_api_types::time::format_date_time;
use licensd_api_types::ErrorResponse;
use licensd_engine::{Command, CountryCode, Engine};

use super::wire_product;
use crate::api::{resolve_user, ApiError, JsonBody, PathParameters, Tenant};

fn wire_settings(engine: &Engine) -> TenantSettings {
    let settings = engine.settings();
    TenantSettings {
        tenant_id: settings.tenant_id,
        display_name: settings.display_name.clone(),
        default_usage_location: settings
            .default_usage_location
            .map(|location| location.as_str().to_string()),
        self_healing: settings.self_healing,
        transitive_licensing: settings.transitive_licensing,
    }
}

/// Get the tenant's settings.
///
/// licensd extension.
#[utoipa::path(get, path = "/licensd/v1/settings", tag = "licensd: tenant",
    responses((status = 200, description = "The settings", body = TenantSettings)))]
pub async fn get_settings(tenant: Tenant) -> Result<Json<TenantSettings>, ApiError> {
    Ok(Json(tenant.read(|engine| Ok(wire_settings(engine))).await?))
}

/// Change the tenant's settings.
///
/// licensd extension. `defaultUsageLocation` (or `null`) is inherited by users without one;
/// `selfHealing` lets errors resolve by themselves when their cause goes away;
/// `transitiveLicensing` lets members of nested groups receive the products of the groups above
/// them (the users below nested groups are reprocessed).
#[utoipa::path(patch, path = "/licensd/v1/settings", tag = "licensd: tenant",
    request_body = UpdateSettingsRequest,
    responses(
        (status = 200, description = "The settings", body = TenantSettings),
        (status = 400, description = "Invalid value", body = ErrorResponse),
    ))]
pub async fn update_settings(
    tenant: Tenant,
    JsonBody(body): JsonBody<UpdateSettingsRequest>,
) -> Result<Json<TenantSettings>, ApiError> {
    let usage_location = match &body.default_usage_location {
        None => None,
        Some(None) => Some(None),
        Some(Some(text)) => Some(Some(CountryCode::parse(text)?)),
    };
    if let Some(usage_location) = usage_location {
        tenant
            .execute(Command::SetDefaultUsageLocation { usage_location })
            .await?;
    }
    if let Some(enabled) = body.self_healing {
        tenant.execute(Command::SetSelfHealing { enabled }).await?;
    }
    if let Some(enabled) = body.transitive_licensing {
        tenant
            .execute(Command::SetTransitiveLicensing { enabled })
            .await?;
    }
    Ok(Json(tenant.read(|engine| Ok(wire_settings(engine))).await?))
}

/// The tenant overview.
///
/// licensd extension: counts, groups needing attention, errors by kind, seats of every product.
#[utoipa::path(get, path = "/licensd/v1/overview", tag = "licensd: tenant",
    responses((status = 200, description = "The overview", body = TenantOverview)))]
pub async fn get_overview(tenant: Tenant) -> Result<Json<TenantOverview>, ApiError> {
    let overview = tenant
        .read(|engine| {
            let overview = engine.tenant_overview();
            let groups_needing_attention = engine
                .groups_with_errors()
                .into_iter()
                .map(|group_id| {
                    let view = engine.group_view(group_id)?;
                    Ok(GroupNeedingAttention {
                        id: view.id,
                        display_name: view.display_name,
                        members_with_license_errors: view.members_with_license_errors as u64,
                        license_processing_state: view.license_processing_state.as_str().to_string(),
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            Ok(TenantOverview {
                users: overview.users as u64,
                groups: overview.groups as u64,
                licensed_groups: overview.licensed_groups as u64,
                groups_with_errors: overview.groups_with_errors as u64,
                users_with_errors: overview.users_with_errors as u64,
                queued_users: overview.queued_users as u64,
                errors_by_kind: overview
                    .errors_by_kind
                    .into_iter()
                    .map(|(kind, count)| (kind.as_str().to_string(), count as u64))
                    .collect(),
                groups_needing_attention,
                products: overview.products.into_iter().map(wire_product).collect(),
            })
        })
        .await?;
    Ok(Json(overview))
}

/// A user's license states, explained.
///
/// licensd extension: each state with the plans it grants and, for errors, what went wrong and
/// the ways to resolve it.
#[utoipa::path(get, path = "/licensd/v1/users/{id}/licenseAssignmentStates", tag = "licensd: tenant",
    params(("id" = String, Path, description = "The user's id or userPrincipalName")),
    responses(
        (status = 200, description = "The user's states", body = ExplainedLicenseStateList),
        (status = 404, description = "No such user", body = ErrorResponse),
    ))]
pub async fn explain_user_license_states(
    tenant: Tenant,
    PathParameters(id): PathParameters<String>,
) -> Result<Json<ExplainedLicenseStateList>, ApiError> {
    let value = tenant
        .read(move |engine| {
            let user_id = resolve_user(engine, &id)?;
            engine
                .user_license_states(user_id)?
                .into_iter()
                .map(|state| {
                    Ok(ExplainedLicenseState {
                        sku_id: state.sku_id,
                        sku_part_number: engine.sku_usage(state.sku_id)?.sku_part_number,
                        assigned_by_group: state.assigned_by_group,
                        state: state.state.as_str().to_string(),
                        error: state
                            .error
                            .map(|kind| kind.as_str().to_string())
                            .unwrap_or_else(|| "None".to_string()),
                        disabled_plans: state.disabled_plans.clone(),
                        granted_plans: state.granted_plans.clone(),
                        last_updated_date_time: (state.last_updated.0 > 0)
                            .then(|| format_date_time(state.last_updated.0)),
                        explanation: engine.explain(&state),
                        licensed_through: state.assigned_by_group.and_then(|group_id| {
                            let group_ids = engine.membership_path(user_id, group_id).ok().flatten()?;
                            let text = engine.licensing_path_text(user_id, group_id)?;
                            Some(LicensingPath { group_ids, text })
                        }),
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()
        })
        .await?;
    Ok(Json(ExplainedLicenseStateList { value }))
}
