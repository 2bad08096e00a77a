//! The engine: a tenant's licensing world in memory, changed only through [`Command`]s. It
//! composes the parts that own the data — the [`Directory`] (users, groups, memberships, proxy
//! addresses, directory attributes), the [`TenantCatalog`] (products, service plans, rules),
//! the [`WorkQueue`] (users to evaluate again, per-group processing counters) and the
//! [`States`] (license assignment states and their indexes) — and holds what ties them
//! together: the commands' validation and effects, the queueing rules, the processing loop that
//! runs [`evaluate`] to a fixpoint, and the logical clock.

use rustc_hash::FxHashSet;

use crate::command::Command;
use crate::directory::{DirectLicense, Directory, GroupLicense, User};
use crate::error::CommandError;
use crate::evaluate::{evaluate, Interners, Reads, Scratch};
use crate::handles::{GroupRef, SkuRef, Source, UserRef};
use crate::model::{AppliesTo, AssignedLicense, AssignmentStatus, TenantSettings, Timestamp, Uuid};
use crate::outcome::{ChangedImages, CommandOutcome, ProcessReport, Touched, UserEdit};
use crate::plan_set::{PlanSet, PlanSetId, PlanSetInterner};
use crate::queue::WorkQueue;
use crate::self_healing::{HealingLog, RequeueReason};
use crate::states::{sort_records, state_delta, CauseInterner, StateChange, StateRecord, States};
use crate::tenant_catalog::TenantCatalog;

/// An assignLicense request resolved to products: (product, disabled plans) to add, products to remove.
type ResolvedLicenseRequest = (Vec<(SkuRef, PlanSet)>, Vec<SkuRef>);

/// A tenant's licensing engine. See the crate documentation for the evaluation rules.
#[derive(Clone, Debug)]
pub struct Engine {
    pub(crate) settings: TenantSettings,
    pub(crate) directory: Directory,
    pub(crate) catalog: TenantCatalog,
    pub(crate) queue: WorkQueue,
    pub(crate) states: States,
    /// Plan sets of licenses (disabled plans) and states (granted plans), each stored once.
    pub(crate) plan_sets: PlanSetInterner,
    /// Error causes of states, each stored once.
    pub(crate) causes: CauseInterner,
    /// Why users were re-queued by self-healing ([`crate::self_healing`]).
    pub(crate) healing: HealingLog,
    /// Logical clock: advanced by every accepted command and every evaluation.
    pub(crate) clock: u64,
    /// Dynamic membership groups' rules ([`crate::dynamic_groups`]).
    pub(crate) dynamic: crate::dynamic_groups::DynamicGroups,
    scratch: Scratch,
}

/// The entities a command will change if it is accepted.
fn touched_by(command: &Command) -> Touched {
    let mut touched = Touched::default();
    match command {
        Command::SetDefaultUsageLocation { .. }
        | Command::SetSelfHealing { .. }
        | Command::SetTransitiveLicensing { .. } => touched.settings = true,
        Command::AddGroupMemberGroup {
            group_id,
            member_group_id,
        }
        | Command::RemoveGroupMemberGroup {
            group_id,
            member_group_id,
        } => touched.group_nestings.push((*group_id, *member_group_id)),
        Command::AddSku(definition) => {
            touched.skus.push(definition.sku_id);
            touched.service_plans = true;
        }
        Command::AddServicePlanToSku { sku_id, .. } => {
            touched.skus.push(*sku_id);
            touched.service_plans = true;
        }
        Command::SetPrepaidUnits { sku_id, .. } | Command::SetCapabilityStatus { sku_id, .. } => {
            touched.skus.push(*sku_id)
        }
        Command::SetServicePlanRules { .. } => touched.service_plans = true,
        Command::CreateUser(new_user) => touched.users.push(new_user.id),
        Command::UpdateUser { user_id, .. } => {
            touched.users.push(*user_id);
            touched.user_edits.push((*user_id, UserEdit::Properties));
        }
        Command::AddGroupMember { group_id, user_id } => {
            touched.users.push(*user_id);
            touched
                .user_edits
                .push((*user_id, UserEdit::MembershipAdded { group_id: *group_id }));
        }
        Command::RemoveGroupMember { group_id, user_id } => {
            touched.users.push(*user_id);
            touched
                .user_edits
                .push((*user_id, UserEdit::MembershipRemoved { group_id: *group_id }));
        }
        Command::AssignUserLicenses {
            user_id,
            add_licenses,
            remove_licenses,
        } => {
            touched.users.push(*user_id);
            touched.user_edits.push((
                *user_id,
                UserEdit::DirectLicenses {
                    removed: remove_licenses.clone(),
                    set: add_licenses.iter().map(|license| license.sku_id).collect(),
                },
            ));
        }
        Command::DeleteUser { user_id } => touched.deleted_users.push(*user_id),
        Command::CreateGroup { group_id, .. }
        | Command::UpdateGroup { group_id, .. }
        | Command::AssignGroupLicenses { group_id, .. } => touched.groups.push(*group_id),
        Command::DeleteGroup { group_id } => touched.deleted_groups.push(*group_id),
        Command::ReprocessUser { .. } | Command::ReprocessGroup { .. } => {}
        Command::SetDirectoryAttributes { object_id, .. } => touched.directory_attributes.push(*object_id),
        Command::SetMembershipRule { group_id, .. } => touched.groups.push(*group_id),
    }
    touched
}

impl Engine {
    pub fn new(settings: TenantSettings) -> Engine {
        Engine {
            settings,
            directory: Directory::default(),
            catalog: TenantCatalog::default(),
            queue: WorkQueue::default(),
            states: States::default(),
            plan_sets: PlanSetInterner::default(),
            causes: CauseInterner::default(),
            healing: HealingLog::default(),
            clock: 0,
            dynamic: Default::default(),
            scratch: Scratch::default(),
        }
    }

    pub fn settings(&self) -> &TenantSettings {
        &self.settings
    }

