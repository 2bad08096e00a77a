//! Incremental catch-up: bringing an engine that reflects a tenant at one stored version up to a
//! later one by replacing only what the writes in between touched, instead of rebuilding the
//! whole tenant with [`Engine::from_image`].
//!
//! A store reads a [`TenantPatch`] — the current stored images of every product, group and user
//! the writes after the engine's version touched, the ids of those that no longer exist, the
//! nesting edges of the touched groups, the settings and the queue when they changed, the
//! directory attributes of the touched objects and the clock — and [`Engine::apply_patch`] puts them in place keeping every derived index in
//! step (group member lists, user principal name and proxy address indexes, seat counts and
//! waiting lists, per-group error lists and queue counters). The invariant, tested against the
//! stores: an engine at version V that applies the patch for V→W has the same
//! [`Engine::to_image`] as `Engine::from_image` of the stored tenant at W, and behaves the same
//! afterwards.
//!
//! Users and groups keep their place: an existing one is replaced in its slot, a new one is
//! appended (the engine's order is creation order, as the store's keys are), and a user deleted
//! and created again with the same id is deleted and appended. What a patch cannot express —
//! changed service plans or rules, a product whose plans changed, a group created again with
//! the id of a deleted one — is refused with [`PatchError::NeedsReload`] before anything
//! changes: reload the tenant then.

use rustc_hash::FxHashSet;

use crate::directory::{DirectLicense, GroupLicense, Membership, User};
use crate::image::{GroupImage, RestoreError, RestoredPlanLists, UserImage};
use crate::model::{SkuDefinition, TenantSettings, Uuid};
use crate::nesting::GroupNestingImage;
use crate::plan_set::PlanRef;
use crate::states::{sort_records, StateRecord};
use crate::{Engine, GroupRef, UserRef};

/// Directory attributes to put in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttributesPatch {
    /// Per object: its attributes now, `None` when it has none (or no longer exists).
    Objects(Vec<(Uuid, Option<String>)>),
    /// Every object's attributes, replacing all of them (when the writes do not say whose
    /// attributes they changed).
    All(Vec<(Uuid, String)>),
}

impl Default for AttributesPatch {
    fn default() -> Self {
        AttributesPatch::Objects(Vec::new())
    }
}

/// What changed in a tenant between two stored versions, as the stored images at the later
/// one. See the module documentation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantPatch {
    /// The settings, when a write changed them.
    pub settings: Option<TenantSettings>,
    /// The logical clock at the later version.
    pub clock: u64,
    /// Touched products as stored (new ones in the store's order).
    pub skus: Vec<SkuDefinition>,
    /// Touched groups that exist, in the store's (creation) order.
    pub groups: Vec<GroupImage>,
    /// Touched groups that no longer exist.
    pub deleted_groups: Vec<Uuid>,
    /// Touched users that exist, with their states, in the store's (creation) order.
    pub users: Vec<UserImage>,
    /// Users among `users` that were deleted and created again with the same id: their old
    /// version goes and the new one is appended.
    pub recreated_users: Vec<Uuid>,
    /// Touched users that no longer exist.
    pub deleted_users: Vec<Uuid>,
    /// The whole work queue in order, when a write changed it.
    pub queue: Option<Vec<Uuid>>,
    pub directory_attributes: AttributesPatch,
    /// Groups whose nesting edges the patch replaces: every edge in which one of them is the
    /// group or the member goes, and `nesting_edges` takes their place.
    pub nesting_of_groups: Vec<Uuid>,
    /// The stored nesting edges of `nesting_of_groups` (each edge once).
    pub nesting_edges: Vec<GroupNestingImage>,
}

impl TenantPatch {
    /// Whether the patch changes nothing but (possibly) the clock.
    pub fn is_empty(&self) -> bool {
        self.settings.is_none()
            && self.skus.is_empty()
            && self.groups.is_empty()
            && self.deleted_groups.is_empty()
            && self.users.is_empty()
            && self.deleted_users.is_empty()
            && self.queue.is_none()
            && self.nesting_of_groups.is_empty()
            && matches!(&self.directory_attributes, AttributesPatch::Objects(objects) if objects.is_empty())
    }
}

