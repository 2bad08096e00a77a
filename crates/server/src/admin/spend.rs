//! `/licensd/v1` spend: prices per seat (`/skus/{skuId}/price`), the cost report and idle seats
//! (`/spend/cost`, `/spend/idle`, as JSON or CSV), users' activity as the identity provider
//! reports it (`/users/{id}/activity`, `/activity`), and each product's seat history with its
//! forecast (`/skus/{skuId}/history`). The computations are the engine's (`spend`); prices,
//! activity and history are the store's.

use axum::extract::RawQuery;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use licensd_api_types::spend::{
    self as wire, format_amount, parse_amount, parse_currency, ActivityBatch, ActivityList, ActivityRequest,
    Amount, CostReport, CurrencyTotals, IdleSeatList, Price, PriceList, SeatForecast, SeatHistory,
    SetPriceRequest, SignInActivity, SourceSeats,
};
use licensd_api_types::time::{format_date_time, parse_date_time};
use licensd_api_types::{ErrorCode, ErrorResponse};
use licensd_engine::spend::{
    self as engine_spend, Amounts, CostOwner, HistoryPoint, IdlePolicy, SeatPrice, SpendInputs, UserActivity,
    DAY_MILLISECONDS,
};
use licensd_engine::{Timestamp, Uuid};
use licensd_runtime::access::Caller;
use licensd_store::{AuditRecord, SkuPrice, StoreError, UserActivityRecord};
use rustc_hash::FxHashMap;

use super::catalog::query_parameter;
use crate::activity::ActivityChange;
use crate::api::{parse_object_id, resolve_user, ApiError, JsonBody, PathParameters, Tenant};

/// Days without a sign-in after which a held seat is idle, unless `inactiveDays` says otherwise.
pub const DEFAULT_INACTIVE_DAYS: u32 = 90;
/// At most this many idle seats are listed unless `top` says otherwise.
const DEFAULT_IDLE_TOP: usize = 1000;
/// The forecast's window.
const FORECAST_WINDOW_DAYS: u32 = 30;

fn unavailable(error: StoreError) -> ApiError {
    ApiError {
        log_detail: Some(error.to_string()),
        ..ApiError::of(ErrorCode::StorageUnavailable)
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidValue, message)
}

fn audit_record(
    caller: &Caller,
    activity: &str,
    target_type: &str,
    target_id: Uuid,
    target_name: String,
    before: &[(&'static str, String)],
    after: &[(&'static str, String)],
) -> AuditRecord {
    AuditRecord {
        audit_id: Uuid::new_v4(),
        activity_date_time: licensd_runtime::tenants::now().0,
        category: "DirectoryManagement".to_string(),
        activity: activity.to_string(),
        operation_type: "Update".to_string(),
        result: "success".to_string(),
        result_reason: String::new(),
        actor_id: caller.token_id,
        actor_name: caller.display_name.clone(),
        actor_role: caller.role.as_str().to_string(),
        target_type: target_type.to_string(),
        target_id: Some(target_id),
        target_name,
        modified_properties: licensd_runtime::audit::modified(before, after),
        request_id: caller.request_id.clone(),
    }
}

// ----- prices ----------------------------------------------------------------------------------

async fn stored_prices(tenant: &Tenant) -> Result<Vec<SkuPrice>, ApiError> {
    tenant
        .with_store(|store, tenant_id| store.sku_prices(tenant_id).map_err(unavailable))
        .await
}

/// The tenant's prices as the engine's reports take them.
pub async fn stored_price_map(tenant: &Tenant) -> Result<FxHashMap<Uuid, SeatPrice>, ApiError> {
    Ok(price_map(&stored_prices(tenant).await?))
}

fn price_map(prices: &[SkuPrice]) -> FxHashMap<Uuid, SeatPrice> {
    prices
        .iter()
        .map(|price| {
            (
                price.sku_id,
                SeatPrice {
                    minor_units: price.price_minor,
                    currency: price.currency.clone(),
                },
            )
        })
        .collect()
}

fn describe_price(price: Option<&SkuPrice>) -> Vec<(&'static str, String)> {
    vec![
        (
            "pricePerSeat",
            price
                .map(|price| format_amount(price.price_minor))
                .unwrap_or_default(),
        ),
        (
            "currency",
            price.map(|price| price.currency.clone()).unwrap_or_default(),
        ),
    ]
}

/// The product's part number, or 404.
async fn sku_part_number(tenant: &Tenant, sku_id: Uuid) -> Result<String, ApiError> {
    tenant
        .read(move |engine| {
            engine
                .sku_usage(sku_id)
                .map(|usage| usage.sku_part_number)
                .map_err(|_| ApiError::not_found(sku_id))
        })
        .await
}

/// List product prices.
///
/// licensd extension: the price per seat and month of each priced product.
#[utoipa::path(get, path = "/licensd/v1/prices", tag = "licensd: spend",
    responses((status = 200, description = "Every priced product", body = PriceList)))]
pub async fn list_prices(tenant: Tenant) -> Result<Json<PriceList>, ApiError> {
    let prices = stored_prices(&tenant).await?;
    let value = tenant
        .read(move |engine| {
            Ok(prices
                .into_iter()
                .filter_map(|price| {
                    let usage = engine.sku_usage(price.sku_id).ok()?;
                    Some(Price {
                        sku_id: price.sku_id,
                        sku_part_number: usage.sku_part_number,
                        price_per_seat: format_amount(price.price_minor),
                        currency: price.currency,
                    })
                })
                .collect())
        })
        .await?;
    Ok(Json(PriceList { value }))
}

/// Set a product's price.
///
/// licensd extension: the price of one seat per month, decimal text with at most two decimals,
/// and an ISO 4217 currency. Audited ("Update product price").
#[utoipa::path(put, path = "/licensd/v1/skus/{sku_id}/price", tag = "licensd: spend",
    params(("sku_id" = Uuid, Path, description = "The product's skuId")),
    request_body = SetPriceRequest,
    responses(
        (status = 200, description = "The product's price", body = Price),
        (status = 400, description = "An amount or currency that cannot be read", body = ErrorResponse),
        (status = 404, description = "No such product", body = ErrorResponse),
    ))]