    /// Applies one command: validates it completely, then changes the tenant, applies what is
    /// synchronous (direct assignments, deletions) and queues the users whose licenses it affects.
    /// On error nothing has changed. The outcome carries the touched entities as images, ready
    /// to persist.
    pub fn apply(&mut self, command: Command, at: Timestamp) -> Result<CommandOutcome, CommandError> {
        let mut outcome = self.apply_without_images(command, at)?;
        *outcome.images = self.changed_images(&outcome.touched, &outcome.changes);
        Ok(outcome)
    }

    /// As [`Engine::apply`], but the outcome's `images` stay empty: for callers that do not
    /// persist the command on its own — a tenant built in bulk and stored whole from
    /// [`Engine::to_image`] (import, generator), a what-if copy. Building the images of every
    /// command would cost such a build about a tenth of its time.
    pub fn apply_without_images(
        &mut self,
        command: Command,
        at: Timestamp,
    ) -> Result<CommandOutcome, CommandError> {
        self.queue.clear_newly_queued();
        let mut touched = touched_by(&command);
        let mut changes = Vec::new();
        match command {
            Command::SetDefaultUsageLocation { usage_location } => {
                self.tick();
                self.settings.default_usage_location = usage_location;
                self.enqueue_users_where(|user| user.usage_location.is_none());
            }
            Command::SetSelfHealing { enabled } => {
                self.tick();
                self.settings.self_healing = enabled;
            }
            Command::AddSku(definition) => {
                self.catalog.add_sku(definition)?;
                self.tick();
                self.states.add_sku();
            }
            Command::AddServicePlanToSku { sku_id, service_plan } => {
                let sku = self.catalog.add_service_plan_to_sku(sku_id, service_plan)?;
                self.tick();
                self.enqueue_users_with_skus(&[sku]);
                // Groups whose members are not evaluated yet have no state records: queue them too.
                for group in self.directory.groups_with_sku(sku) {
                    self.enqueue_group_users(group);
                }
            }
            Command::SetPrepaidUnits {
                sku_id,
                prepaid_units,
            } => {
                let sku = self.catalog.sku_ref(sku_id)?;
                self.tick();
                self.catalog.set_prepaid_units(sku, prepaid_units);
            }
            Command::SetCapabilityStatus {
                sku_id,
                capability_status,
            } => {
                let sku = self.catalog.sku_ref(sku_id)?;
                self.tick();
                self.catalog.set_capability_status(sku, capability_status);
                self.enqueue_users_with_skus(&[sku]);
            }
            Command::SetServicePlanRules {
                service_plan_id,
                rules,
            } => {
                let affected = self.catalog.set_service_plan_rules(service_plan_id, rules)?;
                self.tick();
                self.enqueue_users_with_skus(&affected);
            }
            Command::CreateUser(new_user) => {
                self.directory.check_new_user(&new_user)?;
                self.tick();
                let attributes = self.directory.intern_user_attributes(&new_user.attributes);
                let user = self.add_user(User {
                    id: new_user.id,
                    user_principal_name: new_user.user_principal_name.into(),
                    display_name: new_user.display_name.into(),
                    usage_location: new_user.usage_location,
                    proxy_addresses: new_user.proxy_addresses.into(),
                    shared_addresses: 0,
                    account_enabled: new_user.account_enabled,
                    attributes,
                    direct: Vec::new(),
                    memberships: Vec::new(),
                });
                // Users who already had one of these addresses now share it: their mailbox plans
                // are flagged when they are evaluated again.
                for other in self.directory.users_sharing_addresses(user) {
                    self.enqueue(other);
                }
                self.apply_rules(user, crate::membership_rule::PropertySet::ALL);
            }
            Command::UpdateUser {
                user_id,
                changes: user_changes,
            } => self.update_user(user_id, user_changes)?,
            Command::DeleteUser { user_id } => self.delete_user(user_id, &mut changes)?,
            Command::CreateGroup {
                group_id,
                display_name,
            } => {
                self.directory.check_new_group(group_id, &display_name)?;
                self.tick();
                self.add_group(group_id, display_name, Vec::new(), 0);
            }
            Command::UpdateGroup {
                group_id,
                display_name,
            } => {
                let group = self.directory.group_ref(group_id)?;
                self.directory.check_group_rename(&display_name)?;
                self.tick();
                self.directory.rename_group(group, display_name);
            }
            Command::DeleteGroup { group_id } => self.delete_group(group_id, &mut changes)?,
            Command::AddGroupMember { group_id, user_id } => {
                self.check_assigned_membership(group_id)?;
                self.add_group_member(group_id, user_id)?;
                self.apply_rules_after_membership(user_id);
            }
            Command::RemoveGroupMember { group_id, user_id } => {
                self.check_assigned_membership(group_id)?;
                self.remove_group_member(group_id, user_id)?;
                self.apply_rules_after_membership(user_id);
            }
            Command::AddGroupMemberGroup {
                group_id,
                member_group_id,
            } => {
                // A dynamic group's members are the users its rule selects, as in Entra ID.
                self.check_assigned_membership(group_id)?;
                self.add_group_member_group(group_id, member_group_id)?
            }
            Command::RemoveGroupMemberGroup {
                group_id,
                member_group_id,
            } => self.remove_group_member_group(group_id, member_group_id)?,
            Command::SetTransitiveLicensing { enabled } => self.set_transitive_licensing(enabled),
            Command::AssignUserLicenses {
                user_id,
                add_licenses,
                remove_licenses,
            } => self.assign_user_licenses(user_id, &add_licenses, &remove_licenses, at, &mut changes)?,
            Command::AssignGroupLicenses {
                group_id,
                add_licenses,
                remove_licenses,
            } => self.assign_group_licenses(group_id, &add_licenses, &remove_licenses)?,
            Command::ReprocessUser { user_id } => {
                let user = self.directory.user_ref(user_id)?;
                self.tick();
                self.enqueue(user);
            }
            Command::ReprocessGroup { group_id } => {
                let group = self.directory.group_ref(group_id)?;
                self.tick();
                self.enqueue_group_users(group);
            }
            Command::SetDirectoryAttributes {
                object_id,
                attributes,
            } => {
                self.directory
                    .check_attributes(object_id, attributes.as_deref())?;
                self.tick();
                self.directory.set_attributes(object_id, attributes);
            }
            Command::SetMembershipRule {
                group_id,
                rule,
                processing_state,
            } => self.set_membership_rule(group_id, rule, processing_state)?,
        }
        // Users whose memberships rules changed are written whole (a rule set on a large tenant
        // moves many users: sets, not a scan of the list per user).
        let rule_changed = self.take_rule_changed_users();
        if !rule_changed.is_empty() {
            let changed: FxHashSet<Uuid> = rule_changed.iter().copied().collect();
            touched.user_edits.retain(|(edited, _)| !changed.contains(edited));
            let mut listed: FxHashSet<Uuid> = touched.users.iter().copied().collect();
            for user_id in rule_changed {
                if listed.insert(user_id) {
                    touched.users.push(user_id);
                }
            }
        }
        self.hand_off_free_units();
        let newly_queued: Vec<Uuid> = self
            .queue
            .take_newly_queued()
            .into_iter()
            .filter_map(|user| self.directory.user_if_live(user).map(|user| user.id))
            .collect();
        Ok(CommandOutcome {
            changes,
            queued_users: newly_queued.len(),
            newly_queued,
            touched,
            images: Box::default(),
            clock: self.clock,
        })
    }

