//! `/licensd/v1/skus`: the tenant's products with their seats — add custom products, buy or
//! reduce seats, change a subscription's status, add service plans, and see who holds a product.

use axum::http::StatusCode;
use axum::Json;
use licensd_api_types::admin::{
    AddServicePlanRequest, AssignmentError, LicensedUser, NewProductRequest, Product, ProductDetails,
    ProductList, UpdateProductRequest,
};
use licensd_api_types::{ErrorCode, ErrorResponse};
use licensd_engine::{AppliesTo, CapabilityStatus, Command, ServicePlanDefinition, SkuDefinition, Uuid};

use super::{parse_capability_status, wire_product};
use crate::api::{parse_object_id, ApiError, JsonBody, PathParameters, Tenant};

/// The product at `/licensd/v1/skus/{skuId}`, or 404.
async fn existing_product(tenant: &Tenant, sku_id: Uuid) -> Result<Product, ApiError> {
    tenant
        .read(move |engine| {
            engine
                .sku_usage(sku_id)
                .map(wire_product)
                .map_err(|_| ApiError::not_found(sku_id))
        })
        .await
}

/// List the tenant's products.
///
/// licensd extension: purchased, consumed, available and over-allocated units, waiting users.
#[utoipa::path(get, path = "/licensd/v1/skus", tag = "licensd: products",
    responses((status = 200, description = "Every product", body = ProductList)))]
pub async fn list_products(tenant: Tenant) -> Result<Json<ProductList>, ApiError> {
    let value = tenant
        .read(|engine| Ok(engine.sku_usages().into_iter().map(wire_product).collect()))
        .await?;
    Ok(Json(ProductList { value }))
}

/// Add a product.
///
/// licensd extension, for products outside the bundled catalog. Missing ids are generated.
#[utoipa::path(post, path = "/licensd/v1/skus", tag = "licensd: products", request_body = NewProductRequest,
    responses(
        (status = 201, description = "The new product", body = Product),
        (status = 400, description = "Invalid or duplicate product", body = ErrorResponse),
    ))]
pub async fn create_product(
    tenant: Tenant,
    JsonBody(body): JsonBody<NewProductRequest>,
) -> Result<(StatusCode, Json<Product>), ApiError> {
    let applies_to = match body.applies_to.as_deref() {
        None => AppliesTo::User,
        Some(text) if text.eq_ignore_ascii_case("User") => AppliesTo::User,
        Some(text) if text.eq_ignore_ascii_case("Company") => AppliesTo::Company,
        Some(text) => {
            return Err(ApiError::new(
                ErrorCode::InvalidValue,
                format!("Invalid appliesTo '{text}': use User or Company."),
            ))
        }
    };
    let capability_status = body
        .capability_status
        .as_deref()
        .map(parse_capability_status)
        .transpose()?
        .unwrap_or(CapabilityStatus::Enabled);
    let sku_id = body.sku_id.unwrap_or_else(Uuid::new_v4);
    let service_plans = body
        .service_plans
        .into_iter()
        .map(|plan| ServicePlanDefinition {
            service_plan_id: plan.service_plan_id.unwrap_or_else(Uuid::new_v4),
            display_name: plan
                .display_name
                .unwrap_or_else(|| plan.service_plan_name.clone()),
            service_plan_name: plan.service_plan_name,
        })
        .collect();
    tenant
        .execute(Command::AddSku(SkuDefinition {
            sku_id,
            display_name: body.display_name.unwrap_or_else(|| body.sku_part_number.clone()),
            sku_part_number: body.sku_part_number,
            applies_to,
            service_plans,
            prepaid_units: body.prepaid_units,
            capability_status,
        }))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(existing_product(&tenant, sku_id).await?),
    ))
}

/// Get a product with its holders.
///
/// licensd extension: seats, licensed users (direct and through which groups, with errors) and
/// the groups that assign it.
#[utoipa::path(get, path = "/licensd/v1/skus/{sku_id}", tag = "licensd: products",
    params(("sku_id" = Uuid, Path, description = "The product's skuId")),
    responses(
        (status = 200, description = "The product", body = ProductDetails),
        (status = 404, description = "No such product", body = ErrorResponse),
    ))]