/// Why a patch was not applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch needs what only a full reload does; the engine is unchanged.
    #[error("catching up needs a full reload: {0}")]
    NeedsReload(String),
    /// The patch does not fit the engine (a reference that does not resolve): the engine may be
    /// partly patched and must be reloaded.
    #[error("the patch does not fit the engine: {0}")]
    Inconsistent(#[from] RestoreError),
}

/// A user of the patch resolved to the engine's handles.
struct ResolvedUser {
    record: User,
    states: Vec<StateRecord>,
    /// A cause of its states named a group that no longer exists (queue it, as a load does).
    stale: bool,
}

impl Engine {
    /// Applies a patch read from the store (see the module documentation). On
    /// [`PatchError::NeedsReload`] nothing changed; on [`PatchError::Inconsistent`] the engine
    /// may be partly patched: replace it with a full load.
    pub fn apply_patch(&mut self, patch: TenantPatch) -> Result<(), PatchError> {
        // 1. What a patch cannot do, checked before anything changes.
        let mut sku_plans: Vec<Vec<PlanRef>> = Vec::with_capacity(patch.skus.len());
        for definition in &patch.skus {
            let plans: Option<Vec<PlanRef>> = definition
                .service_plans
                .iter()
                .map(|plan| self.catalog.find_plan(plan.service_plan_id))
                .collect();
            let Some(plans) = plans else {
                return Err(PatchError::NeedsReload(format!(
                    "product {} has a plan this engine does not know",
                    definition.sku_id
                )));
            };
            if let Some(sku) = self.catalog.find_sku(definition.sku_id) {
                let existing = self.catalog.sku(sku);
                if existing.plan_order != plans
                    || existing.part_number != definition.sku_part_number
                    || existing.applies_to != definition.applies_to
                {
                    return Err(PatchError::NeedsReload(format!(
                        "the plans of product {} changed",
                        definition.sku_id
                    )));
                }
            }
            sku_plans.push(plans);
        }
        let mut group_licenses = Vec::with_capacity(patch.groups.len());
        for group in &patch.groups {
            let referenced_by = format!("group {}", group.id);
            let mut licenses = Vec::with_capacity(group.licenses.len());
            for license in &group.licenses {
                let sku = match self.catalog.find_sku(license.sku_id) {
                    Some(sku) => sku,
                    None if patch.skus.iter().any(|sku| sku.sku_id == license.sku_id) => {
                        // A product the patch adds: resolved after it is added below.
                        licenses.push(None);
                        continue;
                    }
                    None => {
                        return Err(PatchError::NeedsReload(format!(
                            "{referenced_by} names product {}, which this engine does not know",
                            license.sku_id
                        )))
                    }
                };
                let disabled = self
                    .resolve_plans(&license.disabled_plans, &referenced_by)
                    .map_err(|error| PatchError::NeedsReload(error.to_string()))?;
                licenses.push(Some(GroupLicense {
                    sku,
                    disabled_plans: self.plan_sets.intern(disabled),
                }));
            }
            group_licenses.push(licenses);
        }
        if let Some(group_id) = patch
            .deleted_groups
            .iter()
            .find(|group_id| patch.groups.iter().any(|group| group.id == **group_id))
        {
            return Err(PatchError::NeedsReload(format!(
                "group {group_id} was deleted and created again"
            )));
        }

        // 2. Products and groups (users refer to them).
        for (definition, plans) in patch.skus.iter().zip(sku_plans) {
            match self.catalog.find_sku(definition.sku_id) {
                Some(sku) => self.catalog.restore_sku_fields(sku, definition),
                None => {
                    if self.catalog.restore_sku(definition.clone(), plans).is_some() {
                        self.states.add_sku();
                    }
                }
            }
        }
        for (group, licenses) in patch.groups.iter().zip(group_licenses) {
            let referenced_by = format!("group {}", group.id);
            let licenses: Vec<GroupLicense> = licenses
                .into_iter()
                .zip(&group.licenses)
                .map(|(resolved, license)| match resolved {
                    Some(resolved) => Ok(resolved),
                    None => {
                        let sku = self.resolve_sku(license.sku_id, &referenced_by)?;
                        let disabled = self.resolve_plans(&license.disabled_plans, &referenced_by)?;
                        Ok(GroupLicense {
                            sku,
                            disabled_plans: self.plan_sets.intern(disabled),
                        })
                    }
                })
                .collect::<Result<_, RestoreError>>()?;
            let restored = match self.directory.find_group(group.id) {
                Some(existing) => {
                    self.directory.restore_group_fields(
                        existing,
                        group.display_name.clone(),
                        licenses,
                        group.licensed_since,
                    );
                    existing
                }
                None => self.add_group(
                    group.id,
                    group.display_name.clone(),
                    licenses,
                    group.licensed_since,
                ),
            };
            self.restore_dynamic_membership(restored, group.dynamic_membership.as_ref())?;
        }

        // 3. Users, resolved completely before any of them changes.
        let mut plan_lists = RestoredPlanLists::default();
        let resolved: Vec<ResolvedUser> = patch
            .users
            .iter()
            .map(|image| self.resolve_patched_user(image, &mut plan_lists))
            .collect::<Result<_, _>>()?;
        // Users that go: deleted ones and the old versions of recreated ones.
        for user_id in patch.deleted_users.iter().chain(&patch.recreated_users) {
            if let Some(user) = self.directory.find_user(*user_id) {
                self.remove_user_for_patch(user);
            }
        }
        // Out of the indexes first, so that a user principal name or address passed from one
        // patched user to another is indexed for its new owner only.
        let slots: Vec<Option<UserRef>> = patch
            .users
            .iter()
            .map(|image| self.directory.find_user(image.id))
            .collect();
        for user in slots.iter().flatten() {
            self.directory.detach_user(*user);
        }
        let mut stale = Vec::new();
        for (resolved, slot) in resolved.into_iter().zip(slots) {
            let user = match slot {
                Some(user) => {
                    self.directory.attach_user(user, resolved.record);
                    self.healing.forget(user);
                    user
                }
                None => self.add_user(resolved.record),
            };
            self.states.replace(user, resolved.states, &self.causes);
            if resolved.stale {
                stale.push(user);
            }
        }

        // 4. Groups that go (no user refers to them any more).
        for group_id in &patch.deleted_groups {
            if let Some(group) = self.directory.find_group(*group_id) {
                self.forget_dynamic_group(group);
                self.directory.delete_group(group);
            }
        }
        self.order_restored_rules();

        // 4b. The nesting edges of the touched groups, as stored (every group they name exists
        // now: new ones were added above).
        if !patch.nesting_of_groups.is_empty() {
            self.replace_nesting_of(&patch.nesting_of_groups, &patch.nesting_edges)?;
        }

        // 5. The queue, rebuilt as a load builds it (its per-group counters follow the
        // memberships that changed).
        let order: Vec<UserRef> = match &patch.queue {
            Some(queue) => queue
                .iter()
                .map(|user_id| {
                    self.directory
                        .find_user(*user_id)
                        .ok_or_else(|| RestoreError::UnknownReference {
                            what: "user",
                            id: *user_id,
                            referenced_by: "the queue".to_string(),
                        })
                })
                .collect::<Result<_, _>>()?,
            None => self.queue.queued_in_order().collect(),
        };
        self.queue.reset();
        for user in order.into_iter().chain(stale) {
            self.enqueue(user);
        }
        self.queue.clear_newly_queued();

        // 6. Directory attributes, settings and the clock.
        match patch.directory_attributes {
            AttributesPatch::Objects(objects) => {
                for (object_id, text) in objects {
                    if text.is_none() || self.directory.contains_object(object_id) {
                        self.directory.set_attributes(object_id, text);
                    }
                }
            }
            AttributesPatch::All(all) => {
                self.directory.clear_attributes();
                for (object_id, text) in all {
                    if self.directory.contains_object(object_id) {
                        self.directory.set_attributes(object_id, Some(text));
                    }
                }
            }
        }
        if let Some(settings) = patch.settings {
            self.settings = settings;
        }
        self.clock = patch.clock;
        Ok(())
    }

