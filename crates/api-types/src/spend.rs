//! The shapes of licensd's spend reports under `/licensd/v1`: prices per seat, cost per product,
//! per group and direct assignments, idle seats, users' activity (Graph's
//! `signInActivity.lastSignInDateTime` and `employeeLeaveDateTime`), seat history and its
//! forecast. Money is written as decimal text with two decimals (`"12.50"`), never a float.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Lets a `PATCH` body tell "absent" (`None`) from "set to null" (`Some(None)`).
fn present_or_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// The largest price per seat accepted, in minor units (10 billion).
pub const MAX_PRICE_MINOR: i64 = 1_000_000_000_000;

/// Reads a price such as `"12.5"` or `"12.50"` into minor units (cents): digits, at most two
/// decimals, not negative, at most 10,000,000,000.00.
pub fn parse_amount(text: &str) -> Result<i64, String> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
    if !digits(whole) || (text.contains('.') && !digits(fraction)) || fraction.len() > 2 || whole.len() > 11 {
        return Err(format!(
            "'{text}' is not an amount: use digits with at most two decimals, such as 12.50."
        ));
    }
    let whole: i64 = whole.parse().map_err(|_| format!("'{text}' is not an amount."))?;
    let mut cents: i64 = if fraction.is_empty() {
        0
    } else {
        fraction
            .parse()
            .map_err(|_| format!("'{text}' is not an amount."))?
    };
    if fraction.len() == 1 {
        cents *= 10;
    }
    let minor = whole * 100 + cents;
    if minor > MAX_PRICE_MINOR {
        return Err(format!(
            "'{text}' is above the largest price accepted, 10000000000.00."
        ));
    }
    Ok(minor)
}

/// Minor units as decimal text with two decimals: 1250 → `"12.50"`, -5 → `"-0.05"`.
pub fn format_amount(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = minor.unsigned_abs();
    format!("{sign}{}.{:02}", magnitude / 100, magnitude % 100)
}

/// Reads an ISO 4217 code: three letters, returned in capitals.
pub fn parse_currency(text: &str) -> Result<String, String> {
    if text.len() == 3 && text.bytes().all(|byte| byte.is_ascii_alphabetic()) {
        Ok(text.to_ascii_uppercase())
    } else {
        Err(format!(
            "'{text}' is not a currency: use a three-letter ISO 4217 code such as EUR."
        ))
    }
}

/// `PUT /licensd/v1/skus/{skuId}/price`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetPriceRequest {
    /// Per seat and month, decimal text with at most two decimals, at most 10000000000.00
    /// (`parse_amount`).
    #[schema(
        example = "32.00",
        pattern = "^(?:[0-9]{1,10}(?:\\.[0-9]{1,2})?|10000000000(?:\\.00?)?)$"
    )]
    pub price_per_seat: String,
    /// ISO 4217 code: three letters, any case (`parse_currency`).
    #[schema(example = "EUR", pattern = "^[A-Za-z]{3}$")]
    pub currency: String,
}

/// A product's price per seat and month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    #[schema(example = "32.00")]
    pub price_per_seat: String,
    #[schema(example = "EUR")]
    pub currency: String,
}

/// Every priced product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PriceList {
    pub value: Vec<Price>,
}

/// An amount of money in one currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Amount {
    pub currency: String,
    #[schema(example = "1250.00")]
    pub amount: String,
}

/// One product's seats and cost (per month).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductCost {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub display_name: String,
    /// Absent when the product has no price.
    pub price_per_seat: Option<String>,
    pub currency: Option<String>,
    pub purchased: u32,
    pub consumed: u32,
    /// Purchased seats no one holds.
    pub unassigned: u32,
    /// Seats held by users whose leave date has passed.
    pub idle_left: u32,
    /// Seats held by disabled accounts.
    pub idle_disabled: u32,
    /// Seats held by users who have not signed in for `inactiveDays`.
    pub idle_inactive: u32,
    /// Unassigned plus idle held seats.
    pub idle_seats: u32,
    pub purchased_cost: Option<String>,
    pub consumed_cost: Option<String>,
    pub idle_cost: Option<String>,
}