pub async fn set_price(
    tenant: Tenant,
    PathParameters(sku_id): PathParameters<String>,
    JsonBody(request): JsonBody<SetPriceRequest>,
) -> Result<Json<Price>, ApiError> {
    let sku_id = parse_object_id(&sku_id)?;
    let price_minor = parse_amount(&request.price_per_seat)
        .map_err(|message| invalid(format!("pricePerSeat: {message}")))?;
    let currency =
        parse_currency(&request.currency).map_err(|message| invalid(format!("currency: {message}")))?;
    let sku_part_number = sku_part_number(&tenant, sku_id).await?;
    let before = stored_prices(&tenant)
        .await?
        .into_iter()
        .find(|price| price.sku_id == sku_id);
    let price = SkuPrice {
        sku_id,
        price_minor,
        currency,
    };
    let record = audit_record(
        &tenant.caller,
        "Update product price",
        "Product",
        sku_id,
        sku_part_number.clone(),
        &describe_price(before.as_ref()),
        &describe_price(Some(&price)),
    );
    let stored = price.clone();
    tenant
        .with_store(move |store, tenant_id| {
            store
                .set_sku_price(tenant_id, sku_id, Some(&stored), &[record])
                .map_err(unavailable)
        })
        .await?;
    Ok(Json(Price {
        sku_id,
        sku_part_number,
        price_per_seat: format_amount(price.price_minor),
        currency: price.currency,
    }))
}

/// Remove a product's price.
///
/// licensd extension. Audited ("Update product price").
#[utoipa::path(delete, path = "/licensd/v1/skus/{sku_id}/price", tag = "licensd: spend",
    params(("sku_id" = Uuid, Path, description = "The product's skuId")),
    responses(
        (status = 204, description = "The product has no price"),
        (status = 404, description = "No such product", body = ErrorResponse),
    ))]