    /// A user of a patch in the engine's handles (its groups and products must exist).
    fn resolve_patched_user(
        &mut self,
        image: &UserImage,
        plan_lists: &mut RestoredPlanLists,
    ) -> Result<ResolvedUser, RestoreError> {
        let referenced_by = format!("user {}", image.id);
        let mut direct = Vec::with_capacity(image.direct_licenses.len());
        for license in &image.direct_licenses {
            let sku = self.resolve_sku(license.license.sku_id, &referenced_by)?;
            let disabled = self.resolve_plans(&license.license.disabled_plans, &referenced_by)?;
            direct.push(DirectLicense {
                sku,
                disabled_plans: self.plan_sets.intern(disabled),
                since: license.since,
            });
        }
        let mut memberships = Vec::with_capacity(image.memberships.len());
        for membership in &image.memberships {
            memberships.push(Membership {
                group: self.resolve_group(membership.group_id, &referenced_by)?,
                since: membership.since,
            });
        }
        let mut states = Vec::with_capacity(image.states.len());
        let mut stale = false;
        for state in &image.states {
            states.push(self.restore_state(state, &referenced_by, plan_lists, &mut stale)?);
        }
        sort_records(&mut states);
        let attributes = self.directory.intern_user_attributes(&image.attributes);
        Ok(ResolvedUser {
            record: User {
                id: image.id,
                user_principal_name: image.user_principal_name.as_str().into(),
                display_name: image.display_name.as_str().into(),
                usage_location: image.usage_location,
                proxy_addresses: image.proxy_addresses.clone().into(),
                shared_addresses: 0,
                account_enabled: image.account_enabled,
                attributes,
                direct,
                memberships,
            },
            states,
            stale,
        })
    }

