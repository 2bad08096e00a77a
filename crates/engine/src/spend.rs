//! What licenses cost and where: the cost of each product (purchased, consumed, idle), of each
//! group and of direct assignments, and the idle seats — unassigned seats and seats held by
//! accounts that left the company, are disabled or have not signed in for a while. Pure: prices,
//! sign-in activity and the time are handed in; amounts are integers in the currency's minor unit
//! (cents), so every view adds up exactly.
//!
//! **How a seat is attributed.** A user consumes one seat of a product however many assignments
//! give it (Entra's rule). That seat is attributed to one source: the user's direct assignment
//! if it is in effect, otherwise the in-effect group assignment of the group with the lowest
//! object id. So the consumed seats of the sources of a product add up to its consumed seats,
//! and the sources' costs to the product's consumed cost.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::diagnosis::InvolvedUser;
use crate::model::{Timestamp, Uuid};
use crate::user_attributes::UserAttribute;
use crate::{Engine, SkuRef, Source, UserRef};

/// Seat counts per value of one attribute: values in first-seen order, (held, idle) per value
/// and product.
struct AttributeTally<'a> {
    attribute: UserAttribute,
    sku_count: usize,
    index: FxHashMap<Option<&'a str>, usize>,
    values: Vec<Option<&'a str>>,
    seats: Vec<(u32, u32)>,
    current: usize,
}

impl<'a> AttributeTally<'a> {
    fn new(attribute: UserAttribute, sku_count: usize) -> AttributeTally<'a> {
        AttributeTally {
            attribute,
            sku_count,
            index: FxHashMap::default(),
            values: Vec::new(),
            seats: Vec::new(),
            current: 0,
        }
    }

    fn enter_user(&mut self, value: Option<&'a str>) {
        let next = self.values.len();
        self.current = *self.index.entry(value).or_insert(next);
        if self.current == next {
            self.values.push(value);
            self.seats.extend(std::iter::repeat((0, 0)).take(self.sku_count));
        }
    }

    fn count(&mut self, sku: SkuRef, idle: bool) {
        let slot = &mut self.seats[self.current * self.sku_count + sku.0 as usize];
        slot.0 += 1;
        if idle {
            slot.1 += 1;
        }
    }

    fn finish(self, prices: &[Option<SeatPrice>]) -> Vec<AttributeCost> {
        let mut costs: Vec<AttributeCost> = self
            .values
            .iter()
            .enumerate()
            .map(|(index, value)| {
                let mut cost = AttributeCost {
                    value: value.map(str::to_string),
                    seats: 0,
                    idle_seats: 0,
                    cost: Amounts::new(),
                    idle_cost: Amounts::new(),
                };
                for (sku, (held, idle)) in self.seats[index * self.sku_count..(index + 1) * self.sku_count]
                    .iter()
                    .enumerate()
                {
                    cost.seats += held;
                    cost.idle_seats += idle;
                    add(&mut cost.cost, prices[sku].as_ref(), *held);
                    add(&mut cost.idle_cost, prices[sku].as_ref(), *idle);
                }
                cost
            })
            .filter(|cost| cost.seats > 0)
            .collect();
        costs.sort_by(|a, b| a.value.cmp(&b.value));
        costs
    }
}

/// Milliseconds in a day.
pub const DAY_MILLISECONDS: i64 = 24 * 60 * 60 * 1000;

/// The price of one seat of a product (per month, as the administrator sets it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeatPrice {
    /// In the currency's minor unit (cents), never negative.
    pub minor_units: i64,
    /// ISO 4217 code, such as `EUR`.
    pub currency: String,
}

/// What the identity provider reports of a user's activity (licensd does not authenticate users).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserActivity {
    /// `signInActivity.lastSignInDateTime`.
    pub last_sign_in: Option<Timestamp>,
    /// `employeeLeaveDateTime`.
    pub leave_date: Option<Timestamp>,
}

