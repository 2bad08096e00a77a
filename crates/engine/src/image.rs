//! Images: the whole licensing state of a tenant as plain data with GUIDs — intent (products,
//! rules, users, groups, memberships, assignments with the logical times that order them),
//! outcome (license assignment states with their error causes) and the queue. A store persists
//! images entity by entity and rebuilds an engine from them with [`Engine::from_image`]; the
//! round trip is lossless (an engine rebuilt from `to_image()` behaves exactly like the original).

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::directory::{DirectLicense, Group, GroupLicense, Membership, User};
use crate::model::{AssignedLicense, AssignmentSource, ServicePlanDefinition, SkuDefinition, Uuid};
use crate::plan_set::{PlanRef, PlanSet, PlanSetId, MAX_SERVICE_PLANS};
use crate::states::{sort_records, Cause, StateChange, StateRecord};
use crate::tenant_catalog::Sku;
use crate::TenantSettings;
use crate::{Engine, GroupRef, SkuRef, Source, UserRef};

pub use crate::image_data::{
    CauseImage, ChangedStates, DirectLicenseImage, DynamicMembershipImage, GroupImage, MembershipImage,
    PlanList, ServicePlanImage, StateImage, StateKey, TenantImage, UserImage,
};

/// Converts state records of one engine into [`StateImage`]s, each distinct plan set into its
/// list of ids once ([`Engine::state_imager`]).
pub struct StateImager<'a> {
    engine: &'a Engine,
    plan_lists: FxHashMap<PlanSetId, PlanList>,
}

impl StateImager<'_> {
    fn plan_list(&mut self, plans: PlanSetId) -> PlanList {
        let engine = self.engine;
        self.plan_lists
            .entry(plans)
            .or_insert_with(|| engine.plan_list_of(plans))
            .clone()
    }

    /// The persisted form of a state record.
    pub fn image(&mut self, record: &StateRecord) -> StateImage {
        let engine = self.engine;
        StateImage {
            sku_id: engine.sku(record.sku).id,
            assigned_by_group: engine.source_of(record.source).assigned_by_group(),
            status: record.status,
            cause: record
                .cause
                .map(|cause| engine.cause_image(engine.causes.get(cause))),
            disabled_plans: self.plan_list(record.disabled_plans),
            granted_plans: record.granted_plans.map(|granted| self.plan_list(granted)),
            since: record.since,
            last_updated: record.last_updated,
        }
    }
}

/// Plan lists of an image already resolved, by the address of the shared list (each kept alive
/// by the map, so an address is never reused while it is a key).
pub(crate) type RestoredPlanLists = FxHashMap<usize, (PlanList, PlanSetId)>;

/// Names a user in a [`RestoreError`], formatted only when there is an error.
struct UserReferrer(Uuid);

impl std::fmt::Display for UserReferrer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "user {}", self.0)
    }
}

/// Buffers of one [`Engine::from_image`].
#[derive(Default)]
pub(crate) struct RestoreScratch {
    /// Users whose causes named a group that no longer exists, to queue.
    pub(crate) stale_causes: Vec<UserRef>,
    plan_lists: RestoredPlanLists,
}

/// Why an image cannot be turned into an engine.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("{what} {id} is referenced by {referenced_by} but does not exist")]
    UnknownReference {
        what: &'static str,
        id: Uuid,
        referenced_by: String,
    },
    #[error("{what} {id} appears twice")]
    Duplicate { what: &'static str, id: Uuid },
    #[error("invalid image: {0}")]
    Invalid(String),
}

/// Rebuilds an engine from an image delivered in parts, so that a store can restore the users
/// it has read while it reads the next ones: first the catalog and the groups
/// ([`EngineRestorer::new`]), then the users in the engine's order, in as many
/// [`EngineRestorer::add_users`] calls as it likes, then [`EngineRestorer::finish`].
/// [`Engine::from_image`] is exactly this with all users at once.
pub struct EngineRestorer {
    pub(crate) engine: Engine,
    pub(crate) scratch: RestoreScratch,
}