    /// Replaces every nesting edge of `groups` (as the group or the member) by `edges`, and
    /// orders the edges of every group concerned as a load orders them (a group's members by
    /// the time they were added, then id; the groups it is in by id).
    fn replace_nesting_of(
        &mut self,
        groups: &[Uuid],
        edges: &[GroupNestingImage],
    ) -> Result<(), RestoreError> {
        let mut concerned: FxHashSet<GroupRef> = FxHashSet::default();
        for group_id in groups {
            let Some(group) = self.directory.find_group(*group_id) else {
                continue;
            };
            let nesting = self.directory.nesting();
            concerned.extend(nesting.parents_of(group));
            concerned.extend(nesting.children_of(group).iter().map(|(child, _)| *child));
            concerned.insert(group);
            self.directory.nesting_mut().remove_group(group);
        }
        for edge in edges {
            let referenced_by = format!(
                "the nesting of group {} in group {}",
                edge.member_group_id, edge.group_id
            );
            let parent = self.resolve_group(edge.group_id, &referenced_by)?;
            let child = self.resolve_group(edge.member_group_id, &referenced_by)?;
            let nesting = self.directory.nesting();
            if nesting.contains(parent, child) {
                continue;
            }
            if nesting.would_cycle(parent, child) {
                return Err(RestoreError::Invalid(format!("{referenced_by} closes a cycle")));
            }
            self.directory.nesting_mut().insert(parent, child, edge.since);
            concerned.insert(parent);
            concerned.insert(child);
        }
        let mut nesting = std::mem::take(self.directory.nesting_mut());
        for group in concerned {
            nesting.order_edges_of(group, &|group| self.directory.group(group).id);
        }
        *self.directory.nesting_mut() = nesting;
        Ok(())
    }

    /// Deletes a user the store no longer has (or has under a new key): its states, queue
    /// entry and self-healing history go with it.
    fn remove_user_for_patch(&mut self, user: UserRef) {
        self.queue.dequeue(user, self.directory.user(user).groups());
        self.healing.forget(user);
        self.states.replace(user, Vec::new(), &self.causes);
        self.directory.delete_user(user);
    }
}