pub async fn remove_price(
    tenant: Tenant,
    PathParameters(sku_id): PathParameters<String>,
) -> Result<StatusCode, ApiError> {
    let sku_id = parse_object_id(&sku_id)?;
    let sku_part_number = sku_part_number(&tenant, sku_id).await?;
    let before = stored_prices(&tenant)
        .await?
        .into_iter()
        .find(|price| price.sku_id == sku_id);
    if before.is_none() {
        return Ok(StatusCode::NO_CONTENT);
    }
    let record = audit_record(
        &tenant.caller,
        "Update product price",
        "Product",
        sku_id,
        sku_part_number,
        &describe_price(before.as_ref()),
        &describe_price(None),
    );
    tenant
        .with_store(move |store, tenant_id| {
            store
                .set_sku_price(tenant_id, sku_id, None, &[record])
                .map_err(unavailable)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- cost and idle seats -----------------------------------------------------------------------

/// `inactiveDays` (default 90, 1 to 3650).
fn inactive_days(raw_query: Option<&str>) -> Result<u32, ApiError> {
    match query_parameter(raw_query, "inactiveDays") {
        None => Ok(DEFAULT_INACTIVE_DAYS),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|days| (1..=3650).contains(days))
            .ok_or_else(|| {
                invalid(format!(
                    "inactiveDays '{text}' is not a number of days from 1 to 3650."
                ))
            }),
    }
}

/// `format`: `json` (default) or `csv`.
fn wants_csv(raw_query: Option<&str>) -> Result<bool, ApiError> {
    match query_parameter(raw_query, "format").as_deref() {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(other) => Err(invalid(format!("format '{other}' is not json or csv."))),
    }
}

/// Prices, the activity of possibly idle users and the policy at `now`: what the engine's
/// reports need.
pub struct SpendData {
    pub prices: FxHashMap<Uuid, SeatPrice>,
    pub activity: FxHashMap<Uuid, UserActivity>,
    pub policy: IdlePolicy,
}

impl SpendData {
    pub fn inputs(&self) -> SpendInputs<'_> {
        SpendInputs {
            prices: &self.prices,
            activity: &self.activity,
            policy: self.policy,
        }
    }
}

fn activity_of(record: &UserActivityRecord) -> UserActivity {
    UserActivity {
        last_sign_in: record.last_sign_in.map(Timestamp),
        leave_date: record.leave_date.map(Timestamp),
    }
}

/// Reads what the reports need for `inactive_days` at `now`.
pub async fn spend_data(tenant: &Tenant, inactive_days: u32, now: i64) -> Result<SpendData, ApiError> {
    let signed_in_before = now - i64::from(inactive_days) * DAY_MILLISECONDS;
    let (prices, activity) = tenant
        .with_store(move |store, tenant_id| {
            let prices = store.sku_prices(tenant_id).map_err(unavailable)?;
            let activity = store
                .possibly_idle_activity(tenant_id, now, signed_in_before)
                .map_err(unavailable)?;
            Ok((prices, activity))
        })
        .await?;
    Ok(SpendData {
        prices: price_map(&prices),
        activity: activity
            .iter()
            .map(|record| (record.user_id, activity_of(record)))
            .collect(),
        policy: IdlePolicy {
            now: Timestamp(now),
            inactive_after_days: inactive_days,
        },
    })
}

pub fn amounts(amounts: &Amounts) -> Vec<Amount> {
    amounts
        .iter()
        .map(|(currency, amount)| Amount {
            currency: currency.clone(),
            amount: format_amount(*amount),
        })
        .collect()
}

fn owner_fields(owner: &CostOwner) -> (&'static str, Option<Uuid>, String) {
    match owner {
        CostOwner::Direct => ("direct", None, "Direct assignments".to_string()),
        CostOwner::Group {
            group_id,
            display_name,
        } => ("group", Some(*group_id), display_name.clone()),
    }
}

fn wire_attribute_cost(cost: &engine_spend::AttributeCost) -> wire::AttributeCost {
    wire::AttributeCost {
        value: cost.value.clone(),
        seats: cost.seats,
        idle_seats: cost.idle_seats,
        cost: amounts(&cost.cost),
        idle_cost: amounts(&cost.idle_cost),
    }
}

/// The engine's cost report in licensd's admin shape.
pub fn wire_cost_report(report: &engine_spend::CostReport, inactive_days: u32, now: i64) -> CostReport {
    let currencies: std::collections::BTreeSet<&String> = report
        .purchased_cost
        .keys()
        .chain(report.consumed_cost.keys())
        .chain(report.idle_cost.keys())
        .collect();
    let amount_of =
        |amounts: &Amounts, currency: &str| format_amount(amounts.get(currency).copied().unwrap_or(0));
    CostReport {
        generated_date_time: format_date_time(now),
        inactive_days,
        products: report
            .products
            .iter()
            .map(|product| {
                let priced = |amount: i64| product.price.as_ref().map(|_| format_amount(amount));
                wire::ProductCost {
                    sku_id: product.sku_id,
                    sku_part_number: product.sku_part_number.clone(),
                    display_name: product.display_name.clone(),
                    price_per_seat: product
                        .price
                        .as_ref()
                        .map(|price| format_amount(price.minor_units)),
                    currency: product.price.as_ref().map(|price| price.currency.clone()),
                    purchased: product.purchased,
                    consumed: product.consumed,
                    unassigned: product.unassigned,
                    idle_left: product.idle_held[0],
                    idle_disabled: product.idle_held[1],
                    idle_inactive: product.idle_held[2],
                    idle_seats: product.idle_seats(),
                    purchased_cost: priced(product.purchased_cost),
                    consumed_cost: priced(product.consumed_cost),
                    idle_cost: priced(product.idle_cost),
                }
            })
            .collect(),
        sources: report
            .sources
            .iter()
            .map(|source| {
                let (kind, group_id, display_name) = owner_fields(&source.owner);
                wire::SourceCost {
                    source: kind.to_string(),
                    group_id,
                    display_name,
                    seats: source
                        .seats
                        .iter()
                        .map(|(sku_id, sku_part_number, seats)| SourceSeats {
                            sku_id: *sku_id,
                            sku_part_number: sku_part_number.clone(),
                            seats: *seats,
                        })
                        .collect(),
                    idle_seats: source.idle_seats,
                    cost: amounts(&source.cost),
                    idle_cost: amounts(&source.idle_cost),
                }
            })
            .collect(),
        departments: report.departments.iter().map(wire_attribute_cost).collect(),
        companies: report.companies.iter().map(wire_attribute_cost).collect(),
        totals: currencies
            .into_iter()
            .map(|currency| CurrencyTotals {
                currency: currency.clone(),
                purchased: amount_of(&report.purchased_cost, currency),
                consumed: amount_of(&report.consumed_cost, currency),
                idle: amount_of(&report.idle_cost, currency),
            })
            .collect(),
        unpriced_consumed_seats: report.unpriced_consumed_seats,
    }
}

fn csv_response<Row, Cell>(file_name: &str, rows: impl IntoIterator<Item = Row>) -> Result<Response, ApiError>
where
    Row: IntoIterator<Item = Cell>,
    Cell: AsRef<[u8]>,
{
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer
            .write_record(row)
            .map_err(|error| ApiError::internal(format!("writing CSV: {error}")))?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|error| ApiError::internal(format!("writing CSV: {error}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// The cost report as CSV rows: one per product, then one per source and product, then the
/// totals; each row says which view it belongs to.
pub fn cost_csv_rows(report: &CostReport) -> Vec<Vec<String>> {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let mut rows = vec![[
        "view",
        "id",
        "name",
        "skuId",
        "skuPartNumber",
        "currency",
        "pricePerSeat",
        "purchased",
        "consumed",
        "idleSeats",
        "purchasedCost",
        "consumedCost",
        "idleCost",
    ]
    .iter()
    .map(|cell| cell.to_string())
    .collect()];
    for product in &report.products {
        rows.push(vec![
            "product".into(),
            product.sku_id.to_string(),
            product.display_name.clone(),
            product.sku_id.to_string(),
            product.sku_part_number.clone(),
            text(&product.currency),
            text(&product.price_per_seat),
            product.purchased.to_string(),
            product.consumed.to_string(),
            product.idle_seats.to_string(),
            text(&product.purchased_cost),
            text(&product.consumed_cost),
            text(&product.idle_cost),
        ]);
    }
    for source in &report.sources {
        for seats in &source.seats {
            let product = report
                .products
                .iter()
                .find(|product| product.sku_id == seats.sku_id);
            let price = product.and_then(|product| product.price_per_seat.clone());
            let currency = product.and_then(|product| product.currency.clone());
            let cost = price
                .as_deref()
                .and_then(|price| parse_amount(price).ok())
                .map(|price| format_amount(price * i64::from(seats.seats)));
            rows.push(vec![
                source.source.clone(),
                source.group_id.map(|id| id.to_string()).unwrap_or_default(),
                source.display_name.clone(),
                seats.sku_id.to_string(),
                seats.sku_part_number.clone(),
                currency.unwrap_or_default(),
                price.unwrap_or_default(),
                String::new(),
                seats.seats.to_string(),
                String::new(),
                String::new(),
                cost.unwrap_or_default(),
                String::new(),
            ]);
        }
    }
    for (view, entries) in [
        ("department", &report.departments),
        ("company", &report.companies),
    ] {
        for entry in entries {
            for cost in &entry.cost {
                rows.push(vec![
                    view.to_string(),
                    String::new(),
                    entry.value.clone().unwrap_or_default(),
                    String::new(),
                    String::new(),
                    cost.currency.clone(),
                    String::new(),
                    String::new(),
                    entry.seats.to_string(),
                    entry.idle_seats.to_string(),
                    String::new(),
                    cost.amount.clone(),
                    entry
                        .idle_cost
                        .iter()
                        .find(|idle| idle.currency == cost.currency)
                        .map(|idle| idle.amount.clone())
                        .unwrap_or_default(),
                ]);
            }
        }
    }
    for total in &report.totals {
        rows.push(vec![
            "total".into(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            total.currency.clone(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            total.purchased.clone(),
            total.consumed.clone(),
            total.idle.clone(),
        ]);
    }
    rows
}

/// The cost report.
///
/// licensd extension: per month, what each product costs (purchased, consumed, idle), what
/// each group and direct assignments cost (a user's seat of a product is attributed once: to
/// the direct assignment if in effect, else to the group with the lowest id), and totals per
/// currency. Idle seats: unassigned, or held by a user who left, is disabled or has not signed
/// in for `inactiveDays` (default 90). `format=csv` answers CSV.
#[utoipa::path(get, path = "/licensd/v1/spend/cost", tag = "licensd: spend",
    params(
        ("inactiveDays" = Option<u32>, Query, minimum = 1, maximum = 3650, description = "Days without sign-in after which a seat is idle (1 to 3650, default 90)"),
        ("format" = Option<String>, Query, pattern = "^(?:json|csv)$", description = "json (default) or csv"),
    ),
    responses(
        (status = 200, description = "The cost report (as CSV with `format=csv`)", content((CostReport = "application/json"), (String = "text/csv"))),
        (status = 400, description = "An invalid parameter", body = ErrorResponse),
    ))]
pub async fn get_cost(tenant: Tenant, RawQuery(raw_query): RawQuery) -> Result<Response, ApiError> {
    let days = inactive_days(raw_query.as_deref())?;
    let csv = wants_csv(raw_query.as_deref())?;
    let now = licensd_runtime::tenants::now().0;
    let data = spend_data(&tenant, days, now).await?;
    let report = tenant
        .read(move |engine| Ok(wire_cost_report(&engine.cost_report(&data.inputs()), days, now)))
        .await?;
    if csv {
        return csv_response("cost.csv", cost_csv_rows(&report));
    }
    Ok(Json(report).into_response())
}

/// Idle seats.
///
/// licensd extension: every seat held by a user who left (`employeeLeaveDateTime` passed), is
/// disabled, or has not signed in for `inactiveDays` (default 90), with the reason and the
/// source the seat is attributed to. `top` (default 1000) bounds the list, `total` counts all;
/// `format=csv` answers every seat as CSV.
#[utoipa::path(get, path = "/licensd/v1/spend/idle", tag = "licensd: spend",
    params(
        ("inactiveDays" = Option<u32>, Query, minimum = 1, maximum = 3650, description = "Days without sign-in after which a seat is idle (1 to 3650, default 90)"),
        ("top" = Option<u32>, Query, minimum = 0, maximum = 1_000_000, description = "At most this many seats listed (0 to 1000000, default 1000)"),
        ("format" = Option<String>, Query, pattern = "^(?:json|csv)$", description = "json (default) or csv"),
    ),
    responses(
        (status = 200, description = "Idle seats (as CSV with `format=csv`)", content((IdleSeatList = "application/json"), (String = "text/csv"))),
        (status = 400, description = "An invalid parameter", body = ErrorResponse),
    ))]
pub async fn get_idle(tenant: Tenant, RawQuery(raw_query): RawQuery) -> Result<Response, ApiError> {
    let days = inactive_days(raw_query.as_deref())?;
    let csv = wants_csv(raw_query.as_deref())?;
    let top = match query_parameter(raw_query.as_deref(), "top") {
        None => DEFAULT_IDLE_TOP,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|top| *top <= 1_000_000)
            .ok_or_else(|| invalid(format!("top '{text}' is not a number from 0 to 1000000.")))?,
    };
    let now = licensd_runtime::tenants::now().0;
    let data = spend_data(&tenant, days, now).await?;
    let seats = tenant
        .read(move |engine| Ok(engine.idle_seats(&data.inputs())))
        .await?;
    let wire_seats = seats.iter().map(|seat| {
        let (source, group_id, _) = owner_fields(&seat.owner);
        wire::IdleSeat {
            user_id: seat.user.user_id,
            user_principal_name: seat.user.user_principal_name.clone(),
            sku_id: seat.sku_id,
            sku_part_number: seat.sku_part_number.clone(),
            reason: seat.reason.as_str().to_string(),
            since_date_time: seat.since.map(|since| format_date_time(since.0)),
            source: source.to_string(),
            group_id,
            price_per_seat: seat.price.as_ref().map(|price| format_amount(price.minor_units)),
            currency: seat.price.as_ref().map(|price| price.currency.clone()),
        }
    });
    if csv {
        // Written as the seats are read, without a list of every row first.
        let header = [
            "userId",
            "userPrincipalName",
            "skuId",
            "skuPartNumber",
            "reason",
            "since",
            "source",
            "groupId",
            "pricePerSeat",
            "currency",
        ]
        .map(String::from);
        let rows = std::iter::once(header).chain(wire_seats.map(|seat| {
            [
                seat.user_id.to_string(),
                seat.user_principal_name,
                seat.sku_id.to_string(),
                seat.sku_part_number,
                seat.reason,
                seat.since_date_time.unwrap_or_default(),
                seat.source,
                seat.group_id.map(|id| id.to_string()).unwrap_or_default(),
                seat.price_per_seat.unwrap_or_default(),
                seat.currency.unwrap_or_default(),
            ]
        }));
        return csv_response("idle-seats.csv", rows);
    }
    Ok(Json(IdleSeatList {
        inactive_days: days,
        total: seats.len() as u64,
        value: wire_seats.take(top).collect(),
    })
    .into_response())
}

// ----- activity ----------------------------------------------------------------------------------

fn parse_time_field(text: &str, name: &str) -> Result<i64, ApiError> {
    parse_date_time(text).ok_or_else(|| {
        invalid(format!(
            "{name} '{text}' is not a date-time such as 2026-11-30T09:00:00Z."
        ))
    })
}

fn wire_activity(record: &UserActivityRecord) -> wire::UserActivity {
    wire::UserActivity {
        user_id: record.user_id,
        sign_in_activity: SignInActivity {
            last_sign_in_date_time: record.last_sign_in.map(format_date_time),
        },
        employee_leave_date_time: record.leave_date.map(format_date_time),
    }
}

/// Reads a PATCH-like update (absent: kept, null: cleared) into the shared activity change.
fn activity_change(
    user_id: Uuid,
    user_principal_name: String,
    sign_in: &Option<Option<SignInActivity>>,
    leave: &Option<Option<String>>,
) -> Result<ActivityChange, ApiError> {
    let last_sign_in = match sign_in {
        None => None,
        Some(None) => Some(None),
        Some(Some(activity)) => Some(
            activity
                .last_sign_in_date_time
                .as_deref()
                .map(|text| parse_time_field(text, "signInActivity.lastSignInDateTime"))
                .transpose()?,
        ),
    };
    let leave_date = match leave {
        None => None,
        Some(None) => Some(None),
        Some(Some(text)) => Some(Some(parse_time_field(text, "employeeLeaveDateTime")?)),
    };
    Ok(ActivityChange {
        user_id,
        user_principal_name,
        last_sign_in,
        leave_date,
    })
}

/// One user's resolved update: (user id, principal name, sign-in change, leave change).
type ResolvedUpdate = (
    Uuid,
    String,
    Option<Option<SignInActivity>>,
    Option<Option<String>>,
);

/// Stores updates of several users, all or nothing, with an "Update user activity" audit record
/// per user whose activity changed ([`crate::activity`], as SCIM does); answers the users'
/// activity after.
pub async fn store_activity(
    tenant: &Tenant,
    updates: Vec<ResolvedUpdate>,
) -> Result<Vec<UserActivityRecord>, ApiError> {
    let changes = updates
        .into_iter()
        .map(|(user_id, user_principal_name, sign_in, leave)| {
            activity_change(user_id, user_principal_name, &sign_in, &leave)
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let caller = tenant.caller.clone();
    tenant
        .with_store(move |store, tenant_id| {
            crate::activity::store_activity(store, tenant_id, &caller, &changes).map_err(unavailable)
        })
        .await
}

async fn resolve(tenant: &Tenant, id: String) -> Result<(Uuid, String), ApiError> {
    tenant
        .read(move |engine| {
            let user_id = resolve_user(engine, &id)?;
            Ok((user_id, engine.user_view(user_id)?.user_principal_name))
        })
        .await
}

/// Get a user's activity.
///
/// licensd extension: the last sign-in and leave date the identity provider reported.
#[utoipa::path(get, path = "/licensd/v1/users/{id}/activity", tag = "licensd: spend",
    params(("id" = String, Path, description = "The user's id or userPrincipalName")),
    responses(
        (status = 200, description = "The user's activity", body = wire::UserActivity),
        (status = 404, description = "No such user", body = ErrorResponse),
    ))]
pub async fn get_activity(
    tenant: Tenant,
    PathParameters(id): PathParameters<String>,
) -> Result<Json<wire::UserActivity>, ApiError> {
    let (user_id, _) = resolve(&tenant, id).await?;
    let record = tenant
        .with_store(move |store, tenant_id| store.user_activity(tenant_id, user_id).map_err(unavailable))
        .await?
        .unwrap_or(UserActivityRecord {
            user_id,
            last_sign_in: None,
            leave_date: None,
        });
    Ok(Json(wire_activity(&record)))
}

/// Set a user's activity.
///
/// licensd extension: licensd does not authenticate users; the identity provider tells it the
/// last sign-in (`signInActivity.lastSignInDateTime`) and the leave date
/// (`employeeLeaveDateTime`). Absent properties are kept, null clears. Audited ("Update user
/// activity").
#[utoipa::path(patch, path = "/licensd/v1/users/{id}/activity", tag = "licensd: spend",
    params(("id" = String, Path, description = "The user's id or userPrincipalName")),
    request_body = ActivityRequest,
    responses(
        (status = 200, description = "The user's activity", body = wire::UserActivity),
        (status = 400, description = "A date that cannot be read or an unknown property", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
    ))]