impl EngineRestorer {
    /// Starts from the tenant's settings, service plans, products and groups.
    pub fn new(
        settings: TenantSettings,
        service_plans: &[ServicePlanImage],
        skus: Vec<SkuDefinition>,
        groups: &[GroupImage],
    ) -> Result<EngineRestorer, RestoreError> {
        let mut engine = Engine::new(settings);
        if service_plans.len() > MAX_SERVICE_PLANS {
            return Err(RestoreError::Invalid(format!(
                "{} service plans, more than the {MAX_SERVICE_PLANS} a tenant can have",
                service_plans.len()
            )));
        }
        for plan in service_plans {
            if !engine.catalog.restore_plan(&plan.definition, plan.rules.clone()) {
                return Err(RestoreError::Duplicate {
                    what: "service plan",
                    id: plan.definition.service_plan_id,
                });
            }
        }
        engine
            .catalog
            .link_restored_rules()
            .map_err(|(id, referencing)| RestoreError::UnknownReference {
                what: "service plan",
                id,
                referenced_by: format!("the rules of service plan {referencing}"),
            })?;
        for definition in skus {
            let sku_id = definition.sku_id;
            let duplicate = RestoreError::Duplicate {
                what: "product",
                id: sku_id,
            };
            if engine.catalog.find_sku(sku_id).is_some() {
                return Err(duplicate);
            }
            let referenced_by = format!("product {}", definition.sku_part_number);
            let plan_order: Vec<PlanRef> = definition
                .service_plans
                .iter()
                .map(|plan| engine.resolve_plan(plan.service_plan_id, &referenced_by))
                .collect::<Result<_, _>>()?;
            if engine.catalog.restore_sku(definition, plan_order).is_none() {
                return Err(duplicate);
            }
            engine.states.add_sku();
        }
        for group in groups {
            if engine.directory.find_group(group.id).is_some() {
                return Err(RestoreError::Duplicate {
                    what: "group",
                    id: group.id,
                });
            }
            let referenced_by = format!("group {}", group.id);
            let mut licenses = Vec::with_capacity(group.licenses.len());
            for license in &group.licenses {
                let sku = engine.resolve_sku(license.sku_id, &referenced_by)?;
                let disabled = engine.resolve_plans(&license.disabled_plans, &referenced_by)?;
                licenses.push(GroupLicense {
                    sku,
                    disabled_plans: engine.plan_sets.intern(disabled),
                });
            }
            let restored = engine.add_group(
                group.id,
                group.display_name.clone(),
                licenses,
                group.licensed_since,
            );
            engine.restore_dynamic_membership(restored, group.dynamic_membership.as_ref())?;
        }
        engine.order_restored_rules();
        Ok(EngineRestorer {
            engine,
            scratch: RestoreScratch::default(),
        })
    }

    /// Makes room for `users` more users (optional; saves growing the indexes as they come).
    pub fn reserve_users(&mut self, users: usize) {
        self.engine.reserve_users(users);
    }

    /// Restores the next users, in the engine's order (after those of earlier calls).
    pub fn add_users(&mut self, users: impl IntoIterator<Item = UserImage>) -> Result<(), RestoreError> {
        for user in users {
            self.engine.restore_user(user, &mut self.scratch)?;
        }
        Ok(())
    }

    /// Sets the clock, queues the stored queue and sets the directory attributes.
    /// Restores the nesting edges between the groups (any time before [`EngineRestorer::finish`]).
    pub fn add_group_nestings(
        &mut self,
        edges: &[crate::nesting::GroupNestingImage],
    ) -> Result<(), RestoreError> {
        self.engine
            .restore_nesting(edges)
            .map_err(|error| RestoreError::Invalid(error.to_string()))
    }