/// When a held seat counts as idle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdlePolicy {
    /// The time of the report.
    pub now: Timestamp,
    /// A user whose last sign-in is at least this many days before `now` is inactive.
    pub inactive_after_days: u32,
}

/// Why a held seat is idle, most compelling first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdleReason {
    /// The user's `employeeLeaveDateTime` has passed.
    Left,
    /// The account is disabled (`accountEnabled` false).
    Disabled,
    /// No sign-in for at least the policy's days.
    Inactive,
}

impl IdleReason {
    pub const ALL: [IdleReason; 3] = [IdleReason::Left, IdleReason::Disabled, IdleReason::Inactive];

    pub fn as_str(self) -> &'static str {
        match self {
            IdleReason::Left => "left",
            IdleReason::Disabled => "disabled",
            IdleReason::Inactive => "inactive",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why a user's seats are idle and the date that decided it.
pub type IdleVerdict = (IdleReason, Option<Timestamp>);

/// Why a user's seats are idle, if they are: left (leave date passed), else disabled, else
/// inactive (last sign-in at least `inactive_after_days` ago), with the date that decided it.
pub fn idle_reason(
    account_enabled: bool,
    activity: Option<&UserActivity>,
    policy: &IdlePolicy,
) -> Option<IdleVerdict> {
    if let Some(left) = activity.and_then(|activity| activity.leave_date) {
        if left <= policy.now {
            return Some((IdleReason::Left, Some(left)));
        }
    }
    if !account_enabled {
        return Some((IdleReason::Disabled, None));
    }
    let threshold = policy.now.0 - i64::from(policy.inactive_after_days) * DAY_MILLISECONDS;
    match activity.and_then(|activity| activity.last_sign_in) {
        Some(last) if last.0 <= threshold => Some((IdleReason::Inactive, Some(last))),
        _ => None,
    }
}

/// Money per currency, in minor units.
pub type Amounts = BTreeMap<String, i64>;

fn add(amounts: &mut Amounts, price: Option<&SeatPrice>, seats: u32) {
    if let Some(price) = price {
        *amounts.entry(price.currency.clone()).or_default() += price.minor_units * i64::from(seats);
    }
}

/// One product's seats and what they cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductCost {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub display_name: String,
    pub price: Option<SeatPrice>,
    pub purchased: u32,
    pub consumed: u32,
    /// Purchased seats no one holds.
    pub unassigned: u32,
    /// Held seats whose holder is idle, per reason (`IdleReason` order).
    pub idle_held: [u32; 3],
    /// Purchased × price.
    pub purchased_cost: i64,
    /// Consumed × price.
    pub consumed_cost: i64,
    /// (Unassigned + idle held) × price.
    pub idle_cost: i64,
}

impl ProductCost {
    /// Idle seats: unassigned plus held by idle users.
    pub fn idle_seats(&self) -> u32 {
        self.unassigned + self.idle_held.iter().sum::<u32>()
    }
}

/// Who a consumed seat is attributed to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CostOwner {
    /// Direct assignments.
    Direct,
    Group {
        group_id: Uuid,
        display_name: String,
    },
}

/// The seats attributed to one source (a group or direct assignments) and their cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceCost {
    pub owner: CostOwner,
    /// (skuId, skuPartNumber, seats), products in tenant order, only those with seats.
    pub seats: Vec<(Uuid, String, u32)>,
    /// Of those seats, held by idle users.
    pub idle_seats: u32,
    pub cost: Amounts,
    pub idle_cost: Amounts,
}

/// The seats of the users with one value of a directory attribute (`department`,
/// `companyName`) and their cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttributeCost {
    /// `None`: users without the attribute.
    pub value: Option<String>,
    pub seats: u32,
    pub idle_seats: u32,
    pub cost: Amounts,
    pub idle_cost: Amounts,
}