/// Seats of one product attributed to a source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceSeats {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub seats: u32,
}

/// The seats attributed to a group or to direct assignments, and their cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceCost {
    /// `direct` or `group`.
    pub source: String,
    pub group_id: Option<Uuid>,
    pub display_name: String,
    pub seats: Vec<SourceSeats>,
    pub idle_seats: u32,
    pub cost: Vec<Amount>,
    pub idle_cost: Vec<Amount>,
}

/// The seats of the users with one value of a directory attribute and their cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttributeCost {
    /// The `department` or `companyName`; null for users without one.
    pub value: Option<String>,
    pub seats: u32,
    pub idle_seats: u32,
    pub cost: Vec<Amount>,
    pub idle_cost: Vec<Amount>,
}

/// Totals of one currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CurrencyTotals {
    pub currency: String,
    pub purchased: String,
    pub consumed: String,
    pub idle: String,
}

/// `GET /licensd/v1/spend/cost`: what licenses cost and where, per month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CostReport {
    pub generated_date_time: String,
    pub inactive_days: u32,
    pub products: Vec<ProductCost>,
    /// Direct assignments and each group with seats. A user's seat of a product is attributed
    /// once: to the direct assignment if it is in effect, else to the group with the lowest id.
    pub sources: Vec<SourceCost>,
    /// Per `department` of the seat's holder (null: users without one).
    pub departments: Vec<AttributeCost>,
    /// Per `companyName` of the seat's holder (null: users without one).
    pub companies: Vec<AttributeCost>,
    pub totals: Vec<CurrencyTotals>,
    /// Consumed seats of products without a price (in no amount).
    pub unpriced_consumed_seats: u32,
}

/// One idle seat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdleSeat {
    pub user_id: Uuid,
    pub user_principal_name: String,
    pub sku_id: Uuid,
    pub sku_part_number: String,
    /// `left`, `disabled` or `inactive`.
    pub reason: String,
    /// The leave date or last sign-in that decided the reason.
    pub since_date_time: Option<String>,
    /// `direct` or `group`: the source the seat is attributed to.
    pub source: String,
    pub group_id: Option<Uuid>,
    pub price_per_seat: Option<String>,
    pub currency: Option<String>,
}

/// `GET /licensd/v1/spend/idle`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdleSeatList {
    pub inactive_days: u32,
    /// Every idle held seat (`value` lists at most `top`).
    pub total: u64,
    pub value: Vec<IdleSeat>,
}

/// Graph's `signInActivity`, the part licensd keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignInActivity {
    #[schema(schema_with = crate::schemas::optional_date_time)]
    pub last_sign_in_date_time: Option<String>,
}

/// `PATCH /licensd/v1/users/{id}/activity`: what the identity provider reports (absent: kept;
/// null: cleared).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActivityRequest {
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<SignInActivity>)]
    pub sign_in_activity: Option<Option<SignInActivity>>,
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(schema_with = crate::schemas::optional_date_time)]
    pub employee_leave_date_time: Option<Option<String>>,
}

/// One user's activity in a bulk update: `id` is the user's id or principal name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActivityUpdate {
    pub id: String,
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<SignInActivity>)]
    pub sign_in_activity: Option<Option<SignInActivity>>,
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(schema_with = crate::schemas::optional_date_time)]
    pub employee_leave_date_time: Option<Option<String>>,
}

/// `POST /licensd/v1/activity`: many users at once, all or nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityBatch {
    pub value: Vec<ActivityUpdate>,
}

/// A user's activity as licensd knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserActivity {
    pub user_id: Uuid,
    pub sign_in_activity: SignInActivity,
    pub employee_leave_date_time: Option<String>,
}