    pub fn finish(
        mut self,
        clock: u64,
        queue: Vec<Uuid>,
        directory_attributes: Vec<(Uuid, String)>,
    ) -> Result<Engine, RestoreError> {
        let engine = &mut self.engine;
        engine.clock = clock;
        for user_id in queue {
            let user = engine
                .directory
                .find_user(user_id)
                .ok_or(RestoreError::UnknownReference {
                    what: "user",
                    id: user_id,
                    referenced_by: "the queue".to_string(),
                })?;
            engine.enqueue(user);
        }
        // After the stored queue, so its order is kept; already queued users keep their place.
        for user in std::mem::take(&mut self.scratch.stale_causes) {
            engine.enqueue(user);
        }
        engine.queue.clear_newly_queued();
        for (object_id, text) in directory_attributes {
            if !engine.directory.contains_object(object_id) {
                return Err(RestoreError::UnknownReference {
                    what: "user or group",
                    id: object_id,
                    referenced_by: "directory attributes".to_string(),
                });
            }
            if engine.directory.set_attributes(object_id, Some(text)) {
                return Err(RestoreError::Duplicate {
                    what: "directory attributes of",
                    id: object_id,
                });
            }
        }
        Ok(self.engine)
    }
}

impl Engine {
    /// The engine's logical clock (persist it with the tenant).
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Queued users in queue order.
    pub fn queued_user_ids(&self) -> Vec<Uuid> {
        self.queue
            .queued_in_order()
            .filter_map(|user| self.directory.user_if_live(user).map(|user| user.id))
            .collect()
    }

    pub(crate) fn plan_id_list(&self, plans: &PlanSet) -> Vec<Uuid> {
        plans.iter().map(|plan| self.plan(plan).id).collect()
    }

    pub(crate) fn cause_image(&self, cause: &Cause) -> CauseImage {
        match cause {
            Cause::Count { sku } => CauseImage::Count {
                sku_id: self.sku(*sku).id,
            },
            Cause::MutuallyExclusive {
                plan,
                conflicting_plan,
                conflicting_sku,
                conflicting_source,
            } => CauseImage::MutuallyExclusive {
                plan_id: self.plan(*plan).id,
                conflicting_plan_id: self.plan(*conflicting_plan).id,
                conflicting_sku_id: self.sku(*conflicting_sku).id,
                conflicting_source: self.source_of(*conflicting_source),
            },
            Cause::MissingPrerequisite { plan } => CauseImage::MissingPrerequisite {
                plan_id: self.plan(*plan).id,
            },
            Cause::RemovalBlocked {
                dependent_plan,
                dependent_sku,
                dependent_source,
            } => CauseImage::RemovalBlocked {
                dependent_plan_id: self.plan(*dependent_plan).id,
                dependent_sku_id: self.sku(*dependent_sku).id,
                dependent_source: dependent_source.map(|source| self.source_of(source)),
            },
            Cause::UsageLocation {
                plan,
                location,
                inherited_from_tenant,
            } => CauseImage::UsageLocation {
                plan_id: plan.map(|plan| self.plan(plan).id),
                location: *location,
                inherited_from_tenant: *inherited_from_tenant,
            },
            Cause::Uniqueness { proxy_address } => CauseImage::Uniqueness {
                proxy_address: proxy_address.to_string(),
            },
            Cause::BlockedBySibling { sku, kind } => CauseImage::BlockedBySibling {
                sku_id: self.sku(*sku).id,
                kind: *kind,
            },
        }
    }

    /// The persisted form of a state record. To convert many, use [`Engine::state_imager`].
    pub fn state_image(&self, record: &StateRecord) -> StateImage {
        self.state_imager().image(record)
    }