/// The cost report of a tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CostReport {
    pub products: Vec<ProductCost>,
    /// Direct assignments first, then every group with seats, by display name then id.
    pub sources: Vec<SourceCost>,
    /// Per `department`, by value (users without one first).
    pub departments: Vec<AttributeCost>,
    /// Per `companyName`, by value (users without one first).
    pub companies: Vec<AttributeCost>,
    pub purchased_cost: Amounts,
    pub consumed_cost: Amounts,
    pub idle_cost: Amounts,
    /// Seats of products without a price (not in any amount).
    pub unpriced_consumed_seats: u32,
}

/// One idle seat held by a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdleSeat {
    pub user: InvolvedUser,
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub reason: IdleReason,
    /// The leave date or the last sign-in that decided the reason.
    pub since: Option<Timestamp>,
    /// The source the seat is attributed to.
    pub owner: CostOwner,
    pub price: Option<SeatPrice>,
}

/// Prices and activity handed to the reports.
pub struct SpendInputs<'a> {
    pub prices: &'a FxHashMap<Uuid, SeatPrice>,
    /// Only users with activity need an entry.
    pub activity: &'a FxHashMap<Uuid, UserActivity>,
    pub policy: IdlePolicy,
}

impl Engine {
    /// The source a user's consumed seat of `sku` is attributed to (see the module's rule).
    pub(crate) fn seat_owner(&self, user: UserRef, sku: SkuRef) -> Option<Source> {
        let mut owner: Option<(Source, Uuid)> = None;
        for state in self.states.of(user) {
            if state.sku != sku || !state.holds_unit() {
                continue;
            }
            match state.source {
                Source::Direct => return Some(Source::Direct),
                Source::Group(group) => {
                    let id = self.group(group).id;
                    if owner.map_or(true, |(_, best)| id < best) {
                        owner = Some((state.source, id));
                    }
                }
            }
        }
        owner.map(|(source, _)| source)
    }

    fn cost_owner(&self, source: Source) -> CostOwner {
        match source {
            Source::Direct => CostOwner::Direct,
            Source::Group(group) => CostOwner::Group {
                group_id: self.group(group).id,
                display_name: self.group(group).display_name.clone(),
            },
        }
    }

    /// Calls `visit(user, sku, owner)` once per consumed seat.
    fn for_each_seat(&self, mut visit: impl FnMut(UserRef, SkuRef, Source)) {
        let mut seen: Vec<SkuRef> = Vec::new();
        for (user_ref, _) in self.directory.users() {
            seen.clear();
            for state in self.states.of(user_ref) {
                if !state.holds_unit() || seen.contains(&state.sku) {
                    continue;
                }
                seen.push(state.sku);
                if let Some(owner) = self.seat_owner(user_ref, state.sku) {
                    visit(user_ref, state.sku, owner);
                }
            }
        }
    }