    /// The touched entities and the changed states as they are now.
    fn changed_images(&self, touched: &Touched, changes: &[StateChange]) -> ChangedImages {
        ChangedImages {
            settings: touched.settings.then(|| self.settings.clone()),
            service_plans: touched.service_plans.then(|| self.service_plan_images()),
            skus: touched
                .skus
                .iter()
                .filter_map(|sku_id| self.catalog.find_sku(*sku_id))
                .map(|sku| self.sku_definition_of(self.catalog.sku(sku)))
                .collect(),
            users: touched
                .users
                .iter()
                .filter_map(|user_id| self.directory.find_user(*user_id))
                .map(|user| self.user_image_without_states(self.directory.user(user)))
                .collect(),
            groups: touched
                .groups
                .iter()
                .filter_map(|group_id| self.directory.find_group(*group_id))
                .map(|group| self.group_image_of(self.directory.group(group)))
                .collect(),
            directory_attributes: touched
                .directory_attributes
                .iter()
                .map(|object_id| {
                    (
                        *object_id,
                        self.directory.attributes(*object_id).map(str::to_string),
                    )
                })
                .collect(),
            group_nestings: self.nesting_edge_images(&touched.group_nestings),
            states: self.changed_states(changes),
        }
    }

    pub(crate) fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Advances the logical clock (for the parts of the engine in other modules).
    pub(crate) fn tick_clock(&mut self) -> u64 {
        self.tick()
    }

    // ----- composing the parts -------------------------------------------------------------

    /// Adds a user to the directory and gives it its slots in the queue and the states.
    pub(crate) fn add_user(&mut self, record: User) -> UserRef {
        let user = self.directory.insert_user(record);
        self.queue.add_user();
        self.states.add_user();
        user
    }

    /// Makes room for `users` more users in the directory, the queue and the states.
    pub(crate) fn reserve_users(&mut self, users: usize) {
        self.directory.reserve_users(users);
        self.queue.reserve_users(users);
        self.states.reserve_users(users);
    }

    /// Adds a group to the directory and gives it its slots in the queue and the states.
    pub(crate) fn add_group(
        &mut self,
        group_id: Uuid,
        display_name: String,
        licenses: Vec<GroupLicense>,
        licensed_since: u64,
    ) -> GroupRef {
        let group = self
            .directory
            .insert_group(group_id, display_name, licenses, licensed_since);
        self.queue.add_group();
        self.states.add_group();
        group
    }

    // ----- lookups used across the crate -----------------------------------------------------

    pub(crate) fn user_ref(&self, user_id: Uuid) -> Result<UserRef, CommandError> {
        self.directory.user_ref(user_id)
    }

    pub(crate) fn group_ref(&self, group_id: Uuid) -> Result<GroupRef, CommandError> {
        self.directory.group_ref(group_id)
    }

    pub(crate) fn sku_ref(&self, sku_id: Uuid) -> Result<SkuRef, CommandError> {
        self.catalog.sku_ref(sku_id)
    }

    pub(crate) fn user(&self, user: UserRef) -> &User {
        self.directory.user(user)
    }

    pub(crate) fn group(&self, group: GroupRef) -> &crate::directory::Group {
        self.directory.group(group)
    }

    pub(crate) fn sku(&self, sku: SkuRef) -> &crate::tenant_catalog::Sku {
        self.catalog.sku(sku)
    }

    pub(crate) fn plan(&self, plan: crate::plan_set::PlanRef) -> &crate::tenant_catalog::ServicePlan {
        self.catalog.plan(plan)
    }

    pub(crate) fn plan_name(&self, plan: crate::plan_set::PlanRef) -> crate::error::PlanName {
        self.catalog.plan_name(plan)
    }

    pub(crate) fn plan_names(&self, plans: &PlanSet) -> Vec<crate::error::PlanName> {
        self.catalog.plan_names(plans)
    }

    /// The enabled plans of a product with the given disabled plans.
    pub(crate) fn enabled_plans(&self, sku: SkuRef, disabled_plans: PlanSetId) -> PlanSet {
        self.sku(sku).plans.difference(self.plan_sets.get(disabled_plans))
    }

    /// The attributes a provisioning client keeps with a user or group, if any.
    pub fn directory_attributes(&self, object_id: Uuid) -> Option<&str> {
        self.directory.attributes(object_id)
    }

    // ----- users ---------------------------------------------------------------------------