/// The answer to a bulk update.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ActivityList {
    pub value: Vec<UserActivity>,
}

/// One snapshot of a product's seats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeatSnapshot {
    pub taken_date_time: String,
    pub purchased: i64,
    pub consumed: i64,
    pub waiting: i64,
    pub in_error: i64,
}

/// When the product runs out at the recent rate of growth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeatForecast {
    /// Consumed seats gained per day over the window (least squares; may be negative).
    pub growth_per_day: f64,
    /// The day the consumed seats (plus those waiting) reach the purchased seats; absent when
    /// usage is not growing. Already past when the product has run out.
    pub exhaustion_date_time: Option<String>,
    /// The snapshots the rate was computed from: the last `windowDays` days of the history.
    pub window_days: u32,
    pub snapshots_used: u32,
}

/// `GET /licensd/v1/skus/{skuId}/history`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeatHistory {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub value: Vec<SeatSnapshot>,
    pub forecast: Option<SeatForecast>,
}

/// `POST /licensd/v1/migrations/directToGroup`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectToGroupRequest {
    pub group_id: Uuid,
    pub sku_id: Uuid,
    /// `true` (the default): report and simulate only.
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// Users per batch (default 500, 1 to 10,000).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10_000)]
    pub batch_size: Option<u32>,
}

/// A user named in a migration report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationUser {
    pub user_id: Uuid,
    pub user_principal_name: String,
    /// Why the direct license is not covered (`fewerPlans`, `groupAssignmentNotInEffect`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The plans the user would lose (`fewerPlans`) or lost.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub plans: Vec<String>,
}

/// The dry run's prediction (the what-if of removing the covered direct licenses).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationWhatIf {
    pub changed_users: u64,
    pub newly_broken_users: u64,
    pub users_with_errors_before: u64,
    pub users_with_errors_after: u64,
}

/// One batch of removals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationBatch {
    pub index: u32,
    pub users: u32,
    pub removed: u32,
    pub duration_milliseconds: u64,
}

/// The answer of a direct-to-group migration (a dry run or the real one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectToGroupReport {
    pub group_id: Uuid,
    pub sku_id: Uuid,
    pub dry_run: bool,
    /// Members whose direct license the group fully covers (same or more plans, in effect).
    pub covered: Vec<MigrationUser>,
    /// Members who would lose plans: their direct licenses are kept.
    pub losing_plans: Vec<MigrationUser>,
    /// Users with a direct license who are not members: kept.
    pub not_in_group: Vec<MigrationUser>,
    /// The dry run's simulation (dry runs only).
    pub what_if: Option<MigrationWhatIf>,
    /// Batches applied (real runs only).
    pub batches: Vec<MigrationBatch>,
    /// Direct licenses removed.
    pub removed: u64,
    /// The first unexpected error, which stopped the migration (later batches not applied).
    pub stopped_by: Option<String>,
    /// Migrated users who lost a plan (the proof: empty when nobody lost a service).
    pub users_who_lost_plans: Vec<MigrationUser>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_and_written_exactly() {
        assert_eq!(parse_amount("12.5"), Ok(1250));
        assert_eq!(parse_amount("12.50"), Ok(1250));
        assert_eq!(parse_amount("0"), Ok(0));
        assert_eq!(parse_amount("7.05"), Ok(705));
        for bad in ["", "-1", "1.234", "1.", ".5", "1e3", "abc", "99999999999.00"] {
            assert!(parse_amount(bad).is_err(), "{bad}");
        }
        assert_eq!(format_amount(1250), "12.50");
        assert_eq!(format_amount(5), "0.05");
        assert_eq!(format_amount(-5), "-0.05");
        assert_eq!(parse_currency("eur"), Ok("EUR".to_string()));
        assert!(parse_currency("EU").is_err());
        assert!(parse_currency("E1R").is_err());
    }
}
