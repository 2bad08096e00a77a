//! The tenant's catalog: the products (SKUs) it subscribes to, the service plans they contain
//! and the plans' rules, with the sets derived from the rules that evaluation reads (plans
//! unavailable per location, mailbox plans, plans with exclusions or prerequisites). Not to be
//! confused with [`crate::catalog`], Microsoft's published product table bundled with the crate.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::error::{CommandError, PlanName};
use crate::handles::SkuRef;
use crate::model::{
    AppliesTo, CapabilityStatus, CountryCode, ServicePlanDefinition, ServicePlanRules, SkuDefinition, Uuid,
};
use crate::plan_set::{PlanRef, PlanSet, MAX_SERVICE_PLANS};

#[derive(Clone, Debug)]
pub(crate) struct ServicePlan {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) display_name: String,
    pub(crate) rules: ServicePlanRules,
    pub(crate) excludes: PlanSet,
    pub(crate) requires_any_of: PlanSet,
}

#[derive(Clone, Debug)]
pub(crate) struct Sku {
    pub(crate) id: Uuid,
    pub(crate) part_number: String,
    pub(crate) display_name: String,
    pub(crate) applies_to: AppliesTo,
    /// Plans in catalog order.
    pub(crate) plan_order: Vec<PlanRef>,
    pub(crate) plans: PlanSet,
    pub(crate) prepaid_units: u32,
    pub(crate) capability_status: CapabilityStatus,
}

/// Products, service plans and rules of one tenant. Handed out read-only; changed only through
/// its methods, which keep the id indexes, the symmetric exclusions and the derived rule sets
/// in step.
#[derive(Clone, Debug, Default)]
pub(crate) struct TenantCatalog {
    plans: Vec<ServicePlan>,
    plan_index: FxHashMap<Uuid, PlanRef>,
    skus: Vec<Sku>,
    sku_index: FxHashMap<Uuid, SkuRef>,
    /// Derived from the rules: plans unavailable per location.
    prohibited_by_location: FxHashMap<CountryCode, PlanSet>,
    /// Derived from the rules: mailbox plans.
    mailbox_plans: PlanSet,
    /// Derived from the rules: plans with at least one exclusion / prerequisite.
    plans_with_exclusions: PlanSet,
    plans_with_prerequisites: PlanSet,
}

impl TenantCatalog {
    // ----- lookups -------------------------------------------------------------------------

    pub(crate) fn find_sku(&self, sku_id: Uuid) -> Option<SkuRef> {
        self.sku_index.get(&sku_id).copied()
    }

    pub(crate) fn find_plan(&self, service_plan_id: Uuid) -> Option<PlanRef> {
        self.plan_index.get(&service_plan_id).copied()
    }

    pub(crate) fn sku_ref(&self, sku_id: Uuid) -> Result<SkuRef, CommandError> {
        self.find_sku(sku_id).ok_or(CommandError::UnknownSku { sku_id })
    }

    pub(crate) fn plan_ref(&self, service_plan_id: Uuid) -> Result<PlanRef, CommandError> {
        self.find_plan(service_plan_id)
            .ok_or(CommandError::UnknownServicePlan { service_plan_id })
    }

    pub(crate) fn sku(&self, sku: SkuRef) -> &Sku {
        &self.skus[sku.0 as usize]
    }

    pub(crate) fn plan(&self, plan: PlanRef) -> &ServicePlan {
        &self.plans[plan.0 as usize]
    }