    fn update_user(&mut self, user_id: Uuid, changes: crate::model::UserChanges) -> Result<(), CommandError> {
        let user = self.directory.user_ref(user_id)?;
        self.directory.check_user_changes(user, &changes)?;
        let changed = crate::dynamic_groups::changed_properties(&changes);
        self.tick();
        if let Some(upn) = changes.user_principal_name {
            self.directory.set_user_principal_name(user, upn);
        }
        if let Some(display_name) = changes.display_name {
            self.directory.set_display_name(user, display_name);
        }
        if let Some(enabled) = changes.account_enabled {
            self.directory.set_account_enabled(user, enabled);
        }
        self.directory.change_user_attributes(user, &changes.attributes);
        if let Some(location) = changes.usage_location {
            if self.directory.set_usage_location(user, location) {
                self.enqueue_healing(user, |_| RequeueReason::UsageLocationChanged);
            }
        }
        if let Some(addresses) = changes.proxy_addresses {
            let formerly_sharing = self.directory.users_sharing_addresses(user);
            self.directory.set_proxy_addresses(user, addresses);
            self.enqueue_healing(user, |_| RequeueReason::ProxyAddressesChanged);
            for other in self.directory.users_sharing_addresses(user) {
                self.enqueue(other);
            }
            if self.settings.self_healing {
                for other in formerly_sharing {
                    self.enqueue_healing(other, |_| RequeueReason::ProxyAddressFreed);
                }
            }
        }
        self.apply_rules(user, changed);
        Ok(())
    }

    fn delete_user(&mut self, user_id: Uuid, changes: &mut Vec<StateChange>) -> Result<(), CommandError> {
        let user = self.directory.user_ref(user_id)?;
        self.tick();
        let formerly_sharing = self.directory.users_sharing_addresses(user);
        self.queue.dequeue(user, self.directory.user(user).groups());
        self.healing.forget(user);
        self.commit_user_states(user, Vec::new(), changes);
        self.directory.delete_user(user);
        if self.settings.self_healing {
            for other in formerly_sharing {
                self.enqueue_healing(other, |_| RequeueReason::ProxyAddressFreed);
            }
        }
        Ok(())
    }

    // ----- groups --------------------------------------------------------------------------

    fn delete_group(&mut self, group_id: Uuid, changes: &mut Vec<StateChange>) -> Result<(), CommandError> {
        let group = self.directory.group_ref(group_id)?;
        self.check_group_not_named_by_rules(group_id)?;
        let record = self.directory.group(group);
        if !record.licenses.is_empty() {
            return Err(CommandError::GroupHasLicenses {
                group_id,
                sku_count: record.licenses.len(),
            });
        }
        if self.states.group_state_records(group) > 0 {
            let user_count = self
                .directory
                .users()
                .filter(|(user, _)| self.states.has_from(*user, Source::Group(group)))
                .count();
            return Err(CommandError::GroupStillGrantsLicenses { group_id, user_count });
        }
        self.tick();
        // No state comes from the group any more, but an error of another assignment may still
        // name it (as the holder of a conflicting or a dependent plan when the error was
        // recorded). Such a cause stops naming the group at once — a state change written with
        // the deletion, so no stored cause points at a group that no longer exists — and its
        // user is evaluated again to record the cause as it is now.
        let naming: Vec<UserRef> = self
            .states
            .users_with_errors()
            .iter()
            .copied()
            .filter(|user| {
                self.states.of(*user).iter().any(|state| {
                    state
                        .cause
                        .is_some_and(|cause| self.causes.get(cause).names_group(group))
                })
            })
            .collect();
        self.forget_group_nesting(group);
        self.forget_dynamic_group(group);
        self.directory.delete_group(group);
        for user in &naming {
            let mut states = self.states.of(*user).to_vec();
            for state in &mut states {
                let Some(cause) = state.cause else { continue };
                if let Some(forgotten) = self.causes.get(cause).without_group(group, state.source) {
                    state.cause = Some(self.causes.intern(forgotten));
                }
            }
            self.commit_user_states(*user, states, changes);
        }
        for user in naming {
            self.enqueue(user);
        }
        Ok(())
    }

    fn add_group_member(&mut self, group_id: Uuid, user_id: Uuid) -> Result<(), CommandError> {
        let group = self.directory.group_ref(group_id)?;
        let user = self.directory.user_ref(user_id)?;
        if self.directory.is_member(group, user) {
            return Err(CommandError::AlreadyMember { group_id, user_id });
        }
        let since = self.tick();
        self.directory.add_member(group, user, since);
        if self.queue.is_queued(user) {
            self.queue.member_added(group, user);
        } else if !self.directory.group(group).licenses.is_empty() || self.licensed_above(group) {
            self.enqueue(user);
        }
        Ok(())
    }

    fn remove_group_member(&mut self, group_id: Uuid, user_id: Uuid) -> Result<(), CommandError> {
        let group = self.directory.group_ref(group_id)?;
        let user = self.directory.user_ref(user_id)?;
        if !self.directory.is_member(group, user) {
            return Err(CommandError::NotAMember { group_id, user_id });
        }
        self.tick();
        self.directory.remove_member(group, user);
        self.queue.member_removed(group, user);
        let has_records = self.states.has_from(user, Source::Group(group));
        if has_records || !self.directory.group(group).licenses.is_empty() || self.licensed_above(group) {
            self.enqueue(user);
        }
        Ok(())
    }

    // ----- license assignment commands ------------------------------------------------------

