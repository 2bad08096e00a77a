//! licensd's licensing engine: the group-based licensing rules of Microsoft Entra ID as a pure,
//! incremental library. It knows nothing of tokio, SQL, HTTP or JSON, and has no clock: callers
//! pass the time in.
//!
//! - Change the tenant only through [`Command`]s with [`Engine::apply`]; each is validated at
//!   once and either refused with a typed [`CommandError`] (nothing changed) or accepted.
//! - Accepted commands queue the users they affect; [`Engine::process_batch`] evaluates them
//!   in the background order of the semantics and returns the [`StateChange`]s to persist.
//! - Queries ([`Engine::user_license_states`], [`Engine::sku_usage`], ...) answer what an
//!   administrator needs to see, with structured [`LicenseErrorDetail`]s.

// `CommandError` carries the names of plans and products so every refusal explains itself; it is
// only built on the cold path of a refused command, so its size does not matter.
#![allow(clippy::result_large_err)]

pub mod advisor;
pub mod alerts;
pub mod catalog;
pub mod catch_up;
mod command;
mod cow;
pub mod dense_image;
pub mod diagnosis;
mod directory;
pub mod dynamic_groups;
mod engine;
mod error;
mod evaluate;
pub mod group_migration;
mod handles;
pub mod image;
mod image_data;
pub mod membership_rule;
mod model;
pub mod nesting;
mod outcome;
mod plan_set;
mod query;
mod queue;
pub mod reclamation;
mod rule_sets;
pub mod self_healing;
pub mod setup;
pub mod spend;
mod states;
mod tenant_catalog;
pub mod user_attributes;
pub mod whatif;

pub use advisor::AdvisorReport;
pub use catch_up::{AttributesPatch, PatchError, TenantPatch};
pub use command::{Command, MAX_DIRECTORY_ATTRIBUTES_BYTES};
pub use diagnosis::{DiagnosisOptions, GroupDiagnosis, UserDiagnosis};
pub use dynamic_groups::DynamicMembership;
pub use engine::Engine;
pub use error::{CommandError, LicenseErrorDetail, PlanConflict, PlanName};
pub use handles::{CauseId, GroupRef, SkuRef, Source, UserRef};
pub use membership_rule::{MembershipRule, RuleError, RuleProcessingState};
pub use model::{
    AppliesTo, AssignedLicense, AssignmentSource, AssignmentStatus, CapabilityStatus, CountryCode,
    LicenseErrorKind, LicenseProcessingState, NewUser, ProxyAddress, ServicePlanDefinition, ServicePlanRules,
    SkuDefinition, TenantSettings, Timestamp, UserChanges, Uuid,
};
pub use nesting::GroupNestingImage;
pub use outcome::{ChangedImages, CommandOutcome, ProcessReport, Touched, UserEdit};
pub use plan_set::{PlanRef, PlanSet, PlanSetId, PlanSetInterner, MAX_SERVICE_PLANS};
pub use query::{GroupView, LicenseAssignmentState, LicensedUser, SkuUsage, TenantOverview, UserView};
pub use self_healing::{RequeueReason, SelfHealing};
pub use states::{Cause, StateChange, StateRecord};
pub use user_attributes::{UserAttribute, UserAttributeChanges, UserAttributeValues};
pub use whatif::{WhatIfError, WhatIfOptions, WhatIfReport};
