//! `ImageBuilder`: turns the rows of a tenant, read by either backend in the order of its
//! tables, back into the engine's `TenantImage`, so both backends decode exactly alike.

use licensd_engine::image::{
    DirectLicenseImage, GroupImage, MembershipImage, ServicePlanImage, StateImage, TenantImage, UserImage,
};
use licensd_engine::{
    AssignedLicense, ServicePlanDefinition, SkuDefinition, TenantSettings, Timestamp, Uuid,
};
use rustc_hash::FxHashMap;

use crate::codec::{decode_cause, group_of_source, parse_status, PlanDecoder};
use crate::error::StoreError;

/// One stored license assignment state as read from a row, before decoding.
pub(crate) struct StateRow<'a> {
    pub(crate) user_id: Uuid,
    pub(crate) sku_id: Uuid,
    pub(crate) source: Uuid,
    pub(crate) status: &'a str,
    pub(crate) cause: Option<&'a [u8]>,
    pub(crate) disabled_plans: &'a [u8],
    pub(crate) granted_plans: Option<&'a [u8]>,
    pub(crate) since: i64,
    pub(crate) last_updated: i64,
}

/// Collects a tenant's rows table by table: plans (by position), products (by position) and
/// their plans (by product, position), groups (by position) and their licenses, users (by
/// position), then their direct licenses and memberships (by user, position), states and the
/// queue (by position).
#[derive(Default)]
pub(crate) struct ImageBuilder {
    service_plans: Vec<ServicePlanImage>,
    plan_rows: Vec<(u32, u32, Uuid)>,
    plan_definitions: FxHashMap<Uuid, ServicePlanDefinition>,
    decoder: PlanDecoder,
    skus: Vec<SkuDefinition>,
    sku_index: FxHashMap<Uuid, usize>,
    groups: Vec<GroupImage>,
    group_index: FxHashMap<Uuid, usize>,
    users: Vec<UserImage>,
    user_index: FxHashMap<Uuid, usize>,
    /// The user of the previous row: rows come grouped by user, so most lookups hit it.
    last_user: Option<(Uuid, usize)>,
    queue: Vec<Uuid>,
}

impl ImageBuilder {
    pub(crate) fn add_service_plan(&mut self, number: u32, position: u32, plan: ServicePlanImage) {
        let id = plan.definition.service_plan_id;
        self.plan_rows.push((number, position, id));
        self.plan_definitions.insert(id, plan.definition.clone());
        self.service_plans.push(plan);
    }

    /// Call after the last plan, before any state.
    pub(crate) fn finish_service_plans(&mut self) {
        self.decoder = PlanDecoder::new(&self.plan_rows);
    }

    /// Adds a product whose `service_plans` are filled by [`ImageBuilder::add_sku_plan`].
    pub(crate) fn add_sku(&mut self, sku: SkuDefinition) {
        self.sku_index.insert(sku.sku_id, self.skus.len());
        self.skus.push(sku);
    }

    pub(crate) fn add_sku_plan(&mut self, sku_id: Uuid, plan_id: Uuid) -> Result<(), StoreError> {
        let index = *self.sku_index.get(&sku_id).ok_or_else(|| {
            StoreError::corrupt(format!(
                "a plan of product {sku_id} is stored without the product"
            ))
        })?;
        let definition = self.plan_definitions.get(&plan_id).cloned().ok_or_else(|| {
            StoreError::corrupt(format!(
                "product {sku_id} lists plan {plan_id}, which is not stored"
            ))
        })?;
        self.skus[index].service_plans.push(definition);
        Ok(())
    }

    /// Adds a group whose `licenses` are filled by [`ImageBuilder::add_group_license`].
    pub(crate) fn add_group(&mut self, group: GroupImage) {
        self.group_index.insert(group.id, self.groups.len());
        self.groups.push(group);
    }

    pub(crate) fn add_group_license(
        &mut self,
        group_id: Uuid,
        license: AssignedLicense,
    ) -> Result<(), StoreError> {
        let index = *self.group_index.get(&group_id).ok_or_else(|| {
            StoreError::corrupt(format!(
                "a license of group {group_id} is stored without the group"
            ))
        })?;
        self.groups[index].licenses.push(license);
        Ok(())
    }

    /// Adds a user without direct licenses, memberships or states.
    pub(crate) fn add_user(&mut self, user: UserImage) {
        self.user_index.insert(user.id, self.users.len());
        self.users.push(user);
    }

    pub(crate) fn reserve_users(&mut self, count: usize) {
        self.users.reserve(count);
        self.user_index.reserve(count);
    }

    fn user_mut(&mut self, user_id: Uuid, what: &str) -> Result<&mut UserImage, StoreError> {
        let index = match self.last_user {
            Some((last_id, index)) if last_id == user_id => index,
            _ => {
                let index = *self.user_index.get(&user_id).ok_or_else(|| {
                    StoreError::corrupt(format!("{what} of user {user_id} is stored without the user"))
                })?;
                self.last_user = Some((user_id, index));
                index
            }
        };
        Ok(&mut self.users[index])
    }

    pub(crate) fn add_direct_license(
        &mut self,
        user_id: Uuid,
        license: DirectLicenseImage,
    ) -> Result<(), StoreError> {
        self.user_mut(user_id, "a direct license")?
            .direct_licenses
            .push(license);
        Ok(())
    }

    pub(crate) fn add_membership(
        &mut self,
        user_id: Uuid,
        membership: MembershipImage,
    ) -> Result<(), StoreError> {
        self.user_mut(user_id, "a membership")?
            .memberships
            .push(membership);
        Ok(())
    }

    pub(crate) fn add_state(&mut self, row: StateRow<'_>) -> Result<(), StoreError> {
        let state = StateImage {
            sku_id: row.sku_id,
            assigned_by_group: group_of_source(row.source),
            status: parse_status(row.status)?,
            cause: row.cause.map(decode_cause).transpose()?,
            disabled_plans: self.decoder.decode(row.disabled_plans)?,
            granted_plans: row
                .granted_plans
                .map(|granted| self.decoder.decode(granted))
                .transpose()?,
            since: logical_time(row.since, "the since of a license assignment state")?,
            last_updated: Timestamp(row.last_updated),
        };
        self.user_mut(row.user_id, "a license assignment state")?
            .states
            .push(state);
        Ok(())
    }

    pub(crate) fn add_queued(&mut self, user_id: Uuid) {
        self.queue.push(user_id);
    }

    pub(crate) fn finish(self, settings: TenantSettings, clock: u64) -> TenantImage {
        TenantImage {
            settings,
            clock,
            service_plans: self.service_plans,
            skus: self.skus,
            groups: self.groups,
            users: self.users,
            queue: self.queue,
        }
    }
}

/// A stored logical time (`since`, `clock`, versions) back as the engine's unsigned value.
pub(crate) fn logical_time(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::corrupt(format!("{what} is negative ({value})")))
}

/// An engine logical time as a signed 64-bit column value.
pub(crate) fn logical_time_column(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::corrupt(format!("{what} {value} does not fit in 63 bits")))
}