    /// Every product with its handle, in subscription order.
    pub(crate) fn skus(&self) -> impl ExactSizeIterator<Item = (SkuRef, &Sku)> + '_ {
        self.skus
            .iter()
            .enumerate()
            .map(|(index, sku)| (SkuRef(index as u16), sku))
    }

    pub(crate) fn sku_count(&self) -> usize {
        self.skus.len()
    }

    /// Every service plan, in registration order.
    pub(crate) fn plans(&self) -> &[ServicePlan] {
        &self.plans
    }

    pub(crate) fn plan_name(&self, plan: PlanRef) -> PlanName {
        let plan = self.plan(plan);
        PlanName {
            service_plan_id: plan.id,
            service_plan_name: plan.name.clone(),
            display_name: plan.display_name.clone(),
        }
    }

    pub(crate) fn plan_names(&self, plans: &PlanSet) -> Vec<PlanName> {
        plans.iter().map(|plan| self.plan_name(plan)).collect()
    }

    /// Mailbox plans (they need a unique proxy address).
    pub(crate) fn mailbox_plans(&self) -> &PlanSet {
        &self.mailbox_plans
    }

    pub(crate) fn plans_with_exclusions(&self) -> &PlanSet {
        &self.plans_with_exclusions
    }

    pub(crate) fn plans_with_prerequisites(&self) -> &PlanSet {
        &self.plans_with_prerequisites
    }

    /// The plans unavailable in a location, if any are.
    pub(crate) fn prohibited_in(&self, location: CountryCode) -> Option<&PlanSet> {
        self.prohibited_by_location.get(&location)
    }

    /// The plans of `disabled_plans`, each of which must be a plan of the product.
    pub(crate) fn disabled_plan_set(
        &self,
        sku: SkuRef,
        disabled_plans: &[Uuid],
    ) -> Result<PlanSet, CommandError> {
        let definition = self.sku(sku);
        let mut set = PlanSet::EMPTY;
        for service_plan_id in disabled_plans {
            let plan = self
                .find_plan(*service_plan_id)
                .filter(|plan| definition.plans.contains(*plan))
                .ok_or_else(|| CommandError::DisabledPlanNotInSku {
                    sku_id: definition.id,
                    sku_part_number: definition.part_number.clone(),
                    service_plan_id: *service_plan_id,
                })?;
            set.insert(plan);
        }
        Ok(set)
    }

    // ----- changes -------------------------------------------------------------------------

    /// Registers the plans of `definitions` not known yet; refs in the order given. Nothing is
    /// registered when the tenant would have too many plans.
    fn register_plans(
        &mut self,
        definitions: &[ServicePlanDefinition],
    ) -> Result<Vec<PlanRef>, CommandError> {
        let new_plans: FxHashSet<Uuid> = definitions
            .iter()
            .map(|definition| definition.service_plan_id)
            .filter(|id| !self.plan_index.contains_key(id))
            .collect();
        if self.plans.len() + new_plans.len() > MAX_SERVICE_PLANS {
            return Err(CommandError::TooManyServicePlans {
                limit: MAX_SERVICE_PLANS,
            });
        }
        let mut refs = Vec::with_capacity(definitions.len());
        for definition in definitions {
            let plan = match self.plan_index.get(&definition.service_plan_id) {
                Some(plan) => *plan,
                None => self.push_plan(definition, ServicePlanRules::default()),
            };
            refs.push(plan);
        }
        Ok(refs)
    }

    fn push_plan(&mut self, definition: &ServicePlanDefinition, rules: ServicePlanRules) -> PlanRef {
        let plan = PlanRef(self.plans.len() as u16);
        self.plans.push(ServicePlan {
            id: definition.service_plan_id,
            name: definition.service_plan_name.clone(),
            display_name: definition.display_name.clone(),
            rules,
            excludes: PlanSet::EMPTY,
            requires_any_of: PlanSet::EMPTY,
        });
        self.plan_index.insert(definition.service_plan_id, plan);
        plan
    }

    fn push_sku(&mut self, definition: SkuDefinition, plan_order: Vec<PlanRef>) -> SkuRef {
        let sku = SkuRef(self.skus.len() as u16);
        self.sku_index.insert(definition.sku_id, sku);
        self.skus.push(Sku {
            id: definition.sku_id,
            part_number: definition.sku_part_number,
            display_name: definition.display_name,
            applies_to: definition.applies_to,
            plans: PlanSet::from_plans(plan_order.iter().copied()),
            plan_order,
            prepaid_units: definition.prepaid_units,
            capability_status: definition.capability_status,
        });
        sku
    }

    /// Validates and adds a product, registering its plans.
    pub(crate) fn add_sku(&mut self, definition: SkuDefinition) -> Result<SkuRef, CommandError> {
        if self.sku_index.contains_key(&definition.sku_id) {
            return Err(CommandError::DuplicateSkuId {
                sku_id: definition.sku_id,
            });
        }
        if definition.sku_part_number.trim().is_empty() {
            return Err(CommandError::InvalidValue {
                field: "skuPartNumber",
                reason: "must not be empty".to_string(),
            });
        }
        if self.skus.len() >= u16::MAX as usize {
            return Err(CommandError::InvalidValue {
                field: "skuId",
                reason: "a tenant can subscribe to at most 65535 products".to_string(),
            });
        }
        let mut seen = FxHashSet::default();
        for plan in &definition.service_plans {
            if !seen.insert(plan.service_plan_id) {
                return Err(CommandError::DuplicateServicePlanInSku {
                    sku_part_number: definition.sku_part_number.clone(),
                    service_plan_id: plan.service_plan_id,
                });
            }
        }
        let plan_order = self.register_plans(&definition.service_plans)?;
        Ok(self.push_sku(definition, plan_order))
    }

    /// Validates and adds a service plan to a product, registering the plan if it is new.
    pub(crate) fn add_service_plan_to_sku(
        &mut self,
        sku_id: Uuid,
        service_plan: ServicePlanDefinition,
    ) -> Result<SkuRef, CommandError> {
        let sku = self.sku_ref(sku_id)?;
        if let Some(plan) = self.find_plan(service_plan.service_plan_id) {
            if self.sku(sku).plans.contains(plan) {
                return Err(CommandError::DuplicateServicePlanInSku {
                    sku_part_number: self.sku(sku).part_number.clone(),
                    service_plan_id: service_plan.service_plan_id,
                });
            }
        }
        let plan = self.register_plans(std::slice::from_ref(&service_plan))?[0];
        let definition = &mut self.skus[sku.0 as usize];
        definition.plans.insert(plan);
        definition.plan_order.push(plan);
        Ok(sku)
    }

    pub(crate) fn set_prepaid_units(&mut self, sku: SkuRef, prepaid_units: u32) {
        self.skus[sku.0 as usize].prepaid_units = prepaid_units;
    }

    /// Sets a product's display name, seats and status as stored (catching up on another
    /// instance's writes).
    pub(crate) fn restore_sku_fields(&mut self, sku: SkuRef, definition: &SkuDefinition) {
        let record = &mut self.skus[sku.0 as usize];
        record.display_name = definition.display_name.clone();
        record.prepaid_units = definition.prepaid_units;
        record.capability_status = definition.capability_status;
    }

    pub(crate) fn set_capability_status(&mut self, sku: SkuRef, capability_status: CapabilityStatus) {
        self.skus[sku.0 as usize].capability_status = capability_status;
    }

    /// Validates and sets a plan's rules (exclusions made symmetric, lists normalized). Returns
    /// the products whose plans the change affects: those with the plan, its old or new
    /// partners or prerequisites.
    pub(crate) fn set_service_plan_rules(
        &mut self,
        service_plan_id: Uuid,
        rules: ServicePlanRules,
    ) -> Result<Vec<SkuRef>, CommandError> {
        let plan = self.plan_ref(service_plan_id)?;
        let mut excludes = PlanSet::EMPTY;
        for partner in &rules.mutually_exclusive_with {
            let partner = self.plan_ref(*partner)?;
            if partner == plan {
                return Err(CommandError::InvalidPlanRule {
                    plan: self.plan_name(plan),
                    reason: "a plan cannot be mutually exclusive with itself".to_string(),
                });
            }
            excludes.insert(partner);
        }
        let mut requires = PlanSet::EMPTY;
        for required in &rules.requires_any_of {
            let required = self.plan_ref(*required)?;
            if required == plan {
                return Err(CommandError::InvalidPlanRule {
                    plan: self.plan_name(plan),
                    reason: "a plan cannot be its own prerequisite".to_string(),
                });
            }
            requires.insert(required);
        }
        if excludes.intersects(&requires) {
            return Err(CommandError::InvalidPlanRule {
                plan: self.plan_name(plan),
                reason: "a plan cannot require a plan it is mutually exclusive with".to_string(),
            });
        }
        let old = self.plans[plan.0 as usize].clone();
        // Exclusions are symmetric: drop this plan from its old partners, add it to the new ones.
        for partner in old.excludes.iter() {
            self.plans[partner.0 as usize].excludes.remove(plan);
            self.plans[partner.0 as usize]
                .rules
                .mutually_exclusive_with
                .retain(|id| *id != service_plan_id);
        }
        for partner in excludes.iter() {
            let partner_plan = &mut self.plans[partner.0 as usize];
            partner_plan.excludes.insert(plan);
            if !partner_plan
                .rules
                .mutually_exclusive_with
                .contains(&service_plan_id)
            {
                partner_plan.rules.mutually_exclusive_with.push(service_plan_id);
            }
        }
        let mut normalized = rules;
        normalized.mutually_exclusive_with = excludes.iter().map(|p| self.plans[p.0 as usize].id).collect();
        normalized.requires_any_of = requires.iter().map(|p| self.plans[p.0 as usize].id).collect();
        normalized.unavailable_in.sort();
        normalized.unavailable_in.dedup();
        let entry = &mut self.plans[plan.0 as usize];
        entry.excludes = excludes;
        entry.requires_any_of = requires;
        entry.rules = normalized;
        self.rebuild_derived_rules();

        let mut affected_plans = old
            .excludes
            .union(&excludes)
            .union(&old.requires_any_of)
            .union(&requires);
        affected_plans.insert(plan);
        Ok(self
            .skus()
            .filter(|(_, sku)| sku.plans.intersects(&affected_plans))
            .map(|(sku, _)| sku)
            .collect())
    }

    fn rebuild_derived_rules(&mut self) {
        self.prohibited_by_location.clear();
        self.mailbox_plans = PlanSet::EMPTY;
        self.plans_with_exclusions = PlanSet::EMPTY;
        self.plans_with_prerequisites = PlanSet::EMPTY;
        for (index, plan) in self.plans.iter().enumerate() {
            let plan_ref = PlanRef(index as u16);
            for location in &plan.rules.unavailable_in {
                self.prohibited_by_location
                    .entry(*location)
                    .or_default()
                    .insert(plan_ref);
            }
            if plan.rules.needs_unique_proxy_address {
                self.mailbox_plans.insert(plan_ref);
            }
            if !plan.excludes.is_empty() {
                self.plans_with_exclusions.insert(plan_ref);
            }
            if !plan.requires_any_of.is_empty() {
                self.plans_with_prerequisites.insert(plan_ref);
            }
        }
    }

    // ----- restoring from an image ---------------------------------------------------------

    /// Adds a plan of an image with its rules as stored; `false` when the plan is known already.
    /// The rules take effect with [`TenantCatalog::link_restored_rules`].
    pub(crate) fn restore_plan(
        &mut self,
        definition: &ServicePlanDefinition,
        rules: ServicePlanRules,
    ) -> bool {
        if self.plan_index.contains_key(&definition.service_plan_id) {
            return false;
        }
        self.push_plan(definition, rules);
        true
    }

    /// Resolves the restored plans' rules into exclusions (made symmetric even if an image
    /// lists only one side) and prerequisites, and derives the rule sets. On error, the unknown
    /// plan id and the id of the plan whose rules name it.
    pub(crate) fn link_restored_rules(&mut self) -> Result<(), (Uuid, Uuid)> {
        for index in 0..self.plans.len() {
            let rules = self.plans[index].rules.clone();
            let referencing = self.plans[index].id;
            let resolve = |ids: &[Uuid]| -> Result<PlanSet, (Uuid, Uuid)> {
                let mut set = PlanSet::EMPTY;
                for id in ids {
                    set.insert(self.find_plan(*id).ok_or((*id, referencing))?);
                }
                Ok(set)
            };
            let excludes = resolve(&rules.mutually_exclusive_with)?;
            let requires = resolve(&rules.requires_any_of)?;
            self.plans[index].excludes.union_with(&excludes);
            self.plans[index].requires_any_of = requires;
            for partner in excludes.iter() {
                self.plans[partner.0 as usize]
                    .excludes
                    .insert(PlanRef(index as u16));
            }
        }
        self.rebuild_derived_rules();
        Ok(())
    }

    /// Adds a product of an image whose plans are resolved already; `None` when the product is
    /// known already.
    pub(crate) fn restore_sku(
        &mut self,
        definition: SkuDefinition,
        plan_order: Vec<PlanRef>,
    ) -> Option<SkuRef> {
        if self.sku_index.contains_key(&definition.sku_id) {
            return None;
        }
        Some(self.push_sku(definition, plan_order))
    }
}