pub async fn update_activity(
    tenant: Tenant,
    PathParameters(id): PathParameters<String>,
    JsonBody(request): JsonBody<ActivityRequest>,
) -> Result<Json<wire::UserActivity>, ApiError> {
    let (user_id, user_principal_name) = resolve(&tenant, id).await?;
    let records = store_activity(
        &tenant,
        vec![(
            user_id,
            user_principal_name,
            request.sign_in_activity,
            request.employee_leave_date_time,
        )],
    )
    .await?;
    let record = records
        .first()
        .ok_or_else(|| ApiError::internal("no activity stored"))?;
    Ok(Json(wire_activity(record)))
}

/// Set many users' activity.
///
/// licensd extension: each entry names a user by id or principal name; all entries are stored
/// in one transaction, or none if any is refused.
#[utoipa::path(post, path = "/licensd/v1/activity", tag = "licensd: spend",
    request_body = ActivityBatch,
    responses(
        (status = 200, description = "The users' activity", body = ActivityList),
        (status = 400, description = "A date that cannot be read or an unknown property", body = ErrorResponse),
        (status = 404, description = "An unknown user", body = ErrorResponse),
    ))]
pub async fn update_activities(
    tenant: Tenant,
    JsonBody(batch): JsonBody<ActivityBatch>,
) -> Result<Json<ActivityList>, ApiError> {
    if batch.value.len() > 10_000 {
        return Err(invalid("At most 10000 users per request."));
    }
    let resolved = tenant
        .read(move |engine| {
            batch
                .value
                .into_iter()
                .map(|update| {
                    let user_id = resolve_user(engine, &update.id)?;
                    Ok((
                        user_id,
                        engine.user_view(user_id)?.user_principal_name,
                        update.sign_in_activity,
                        update.employee_leave_date_time,
                    ))
                })
                .collect::<Result<Vec<_>, ApiError>>()
        })
        .await?;
    let records = store_activity(&tenant, resolved).await?;
    Ok(Json(ActivityList {
        value: records.iter().map(wire_activity).collect(),
    }))
}