    /// What every product, group and direct assignment costs, and what idle seats cost.
    pub fn cost_report(&self, inputs: &SpendInputs<'_>) -> CostReport {
        let sku_count = self.catalog.skus().len();
        let prices: Vec<Option<SeatPrice>> = self
            .catalog
            .skus()
            .map(|(_, sku)| inputs.prices.get(&sku.id).cloned())
            .collect();
        let mut idle_held = vec![[0u32; 3]; sku_count];
        // Per source: seats per product and idle seats. Direct is index 0, group g is g + 1.
        let group_count = self.directory.groups().count();
        let mut source_seats: Vec<FxHashMap<SkuRef, (u32, u32)>> =
            vec![FxHashMap::default(); group_count + 1];
        let mut current_user: Option<UserRef> = None;
        let mut current_idle: Option<IdleReason> = None;
        let mut tallies = [
            AttributeTally::new(UserAttribute::DEPARTMENT, sku_count),
            AttributeTally::new(UserAttribute::COMPANY_NAME, sku_count),
        ];
        self.for_each_seat(|user_ref, sku, owner| {
            if current_user != Some(user_ref) {
                current_user = Some(user_ref);
                let user = self.directory.user(user_ref);
                current_idle = idle_reason(
                    user.account_enabled,
                    inputs.activity.get(&user.id),
                    &inputs.policy,
                )
                .map(|(reason, _)| reason);
                for tally in &mut tallies {
                    tally.enter_user(self.directory.user_attribute(user_ref, tally.attribute));
                }
            }
            for tally in &mut tallies {
                tally.count(sku, current_idle.is_some());
            }
            let slot = match owner {
                Source::Direct => 0,
                Source::Group(group) => group.0 as usize + 1,
            };
            let entry = source_seats[slot].entry(sku).or_default();
            entry.0 += 1;
            if let Some(reason) = current_idle {
                entry.1 += 1;
                idle_held[sku.0 as usize][reason.index()] += 1;
            }
        });
        let mut report = CostReport::default();
        for (sku_ref, sku) in self.catalog.skus() {
            let price = prices[sku_ref.0 as usize].clone();
            let consumed = self.states.consumed_units(sku_ref);
            let unassigned = sku.prepaid_units.saturating_sub(consumed);
            let held = idle_held[sku_ref.0 as usize];
            let idle = unassigned + held.iter().sum::<u32>();
            let amount = |seats: u32| {
                price
                    .as_ref()
                    .map_or(0, |price| price.minor_units * i64::from(seats))
            };
            add(&mut report.purchased_cost, price.as_ref(), sku.prepaid_units);
            add(&mut report.consumed_cost, price.as_ref(), consumed);
            add(&mut report.idle_cost, price.as_ref(), idle);
            if price.is_none() {
                report.unpriced_consumed_seats += consumed;
            }
            report.products.push(ProductCost {
                sku_id: sku.id,
                sku_part_number: sku.part_number.clone(),
                display_name: sku.display_name.clone(),
                purchased_cost: amount(sku.prepaid_units),
                consumed_cost: amount(consumed),
                idle_cost: amount(idle),
                price,
                purchased: sku.prepaid_units,
                consumed,
                unassigned,
                idle_held: held,
            });
        }
        let groups: Vec<_> = self.directory.groups().collect();
        for (slot, seats) in source_seats.into_iter().enumerate() {
            if seats.is_empty() {
                continue;
            }
            let owner = if slot == 0 {
                Source::Direct
            } else {
                Source::Group(groups[slot - 1].0)
            };
            let mut by_sku: Vec<(SkuRef, (u32, u32))> = seats.into_iter().collect();
            by_sku.sort_unstable_by_key(|(sku, _)| *sku);
            let mut source = SourceCost {
                owner: self.cost_owner(owner),
                seats: Vec::with_capacity(by_sku.len()),
                idle_seats: 0,
                cost: Amounts::new(),
                idle_cost: Amounts::new(),
            };
            for (sku, (held, idle)) in by_sku {
                let price = prices[sku.0 as usize].as_ref();
                add(&mut source.cost, price, held);
                add(&mut source.idle_cost, price, idle);
                source.idle_seats += idle;
                source
                    .seats
                    .push((self.sku(sku).id, self.sku(sku).part_number.clone(), held));
            }
            report.sources.push(source);
        }
        report.sources.sort_by(|a, b| a.owner.cmp(&b.owner));
        let [departments, companies] = tallies;
        report.departments = departments.finish(&prices);
        report.companies = companies.finish(&prices);
        report
    }

    /// Every seat held by an idle user, by user (in the tenant's order) then product. Only idle
    /// users' seats are looked at (whether a user is idle is one lookup): the seats' sources are
    /// worked out for them alone, not for the whole tenant.
    pub fn idle_seats(&self, inputs: &SpendInputs<'_>) -> Vec<IdleSeat> {
        let mut seats = Vec::new();
        let mut seen: Vec<SkuRef> = Vec::new();
        for (user_ref, user) in self.directory.users() {
            let Some((reason, since)) = idle_reason(
                user.account_enabled,
                inputs.activity.get(&user.id),
                &inputs.policy,
            ) else {
                continue;
            };
            seen.clear();
            for state in self.states.of(user_ref) {
                if !state.holds_unit() || seen.contains(&state.sku) {
                    continue;
                }
                seen.push(state.sku);
                let Some(owner) = self.seat_owner(user_ref, state.sku) else {
                    continue;
                };
                let sku = self.sku(state.sku);
                seats.push(IdleSeat {
                    user: InvolvedUser {
                        user_id: user.id,
                        user_principal_name: user.user_principal_name.to_string(),
                    },
                    sku_id: sku.id,
                    sku_part_number: sku.part_number.clone(),
                    reason,
                    since,
                    owner: self.cost_owner(owner),
                    price: inputs.prices.get(&sku.id).cloned(),
                });
            }
        }
        seats
    }
}