    /// Converts many state records into images, building each distinct plan list once and
    /// sharing it between the images.
    pub fn state_imager(&self) -> StateImager<'_> {
        StateImager {
            engine: self,
            plan_lists: FxHashMap::default(),
        }
    }

    /// State changes as images: only the last change of each state, as an insert when the
    /// state did not exist before its first change, as an update when it did, as a deleted key
    /// when it is gone. Products, groups and plans are named as they are now, so call it on the
    /// engine that produced the changes, before it changes again.
    pub fn changed_states(&self, changes: &[StateChange]) -> ChangedStates {
        // Per state: the index of its first and of its last change.
        let mut span: FxHashMap<(Uuid, SkuRef, Source), (usize, usize)> = FxHashMap::default();
        span.reserve(changes.len());
        for (index, change) in changes.iter().enumerate() {
            span.entry((change.user_id, change.sku, change.source))
                .and_modify(|(_, last)| *last = index)
                .or_insert((index, index));
        }
        // Usually every state changes once and the changes are taken as they come.
        let kept: Vec<(usize, usize)> = if span.len() == changes.len() {
            (0..changes.len()).map(|index| (index, index)).collect()
        } else {
            let mut kept: Vec<(usize, usize)> = span.into_values().collect();
            kept.sort_unstable_by_key(|(_, last)| *last);
            kept
        };
        // Each distinct plan set becomes one shared list of ids, whatever the number of states.
        let mut imager = self.state_imager();
        let written = kept
            .iter()
            .filter(|(_, last)| changes[*last].after.is_some())
            .count();
        let inserts = kept
            .iter()
            .filter(|(first, last)| changes[*last].after.is_some() && changes[*first].before.is_none())
            .count();
        let mut states = ChangedStates {
            inserted: Vec::with_capacity(inserts),
            updated: Vec::with_capacity(written - inserts),
            deleted: Vec::new(),
        };
        for (first, last) in kept {
            let change = &changes[last];
            match &change.after {
                Some(record) => {
                    let write = (change.user_id, imager.image(record));
                    if changes[first].before.is_none() {
                        states.inserted.push(write);
                    } else {
                        states.updated.push(write);
                    }
                }
                None => states.deleted.push(StateKey {
                    user_id: change.user_id,
                    sku_id: self.sku_id_of(change.sku),
                    assigned_by_group: self.source_of(change.source).assigned_by_group(),
                }),
            }
        }
        states
    }

    fn plan_list_of(&self, plans: PlanSetId) -> PlanList {
        self.plan_sets
            .get(plans)
            .iter()
            .map(|plan| self.plan(plan).id)
            .collect()
    }

    fn user_image_of(&self, user_ref: UserRef, imager: &mut StateImager<'_>) -> UserImage {
        let mut image = self.user_image_without_states(self.user(user_ref));
        image.states = self
            .states
            .of(user_ref)
            .iter()
            .map(|record| imager.image(record))
            .collect();
        image
    }

    /// A user's image with no states (what a command changes is the intent).
    pub(crate) fn user_image_without_states(&self, user: &User) -> UserImage {
        UserImage {
            id: user.id,
            user_principal_name: user.user_principal_name.to_string(),
            display_name: user.display_name.to_string(),
            usage_location: user.usage_location,
            proxy_addresses: user.proxy_addresses.to_vec(),
            account_enabled: user.account_enabled,
            attributes: self.directory.user_attribute_values(user),
            direct_licenses: user
                .direct
                .iter()
                .map(|direct| DirectLicenseImage {
                    license: AssignedLicense {
                        sku_id: self.sku(direct.sku).id,
                        disabled_plans: self.plan_id_list(self.plan_sets.get(direct.disabled_plans)),
                    },
                    since: direct.since,
                })
                .collect(),
            memberships: user
                .memberships
                .iter()
                .map(|membership| MembershipImage {
                    group_id: self.group(membership.group).id,
                    since: membership.since,
                })
                .collect(),
            states: Vec::new(),
        }
    }

    /// One user's image.
    pub fn user_image(&self, user_id: Uuid) -> Result<UserImage, crate::CommandError> {
        let user = self.user_ref(user_id)?;
        Ok(self.user_image_of(user, &mut self.state_imager()))
    }

    pub(crate) fn group_image_of(&self, group: &Group) -> GroupImage {
        GroupImage {
            id: group.id,
            display_name: group.display_name.clone(),
            licenses: group
                .licenses
                .iter()
                .map(|license| AssignedLicense {
                    sku_id: self.sku(license.sku).id,
                    disabled_plans: self.plan_id_list(self.plan_sets.get(license.disabled_plans)),
                })
                .collect(),
            licensed_since: group.licensed_since,
            dynamic_membership: self
                .directory
                .find_group(group.id)
                .and_then(|group| self.dynamic_membership_image(group)),
        }
    }

    /// One group's image.
    pub fn group_image(&self, group_id: Uuid) -> Result<GroupImage, crate::CommandError> {
        Ok(self.group_image_of(self.group(self.group_ref(group_id)?)))
    }

    /// One product's definition with its current seats and status.
    pub fn sku_definition(&self, sku_id: Uuid) -> Result<SkuDefinition, crate::CommandError> {
        let sku = self.sku(self.sku_ref(sku_id)?);
        Ok(self.sku_definition_of(sku))
    }

    pub(crate) fn sku_definition_of(&self, sku: &Sku) -> SkuDefinition {
        SkuDefinition {
            sku_id: sku.id,
            sku_part_number: sku.part_number.clone(),
            display_name: sku.display_name.clone(),
            applies_to: sku.applies_to,
            service_plans: sku
                .plan_order
                .iter()
                .map(|plan| {
                    let plan = self.plan(*plan);
                    ServicePlanDefinition {
                        service_plan_id: plan.id,
                        service_plan_name: plan.name.clone(),
                        display_name: plan.display_name.clone(),
                    }
                })
                .collect(),
            prepaid_units: sku.prepaid_units,
            capability_status: sku.capability_status,
        }
    }

    /// Every service plan with its rules, in registration order.
    pub fn service_plan_images(&self) -> Vec<ServicePlanImage> {
        self.catalog
            .plans()
            .iter()
            .map(|plan| ServicePlanImage {
                definition: ServicePlanDefinition {
                    service_plan_id: plan.id,
                    service_plan_name: plan.name.clone(),
                    display_name: plan.display_name.clone(),
                },
                rules: plan.rules.clone(),
            })
            .collect()
    }

    /// The whole tenant.
    pub fn to_image(&self) -> TenantImage {
        let mut imager = self.state_imager();
        TenantImage {
            users: self
                .directory
                .users()
                .map(|(user, _)| self.user_image_of(user, &mut imager))
                .collect(),
            ..self.image_without_users()
        }
    }

    /// Every user's and group's directory attributes, in id order.
    pub fn directory_attribute_images(&self) -> Vec<(Uuid, String)> {
        let mut all: Vec<(Uuid, String)> = self
            .directory
            .all_attributes()
            .map(|(id, text)| (id, text.to_string()))
            .collect();
        all.sort_unstable_by_key(|(id, _)| *id);
        all
    }

    /// Rebuilds an engine from an image. Nothing is re-validated against the licensing rules
    /// (the image is what was accepted before), but every reference must resolve.
    ///
    /// The same as an [`EngineRestorer`] given the image's catalog and groups, then its users,
    /// then its clock, queue and directory attributes.
    pub fn from_image(image: TenantImage) -> Result<Engine, RestoreError> {
        let TenantImage {
            settings,
            clock,
            service_plans,
            skus,
            groups,
            users,
            queue,
            directory_attributes,
            group_nestings,
        } = image;
        let mut restorer = EngineRestorer::new(settings, &service_plans, skus, &groups)?;
        restorer.add_group_nestings(&group_nestings)?;
        restorer.reserve_users(users.len());
        restorer.add_users(users)?;
        restorer.finish(clock, queue, directory_attributes)
    }

    /// Restores one user; pushes it to `scratch.stale_causes` when a cause of its states named
    /// a group that no longer exists.
    fn restore_user(&mut self, image: UserImage, scratch: &mut RestoreScratch) -> Result<(), RestoreError> {
        // A user whose id or principal name is taken is refused when it is inserted (one probe
        // of each index instead of a look-up here and an insert there: about a microsecond a
        // user of a large tenant, mostly cache misses).
        let principal_key: Box<str> = image.user_principal_name.to_lowercase().into();
        // Formatted only when a reference does not resolve.
        let referenced_by = &UserReferrer(image.id);
        let mut direct = Vec::with_capacity(image.direct_licenses.len());
        for license in &image.direct_licenses {
            let sku = self.resolve_sku(license.license.sku_id, referenced_by)?;
            let disabled = self.resolve_plans(&license.license.disabled_plans, referenced_by)?;
            direct.push(DirectLicense {
                sku,
                disabled_plans: self.plan_sets.intern(disabled),
                since: license.since,
            });
        }
        let mut memberships = Vec::with_capacity(image.memberships.len());
        for membership in &image.memberships {
            memberships.push(Membership {
                group: self.resolve_group(membership.group_id, referenced_by)?,
                since: membership.since,
            });
        }
        let mut states = Vec::with_capacity(image.states.len());
        let mut named_missing_group = false;
        for state in &image.states {
            states.push(self.restore_state(
                state,
                referenced_by,
                &mut scratch.plan_lists,
                &mut named_missing_group,
            )?);
        }
        sort_records(&mut states);
        let attributes = self.directory.intern_user_attributes(&image.attributes);
        let restored = self.directory.insert_restored_user(
            User {
                id: image.id,
                user_principal_name: image.user_principal_name.into(),
                display_name: image.display_name.into(),
                usage_location: image.usage_location,
                proxy_addresses: image.proxy_addresses.into(),
                shared_addresses: 0,
                account_enabled: image.account_enabled,
                attributes,
                direct,
                memberships,
            },
            principal_key,
        );
        let user = match restored {
            Ok(user) => user,
            Err((crate::directory::RestoredUserConflict::Id, record)) => {
                return Err(RestoreError::Duplicate {
                    what: "user",
                    id: record.id,
                })
            }
            Err((crate::directory::RestoredUserConflict::PrincipalName, record)) => {
                return Err(RestoreError::Invalid(format!(
                    "userPrincipalName {} is used by two users",
                    record.user_principal_name
                )))
            }
        };
        self.queue.add_user();
        self.states.add_user();
        // A new user has no states to compare with: no changes to build and throw away.
        let replaced = self.states.replace(user, states, &self.causes);
        debug_assert!(replaced.is_empty());
        if named_missing_group {
            scratch.stale_causes.push(user);
        }
        Ok(())
    }

    /// Restores one state. `named_missing_group` is set when its cause named an assignment of a
    /// group that no longer exists (see `restore_cause`).
    pub(crate) fn restore_state(
        &mut self,
        state: &StateImage,
        referenced_by: &dyn std::fmt::Display,
        plan_lists: &mut RestoredPlanLists,
        named_missing_group: &mut bool,
    ) -> Result<StateRecord, RestoreError> {
        let sku = self.resolve_sku(state.sku_id, referenced_by)?;
        let source = match state.assigned_by_group {
            None => Source::Direct,
            Some(group_id) => Source::Group(self.resolve_group(group_id, referenced_by)?),
        };
        let disabled_plans = self.restore_plan_list(&state.disabled_plans, referenced_by, plan_lists)?;
        let granted_plans = match &state.granted_plans {
            Some(plans) => Some(self.restore_plan_list(plans, referenced_by, plan_lists)?),
            None => None,
        };
        let cause = match &state.cause {
            Some(cause) => {
                let cause = self.restore_cause(cause, source, referenced_by, named_missing_group)?;
                Some(self.causes.intern(cause))
            }
            None => None,
        };
        Ok(StateRecord {
            sku,
            source,
            status: state.status,
            cause,
            disabled_plans,
            granted_plans,
            since: state.since,
            last_updated: state.last_updated,
        })
    }

    /// Resolves and interns a plan list of a state, once per shared list of the image.
    fn restore_plan_list(
        &mut self,
        plans: &PlanList,
        referenced_by: &dyn std::fmt::Display,
        plan_lists: &mut RestoredPlanLists,
    ) -> Result<PlanSetId, RestoreError> {
        let address = Arc::as_ptr(plans) as *const Uuid as usize;
        if let Some((_, id)) = plan_lists.get(&address) {
            return Ok(*id);
        }
        let set = self.resolve_plans(plans, referenced_by)?;
        let id = self.plan_sets.intern(set);
        // The map keeps the list alive, so its address names it for the whole restore.
        plan_lists.insert(address, (plans.clone(), id));
        Ok(id)
    }

    /// The source a cause names, `None` when it is a group that no longer exists (or the nil
    /// GUID older versions wrote for one).
    fn restore_named_source(&self, source: &AssignmentSource) -> Option<Source> {
        match source {
            AssignmentSource::Direct => Some(Source::Direct),
            AssignmentSource::Group(group_id) => self.directory.find_group(*group_id).map(Source::Group),
        }
    }

    /// Restores a cause of a state from `own_source`. A cause is a past explanation: the
    /// assignment it names (the holder of a conflicting or a dependent plan) may belong to a
    /// group deleted since, which must not make the tenant unloadable. Such a name is replaced
    /// by what the evaluation says when it cannot tell (a conflict held by the assignment
    /// itself, a dependent of unknown source), `named_missing_group` is set, and the user is
    /// queued so that the next evaluation records the cause as it is now.
    pub(crate) fn restore_cause(
        &self,
        cause: &CauseImage,
        own_source: Source,
        referenced_by: &dyn std::fmt::Display,
        named_missing_group: &mut bool,
    ) -> Result<Cause, RestoreError> {
        Ok(match cause {
            CauseImage::Count { sku_id } => Cause::Count {
                sku: self.resolve_sku(*sku_id, referenced_by)?,
            },
            CauseImage::MutuallyExclusive {
                plan_id,
                conflicting_plan_id,
                conflicting_sku_id,
                conflicting_source,
            } => Cause::MutuallyExclusive {
                plan: self.resolve_plan(*plan_id, referenced_by)?,
                conflicting_plan: self.resolve_plan(*conflicting_plan_id, referenced_by)?,
                conflicting_sku: self.resolve_sku(*conflicting_sku_id, referenced_by)?,
                conflicting_source: match self.restore_named_source(conflicting_source) {
                    Some(source) => source,
                    None => {
                        *named_missing_group = true;
                        own_source
                    }
                },
            },
            CauseImage::MissingPrerequisite { plan_id } => Cause::MissingPrerequisite {
                plan: self.resolve_plan(*plan_id, referenced_by)?,
            },
            CauseImage::RemovalBlocked {
                dependent_plan_id,
                dependent_sku_id,
                dependent_source,
            } => Cause::RemovalBlocked {
                dependent_plan: self.resolve_plan(*dependent_plan_id, referenced_by)?,
                dependent_sku: self.resolve_sku(*dependent_sku_id, referenced_by)?,
                dependent_source: match dependent_source {
                    Some(source) => {
                        let restored = self.restore_named_source(source);
                        *named_missing_group |= restored.is_none();
                        restored
                    }
                    None => None,
                },
            },
            CauseImage::UsageLocation {
                plan_id,
                location,
                inherited_from_tenant,
            } => Cause::UsageLocation {
                plan: match plan_id {
                    Some(plan_id) => Some(self.resolve_plan(*plan_id, referenced_by)?),
                    None => None,
                },
                location: *location,
                inherited_from_tenant: *inherited_from_tenant,
            },
            CauseImage::Uniqueness { proxy_address } => Cause::Uniqueness {
                proxy_address: proxy_address.as_str().into(),
            },
            CauseImage::BlockedBySibling { sku_id, kind } => Cause::BlockedBySibling {
                sku: self.resolve_sku(*sku_id, referenced_by)?,
                kind: *kind,
            },
        })
    }

    pub(crate) fn resolve_plan(
        &self,
        id: Uuid,
        referenced_by: &dyn std::fmt::Display,
    ) -> Result<PlanRef, RestoreError> {
        self.catalog
            .find_plan(id)
            .ok_or_else(|| RestoreError::UnknownReference {
                what: "service plan",
                id,
                referenced_by: referenced_by.to_string(),
            })
    }

    pub(crate) fn resolve_plans(
        &self,
        ids: &[Uuid],
        referenced_by: &dyn std::fmt::Display,
    ) -> Result<PlanSet, RestoreError> {
        let mut set = PlanSet::EMPTY;
        for id in ids {
            set.insert(self.resolve_plan(*id, referenced_by)?);
        }
        Ok(set)
    }

    pub(crate) fn resolve_sku(
        &self,
        id: Uuid,
        referenced_by: &dyn std::fmt::Display,
    ) -> Result<SkuRef, RestoreError> {
        self.catalog
            .find_sku(id)
            .ok_or_else(|| RestoreError::UnknownReference {
                what: "product",
                id,
                referenced_by: referenced_by.to_string(),
            })
    }

    pub(crate) fn resolve_group(
        &self,
        id: Uuid,
        referenced_by: &dyn std::fmt::Display,
    ) -> Result<GroupRef, RestoreError> {
        self.directory
            .find_group(id)
            .ok_or_else(|| RestoreError::UnknownReference {
                what: "group",
                id,
                referenced_by: referenced_by.to_string(),
            })
    }
}
