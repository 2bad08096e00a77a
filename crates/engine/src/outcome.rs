//! What the engine hands back: [`CommandOutcome`] for an accepted command (the state changes
//! applied at once, the users queued, and the changed entities and states as images, so a store
//! writes them without reading the engine back) and [`ProcessReport`] for a processing step.

use crate::image_data::{ChangedStates, GroupImage, ServicePlanImage, UserImage};
use crate::model::{SkuDefinition, TenantSettings, Uuid};
use crate::states::StateChange;

/// What a command did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandOutcome {
    /// State changes applied at once (direct assignments, deleted users).
    pub changes: Vec<StateChange>,
    /// Number of users newly queued for background evaluation.
    pub queued_users: usize,
    /// The users newly queued, in queue order (a store persists them as queue entries).
    pub newly_queued: Vec<Uuid>,
    /// The entities whose stored intent the command changed.
    pub touched: Touched,
    /// The entities of `touched` as they are after the command (boxed: an outcome is returned
    /// by value for every command). Empty from [`crate::Engine::apply_without_images`].
    pub images: Box<ChangedImages>,
    /// The engine's logical clock after the command.
    pub clock: u64,
}

/// Which stored entities a command changed, so a store rewrites exactly those.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    pub settings: bool,
    /// Products whose definition, seats or status changed.
    pub skus: Vec<Uuid>,
    /// Whether service plans or their rules changed.
    pub service_plans: bool,
    /// Users whose properties, direct licenses or memberships changed.
    pub users: Vec<Uuid>,
    /// Of `users`, those of which the command changed only some rows, and which: a store writes
    /// just those. A user of `users` without an entry here changed as a whole (it was created).
    pub user_edits: Vec<(Uuid, UserEdit)>,
    pub deleted_users: Vec<Uuid>,
    /// Groups whose properties or licenses changed.
    pub groups: Vec<Uuid>,
    pub deleted_groups: Vec<Uuid>,
    /// Users and groups whose directory attributes were set or cleared
    /// ([`crate::Command::SetDirectoryAttributes`]; deleting an object deletes them without a
    /// mention here).
    pub directory_attributes: Vec<Uuid>,
    /// Nesting edges added or removed, as (group, member group).
    pub group_nestings: Vec<(Uuid, Uuid)>,
}

/// What a command changed of a stored user, when less than the whole user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserEdit {
    /// Its properties (principal name, display name, usage location, proxy addresses, account
    /// enabled): not its direct licenses or memberships.
    Properties,
    /// A membership of the group began: the user's last membership.
    MembershipAdded { group_id: Uuid },
    /// The membership of the group ended (the other memberships keep their order).
    MembershipRemoved { group_id: Uuid },
    /// Direct licenses: those of the `removed` products are gone (the others keep their order);
    /// those of the `set` products were added (after the others) or given new disabled plans
    /// (in place).
    DirectLicenses { removed: Vec<Uuid>, set: Vec<Uuid> },
}

/// The entities a command changed ([`Touched`]), as they are after it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangedImages {
    /// The tenant settings, when they changed.
    pub settings: Option<TenantSettings>,
    /// Every service plan with its rules, in registration order, when plans or rules changed.
    pub service_plans: Option<Vec<ServicePlanImage>>,
    /// The touched products with their current seats and status.
    pub skus: Vec<SkuDefinition>,
    /// The touched users, without states (those are in `states`).
    pub users: Vec<UserImage>,
    pub groups: Vec<GroupImage>,
    /// The touched objects' attributes: `None` once cleared.
    pub directory_attributes: Vec<(Uuid, Option<String>)>,
    /// The touched nesting edges: `Some(edge)` when it exists after the command, `None` (with
    /// the group and member group ids) once removed.
    pub group_nestings: Vec<((Uuid, Uuid), Option<crate::nesting::GroupNestingImage>)>,
    /// [`CommandOutcome::changes`] as images.
    pub states: ChangedStates,
}

/// What one processing step did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessReport {
    pub evaluated_users: usize,
    pub changes: Vec<StateChange>,
    /// `changes` as images, ready to persist. Empty unless the step ran with
    /// [`crate::Engine::process_batch_with_images`].
    pub states: ChangedStates,
    /// Users still queued after this step.
    pub remaining_users: usize,
    /// The users evaluated, in order.
    pub evaluated: Vec<Uuid>,
    /// Users queued during this step (self-healing hand-offs, ...) and still queued at its end.
    pub requeued: Vec<Uuid>,
    /// The engine's logical clock after the step.
    pub clock: u64,
}
