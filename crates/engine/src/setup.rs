//! Building a tenant from the bundled catalog: product definitions for subscriptions and the
//! default plan rules (the exclusion table, the seed's add-on prerequisite), expressed as
//! ordinary [`Command`]s so they go through the same validation as everything else.

use rustc_hash::FxHashMap;

use crate::catalog::{Catalog, CatalogProduct};
use crate::command::Command;
use crate::model::{
    AppliesTo, CapabilityStatus, ServicePlanDefinition, ServicePlanRules, SkuDefinition, Uuid,
};
use crate::Engine;

impl CatalogProduct {
    /// A subscription to this product with `prepaid_units` purchased seats.
    pub fn to_sku_definition(&self, prepaid_units: u32) -> SkuDefinition {
        SkuDefinition {
            sku_id: self.sku_id,
            sku_part_number: self.sku_part_number.clone(),
            display_name: self.display_name.clone(),
            applies_to: AppliesTo::User,
            service_plans: self
                .service_plans
                .iter()
                .map(|plan| ServicePlanDefinition {
                    service_plan_id: plan.service_plan_id,
                    service_plan_name: plan.service_plan_name.clone(),
                    display_name: plan.display_name.clone(),
                })
                .collect(),
            prepaid_units,
            capability_status: CapabilityStatus::Enabled,
        }
    }
}

impl Engine {
    /// Whether the tenant knows a service plan (through one of its products).
    pub fn knows_service_plan(&self, service_plan_id: Uuid) -> bool {
        self.catalog.find_plan(service_plan_id).is_some()
    }
}

/// The commands that give the tenant's known plans the catalog's default rules: mutually
/// exclusive pairs among known plans and the known prerequisites. Plans keep the rules they
/// have for everything else (usage locations, mailbox flag).
pub fn default_rule_commands(catalog: &Catalog, engine: &Engine) -> Vec<Command> {
    let mut rules: FxHashMap<Uuid, ServicePlanRules> = FxHashMap::default();
    let mut order: Vec<Uuid> = Vec::new();
    let mut entry = |plan: Uuid, rules: &mut FxHashMap<Uuid, ServicePlanRules>| {
        if let std::collections::hash_map::Entry::Vacant(vacant) = rules.entry(plan) {
            order.push(plan);
            vacant.insert(engine.service_plan_rules(plan).unwrap_or_default());
        }
    };
    for (a, b) in catalog.default_mutually_exclusive_pairs() {
        if engine.knows_service_plan(a) && engine.knows_service_plan(b) {
            entry(a, &mut rules);
            entry(b, &mut rules);
            for (plan, partner) in [(a, b), (b, a)] {
                if let Some(plan_rules) = rules.get_mut(&plan) {
                    if !plan_rules.mutually_exclusive_with.contains(&partner) {
                        plan_rules.mutually_exclusive_with.push(partner);
                    }
                }
            }
        }
    }
    for (plan, prerequisites) in catalog.default_prerequisites() {
        let known: Vec<Uuid> = prerequisites
            .into_iter()
            .filter(|prerequisite| engine.knows_service_plan(*prerequisite))
            .collect();
        if engine.knows_service_plan(plan) && !known.is_empty() {
            entry(plan, &mut rules);
            if let Some(plan_rules) = rules.get_mut(&plan) {
                for prerequisite in known {
                    if !plan_rules.requires_any_of.contains(&prerequisite) {
                        plan_rules.requires_any_of.push(prerequisite);
                    }
                }
            }
        }
    }
    order
        .into_iter()
        .filter_map(|plan| {
            rules.remove(&plan).map(|rules| Command::SetServicePlanRules {
                service_plan_id: plan,
                rules,
            })
        })
        .collect()
}
