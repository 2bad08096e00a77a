//! `/licensd/v1/advisor`: the tenant advisor's report of money and risk — redundant direct
//! assignments, seats held by disabled accounts, add-ons failing for members without their
//! prerequisite, products near exhaustion — with the changes that act on each finding.

use axum::Json;
use licensd_api_types::admin::ServicePlan;
use licensd_api_types::diagnosis::{
    AddOnRisk, AdvisorReport, DisabledAccountSeats, ProductExhaustion, ReclaimableSeats,
    RedundantDirectAssignment,
};
use licensd_engine::advisor::{self as engine_advisor, Redundancy};
use licensd_engine::PlanName;

use super::diagnosis::{changes_of, wire_user};
use crate::api::{ApiError, Tenant};

fn wire_plan(plan: &PlanName) -> ServicePlan {
    ServicePlan {
        service_plan_id: plan.service_plan_id,
        service_plan_name: plan.service_plan_name.clone(),
        display_name: plan.display_name.clone(),
    }
}

pub fn wire_advisor(report: &engine_advisor::AdvisorReport) -> Result<AdvisorReport, ApiError> {
    Ok(AdvisorReport {
        redundant_direct_assignments: report
            .redundant_direct_assignments
            .iter()
            .map(|finding| {
                let (reason, group_id, group_display_name, superseding_sku_id) = match &finding.redundancy {
                    Redundancy::SameProductFromGroup {
                        group_id,
                        group_display_name,
                    } => (
                        "SameProductFromGroup",
                        *group_id,
                        group_display_name.clone(),
                        None,
                    ),
                    Redundancy::SupersededByGroupProduct {
                        group_id,
                        group_display_name,
                        sku_id,
                        ..
                    } => (
                        "SupersededByGroupProduct",
                        *group_id,
                        group_display_name.clone(),
                        Some(*sku_id),
                    ),
                };
                Ok(RedundantDirectAssignment {
                    user: wire_user(&finding.user),
                    sku_id: finding.sku_id,
                    sku_part_number: finding.sku_part_number.clone(),
                    reason: reason.to_string(),
                    group_id,
                    group_display_name,
                    superseding_sku_id,
                    frees_seat: finding.frees_seat,
                    changes: changes_of(&finding.commands)?,
                })
            })
            .collect::<Result<_, ApiError>>()?,
        disabled_accounts_holding_seats: report
            .disabled_accounts_holding_seats
            .iter()
            .map(|finding| {
                Ok(DisabledAccountSeats {
                    user: wire_user(&finding.user),
                    sku_ids: finding.products.iter().map(|(sku_id, _)| *sku_id).collect(),
                    sku_part_numbers: finding.products.iter().map(|(_, part)| part.clone()).collect(),
                    changes: changes_of(&finding.commands)?,
                })
            })
            .collect::<Result<_, ApiError>>()?,
        add_on_risks: report
            .add_on_risks
            .iter()
            .map(|risk| AddOnRisk {
                group_id: risk.group_id,
                display_name: risk.display_name.clone(),
                add_on_plan: wire_plan(&risk.add_on_plan),
                add_on_sku_id: risk.add_on_sku_id,
                prerequisite_plans: risk.prerequisite_plans.iter().map(wire_plan).collect(),
                members_without_own_prerequisite: risk.members_without_own_prerequisite as u64,
                members_at_risk: risk.members_at_risk as u64,
                reason: risk.reason.clone(),
            })
            .collect(),
        products_near_exhaustion: report
            .products_near_exhaustion
            .iter()
            .map(|product| ProductExhaustion {
                sku_id: product.sku_id,
                sku_part_number: product.sku_part_number.clone(),
                prepaid_units: product.prepaid_units,
                consumed_units: product.consumed_units,
                available_units: product.available_units,
                waiting_users: product.waiting_users as u64,
                queued_demand: product.queued_demand as u64,
                shortfall: product.shortfall,
            })
            .collect(),
        reclaimable_seats: report
            .reclaimable_seats
            .iter()
            .map(|(sku_id, sku_part_number, seats)| ReclaimableSeats {
                sku_id: *sku_id,
                sku_part_number: sku_part_number.clone(),
                seats: *seats,
            })
            .collect(),
        money_saved_per_month: Vec::new(),
    })
}

/// The tenant advisor.
///
/// licensd extension: redundant direct assignments (a group gives the same product, or a
/// product that supersedes it such as E3 over E1), seats held by disabled accounts, groups whose
/// add-ons fail for members without the prerequisite, products near exhaustion given the demand
/// already waiting or queued, and the seats acting on the findings would free. Each actionable
/// finding carries its `changes` (apply them with `POST /licensd/v1/changes`);
/// `moneySavedPerMonth` is what freeing the reclaimable seats saves at the products' prices
/// (the cost and idle-seat reports: `/licensd/v1/spend/cost`, `/licensd/v1/spend/idle`).
#[utoipa::path(get, path = "/licensd/v1/advisor", tag = "licensd: diagnosis",
    responses((status = 200, description = "The advisor's report", body = AdvisorReport)))]
pub async fn get_advisor(tenant: Tenant) -> Result<Json<AdvisorReport>, ApiError> {
    let prices = super::spend::stored_price_map(&tenant).await?;
    Ok(Json(
        tenant
            .read_advised(move |_engine, report| {
                let mut wire = wire_advisor(report)?;
                wire.money_saved_per_month =
                    licensd_engine::spend::seats_cost(&report.reclaimable_seats, &prices)
                        .into_iter()
                        .map(|(currency, amount)| licensd_api_types::spend::Amount {
                            currency,
                            amount: licensd_api_types::spend::format_amount(amount),
                        })
                        .collect();
                Ok(wire)
            })
            .await?,
    ))
}