// ----- seat history ------------------------------------------------------------------------------

fn time_parameter(raw_query: Option<&str>, name: &str) -> Result<Option<i64>, ApiError> {
    query_parameter(raw_query, name)
        .map(|text| parse_time_field(&text, name))
        .transpose()
}

/// The window of a seat history, as `get_history` reads it from the raw query: each bound a
/// date-time of `DATE_TIME_PATTERN` (what `parse_date_time` reads). Only documented here.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read by `time_parameter`; the struct states the parameters' schema
pub struct HistoryWindow {
    /// The earliest snapshot time (default: 90 days before `to`); not after `to`.
    #[param(schema_with = licensd_api_types::schemas::date_time)]
    from: Option<String>,
    /// The latest snapshot time (default: now).
    #[param(schema_with = licensd_api_types::schemas::date_time)]
    to: Option<String>,
}

/// A product's seat history.
///
/// licensd extension: snapshots of purchased, consumed, waiting and in-error counts, taken daily
/// and whenever the purchased seats change, in `[from, to]` (default: the last 90 days), with a
/// forecast of the day demand (consumed + waiting) reaches the purchased seats at the rate of
/// the last 30 days of the history.
#[utoipa::path(get, path = "/licensd/v1/skus/{sku_id}/history", tag = "licensd: spend",
    params(
        ("sku_id" = Uuid, Path, description = "The product's skuId"),
        HistoryWindow,
    ),
    responses(
        (status = 200, description = "The history", body = SeatHistory),
        (status = 400, description = "A date that cannot be read, or from after to", body = ErrorResponse),
        (status = 404, description = "No such product", body = ErrorResponse),
    ))]
