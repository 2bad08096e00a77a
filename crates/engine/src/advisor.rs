//! The tenant advisor: where licenses cost money for nothing and where errors are about to
//! happen — redundant direct assignments, seats held by disabled accounts, groups whose add-ons
//! fail for members without the prerequisite, and products near exhaustion given the demand
//! already queued. Each finding that can be acted on carries the commands that act on it.

use rustc_hash::FxHashMap;

use crate::command::Command;
use crate::diagnosis::InvolvedUser;
use crate::error::PlanName;
use crate::model::Uuid;
use crate::plan_set::PlanSet;
use crate::{Engine, SkuRef, Source};

/// Why a direct assignment is redundant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redundancy {
    /// A group gives the user the same product, in effect: removing the direct assignment frees
    /// no seat but leaves one source to manage.
    SameProductFromGroup {
        group_id: Uuid,
        group_display_name: String,
    },
    /// A group assigns a product whose plans give (or supersede) every plan of the direct one,
    /// as Office 365 E3 over E1: removing the direct assignment frees its seat.
    SupersededByGroupProduct {
        group_id: Uuid,
        group_display_name: String,
        sku_id: Uuid,
        sku_part_number: String,
    },
}

/// A direct assignment a group makes unnecessary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedundantDirectAssignment {
    pub user: InvolvedUser,
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub redundancy: Redundancy,
    /// Whether removing it frees a seat of the product.
    pub frees_seat: bool,
    /// Removes the direct assignment, then reprocesses the user.
    pub commands: Vec<Command>,
}

/// A disabled account that holds seats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisabledAccountSeats {
    pub user: InvolvedUser,
    /// (skuId, skuPartNumber) of the products it holds a seat of.
    pub products: Vec<(Uuid, String)>,
    /// Removes its direct licenses and its memberships of licensed groups.
    pub commands: Vec<Command>,
}

/// A group whose add-on plan fails for members without the prerequisite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddOnRisk {
    pub group_id: Uuid,
    pub display_name: String,
    pub add_on_plan: PlanName,
    pub add_on_sku_id: Uuid,
    /// The prerequisite plans the group itself enables.
    pub prerequisite_plans: Vec<PlanName>,
    /// Members with no prerequisite from anywhere but this group, whose add-on therefore depends
    /// on the group's prerequisite product.
    pub members_without_own_prerequisite: usize,
    /// Those of them who do not get the add-on: the group's assignment is in error for them, or
    /// they still need a seat of the prerequisite product and none is free.
    pub members_at_risk: usize,
    pub reason: String,
}

/// A product whose free seats do not cover the demand already known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductExhaustion {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub prepaid_units: u32,
    pub consumed_units: u32,
    pub available_units: u32,
    /// Users whose own error on the product is `CountViolation`.
    pub waiting_users: usize,
    /// Queued users in a group with the product who do not hold a seat of it yet.
    pub queued_demand: usize,
    /// Seats missing to serve the whole demand (zero when near, but not past, exhaustion).
    pub shortfall: u32,
}

/// The advisor's report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdvisorReport {
    pub redundant_direct_assignments: Vec<RedundantDirectAssignment>,
    pub disabled_accounts_holding_seats: Vec<DisabledAccountSeats>,
    pub add_on_risks: Vec<AddOnRisk>,
    pub products_near_exhaustion: Vec<ProductExhaustion>,
    /// Seats that acting on the findings would free (superseded direct assignments and
    /// disabled accounts), per product: (skuId, skuPartNumber, seats).
    pub reclaimable_seats: Vec<(Uuid, String, u32)>,
}