pub async fn get_product(
    tenant: Tenant,
    PathParameters(sku_id): PathParameters<String>,
) -> Result<Json<ProductDetails>, ApiError> {
    let sku_id = parse_object_id(&sku_id)?;
    let details = tenant
        .read(move |engine| {
            let usage = engine
                .sku_usage(sku_id)
                .map_err(|_| ApiError::not_found(sku_id))?;
            let licensed_users = engine
                .licensed_users(sku_id)?
                .into_iter()
                .map(|user| LicensedUser {
                    user_id: user.user_id,
                    user_principal_name: user.user_principal_name,
                    direct: user.direct,
                    via_groups: user.via_groups,
                    errors: user
                        .errors
                        .into_iter()
                        .map(|(source, kind)| AssignmentError {
                            assigned_by_group: source.assigned_by_group(),
                            error: kind.as_str().to_string(),
                        })
                        .collect(),
                })
                .collect();
            Ok(ProductDetails {
                product: wire_product(usage),
                licensed_users,
                licensed_groups: engine.licensed_groups(sku_id)?,
            })
        })
        .await?;
    Ok(Json(details))
}

/// Change seats or subscription status.
///
/// licensd extension. `prepaidUnits` buys or reduces seats (reducing below consumption takes
/// nothing away); `capabilityStatus` `Suspended`, `LockedOut` or `Deleted` disables every
/// assignment of the product.
#[utoipa::path(patch, path = "/licensd/v1/skus/{sku_id}", tag = "licensd: products",
    params(("sku_id" = Uuid, Path, description = "The product's skuId")),
    request_body = UpdateProductRequest,
    responses(
        (status = 200, description = "The product", body = Product),
        (status = 400, description = "Invalid change", body = ErrorResponse),
        (status = 404, description = "No such product", body = ErrorResponse),
    ))]
pub async fn update_product(
    tenant: Tenant,
    PathParameters(sku_id): PathParameters<String>,
    JsonBody(body): JsonBody<UpdateProductRequest>,
) -> Result<Json<Product>, ApiError> {
    let sku_id = parse_object_id(&sku_id)?;
    let capability_status = body
        .capability_status
        .as_deref()
        .map(parse_capability_status)
        .transpose()?;
    existing_product(&tenant, sku_id).await?;
    if let Some(prepaid_units) = body.prepaid_units {
        tenant
            .execute(Command::SetPrepaidUnits {
                sku_id,
                prepaid_units,
            })
            .await?;
    }
    if let Some(capability_status) = capability_status {
        tenant
            .execute(Command::SetCapabilityStatus {
                sku_id,
                capability_status,
            })
            .await?;
    }
    Ok(Json(existing_product(&tenant, sku_id).await?))
}

/// Add a service plan to a product.
///
/// licensd extension. The plan becomes enabled in every existing assignment of the product.
#[utoipa::path(post, path = "/licensd/v1/skus/{sku_id}/servicePlans", tag = "licensd: products",
    params(("sku_id" = Uuid, Path, description = "The product's skuId")),
    request_body = AddServicePlanRequest,
    responses(
        (status = 201, description = "The product with the new plan", body = Product),
        (status = 400, description = "Invalid plan", body = ErrorResponse),
        (status = 404, description = "No such product", body = ErrorResponse),
    ))]
pub async fn add_service_plan(
    tenant: Tenant,
    PathParameters(sku_id): PathParameters<String>,
    JsonBody(body): JsonBody<AddServicePlanRequest>,
) -> Result<(StatusCode, Json<Product>), ApiError> {
    let sku_id = parse_object_id(&sku_id)?;
    existing_product(&tenant, sku_id).await?;
    if body.service_plan_name.trim().is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidValue,
            "servicePlanName must not be empty.",
        ));
    }
    tenant
        .execute(Command::AddServicePlanToSku {
            sku_id,
            service_plan: ServicePlanDefinition {
                service_plan_id: body.service_plan_id.unwrap_or_else(Uuid::new_v4),
                display_name: body
                    .display_name
                    .unwrap_or_else(|| body.service_plan_name.clone()),
                service_plan_name: body.service_plan_name,
            },
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(existing_product(&tenant, sku_id).await?),
    ))
}