pub async fn get_history(
    tenant: Tenant,
    PathParameters(sku_id): PathParameters<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<SeatHistory>, ApiError> {
    let sku_id = parse_object_id(&sku_id)?;
    let now = licensd_runtime::tenants::now().0;
    let to = time_parameter(raw_query.as_deref(), "to")?.unwrap_or(now);
    let from = time_parameter(raw_query.as_deref(), "from")?.unwrap_or(to - 90 * DAY_MILLISECONDS);
    if from > to {
        return Err(invalid("from is after to."));
    }
    let sku_part_number = sku_part_number(&tenant, sku_id).await?;
    let snapshots = tenant
        .with_store(move |store, tenant_id| {
            store
                .seat_history(tenant_id, sku_id, from, to)
                .map_err(unavailable)
        })
        .await?;
    let points: Vec<HistoryPoint> = snapshots
        .iter()
        .map(|snapshot| HistoryPoint {
            at: Timestamp(snapshot.taken_at),
            purchased: snapshot.purchased,
            consumed: snapshot.consumed,
            waiting: snapshot.waiting,
        })
        .collect();
    let forecast = engine_spend::forecast(&points, FORECAST_WINDOW_DAYS).map(|forecast| SeatForecast {
        growth_per_day: forecast.growth_per_day,
        exhaustion_date_time: forecast.exhaustion.map(|at| format_date_time(at.0)),
        window_days: FORECAST_WINDOW_DAYS,
        snapshots_used: forecast.points_used as u32,
    });
    Ok(Json(SeatHistory {
        sku_id,
        sku_part_number,
        value: snapshots
            .iter()
            .map(|snapshot| wire::SeatSnapshot {
                taken_date_time: format_date_time(snapshot.taken_at),
                purchased: snapshot.purchased,
                consumed: snapshot.consumed,
                waiting: snapshot.waiting,
                in_error: snapshot.in_error,
            })
            .collect(),
        forecast,
    }))
}
