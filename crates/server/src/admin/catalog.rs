//! `/licensd/v1/catalog`: browse Microsoft's product catalog bundled with licensd, and subscribe
//! the tenant to catalog products with the catalog's default rules (exclusions, prerequisites).

use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::Json;
use licensd_api_types::admin::{
    CatalogProduct, CatalogProductList, ImportCatalogRequest, ImportCatalogResponse, ServicePlan,
};
use licensd_api_types::{ErrorCode, ErrorResponse};
use licensd_engine::catalog::{self, Catalog};
use licensd_engine::setup::default_rule_commands;
use licensd_engine::{Command, Uuid};

use super::wire_product;
use crate::api::{ApiError, JsonBody, Tenant};

fn bundled_catalog() -> Result<&'static Catalog, ApiError> {
    Catalog::bundled()
        .map_err(|error| ApiError::internal(format!("the bundled catalog does not parse: {error}")))
}

fn wire_catalog_product(product: &catalog::CatalogProduct) -> CatalogProduct {
    CatalogProduct {
        sku_id: product.sku_id,
        sku_part_number: product.sku_part_number.clone(),
        display_name: product.display_name.clone(),
        service_plans: product
            .service_plans
            .iter()
            .map(|plan| ServicePlan {
                service_plan_id: plan.service_plan_id,
                service_plan_name: plan.service_plan_name.clone(),
                display_name: plan.display_name.clone(),
            })
            .collect(),
    }
}

/// One parameter of a query string (`None` when absent).
pub fn query_parameter(raw_query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(raw_query.unwrap_or("").as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// List catalog products.
///
/// licensd extension. `search` keeps products whose part number or display name contains it
/// (ignoring case).
#[utoipa::path(get, path = "/licensd/v1/catalog/products", tag = "licensd: catalog",
    params(("search" = Option<String>, Query, description = "Text in the part number or display name")),
    responses((status = 200, description = "Catalog products", body = CatalogProductList)))]
pub async fn list_catalog_products(
    RawQuery(raw_query): RawQuery,
) -> Result<Json<CatalogProductList>, ApiError> {
    let search = query_parameter(raw_query.as_deref(), "search").map(|text| text.to_lowercase());
    let catalog = bundled_catalog()?;
    let value = catalog
        .products()
        .iter()
        .filter(|product| match &search {
            None => true,
            Some(search) => {
                product.sku_part_number.to_lowercase().contains(search.as_str())
                    || product.display_name.to_lowercase().contains(search.as_str())
            }
        })
        .map(wire_catalog_product)
        .collect();
    Ok(Json(CatalogProductList { value }))
}

/// Subscribe to catalog products.
///
/// licensd extension. Each product is named by `skuId` or `skuPartNumber` with its purchased seats;
/// afterwards (unless `applyDefaultRules` is false) the tenant's plans get the catalog's default
/// rules. Everything is checked before anything is added.
#[utoipa::path(post, path = "/licensd/v1/catalog/import", tag = "licensd: catalog",
    request_body = ImportCatalogRequest,
    responses(
        (status = 201, description = "The products added", body = ImportCatalogResponse),
        (status = 400, description = "Unknown or duplicate products", body = ErrorResponse),
    ))]
pub async fn import_catalog_products(
    tenant: Tenant,
    JsonBody(body): JsonBody<ImportCatalogRequest>,
) -> Result<(StatusCode, Json<ImportCatalogResponse>), ApiError> {
    let catalog = bundled_catalog()?;
    if body.products.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidValue,
            "Name at least one product to import.",
        ));
    }
    let mut definitions = Vec::new();
    for requested in &body.products {
        let product = match (&requested.sku_id, &requested.sku_part_number) {
            (Some(sku_id), part_number) => {
                let product = catalog.product_by_sku_id(*sku_id).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::UnknownProduct,
                        format!("The catalog has no product with skuId {sku_id}."),
                    )
                })?;
                if let Some(part_number) = part_number {
                    if !product.sku_part_number.eq_ignore_ascii_case(part_number.trim()) {
                        return Err(ApiError::new(
                            ErrorCode::InvalidValue,
                            format!(
                                "skuId {sku_id} is {}, not {part_number}.",
                                product.sku_part_number
                            ),
                        ));
                    }
                }
                product
            }
            (None, Some(part_number)) => {
                let matches = catalog.products_by_part_number(part_number);
                match matches.as_slice() {
                    [product] => *product,
                    [] => {
                        return Err(ApiError::new(
                            ErrorCode::UnknownProduct,
                            format!("The catalog has no product with skuPartNumber {part_number}."),
                        ))
                    }
                    _ => {
                        return Err(ApiError::new(
                            ErrorCode::InvalidValue,
                            format!(
                            "Several catalog products have skuPartNumber {part_number}; name it by skuId."
                        ),
                        ))
                    }
                }
            }
            (None, None) => {
                return Err(ApiError::new(
                    ErrorCode::InvalidValue,
                    "Each product needs a skuId or a skuPartNumber.",
                ))
            }
        };
        if definitions
            .iter()
            .any(|(sku_id, _): &(Uuid, _)| *sku_id == product.sku_id)
        {
            return Err(ApiError::new(
                ErrorCode::InvalidValue,
                format!("{} is listed twice.", product.sku_part_number),
            ));
        }
        definitions.push((product.sku_id, product.to_sku_definition(requested.prepaid_units)));
    }
    let sku_ids: Vec<Uuid> = definitions.iter().map(|(sku_id, _)| *sku_id).collect();
    let checked = sku_ids.clone();
    tenant
        .read(move |engine| {
            for sku_id in checked {
                if let Ok(existing) = engine.sku_usage(sku_id) {
                    return Err(ApiError::new(
                        ErrorCode::ObjectConflict,
                        format!(
                            "The tenant already subscribes to {} ({sku_id}).",
                            existing.sku_part_number
                        ),
                    ));
                }
            }
            Ok(())
        })
        .await?;
    for (_, definition) in definitions {
        tenant.execute(Command::AddSku(definition)).await?;
    }
    let mut service_plans_with_default_rules = Vec::new();
    if body.apply_default_rules.unwrap_or(true) {
        let commands = tenant
            .read(move |engine| Ok(default_rule_commands(catalog, engine)))
            .await?;
        for command in commands {
            if let Command::SetServicePlanRules { service_plan_id, .. } = &command {
                service_plans_with_default_rules.push(*service_plan_id);
            }
            tenant.execute(command).await?;
        }
    }
    let products = tenant
        .read(move |engine| {
            sku_ids
                .iter()
                .map(|sku_id| Ok(wire_product(engine.sku_usage(*sku_id)?)))
                .collect::<Result<Vec<_>, ApiError>>()
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ImportCatalogResponse {
            products,
            service_plans_with_default_rules,
        }),
    ))
}