    /// Validates the shape of an assignLicense request and resolves its products.
    fn resolve_license_request(
        &self,
        add_licenses: &[AssignedLicense],
        remove_licenses: &[Uuid],
    ) -> Result<ResolvedLicenseRequest, CommandError> {
        if add_licenses.is_empty() && remove_licenses.is_empty() {
            return Err(CommandError::NoLicenseChanges);
        }
        let mut seen = FxHashSet::default();
        let mut adds = Vec::with_capacity(add_licenses.len());
        for license in add_licenses {
            if !seen.insert(license.sku_id) {
                return Err(CommandError::DuplicateLicenseInRequest {
                    sku_id: license.sku_id,
                });
            }
            let sku = self.sku_ref(license.sku_id)?;
            let definition = self.sku(sku);
            if definition.applies_to != AppliesTo::User {
                return Err(CommandError::SkuNotAssignableToUsers {
                    sku_id: definition.id,
                    sku_part_number: definition.part_number.clone(),
                });
            }
            adds.push((sku, self.catalog.disabled_plan_set(sku, &license.disabled_plans)?));
        }
        let mut removes = Vec::with_capacity(remove_licenses.len());
        let mut seen_removes = FxHashSet::default();
        for sku_id in remove_licenses {
            if seen.contains(sku_id) {
                return Err(CommandError::LicenseAddedAndRemoved { sku_id: *sku_id });
            }
            if !seen_removes.insert(*sku_id) {
                return Err(CommandError::DuplicateLicenseInRequest { sku_id: *sku_id });
            }
            removes.push(self.sku_ref(*sku_id)?);
        }
        Ok((adds, removes))
    }

    fn assign_user_licenses(
        &mut self,
        user_id: Uuid,
        add_licenses: &[AssignedLicense],
        remove_licenses: &[Uuid],
        at: Timestamp,
        changes: &mut Vec<StateChange>,
    ) -> Result<(), CommandError> {
        let user = self.user_ref(user_id)?;
        let (adds, removes) = self.resolve_license_request(add_licenses, remove_licenses)?;
        let record = self.user(user);
        for sku in &removes {
            if !record.direct.iter().any(|direct| direct.sku == *sku) {
                let definition = self.sku(*sku);
                let inherited = self.states.of(user).iter().any(|state| state.sku == *sku);
                return Err(if inherited {
                    CommandError::LicenseInheritedFromGroup {
                        user_id,
                        sku_id: definition.id,
                        sku_part_number: definition.part_number.clone(),
                    }
                } else {
                    CommandError::LicenseNotAssigned {
                        sku_id: definition.id,
                        sku_part_number: definition.part_number.clone(),
                        target: format!("user {user_id}"),
                    }
                });
            }
        }
        let new_states = self.check_direct_assignment(user, &adds, &removes)?;

        // Everything is valid: record the intent and apply it at once.
        let since = self.tick();
        let mut disabled_ids = Vec::with_capacity(adds.len());
        for (sku, disabled) in &adds {
            disabled_ids.push((*sku, self.plan_sets.intern(*disabled)));
        }
        let direct_licenses = self.directory.direct_licenses_mut(user);
        direct_licenses.retain(|direct| !removes.contains(&direct.sku));
        for (sku, disabled_plans) in &disabled_ids {
            match direct_licenses.iter_mut().find(|direct| direct.sku == *sku) {
                Some(existing) => existing.disabled_plans = *disabled_plans,
                None => direct_licenses.push(DirectLicense {
                    sku: *sku,
                    disabled_plans: *disabled_plans,
                    since,
                }),
            }
        }
        let mut records: Vec<StateRecord> = self
            .states
            .of(user)
            .iter()
            .filter(|state| {
                !(state.source == Source::Direct
                    && (removes.contains(&state.sku) || adds.iter().any(|(sku, _)| *sku == state.sku)))
            })
            .copied()
            .collect();
        for (sku, granted) in new_states {
            let disabled_plans = disabled_ids
                .iter()
                .find(|(candidate, _)| *candidate == sku)
                .map(|(_, id)| *id)
                .unwrap_or(PlanSetId::EMPTY);
            let granting = self.sku(sku).capability_status.grants_plans();
            let granted_plans = if granting {
                Some(self.plan_sets.intern(granted))
            } else {
                None
            };
            let previous = self
                .states
                .of(user)
                .iter()
                .find(|state| state.source == Source::Direct && state.sku == sku)
                .copied();
            let mut record = StateRecord {
                sku,
                source: Source::Direct,
                status: if granting {
                    AssignmentStatus::Active
                } else {
                    AssignmentStatus::Disabled
                },
                cause: None,
                disabled_plans,
                granted_plans,
                since,
                last_updated: at,
            };
            if let Some(previous) = previous {
                if previous.same_outcome(&record) {
                    record = previous;
                } else if previous.status == record.status && previous.cause == record.cause {
                    record.since = previous.since;
                }
            }
            records.push(record);
        }
        sort_records(&mut records);
        self.commit_user_states(user, records, changes);
        // Groups of this user may now apply (a conflicting license is gone) or the freed units
        // may go to others; the background evaluation sorts that out.
        match remove_licenses
            .first()
            .and_then(|sku_id| self.catalog.find_sku(*sku_id))
        {
            Some(removed) => self.enqueue_healing(user, |engine| RequeueReason::DirectLicenseRemoved {
                sku_id: engine.sku(removed).id,
                sku_display_name: engine.sku(removed).display_name.clone(),
            }),
            None => self.enqueue(user),
        }
        Ok(())
    }