/// What freeing the given seats ((skuId, skuPartNumber, seats), as the advisor's reclaimable
/// seats) saves per month, per currency; seats of unpriced products save nothing known.
pub fn seats_cost(seats: &[(Uuid, String, u32)], prices: &FxHashMap<Uuid, SeatPrice>) -> Amounts {
    let mut amounts = Amounts::new();
    for (sku_id, _, count) in seats {
        add(&mut amounts, prices.get(sku_id), *count);
    }
    amounts
}

/// One product's seat counts now, as a history snapshot records them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeatCounts {
    pub sku_id: Uuid,
    pub purchased: u32,
    pub consumed: u32,
    /// Users whose own error on the product is `CountViolation`.
    pub waiting: u32,
    /// Users with at least one assignment of the product in error.
    pub in_error: u32,
}

/// One point of a product's history, for the forecast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryPoint {
    pub at: Timestamp,
    pub purchased: i64,
    pub consumed: i64,
    pub waiting: i64,
}

/// When a product runs out at the recent rate of growth.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Forecast {
    /// Demand (consumed plus waiting) gained per day, least squares over the window.
    pub growth_per_day: f64,
    /// When the demand reaches the purchased seats of the last point; `None` when the demand
    /// does not grow. At or before the last point when it already has.
    pub exhaustion: Option<Timestamp>,
    pub points_used: usize,
}

/// The forecast from the points of the last `window_days` days before the last point (in time
/// order): the least-squares slope of demand over time, extrapolated from the last point to the
/// last purchased seats. `None` with fewer than two points in the window.
pub fn forecast(points: &[HistoryPoint], window_days: u32) -> Option<Forecast> {
    let last = *points.last()?;
    let start = last.at.0 - i64::from(window_days) * DAY_MILLISECONDS;
    let window: Vec<&HistoryPoint> = points.iter().filter(|point| point.at.0 >= start).collect();
    if window.len() < 2 {
        return None;
    }
    let count = window.len() as f64;
    let days = |point: &HistoryPoint| (point.at.0 - start) as f64 / DAY_MILLISECONDS as f64;
    let demand = |point: &HistoryPoint| (point.consumed + point.waiting) as f64;
    let mean_x = window.iter().map(|point| days(point)).sum::<f64>() / count;
    let mean_y = window.iter().map(|point| demand(point)).sum::<f64>() / count;
    let (mut covariance, mut variance) = (0.0, 0.0);
    for point in &window {
        covariance += (days(point) - mean_x) * (demand(point) - mean_y);
        variance += (days(point) - mean_x) * (days(point) - mean_x);
    }
    if variance == 0.0 {
        return None;
    }
    let growth_per_day = covariance / variance;
    let remaining = (last.purchased - last.consumed - last.waiting) as f64;
    let exhaustion = if remaining <= 0.0 {
        Some(last.at)
    } else if growth_per_day > 0.0 {
        let days_left = remaining / growth_per_day;
        Some(Timestamp(
            last.at.0 + (days_left * DAY_MILLISECONDS as f64).ceil() as i64,
        ))
    } else {
        None
    };
    Some(Forecast {
        growth_per_day,
        exhaustion,
        points_used: window.len(),
    })
}

