//! `/licensd/v1/servicePlans`: the tenant's service plans and their rules — mutually exclusive
//! plans, prerequisites, usage locations where a plan is unavailable, and the mailbox flag
//! (unique proxy addresses) — and the catalog's default rules.

use axum::Json;
use licensd_api_types::admin::{
    DefaultRulesResponse, ServicePlan, ServicePlanList, ServicePlanRules, ServicePlanWithRules,
};
use licensd_api_types::ErrorResponse;
use licensd_engine::catalog::Catalog;
use licensd_engine::image::ServicePlanImage;
use licensd_engine::setup::default_rule_commands;
use licensd_engine::{self as engine, Command, CountryCode, Engine, Uuid};

use crate::api::{parse_object_id, ApiError, JsonBody, PathParameters, Tenant};

fn wire_plan(image: ServicePlanImage) -> ServicePlanWithRules {
    ServicePlanWithRules {
        service_plan: ServicePlan {
            service_plan_id: image.definition.service_plan_id,
            service_plan_name: image.definition.service_plan_name,
            display_name: image.definition.display_name,
        },
        rules: ServicePlanRules {
            mutually_exclusive_with: image.rules.mutually_exclusive_with,
            requires_any_of: image.rules.requires_any_of,
            unavailable_in: image
                .rules
                .unavailable_in
                .iter()
                .map(|location| location.as_str().to_string())
                .collect(),
            needs_unique_proxy_address: image.rules.needs_unique_proxy_address,
        },
    }
}

fn plan_with_rules(engine: &Engine, service_plan_id: Uuid) -> Result<ServicePlanWithRules, ApiError> {
    engine
        .service_plan_images()
        .into_iter()
        .find(|image| image.definition.service_plan_id == service_plan_id)
        .map(wire_plan)
        .ok_or_else(|| ApiError::not_found(service_plan_id))
}

/// List service plans with their rules.
///
/// licensd extension.
#[utoipa::path(get, path = "/licensd/v1/servicePlans", tag = "licensd: service plans",
    responses((status = 200, description = "Every plan the tenant knows", body = ServicePlanList)))]
pub async fn list_service_plans(tenant: Tenant) -> Result<Json<ServicePlanList>, ApiError> {
    let value = tenant
        .read(|engine| Ok(engine.service_plan_images().into_iter().map(wire_plan).collect()))
        .await?;
    Ok(Json(ServicePlanList { value }))
}

/// Get a service plan with its rules.
///
/// licensd extension.
#[utoipa::path(get, path = "/licensd/v1/servicePlans/{service_plan_id}", tag = "licensd: service plans",
    params(("service_plan_id" = Uuid, Path, description = "The plan's id")),
    responses(
        (status = 200, description = "The plan", body = ServicePlanWithRules),
        (status = 404, description = "No such plan", body = ErrorResponse),
    ))]
pub async fn get_service_plan(
    tenant: Tenant,
    PathParameters(service_plan_id): PathParameters<String>,
) -> Result<Json<ServicePlanWithRules>, ApiError> {
    let service_plan_id = parse_object_id(&service_plan_id)?;
    Ok(Json(
        tenant
            .read(move |engine| plan_with_rules(engine, service_plan_id))
            .await?,
    ))
}

/// Replace a service plan's rules.
///
/// licensd extension. Exclusions are kept symmetric (the partners' lists change too). Users
/// holding or wanting the plan are re-evaluated in the background; nothing that works is taken away.
#[utoipa::path(put, path = "/licensd/v1/servicePlans/{service_plan_id}/rules", tag = "licensd: service plans",
    params(("service_plan_id" = Uuid, Path, description = "The plan's id")),
    request_body = ServicePlanRules,
    responses(
        (status = 200, description = "The plan with its new rules", body = ServicePlanWithRules),
        (status = 400, description = "Invalid rules", body = ErrorResponse),
        (status = 404, description = "No such plan", body = ErrorResponse),
    ))]
pub async fn set_service_plan_rules(
    tenant: Tenant,
    PathParameters(service_plan_id): PathParameters<String>,
    JsonBody(body): JsonBody<ServicePlanRules>,
) -> Result<Json<ServicePlanWithRules>, ApiError> {
    let service_plan_id = parse_object_id(&service_plan_id)?;
    let unavailable_in = body
        .unavailable_in
        .iter()
        .map(|location| CountryCode::parse(location).map_err(ApiError::from))
        .collect::<Result<Vec<_>, ApiError>>()?;
    tenant
        .read(move |engine| plan_with_rules(engine, service_plan_id).map(|_| ()))
        .await?;
    tenant
        .execute(Command::SetServicePlanRules {
            service_plan_id,
            rules: engine::ServicePlanRules {
                mutually_exclusive_with: body.mutually_exclusive_with,
                requires_any_of: body.requires_any_of,
                unavailable_in,
                needs_unique_proxy_address: body.needs_unique_proxy_address,
            },
        })
        .await?;
    Ok(Json(
        tenant
            .read(move |engine| plan_with_rules(engine, service_plan_id))
            .await?,
    ))
}

/// Apply the catalog's default rules.
///
/// licensd extension: Microsoft's mutually exclusive plans and add-on prerequisites among the
/// tenant's plans (other rules are kept).
#[utoipa::path(post, path = "/licensd/v1/servicePlans/defaultRules", tag = "licensd: service plans",
    responses((status = 200, description = "The plans whose rules were set", body = DefaultRulesResponse)))]
pub async fn apply_default_rules(tenant: Tenant) -> Result<Json<DefaultRulesResponse>, ApiError> {
    let catalog = Catalog::bundled()
        .map_err(|error| ApiError::internal(format!("the bundled catalog does not parse: {error}")))?;
    let commands = tenant
        .read(move |engine| Ok(default_rule_commands(catalog, engine)))
        .await?;
    let mut service_plans_with_default_rules = Vec::new();
    for command in commands {
        if let Command::SetServicePlanRules { service_plan_id, .. } = &command {
            service_plans_with_default_rules.push(*service_plan_id);
        }
        tenant.execute(command).await?;
    }
    Ok(Json(DefaultRulesResponse {
        service_plans_with_default_rules,
    }))
}