    /// The synchronous checks of a direct assignment. Returns the plans each added product grants.
    fn check_direct_assignment(
        &self,
        user: UserRef,
        adds: &[(SkuRef, PlanSet)],
        removes: &[SkuRef],
    ) -> Result<Vec<(SkuRef, PlanSet)>, CommandError> {
        let record = self.user(user);
        let states = self.states.of(user);
        let user_id = record.id;
        let changed = |state: &StateRecord| {
            state.source == Source::Direct
                && (removes.contains(&state.sku) || adds.iter().any(|(sku, _)| *sku == state.sku))
        };
        // Plans the user keeps from everything this request does not touch.
        let mut kept = PlanSet::EMPTY;
        for state in states.iter().filter(|state| !changed(state)) {
            if let Some(granted) = state.granted_plans {
                kept.union_with(self.plan_sets.get(granted));
            }
        }
        let before: PlanSet = states
            .iter()
            .filter_map(|state| state.granted_plans)
            .fold(PlanSet::EMPTY, |acc, id| acc.union(self.plan_sets.get(id)));
        if !adds.is_empty() && record.usage_location.is_none() {
            return Err(CommandError::UsageLocationRequired {
                user_id,
                sku_part_number: self.sku(adds[0].0).part_number.clone(),
            });
        }
        // The plans the request's products already grant and go on granting (a product
        // re-assigned as it is): they conflict with a new plan whatever their place in the
        // request, as they would if the request did not name them.
        let retained = adds
            .iter()
            .filter(|(sku, _)| self.sku(*sku).capability_status.grants_plans())
            .fold(PlanSet::EMPTY, |plans, (sku, disabled)| {
                let previous = states
                    .iter()
                    .find(|state| state.source == Source::Direct && state.sku == *sku)
                    .and_then(|state| state.granted_plans)
                    .map(|id| *self.plan_sets.get(id))
                    .unwrap_or(PlanSet::EMPTY);
                plans.union(&self.sku(*sku).plans.difference(disabled).intersection(&previous))
            });
        let mut claimed: Vec<SkuRef> = Vec::new();
        let mut granted_by_adds = Vec::with_capacity(adds.len());
        let mut new_plans = PlanSet::EMPTY;
        let mut added_plans = PlanSet::EMPTY;
        for (sku, disabled) in adds {
            let definition = self.sku(*sku);
            let enabled = definition.plans.difference(disabled);
            granted_by_adds.push((*sku, enabled));
            if !definition.capability_status.grants_plans() {
                continue;
            }
            let previous = states
                .iter()
                .find(|state| state.source == Source::Direct && state.sku == *sku)
                .and_then(|state| state.granted_plans)
                .map(|id| *self.plan_sets.get(id))
                .unwrap_or(PlanSet::EMPTY);
            let added = enabled.difference(&previous);
            added_plans.union_with(&added);
            let sku_part_number = definition.part_number.clone();
            if let Some(location) = record.usage_location {
                if let Some(prohibited) = self.catalog.prohibited_in(location) {
                    if let Some(plan) = added.intersection(prohibited).iter().next() {
                        return Err(CommandError::ProhibitedInUsageLocation {
                            user_id,
                            sku_id: definition.id,
                            sku_part_number,
                            plan: self.plan_name(plan),
                            usage_location: location,
                        });
                    }
                }
            }
            if added.intersects(self.catalog.mailbox_plans()) {
                if let Some((address, others)) = self.directory.shared_proxy_address(user) {
                    return Err(CommandError::ProxyAddressInUse {
                        user_id,
                        sku_id: definition.id,
                        sku_part_number,
                        proxy_address: address,
                        other_user_id: self.user(others[0]).id,
                    });
                }
            }
            let others = kept.union(&retained).union(&new_plans).union(&enabled);
            for plan in added.intersection(self.catalog.plans_with_exclusions()).iter() {
                if let Some(conflicting) = self.plan(plan).excludes.intersection(&others).iter().next() {
                    return Err(CommandError::MutuallyExclusive {
                        user_id,
                        sku_id: definition.id,
                        sku_part_number,
                        plan: self.plan_name(plan),
                        conflicting_plan: self.plan_name(conflicting),
                    });
                }
            }
            let holds = states.iter().any(|state| state.sku == *sku && state.holds_unit());
            let consumed_units = self.states.consumed_units(*sku);
            if !holds && !claimed.contains(sku) && consumed_units >= definition.prepaid_units {
                return Err(CommandError::NotEnoughLicenses {
                    user_id,
                    sku_id: definition.id,
                    sku_part_number,
                    prepaid_units: definition.prepaid_units,
                    consumed_units,
                });
            }
            claimed.push(*sku);
            new_plans.union_with(&enabled);
        }
        // Prerequisites on the resulting plan set: a newly enabled plan needs one, and a plan
        // that had one before must keep one (removal refused with DependencyViolation).
        let after = kept.union(&new_plans);
        for plan in after.intersection(self.catalog.plans_with_prerequisites()).iter() {
            let requires = &self.plan(plan).requires_any_of;
            let newly_enabled = added_plans.contains(plan);
            let satisfied_before = requires.intersects(&before);
            if !requires.intersects(&after) && (newly_enabled || satisfied_before) {
                let sku = adds
                    .iter()
                    .find(|(sku, _)| self.sku(*sku).plans.contains(plan))
                    .map(|(sku, _)| *sku)
                    .or_else(|| removes.first().copied())
                    .unwrap_or(SkuRef(0));
                let definition = self.sku(sku);
                return Err(CommandError::Dependency {
                    user_id,
                    sku_id: definition.id,
                    sku_part_number: definition.part_number.clone(),
                    plan: self.plan_name(plan),
                    required_plans: self.plan_names(requires),
                });
            }
        }
        Ok(granted_by_adds)
    }

    fn assign_group_licenses(
        &mut self,
        group_id: Uuid,
        add_licenses: &[AssignedLicense],
        remove_licenses: &[Uuid],
    ) -> Result<(), CommandError> {
        let group = self.group_ref(group_id)?;
        let (adds, removes) = self.resolve_license_request(add_licenses, remove_licenses)?;
        let record = self.group(group);
        for sku in &removes {
            if !record.licenses.iter().any(|license| license.sku == *sku) {
                let definition = self.sku(*sku);
                return Err(CommandError::LicenseNotAssigned {
                    sku_id: definition.id,
                    sku_part_number: definition.part_number.clone(),
                    target: format!("group {group_id}"),
                });
            }
        }
        // The resulting assignments of the group, in the order products were added.
        let mut resulting: Vec<(SkuRef, PlanSet)> = record
            .licenses
            .iter()
            .filter(|license| !removes.contains(&license.sku))
            .map(|license| (license.sku, *self.plan_sets.get(license.disabled_plans)))
            .collect();
        for (sku, disabled) in &adds {
            match resulting.iter_mut().find(|(candidate, _)| candidate == sku) {
                Some(existing) => existing.1 = *disabled,
                None => resulting.push((*sku, *disabled)),
            }
        }
        let enabled = resulting.iter().fold(PlanSet::EMPTY, |acc, (sku, disabled)| {
            acc.union(&self.sku(*sku).plans.difference(disabled))
        });
        for plan in enabled
            .intersection(self.catalog.plans_with_prerequisites())
            .iter()
        {
            let requires = &self.plan(plan).requires_any_of;
            if !requires.intersects(&enabled) {
                return Err(CommandError::GroupPrerequisiteMissing {
                    group_id,
                    service: self.plan_name(plan),
                    requires_any_of: self.plan_names(requires),
                });
            }
        }
        let now = self.tick();
        let licenses: Vec<GroupLicense> = resulting
            .into_iter()
            .map(|(sku, disabled)| GroupLicense {
                sku,
                disabled_plans: self.plan_sets.intern(disabled),
            })
            .collect();
        self.directory.set_group_licenses(group, licenses, now);
        let group_id = self.group(group).id;
        for user in self.group_users_in_order(group) {
            self.enqueue_healing(user, |engine| RequeueReason::GroupAssignmentChanged {
                group_id,
                group_display_name: engine.group(group).display_name.clone(),
            });
        }
        Ok(())
    }