impl Engine {
    /// Every product's seat counts now, in tenant order.
    pub fn seat_counts(&self) -> Vec<SeatCounts> {
        let mut in_error = vec![0u32; self.catalog.skus().len()];
        let mut seen: Vec<SkuRef> = Vec::new();
        for user in self.states.users_with_errors() {
            seen.clear();
            for state in self.states.of(*user) {
                if state.cause.is_some() && !seen.contains(&state.sku) {
                    seen.push(state.sku);
                    in_error[state.sku.0 as usize] += 1;
                }
            }
        }
        self.catalog
            .skus()
            .map(|(sku_ref, sku)| SeatCounts {
                sku_id: sku.id,
                purchased: sku.prepaid_units,
                consumed: self.states.consumed_units(sku_ref),
                waiting: self.states.waiting(sku_ref).len() as u32,
                in_error: in_error[sku_ref.0 as usize],
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(now_days: i64) -> IdlePolicy {
        IdlePolicy {
            now: Timestamp(now_days * DAY_MILLISECONDS),
            inactive_after_days: 30,
        }
    }

    #[test]
    fn leaving_outranks_disabled_outranks_inactive() {
        let long_ago = Some(Timestamp(DAY_MILLISECONDS));
        let left = UserActivity {
            last_sign_in: long_ago,
            leave_date: Some(Timestamp(50 * DAY_MILLISECONDS)),
        };
        assert_eq!(
            idle_reason(false, Some(&left), &policy(100)).map(|r| r.0),
            Some(IdleReason::Left)
        );
        // A leave date still ahead is not a leaver yet.
        assert_eq!(
            idle_reason(false, Some(&left), &policy(40)).map(|r| r.0),
            Some(IdleReason::Disabled)
        );
        let inactive = UserActivity {
            last_sign_in: Some(Timestamp(69 * DAY_MILLISECONDS)),
            leave_date: None,
        };
        assert_eq!(
            idle_reason(true, Some(&inactive), &policy(98)),
            None,
            "29 days is not 30"
        );
        assert_eq!(
            idle_reason(true, Some(&inactive), &policy(99)),
            Some((IdleReason::Inactive, Some(Timestamp(69 * DAY_MILLISECONDS))))
        );
        assert_eq!(
            idle_reason(true, None, &policy(1000)),
            None,
            "no activity known: not idle"
        );
    }

    fn point(day: i64, purchased: i64, consumed: i64) -> HistoryPoint {
        HistoryPoint {
            at: Timestamp(day * DAY_MILLISECONDS),
            purchased,
            consumed,
            waiting: 0,
        }
    }

    #[test]
    fn the_forecast_extrapolates_the_recent_growth() {
        // Two seats a day for ten days; 100 purchased, 40 consumed on day 10: 30 days left.
        let points: Vec<_> = (0..=10).map(|day| point(day, 100, 20 + 2 * day)).collect();
        let found = forecast(&points, 30).expect("a forecast");
        assert!((found.growth_per_day - 2.0).abs() < 1e-9);
        assert_eq!(found.exhaustion, Some(Timestamp(40 * DAY_MILLISECONDS)));
        assert_eq!(found.points_used, 11);
        // Old points outside the window are not used: flat for a year, then growth.
        let mut points: Vec<_> = (0..=300).map(|day| point(day, 100, 10)).collect();
        points.extend((301..=310).map(|day| point(day, 100, 10 + (day - 300))));
        let recent = forecast(&points, 10).expect("a forecast");
        assert!(recent.growth_per_day > 0.9, "{recent:?}");
        // No growth: no date. Already out: the last point.
        let flat: Vec<_> = (0..5).map(|day| point(day, 100, 50)).collect();
        assert_eq!(forecast(&flat, 30).expect("flat").exhaustion, None);
        let out: Vec<_> = (0..5).map(|day| point(day, 10, 10)).collect();
        assert_eq!(
            forecast(&out, 30).expect("out").exhaustion,
            Some(Timestamp(4 * DAY_MILLISECONDS))
        );
        assert_eq!(forecast(&points[..1], 30), None);
    }
}