impl Engine {
    /// Looks at every user once and reports money and risk.
    pub fn advise(&self) -> AdvisorReport {
        let mut report = AdvisorReport::default();
        let mut reclaimable: FxHashMap<SkuRef, u32> = FxHashMap::default();
        let mut queued_demand: FxHashMap<SkuRef, usize> = FxHashMap::default();
        for (user_ref, user) in self.directory.users() {
            let states = self.states.of(user_ref);
            let involved = InvolvedUser {
                user_id: user.id,
                user_principal_name: user.user_principal_name.to_string(),
            };
            // Redundant direct assignments.
            for direct in &user.direct {
                let in_effect = states.iter().any(|state| {
                    state.source == Source::Direct && state.sku == direct.sku && state.holds_unit()
                });
                if !in_effect {
                    continue;
                }
                let same_product = states.iter().find_map(|state| match state.source {
                    Source::Group(group) if state.sku == direct.sku && state.holds_unit() => Some(group),
                    _ => None,
                });
                let enabled = self.enabled_plans(direct.sku, direct.disabled_plans);
                let redundancy = match same_product {
                    Some(group) => Some(Redundancy::SameProductFromGroup {
                        group_id: self.group(group).id,
                        group_display_name: self.group(group).display_name.clone(),
                    }),
                    None => user.memberships.iter().find_map(|membership| {
                        let group = self.group(membership.group);
                        group.licenses.iter().find_map(|license| {
                            if license.sku == direct.sku {
                                return None;
                            }
                            let wanted = self.enabled_plans(license.sku, license.disabled_plans);
                            let superseded = enabled.iter().all(|plan| self.plan_superseded(plan, &wanted));
                            (!enabled.is_empty() && superseded).then(|| {
                                Redundancy::SupersededByGroupProduct {
                                    group_id: group.id,
                                    group_display_name: group.display_name.clone(),
                                    sku_id: self.sku(license.sku).id,
                                    sku_part_number: self.sku(license.sku).part_number.clone(),
                                }
                            })
                        })
                    }),
                };
                if let Some(redundancy) = redundancy {
                    let frees_seat = matches!(redundancy, Redundancy::SupersededByGroupProduct { .. });
                    if frees_seat && user.account_enabled {
                        *reclaimable.entry(direct.sku).or_default() += 1;
                    }
                    report
                        .redundant_direct_assignments
                        .push(RedundantDirectAssignment {
                            user: involved.clone(),
                            sku_id: self.sku(direct.sku).id,
                            sku_part_number: self.sku(direct.sku).part_number.clone(),
                            redundancy,
                            frees_seat,
                            commands: vec![
                                Command::AssignUserLicenses {
                                    user_id: user.id,
                                    add_licenses: Vec::new(),
                                    remove_licenses: vec![self.sku(direct.sku).id],
                                },
                                Command::ReprocessUser { user_id: user.id },
                            ],
                        });
                }
            }
            // Disabled accounts holding seats.
            if !user.account_enabled {
                let mut held: Vec<SkuRef> = states
                    .iter()
                    .filter(|state| state.holds_unit())
                    .map(|state| state.sku)
                    .collect();
                held.sort_unstable();
                held.dedup();
                if !held.is_empty() {
                    let mut commands = Vec::new();
                    if !user.direct.is_empty() {
                        commands.push(Command::AssignUserLicenses {
                            user_id: user.id,
                            add_licenses: Vec::new(),
                            remove_licenses: user
                                .direct
                                .iter()
                                .map(|direct| self.sku(direct.sku).id)
                                .collect(),
                        });
                    }
                    for membership in &user.memberships {
                        if !self.group(membership.group).licenses.is_empty() {
                            commands.push(Command::RemoveGroupMember {
                                group_id: self.group(membership.group).id,
                                user_id: user.id,
                            });
                        }
                    }
                    commands.push(Command::ReprocessUser { user_id: user.id });
                    for sku in &held {
                        *reclaimable.entry(*sku).or_default() += 1;
                    }
                    report.disabled_accounts_holding_seats.push(DisabledAccountSeats {
                        user: involved.clone(),
                        products: held
                            .iter()
                            .map(|sku| (self.sku(*sku).id, self.sku(*sku).part_number.clone()))
                            .collect(),
                        commands,
                    });
                }
            }
            // Demand already queued: queued members of licensed groups without a seat yet.
            if self.queue.is_queued(user_ref) {
                let mut wanted: Vec<SkuRef> = user
                    .memberships
                    .iter()
                    .flat_map(|membership| {
                        self.group(membership.group)
                            .licenses
                            .iter()
                            .map(|license| license.sku)
                    })
                    .chain(user.direct.iter().map(|direct| direct.sku))
                    .filter(|sku| !states.iter().any(|state| state.sku == *sku && state.holds_unit()))
                    .filter(|sku| {
                        // Users already waiting are counted as waiting.
                        !states.iter().any(|state| {
                            state.sku == *sku
                                && state.cause.is_some_and(|cause| {
                                    matches!(self.causes.get(cause), crate::Cause::Count { .. })
                                })
                        })
                    })
                    .collect();
                wanted.sort_unstable();
                wanted.dedup();
                for sku in wanted {
                    *queued_demand.entry(sku).or_default() += 1;
                }
            }
        }
        // Groups with add-ons.
        for (group_ref, group) in self.directory.groups() {
            for license in &group.licenses {
                let group_plans = group.licenses.iter().fold(PlanSet::EMPTY, |plans, license| {
                    plans.union(&self.enabled_plans(license.sku, license.disabled_plans))
                });
                let add_ons = self
                    .enabled_plans(license.sku, license.disabled_plans)
                    .intersection(self.catalog.plans_with_prerequisites());
                for add_on in add_ons.iter() {
                    let requires = self.plan(add_on).requires_any_of;
                    let in_group = requires.intersection(&group_plans);
                    let prerequisite_skus: Vec<SkuRef> = group
                        .licenses
                        .iter()
                        .filter(|candidate| {
                            self.enabled_plans(candidate.sku, candidate.disabled_plans)
                                .intersects(&in_group)
                        })
                        .map(|candidate| candidate.sku)
                        .collect();
                    let mut without_own = 0usize;
                    let mut at_risk = 0usize;
                    for member in &group.members {
                        let member_states = self.states.of(*member);
                        let own = member_states
                            .iter()
                            .filter(|state| state.source != Source::Group(group_ref) && state.holds_unit())
                            .filter_map(|state| state.granted_plans)
                            .any(|plans| self.plan_sets.get(plans).intersects(&requires));
                        if own {
                            continue;
                        }
                        without_own += 1;
                        let in_error = self.states.group_error_users(group_ref).contains(member);
                        let needs_scarce_seat = prerequisite_skus.iter().any(|sku| {
                            !member_states
                                .iter()
                                .any(|state| state.sku == *sku && state.holds_unit())
                                && self.states.consumed_units(*sku) >= self.sku(*sku).prepaid_units
                        });
                        if in_error || needs_scarce_seat {
                            at_risk += 1;
                        }
                    }
                    if at_risk > 0 {
                        report.add_on_risks.push(AddOnRisk {
                            group_id: group.id,
                            display_name: group.display_name.clone(),
                            add_on_plan: self.plan_name(add_on),
                            add_on_sku_id: self.sku(license.sku).id,
                            prerequisite_plans: self.plan_names(&in_group),
                            members_without_own_prerequisite: without_own,
                            members_at_risk: at_risk,
                            reason: format!(
                                "{} of the {} members who have no {} from elsewhere do not get {}: the group's \
                                 assignment is in error for them, or it needs a seat of {} and none is free.",
                                at_risk,
                                without_own,
                                self.plan_names(&requires)
                                    .iter()
                                    .map(|plan| plan.display_name.clone())
                                    .collect::<Vec<_>>()
                                    .join(" or "),
                                self.plan(add_on).display_name,
                                prerequisite_skus
                                    .iter()
                                    .map(|sku| self.sku(*sku).part_number.clone())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        });
                    }
                }
            }
        }
        // Products near exhaustion: free seats below the known demand plus a tenth of the seats.
        for (sku_ref, sku) in self.catalog.skus() {
            let consumed_units = self.states.consumed_units(sku_ref);
            let waiting_users = self.states.waiting(sku_ref).len();
            let available = sku.prepaid_units.saturating_sub(consumed_units);
            let queued = queued_demand.get(&sku_ref).copied().unwrap_or(0);
            let demand = waiting_users + queued;
            if demand == 0 {
                continue;
            }
            let headroom = (sku.prepaid_units / 10) as usize;
            if (available as usize) < demand + headroom {
                report.products_near_exhaustion.push(ProductExhaustion {
                    sku_id: sku.id,
                    sku_part_number: sku.part_number.clone(),
                    prepaid_units: sku.prepaid_units,
                    consumed_units,
                    available_units: available,
                    waiting_users,
                    queued_demand: queued,
                    shortfall: (demand as u64).saturating_sub(available as u64) as u32,
                });
            }
        }
        let mut reclaimable: Vec<(Uuid, String, u32)> = reclaimable
            .into_iter()
            .map(|(sku, seats)| (self.sku(sku).id, self.sku(sku).part_number.clone(), seats))
            .collect();
        reclaimable.sort();
        report.reclaimable_seats = reclaimable;
        report
    }
}