    // ----- queue ---------------------------------------------------------------------------

    // ----- queue ---------------------------------------------------------------------------

    /// Queues a user for evaluation (once; a queued user stays where it is in the queue).
    pub(crate) fn enqueue(&mut self, user: UserRef) {
        self.queue.enqueue(user, self.directory.user(user).groups());
    }

    /// Queues a user because `reason` may have cleared its error. The reason is kept (the first
    /// one while the user stays queued) when self-healing is on and the user has an assignment
    /// in error.
    pub(crate) fn enqueue_healing(&mut self, user: UserRef, reason: impl FnOnce(&Engine) -> RequeueReason) {
        if self.settings.self_healing
            && self.healing.pending(user).is_none()
            && self.states.of(user).iter().any(|state| state.cause.is_some())
        {
            let reason = reason(self);
            self.healing.note_pending(user, reason);
        }
        self.enqueue(user);
    }

    /// Queues the members of a group, oldest membership first, then former members the group
    /// still grants licenses to.
    pub(crate) fn enqueue_group_users(&mut self, group: GroupRef) {
        for user in self.group_users_in_order(group) {
            self.enqueue(user);
        }
    }

    /// A group's members, oldest membership first, then former members it still grants
    /// licenses to (the order [`Engine::enqueue_group_users`] queues them in).
    fn group_users_in_order(&self, group: GroupRef) -> Vec<UserRef> {
        let record = self.directory.group(group);
        if self.settings.transitive_licensing && !self.directory.nesting().children_of(group).is_empty() {
            // Members of nested groups receive the group's products too (`crate::nesting`).
            let below = self.users_below(group);
            let lingering: Vec<UserRef> = self
                .states
                .group_error_users(group)
                .iter()
                .copied()
                .filter(|user| !below.contains(user))
                .collect();
            return below.into_iter().chain(lingering).collect();
        }
        let mut members: Vec<(u64, UserRef)> = record
            .members
            .iter()
            .map(|member| (self.directory.member_since(*member, group), *member))
            .collect();
        members.sort_unstable();
        let lingering: Vec<UserRef> = self
            .states
            .group_error_users(group)
            .iter()
            .copied()
            .filter(|user| !record.members.contains(user))
            .collect();
        members
            .into_iter()
            .map(|(_, member)| member)
            .chain(lingering)
            .collect()
    }

    /// Queues the users with any license intent or state for whom `predicate` holds.
    fn enqueue_users_where(&mut self, predicate: impl Fn(&User) -> bool) {
        let selected: Vec<UserRef> = self
            .directory
            .users()
            .filter(|(user_ref, user)| {
                let relevant = !self.states.of(*user_ref).is_empty()
                    || !user.direct.is_empty()
                    || !user.memberships.is_empty();
                relevant && predicate(user)
            })
            .map(|(user, _)| user)
            .collect();
        for user in selected {
            self.enqueue(user);
        }
    }

    fn enqueue_users_with_skus(&mut self, skus: &[SkuRef]) {
        if skus.is_empty() {
            return;
        }
        let selected: Vec<UserRef> = self
            .directory
            .users()
            .map(|(user, _)| user)
            .filter(|user| {
                self.states
                    .of(*user)
                    .iter()
                    .any(|state| skus.contains(&state.sku))
            })
            .collect();
        for user in selected {
            self.enqueue(user);
        }
        for sku in skus {
            for group in self.directory.groups_with_sku(*sku) {
                self.enqueue_group_users(group);
            }
        }
    }

    /// Hands freed or bought units to users waiting for them, first come first served: queues
    /// as many waiting users as there are free units (self-healing; off means wait for reprocess).
    fn hand_off_free_units(&mut self) {
        // Products without a free unit: users blocked only by a sibling now fail on this
        // product themselves; evaluate them again so their error says so.
        let mut to_queue: Vec<UserRef> = Vec::new();
        for (sku, definition) in self.catalog.skus() {
            let blocked = self.states.blocked_without_unit(sku);
            if self.states.consumed_units(sku) >= definition.prepaid_units && !blocked.is_empty() {
                to_queue.extend(blocked.iter().copied());
            }
        }
        for user in to_queue.drain(..) {
            self.enqueue(user);
        }
        if !self.settings.self_healing {
            return;
        }
        let mut seat_of: Vec<SkuRef> = Vec::new();
        for (sku, definition) in self.catalog.skus() {
            let waiting = self.states.waiting(sku);
            let consumed_units = self.states.consumed_units(sku);
            if waiting.is_empty() || consumed_units >= definition.prepaid_units {
                continue;
            }
            let free = (definition.prepaid_units - consumed_units) as usize;
            to_queue.extend(waiting.iter().take(free).map(|(_, user)| *user));
            seat_of.extend(waiting.iter().take(free).map(|_| sku));
        }
        for (user, sku) in to_queue.into_iter().zip(seat_of) {
            self.enqueue_healing(user, |engine| RequeueReason::SeatsAvailable {
                sku_id: engine.sku(sku).id,
                sku_display_name: engine.sku(sku).display_name.clone(),
            });
        }
    }

