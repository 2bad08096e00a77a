//! Graph `/v1.0/subscribedSkus`: the products the tenant subscribes to, with purchased
//! (`prepaidUnits`) and consumed units and their service plans. Read-only, as in Graph.

use axum::Json;
use licensd_api_types::graph::{SubscribedSku, SubscribedSkuCollectionResponse};
use licensd_api_types::ErrorResponse;
use licensd_engine::Uuid;
use serde_json::Value;

use super::convert;
use super::SelectQuery;
use crate::api::{ApiError, PathParameters, Tenant};
use crate::odata::{with_context, ODataRequest, Page, Supported, SUBSCRIBED_SKU_SCHEMA};

/// List subscribed products.
///
/// Graph-compatible. `$select` only (Graph supports no `$filter` here).
#[utoipa::path(get, path = "/v1.0/subscribedSkus", tag = "Graph: subscribedSkus", params(SelectQuery),
    responses(
        (status = 200, description = "Every product of the tenant", body = SubscribedSkuCollectionResponse),
        (status = 400, description = "An unsupported query", body = ErrorResponse),
    ))]
pub async fn list_subscribed_skus(tenant: Tenant, request: ODataRequest) -> Result<Json<Value>, ApiError> {
    let options = request.options(&SUBSCRIBED_SKU_SCHEMA, Supported::SELECT_ONLY)?;
    let tenant_id = tenant.id();
    let response = tenant
        .read(move |engine| {
            let values = engine
                .sku_usages()
                .into_iter()
                .map(|usage| {
                    let sku = convert::subscribed_sku(engine, tenant_id, usage.sku_id)?;
                    serde_json::to_value(sku)
                        .map(|value| options.selection.apply(value))
                        .map_err(|error| ApiError::internal(error.to_string()))
                })
                .collect::<Result<Vec<Value>, ApiError>>()?;
            let page = Page {
                total: values.len(),
                items: values,
                next_skip_token: None,
            };
            let fragment = format!("subscribedSkus{}", options.selection.context_suffix());
            Ok(request.collection(&options, &fragment, page))
        })
        .await?;
    Ok(Json(response))
}

/// The product of a `subscribedSku` id: Graph's `{tenantId}_{skuId}`, or a bare `skuId`.
fn sku_id_of(id: &str, tenant_id: Uuid) -> Result<Uuid, ApiError> {
    let sku_part = match id.split_once('_') {
        Some((account, sku)) if Uuid::try_parse(account).ok() == Some(tenant_id) => sku,
        Some(_) => return Err(ApiError::not_found(id)),
        None => id,
    };
    Uuid::try_parse(sku_part).map_err(|_| ApiError::not_found(id))
}

/// Get a subscribed product.
///
/// Graph-compatible. The id is `{tenantId}_{skuId}` (a bare `skuId` is accepted too).
#[utoipa::path(get, path = "/v1.0/subscribedSkus/{id}", tag = "Graph: subscribedSkus",
    params(("id" = String, Path, description = "`{tenantId}_{skuId}` or the skuId"), SelectQuery),
    responses(
        (status = 200, description = "The product", body = SubscribedSku),
        (status = 404, description = "No such product", body = ErrorResponse),
    ))]
pub async fn get_subscribed_sku(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
) -> Result<Json<Value>, ApiError> {
    let options = request.options(&SUBSCRIBED_SKU_SCHEMA, Supported::SELECT_ONLY)?;
    let tenant_id = tenant.id();
    let sku_id = sku_id_of(&id, tenant_id)?;
    let response = tenant
        .read(move |engine| {
            if engine.sku_usage(sku_id).is_err() {
                return Err(ApiError::not_found(&id));
            }
            let sku = convert::subscribed_sku(engine, tenant_id, sku_id)?;
            let value = serde_json::to_value(sku).map_err(|error| ApiError::internal(error.to_string()))?;
            let fragment = format!("subscribedSkus{}/$entity", options.selection.context_suffix());
            Ok(with_context(
                request.context(&fragment),
                options.selection.apply(value),
            ))
        })
        .await?;
    Ok(Json(response))
}