    // ----- processing ----------------------------------------------------------------------

    /// Evaluates up to `max_users` queued users, in queue order, and returns the state changes
    /// (without images: [`Engine::process_batch_with_images`] adds them).
    pub fn process_batch(&mut self, max_users: usize, at: Timestamp) -> ProcessReport {
        self.queue.clear_newly_queued();
        let mut report = ProcessReport::default();
        let expected_users = max_users.min(self.queue.len());
        report.evaluated.reserve(expected_users);
        while report.evaluated_users < max_users {
            let Some(user) = self.queue.pop_next() else { break };
            let Some(record) = self.directory.user_if_live(user) else {
                continue;
            };
            self.queue.dequeue(user, record.groups());
            self.evaluate_user(user, at, &mut report.changes);
            let states = &self.states;
            self.healing.record_evaluated(user, at, || {
                states.of(user).iter().all(|state| state.cause.is_none())
            });
            report.evaluated_users += 1;
            report.evaluated.push(self.user(user).id);
            if !self.queue.has_entries() {
                self.hand_off_free_units();
            }
        }
        self.hand_off_free_units();
        report.remaining_users = self.queued_users();
        let mut requeued: Vec<UserRef> = self
            .queue
            .take_newly_queued()
            .into_iter()
            .filter(|user| self.queue.is_queued(*user))
            .collect();
        requeued.dedup();
        report.requeued = requeued.into_iter().map(|user| self.user(user).id).collect();
        report.clock = self.clock;
        report
    }

    /// As [`Engine::process_batch`], and the report carries the changed states as images
    /// ([`ProcessReport::states`]), ready to persist: for a caller that writes each step. Each
    /// changed state is imaged once, after the step, with the products and groups as it left them.
    pub fn process_batch_with_images(&mut self, max_users: usize, at: Timestamp) -> ProcessReport {
        let mut report = self.process_batch(max_users, at);
        report.states = self.changed_states(&report.changes);
        report
    }

    /// Processes until the queue is empty.
    pub fn process_all(&mut self, at: Timestamp) -> ProcessReport {
        let mut total = self.process_batch(usize::MAX, at);
        while total.remaining_users > 0 {
            let mut report = self.process_batch(usize::MAX, at);
            total.evaluated_users += report.evaluated_users;
            total.changes.append(&mut report.changes);
            total.evaluated.append(&mut report.evaluated);
            total.requeued = report.requeued;
            total.remaining_users = report.remaining_users;
            total.clock = report.clock;
        }
        total
    }

    /// Number of users waiting for evaluation.
    pub fn queued_users(&self) -> usize {
        self.queue.len()
    }

    /// Whether the user waits for evaluation (`false` for an unknown user).
    pub fn is_user_queued(&self, user_id: Uuid) -> bool {
        self.user_ref(user_id)
            .is_ok_and(|user| self.queue.is_queued(user))
    }

    /// Evaluates one user until its states no longer change, commits them, and appends the delta
    /// against the states it had before to `changes`.
    fn evaluate_user(&mut self, user: UserRef, at: Timestamp, changes: &mut Vec<StateChange>) {
        let mut original: Option<Vec<StateRecord>> = None;
        // Each pass either settles the user or lets a previously failed unit succeed; succeeded
        // units never fail again, so the number of passes is bounded by the number of units.
        for _ in 0..16 {
            let sequence = self.tick();
            let evaluation = evaluate(
                user,
                Reads {
                    directory: &self.directory,
                    catalog: &self.catalog,
                    states: &self.states,
                    settings: &self.settings,
                },
                Interners {
                    plan_sets: &mut self.plan_sets,
                    causes: &mut self.causes,
                },
                &mut self.scratch,
                at,
                sequence,
            );
            if evaluation.records.as_slice() == self.states.of(user) {
                break;
            }
            let before = self.states.replace(user, evaluation.records, &self.causes);
            original.get_or_insert(before);
            if !evaluation.any_failure {
                break;
            }
        }
        // Report the net change against the states before this evaluation.
        if let Some(original) = original {
            state_delta(user, self.user(user).id, &original, self.states.of(user), changes);
        }
    }

    /// Replaces a user's state records (see [`States::replace`]) and appends the delta to
    /// `changes`.
    pub(crate) fn commit_user_states(
        &mut self,
        user: UserRef,
        new_states: Vec<StateRecord>,
        changes: &mut Vec<StateChange>,
    ) {
        let old_states = self.states.replace(user, new_states, &self.causes);
        state_delta(
            user,
            self.user(user).id,
            &old_states,
            self.states.of(user),
            changes,
        );
    }
}

/// Times copying and dropping one part of the engine.
pub(crate) fn copy_cost<T: Clone>(part: &T) -> std::time::Duration {
    let started = std::time::Instant::now();
    let copy = part.clone();
    drop(std::hint::black_box(copy));
    started.elapsed()
}

impl Engine {
    /// For the benchmarks: what copying (and dropping the copy of) each part of the engine
    /// costs, largest parts split further. A what-if copies the engine, so this shows which
    /// parts it shares and which it pays for.
    #[doc(hidden)]
    pub fn copy_cost_by_part(&self) -> Vec<(&'static str, std::time::Duration)> {
        let mut parts = vec![("settings", copy_cost(&self.settings))];
        parts.extend(self.directory.copy_cost_by_part());
        parts.push(("catalog", copy_cost(&self.catalog)));
        parts.push(("queue", copy_cost(&self.queue)));
        parts.extend(self.states.copy_cost_by_part());
        parts.push(("plan sets", copy_cost(&self.plan_sets)));
        parts.push(("causes", copy_cost(&self.causes)));
        parts.push(("self-healing log", copy_cost(&self.healing)));
        parts.push(("dynamic rules", copy_cost(&self.dynamic)));
        parts.push(("whole engine", copy_cost(self)));
        parts
    }
}
