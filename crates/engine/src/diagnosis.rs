//! Diagnosis: for a user in error (or all the members of a group in error, grouped by cause),
//! what went wrong in structured terms — the rule, the plans, the other assignment or users
//! involved, the location, the seats — and the concrete fixes the seed lists, each an executable
//! list of [`Command`]s with its predicted effect (a what-if, see [`crate::whatif`]).
//!
//! Fixes are proposed from the error's cause; a fix is only offered when its prediction clears
//! the error it is proposed for, so an administrator never sees a fix that would not work. A
//! prediction that breaks other users says so ([`WhatIfReport::breaks_users`]).

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::command::Command;
use crate::error::{CommandError, LicenseErrorDetail, PlanName};
use crate::model::{
    AssignedLicense, AssignmentSource, AssignmentStatus, CountryCode, LicenseErrorKind, Timestamp,
    UserChanges, Uuid,
};
use crate::plan_set::PlanSet;
use crate::whatif::{WhatIfError, WhatIfOptions, WhatIfReport};
use crate::{Cause, CauseId, Engine, GroupRef, SkuRef, Source, StateRecord, UserRef};

/// The licensing rule an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// `prepaidUnits`: a unit of the product is needed.
    Seats,
    /// `mutuallyExclusiveWith`.
    MutuallyExclusivePlans,
    /// `requiresAnyOf`: a plan lacks its prerequisite, or a removal would take it away.
    Prerequisite,
    /// `unavailableIn`, or no usage location at all.
    UsageLocation,
    /// `needsUniqueProxyAddress`.
    UniqueProxyAddress,
    /// A group's products are assigned all together or not at all.
    AllProductsOfAGroup,
}

impl Rule {
    pub fn as_str(&self) -> &'static str {
        match self {
            Rule::Seats => "seats",
            Rule::MutuallyExclusivePlans => "mutuallyExclusiveWith",
            Rule::Prerequisite => "requiresAnyOf",
            Rule::UsageLocation => "unavailableIn",
            Rule::UniqueProxyAddress => "needsUniqueProxyAddress",
            Rule::AllProductsOfAGroup => "allProductsOfAGroup",
        }
    }
}

/// An assignment named in a diagnosis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvolvedAssignment {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub source: AssignmentSource,
    /// The group's display name, `None` for a direct assignment.
    pub group_display_name: Option<String>,
}

/// A user named in a diagnosis.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct InvolvedUser {
    pub user_id: Uuid,
    pub user_principal_name: String,
}

/// Seat figures of a product, current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeatFigures {
    pub prepaid_units: u32,
    pub consumed_units: u32,
    pub waiting_users: usize,
}

/// What an error involves, in structured form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Involvement {
    pub rule: Rule,
    /// The plans of this assignment the rule is about.
    pub plans: Vec<PlanName>,
    /// The plans elsewhere the rule is about (conflicting plans, required plans, ...).
    pub other_plans: Vec<PlanName>,
    /// The other assignment involved (conflicting, dependent, or the failing sibling product).
    pub other_assignment: Option<InvolvedAssignment>,
    /// Other users involved (sharing a proxy address).
    pub other_users: Vec<InvolvedUser>,
    pub proxy_address: Option<String>,
    /// The effective usage location, for location errors.
    pub usage_location: Option<CountryCode>,
    pub usage_location_inherited_from_tenant: bool,
    pub seats: Option<SeatFigures>,
}

/// The kind of a proposed fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FixKind {
    /// The cause is already gone: reprocessing clears the error.
    Reprocess,
    /// Buy enough seats for every user waiting for the product.
    BuySeats,
    /// Take the product away from disabled accounts that hold a seat of it.
    FreeSeatsOfDisabledAccounts,
    /// Remove the conflicting direct license (flagged when redundant with this assignment).
    RemoveConflictingDirectLicense,
    /// Disable the conflicting plans in the other assignment (direct or another group).
    DisableConflictingPlansInOtherAssignment,
    /// Disable the conflicting plans in this assignment (the group's, or the direct one).
    DisableConflictingPlansInThisAssignment,
    /// Keep the prerequisite through a direct assignment of the product that gives it.
    KeepPrerequisiteDirectly,
    /// Disable the dependent plan (or remove its assignment) first.
    DisableDependentPlan,
    /// Remove the user from the group that gives the dependent plan.
    RemoveFromDependentGroup,
    /// Disable the plan whose prerequisite is missing in this assignment.
    DisablePlanWithoutPrerequisite,
    /// Correct the user's usage location to one where the plans are available.
    SetUsageLocation,
    /// Remove the user from the group (location not supported).
    RemoveFromGroup,
    /// Remove the direct license (location not supported).
    RemoveDirectLicense,
    /// Remove the shared proxy address from the other users.
    RemoveProxyAddressFromOtherUsers,
    /// Remove the shared proxy address from this user.
    RemoveProxyAddressFromUser,
}

impl FixKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            FixKind::Reprocess => "Reprocess",
            FixKind::BuySeats => "BuySeats",
            FixKind::FreeSeatsOfDisabledAccounts => "FreeSeatsOfDisabledAccounts",
            FixKind::RemoveConflictingDirectLicense => "RemoveConflictingDirectLicense",
            FixKind::DisableConflictingPlansInOtherAssignment => "DisableConflictingPlansInOtherAssignment",
            FixKind::DisableConflictingPlansInThisAssignment => "DisableConflictingPlansInThisAssignment",
            FixKind::KeepPrerequisiteDirectly => "KeepPrerequisiteDirectly",
            FixKind::DisableDependentPlan => "DisableDependentPlan",
            FixKind::RemoveFromDependentGroup => "RemoveFromDependentGroup",
            FixKind::DisablePlanWithoutPrerequisite => "DisablePlanWithoutPrerequisite",
            FixKind::SetUsageLocation => "SetUsageLocation",
            FixKind::RemoveFromGroup => "RemoveFromGroup",
            FixKind::RemoveDirectLicense => "RemoveDirectLicense",
            FixKind::RemoveProxyAddressFromOtherUsers => "RemoveProxyAddressFromOtherUsers",
            FixKind::RemoveProxyAddressFromUser => "RemoveProxyAddressFromUser",
        }
    }

    /// Whether the fix changes something shared by other users (a group's assignment, seats),
    /// as opposed to the diagnosed user alone.
    fn is_shared(&self) -> bool {
        matches!(
            self,
            FixKind::BuySeats
                | FixKind::FreeSeatsOfDisabledAccounts
                | FixKind::DisableConflictingPlansInThisAssignment
        )
    }
}

/// A proposed fix: an executable change and its predicted effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fix {
    pub kind: FixKind,
    /// What the fix does, in plain language.
    pub description: String,
    /// For a removed direct license: whether it is redundant with this assignment (every plan
    /// it gives is given, or superseded by a conflicting plan, by this assignment's products).
    pub redundant_license: bool,
    /// The change, ending with the reprocess the seed asks for.
    pub commands: Vec<Command>,
    /// How many of the diagnosed users the commands cover.
    pub covered_users: usize,
    /// The predicted effect, when predicted.
    pub prediction: Option<WhatIfReport>,
    /// How many of the diagnosed users the prediction shows cleared (`None` if not predicted).
    pub cleared_users: Option<usize>,
}

/// One error of a user, explained, with its fixes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub source: AssignmentSource,
    pub group_display_name: Option<String>,
    /// For a state held through nested groups (transitive licensing): the path,
    /// "via Platform → Engineering → All Staff" (`crate::nesting`).
    pub licensed_through: Option<String>,
    pub state: AssignmentStatus,
    pub error: LicenseErrorKind,
    pub detail: LicenseErrorDetail,
    pub explanation: String,
    pub involvement: Involvement,
    pub fixes: Vec<Fix>,
}

/// A user's errors, explained, with fixes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserDiagnosis {
    pub user_id: Uuid,
    pub user_principal_name: String,
    pub display_name: String,
    pub account_enabled: bool,
    pub usage_location: Option<CountryCode>,
    /// The user's, else the tenant's default.
    pub effective_usage_location: Option<CountryCode>,
    /// Whether the user is waiting in the queue (its states may change by themselves).
    pub queued: bool,
    /// Why self-healing re-queued the user, while it waits to be evaluated.
    pub pending_self_healing: Option<crate::self_healing::RequeueReason>,
    /// The user's last automatic re-evaluation (self-healing): when, why, and whether its errors
    /// cleared.
    pub last_self_healing: Option<crate::self_healing::SelfHealing>,
    pub problems: Vec<Problem>,
}

/// The members of a group in error for one cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CauseGroup {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub error: LicenseErrorKind,
    /// The explanation of the first user's error (the others share the cause).
    pub explanation: String,
    pub detail: LicenseErrorDetail,
    pub involvement: Involvement,
    pub user_count: usize,
    /// The first users (at most [`DiagnosisOptions::max_listed_users`]).
    pub users: Vec<InvolvedUser>,
    pub fixes: Vec<Fix>,
}

/// A group's members in error, grouped by cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDiagnosis {
    pub group_id: Uuid,
    pub display_name: String,
    pub users_in_error: usize,
    /// Causes, the most users first.
    pub causes: Vec<CauseGroup>,
}

/// How much a diagnosis computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiagnosisOptions {
    /// Predict every fix (one simulation each). Without predictions fixes are not filtered.
    pub predict: bool,
    pub what_if: WhatIfOptions,
    /// Users listed per cause of a group, and covered by per-user fixes.
    pub max_listed_users: usize,
    /// Causes of a group whose fixes are predicted (the largest first); the others are listed
    /// with unpredicted fixes.
    pub max_predicted_causes: usize,
}

impl Default for DiagnosisOptions {
    fn default() -> Self {
        DiagnosisOptions {
            predict: true,
            what_if: WhatIfOptions { max_listed_users: 20 },
            max_listed_users: 1000,
            max_predicted_causes: 10,
        }
    }
}

/// Why a diagnosis could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiagnosisError {
    #[error(transparent)]
    Unknown(#[from] CommandError),
}

/// Service plans that Microsoft's catalog replaces by a plan of another name in higher
/// editions: (lower plan, higher plan).
pub(crate) const SUPERSEDED_BY: &[(&str, &str)] = &[("OFFICEMOBILE_SUBSCRIPTION", "OFFICESUBSCRIPTION")];

/// The service a plan name is about, without its tier marker: the last `_`-separated part when
/// it is a tier (`E1`, `P2`, `PLAN1`, `1`, `STANDARD`, `ENTERPRISE`, `BASIC`), or such a suffix
/// glued to the name (`SHAREPOINTSTANDARD`).
fn plan_family(name: &str) -> &str {
    fn is_tier(part: &str) -> bool {
        let digits = part.trim_start_matches("PLAN").trim_start_matches(['E', 'P']);
        (!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()))
            || matches!(part, "STANDARD" | "ENTERPRISE" | "BASIC")
    }
    if let Some((family, last)) = name.rsplit_once('_') {
        if is_tier(last) && !family.is_empty() {
            return family;
        }
    }
    for suffix in ["STANDARD", "ENTERPRISE", "BASIC"] {
        if let Some(family) = name.strip_suffix(suffix) {
            if !family.is_empty() {
                return family;
            }
        }
    }
    name
}

/// The members of a group failing on one product for one cause, with their records.
type CauseMembers = ((SkuRef, CauseId), Vec<(UserRef, StateRecord)>);

/// A fix before its prediction.
#[derive(Clone, Debug)]
struct Candidate {
    kind: FixKind,
    description: String,
    redundant_license: bool,
    commands: Vec<Command>,
}

/// Values computed once per diagnosis.
#[derive(Default)]
struct Hints {
    /// Usage locations of users, the most common first.
    common_locations: Option<Vec<CountryCode>>,
}

impl Engine {
    fn group_name(&self, group: GroupRef) -> String {
        self.group(group).display_name.clone()
    }

    fn involved_assignment(&self, sku: SkuRef, source: Source) -> InvolvedAssignment {
        InvolvedAssignment {
            sku_id: self.sku(sku).id,
            sku_part_number: self.sku(sku).part_number.clone(),
            source: self.source_of(source),
            group_display_name: match source {
                Source::Direct => None,
                Source::Group(group) => self
                    .directory
                    .group_if_live(group)
                    .map(|g| g.display_name.clone()),
            },
        }
    }

    fn involved_user(&self, user: UserRef) -> InvolvedUser {
        let record = self.user(user);
        InvolvedUser {
            user_id: record.id,
            user_principal_name: record.user_principal_name.to_string(),
        }
    }

    /// The plans the assignments of `source` want for a user (a group: all its products).
    fn wanted_by_source(&self, user: UserRef, source: Source) -> PlanSet {
        match source {
            Source::Direct => self
                .user(user)
                .direct
                .iter()
                .fold(PlanSet::EMPTY, |plans, direct| {
                    plans.union(&self.enabled_plans(direct.sku, direct.disabled_plans))
                }),
            Source::Group(group) => self
                .group(group)
                .licenses
                .iter()
                .fold(PlanSet::EMPTY, |plans, license| {
                    plans.union(&self.enabled_plans(license.sku, license.disabled_plans))
                }),
        }
    }

    /// Whether `plan` is given or superseded by `by_plans`: one of them is the plan itself, is
    /// mutually exclusive with it (a higher plan of the same service, as Exchange Online Plan 2
    /// over Plan 1), is the same service at another tier (the names differ only in a tier
    /// marker: `FORMS_PLAN_E1` and `FORMS_PLAN_E3`), or replaces it in Microsoft's catalog
    /// ([`SUPERSEDED_BY`]).
    pub(crate) fn plan_superseded(&self, plan: crate::plan_set::PlanRef, by_plans: &PlanSet) -> bool {
        if by_plans.contains(plan) || self.plan(plan).excludes.intersects(by_plans) {
            return true;
        }
        let name = self.plan(plan).name.to_ascii_uppercase();
        let family = plan_family(&name);
        by_plans.iter().any(|other| {
            let other_name = self.plan(other).name.to_ascii_uppercase();
            plan_family(&other_name) == family
                || SUPERSEDED_BY
                    .iter()
                    .any(|(lower, higher)| *lower == name && *higher == other_name)
        })
    }

    /// Plans every one of a set excludes.
    fn excluded_by(&self, plans: &PlanSet) -> PlanSet {
        plans
            .intersection(self.catalog.plans_with_exclusions())
            .iter()
            .fold(PlanSet::EMPTY, |excluded, plan| {
                excluded.union(&self.plan(plan).excludes)
            })
    }

    fn involvement(&self, user: UserRef, record: &StateRecord, cause: &Cause) -> Involvement {
        let mut involvement = Involvement {
            rule: Rule::Seats,
            plans: Vec::new(),
            other_plans: Vec::new(),
            other_assignment: None,
            other_users: Vec::new(),
            proxy_address: None,
            usage_location: None,
            usage_location_inherited_from_tenant: false,
            seats: None,
        };
        match cause {
            Cause::Count { sku } => {
                let definition = self.sku(*sku);
                involvement.seats = Some(SeatFigures {
                    prepaid_units: definition.prepaid_units,
                    consumed_units: self.states.consumed_units(*sku),
                    waiting_users: self.states.waiting(*sku).len(),
                });
            }
            Cause::MutuallyExclusive {
                conflicting_sku,
                conflicting_source,
                ..
            } => {
                involvement.rule = Rule::MutuallyExclusivePlans;
                let (this_side, other_side) =
                    self.conflicting_plans(user, record.source, *conflicting_source);
                involvement.plans = self.plan_names(&this_side);
                involvement.other_plans = self.plan_names(&other_side);
                involvement.other_assignment =
                    Some(self.involved_assignment(*conflicting_sku, *conflicting_source));
            }
            Cause::MissingPrerequisite { plan } => {
                involvement.rule = Rule::Prerequisite;
                involvement.plans = vec![self.plan_name(*plan)];
                involvement.other_plans = self.plan_names(&self.plan(*plan).requires_any_of);
            }
            Cause::RemovalBlocked {
                dependent_plan,
                dependent_sku,
                dependent_source,
            } => {
                involvement.rule = Rule::Prerequisite;
                let requires = self.plan(*dependent_plan).requires_any_of;
                let granted = record
                    .granted_plans
                    .map(|id| *self.plan_sets.get(id))
                    .unwrap_or(PlanSet::EMPTY);
                involvement.plans = self.plan_names(&granted.intersection(&requires));
                involvement.other_plans = vec![self.plan_name(*dependent_plan)];
                involvement.other_assignment =
                    dependent_source.map(|source| self.involved_assignment(*dependent_sku, source));
            }
            Cause::UsageLocation {
                plan,
                location,
                inherited_from_tenant,
            } => {
                involvement.rule = Rule::UsageLocation;
                involvement.plans = plan.iter().map(|plan| self.plan_name(*plan)).collect();
                involvement.usage_location = *location;
                involvement.usage_location_inherited_from_tenant = *inherited_from_tenant;
            }
            Cause::Uniqueness { proxy_address } => {
                involvement.rule = Rule::UniqueProxyAddress;
                let wanted = self.enabled_plans(record.sku, record.disabled_plans);
                involvement.plans = self.plan_names(&wanted.intersection(self.catalog.mailbox_plans()));
                involvement.proxy_address = Some(proxy_address.to_string());
                involvement.other_users = self
                    .users_with_address(proxy_address)
                    .into_iter()
                    .filter(|other| *other != user)
                    .map(|other| self.involved_user(other))
                    .collect();
            }
            Cause::BlockedBySibling { sku, .. } => {
                involvement.rule = Rule::AllProductsOfAGroup;
                involvement.other_assignment = Some(self.involved_assignment(*sku, record.source));
            }
        }
        involvement
    }

    /// Users who have a (normalized) proxy address, from the proxy index.
    fn users_with_address(&self, normalized: &str) -> Vec<UserRef> {
        self.directory.users_with_address(normalized)
    }

    /// The plans of `source` that conflict with plans of `other_source`, and those plans, for a user.
    fn conflicting_plans(&self, user: UserRef, source: Source, other_source: Source) -> (PlanSet, PlanSet) {
        let this = self.wanted_by_source(user, source);
        if source == other_source {
            // A conflict inside one group (or product): both sides are in it.
            let both = this.intersection(&self.excluded_by(&this));
            return (both, both);
        }
        let other = self.wanted_by_source(user, other_source);
        (
            this.intersection(&self.excluded_by(&other)),
            other.intersection(&self.excluded_by(&this)),
        )
    }

    /// The root cause of a record: a sibling's own cause when the record is blocked by a sibling.
    fn root_cause(&self, user: UserRef, record: &StateRecord) -> Option<(StateRecord, CauseId)> {
        let cause_id = record.cause?;
        if let Cause::BlockedBySibling { sku, .. } = self.causes.get(cause_id) {
            let sibling = self
                .states
                .of(user)
                .iter()
                .find(|state| state.source == record.source && state.sku == *sku)?;
            let sibling_cause = sibling.cause?;
            if matches!(self.causes.get(sibling_cause), Cause::BlockedBySibling { .. }) {
                return None;
            }
            return Some((*sibling, sibling_cause));
        }
        Some((*record, cause_id))
    }

    fn assigned_license(&self, sku: SkuRef, disabled: &PlanSet) -> AssignedLicense {
        AssignedLicense {
            sku_id: self.sku(sku).id,
            disabled_plans: disabled.iter().map(|plan| self.plan(plan).id).collect(),
        }
    }

    fn plan_list(&self, plans: &PlanSet) -> String {
        plans
            .iter()
            .map(|plan| self.plan(plan).display_name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn source_phrase(&self, source: Source) -> String {
        match source {
            Source::Direct => "the direct assignment".to_string(),
            Source::Group(group) => format!("group \"{}\"", self.group_name(group)),
        }
    }

    /// Usage locations of the tenant's users, the most common first.
    fn common_locations<'h>(&self, hints: &'h mut Hints) -> &'h [CountryCode] {
        hints.common_locations.get_or_insert_with(|| {
            let mut counts: FxHashMap<CountryCode, usize> = FxHashMap::default();
            for user in self.directory.users().map(|(_, user)| user) {
                if let Some(location) = user.usage_location {
                    *counts.entry(location).or_default() += 1;
                }
            }
            if let Some(location) = self.settings.default_usage_location {
                counts.entry(location).or_default();
            }
            let mut locations: Vec<(usize, CountryCode)> = counts
                .into_iter()
                .map(|(location, count)| (count, location))
                .collect();
            locations.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            locations.into_iter().map(|(_, location)| location).collect()
        })
    }

    /// The fixes the seed lists for one error of a user, before prediction. Each ends with a
    /// reprocess of the user.
    fn candidates(
        &self,
        user: UserRef,
        record: &StateRecord,
        cause_id: CauseId,
        hints: &mut Hints,
    ) -> Vec<Candidate> {
        let user_record = self.user(user);
        let user_id = user_record.id;
        let mut candidates = Vec::new();
        let product = &self.sku(record.sku).part_number;
        match self.causes.get(cause_id) {
            Cause::Count { sku } => {
                let definition = self.sku(*sku);
                let consumed_units = self.states.consumed_units(*sku);
                let waiting = self.states.waiting(*sku);
                let demand = consumed_units as u64 + waiting.len().max(1) as u64;
                let needed = demand.saturating_sub(definition.prepaid_units as u64) as u32;
                if needed > 0 {
                    let mut commands = vec![Command::SetPrepaidUnits {
                        sku_id: definition.id,
                        prepaid_units: definition.prepaid_units.saturating_add(needed),
                    }];
                    if !self.settings.self_healing {
                        // Without self-healing, every group with users waiting must be reprocessed.
                        let mut groups: Vec<GroupRef> = Vec::new();
                        for (_, waiting) in waiting {
                            for state in self.states.of(*waiting) {
                                if let (Source::Group(group), Some(cause)) = (state.source, state.cause) {
                                    if *self.causes.get(cause) == (Cause::Count { sku: *sku })
                                        && !groups.contains(&group)
                                    {
                                        groups.push(group);
                                    }
                                }
                            }
                        }
                        commands.extend(groups.into_iter().map(|group| Command::ReprocessGroup {
                            group_id: self.group(group).id,
                        }));
                    }
                    candidates.push(Candidate {
                        kind: FixKind::BuySeats,
                        description: format!(
                            "Buy {needed} more seat(s) of {} ({} purchased, {} assigned, {} user(s) waiting), so \
                             every waiting user gets one.",
                            definition.part_number,
                            definition.prepaid_units,
                            consumed_units,
                            waiting.len()
                        ),
                        redundant_license: false,
                        commands,
                    });
                    // Seats held by disabled accounts.
                    let mut commands = Vec::new();
                    let mut freed = 0u32;
                    for (holder_ref, holder) in self.directory.users() {
                        if freed >= needed {
                            break;
                        }
                        if holder.account_enabled
                            || !self
                                .states
                                .of(holder_ref)
                                .iter()
                                .any(|state| state.sku == *sku && state.holds_unit())
                        {
                            continue;
                        }
                        let mut holder_commands = Vec::new();
                        for state in self
                            .states
                            .of(holder_ref)
                            .iter()
                            .filter(|state| state.sku == *sku)
                        {
                            match state.source {
                                Source::Direct => holder_commands.push(Command::AssignUserLicenses {
                                    user_id: holder.id,
                                    add_licenses: Vec::new(),
                                    remove_licenses: vec![definition.id],
                                }),
                                Source::Group(group) => {
                                    if self.group(group).members.contains(&holder_ref) {
                                        holder_commands.push(Command::RemoveGroupMember {
                                            group_id: self.group(group).id,
                                            user_id: holder.id,
                                        })
                                    }
                                }
                            }
                        }
                        if !holder_commands.is_empty() {
                            commands.extend(holder_commands);
                            freed += 1;
                        }
                    }
                    if freed > 0 {
                        candidates.push(Candidate {
                            kind: FixKind::FreeSeatsOfDisabledAccounts,
                            description: format!(
                                "Free {freed} seat(s) of {} held by disabled accounts (remove their direct \
                                 license or their membership of the groups that give it).",
                                definition.part_number
                            ),
                            redundant_license: false,
                            commands,
                        });
                    }
                }
            }
            Cause::MutuallyExclusive {
                conflicting_source, ..
            } => {
                let conflicting_source = *conflicting_source;
                let (this_side, other_side) = self.conflicting_plans(user, record.source, conflicting_source);
                let this_plans = self.wanted_by_source(user, record.source);
                if conflicting_source != record.source {
                    match conflicting_source {
                        Source::Direct => {
                            // The direct licenses that enable a conflicting plan.
                            let conflicting: Vec<_> = user_record
                                .direct
                                .iter()
                                .filter(|direct| {
                                    self.enabled_plans(direct.sku, direct.disabled_plans)
                                        .intersects(&other_side)
                                })
                                .copied()
                                .collect();
                            if !conflicting.is_empty() {
                                let redundant = conflicting.iter().all(|direct| {
                                    self.enabled_plans(direct.sku, direct.disabled_plans)
                                        .iter()
                                        .all(|plan| self.plan_superseded(plan, &this_plans))
                                });
                                let names = conflicting
                                    .iter()
                                    .map(|direct| self.sku(direct.sku).part_number.clone())
                                    .collect::<Vec<_>>()
                                    .join(", ");
                                candidates.push(Candidate {
                                    kind: FixKind::RemoveConflictingDirectLicense,
                                    description: if redundant {
                                        format!(
                                            "Remove the direct license {names}: it is redundant with {product} from {} \
                                             (every plan it gives is given there, or superseded by a higher plan).",
                                            self.source_phrase(record.source)
                                        )
                                    } else {
                                        format!(
                                            "Remove the direct license {names}, whose plans {} conflict with {}.",
                                            self.plan_list(&other_side),
                                            self.plan_list(&this_side)
                                        )
                                    },
                                    redundant_license: redundant,
                                    commands: vec![Command::AssignUserLicenses {
                                        user_id,
                                        add_licenses: Vec::new(),
                                        remove_licenses: conflicting.iter().map(|direct| self.sku(direct.sku).id).collect(),
                                    }],
                                });
                                candidates.push(Candidate {
                                    kind: FixKind::DisableConflictingPlansInOtherAssignment,
                                    description: format!(
                                        "Disable {} in the user's direct license {names}.",
                                        self.plan_list(&other_side)
                                    ),
                                    redundant_license: false,
                                    commands: vec![Command::AssignUserLicenses {
                                        user_id,
                                        add_licenses: conflicting
                                            .iter()
                                            .map(|direct| {
                                                let disabled =
                                                    self.plan_sets.get(direct.disabled_plans).union(
                                                        &other_side.intersection(&self.sku(direct.sku).plans),
                                                    );
                                                self.assigned_license(direct.sku, &disabled)
                                            })
                                            .collect(),
                                        remove_licenses: Vec::new(),
                                    }],
                                });
                            }
                        }
                        Source::Group(other_group) => {
                            let licenses: Vec<AssignedLicense> = self
                                .group(other_group)
                                .licenses
                                .iter()
                                .filter(|license| {
                                    self.enabled_plans(license.sku, license.disabled_plans)
                                        .intersects(&other_side)
                                })
                                .map(|license| {
                                    let disabled = self
                                        .plan_sets
                                        .get(license.disabled_plans)
                                        .union(&other_side.intersection(&self.sku(license.sku).plans));
                                    self.assigned_license(license.sku, &disabled)
                                })
                                .collect();
                            if !licenses.is_empty() {
                                candidates.push(Candidate {
                                    kind: FixKind::DisableConflictingPlansInOtherAssignment,
                                    description: format!(
                                        "Disable {} in the assignment of group \"{}\" (for all its members).",
                                        self.plan_list(&other_side),
                                        self.group_name(other_group)
                                    ),
                                    redundant_license: false,
                                    commands: vec![Command::AssignGroupLicenses {
                                        group_id: self.group(other_group).id,
                                        add_licenses: licenses,
                                        remove_licenses: Vec::new(),
                                    }],
                                });
                            }
                        }
                    }
                }
                // Disable this side's conflicting plans in this assignment.
                match record.source {
                    Source::Group(group) => {
                        let licenses: Vec<AssignedLicense> = self
                            .group(group)
                            .licenses
                            .iter()
                            .filter(|license| {
                                self.enabled_plans(license.sku, license.disabled_plans)
                                    .intersects(&this_side)
                            })
                            .map(|license| {
                                let disabled = self
                                    .plan_sets
                                    .get(license.disabled_plans)
                                    .union(&this_side.intersection(&self.sku(license.sku).plans));
                                self.assigned_license(license.sku, &disabled)
                            })
                            .collect();
                        if !licenses.is_empty() {
                            candidates.push(Candidate {
                                kind: FixKind::DisableConflictingPlansInThisAssignment,
                                description: format!(
                                    "Disable {} in the assignment of group \"{}\" (for all its members).",
                                    self.plan_list(&this_side),
                                    self.group_name(group)
                                ),
                                redundant_license: false,
                                commands: vec![Command::AssignGroupLicenses {
                                    group_id: self.group(group).id,
                                    add_licenses: licenses,
                                    remove_licenses: Vec::new(),
                                }],
                            });
                        }
                    }
                    Source::Direct => {
                        let disabled = self
                            .plan_sets
                            .get(record.disabled_plans)
                            .union(&this_side.intersection(&self.sku(record.sku).plans));
                        candidates.push(Candidate {
                            kind: FixKind::DisableConflictingPlansInThisAssignment,
                            description: format!(
                                "Disable {} in the user's direct license {product}.",
                                self.plan_list(&this_side)
                            ),
                            redundant_license: false,
                            commands: vec![Command::AssignUserLicenses {
                                user_id,
                                add_licenses: vec![self.assigned_license(record.sku, &disabled)],
                                remove_licenses: Vec::new(),
                            }],
                        });
                    }
                }
            }
            Cause::MissingPrerequisite { plan } => {
                let disabled = {
                    let mut disabled = *self.plan_sets.get(record.disabled_plans);
                    disabled.insert(*plan);
                    disabled
                };
                let command = match record.source {
                    Source::Direct => Command::AssignUserLicenses {
                        user_id,
                        add_licenses: vec![self.assigned_license(record.sku, &disabled)],
                        remove_licenses: Vec::new(),
                    },
                    Source::Group(group) => Command::AssignGroupLicenses {
                        group_id: self.group(group).id,
                        add_licenses: vec![self.assigned_license(record.sku, &disabled)],
                        remove_licenses: Vec::new(),
                    },
                };
                candidates.push(Candidate {
                    kind: FixKind::DisablePlanWithoutPrerequisite,
                    description: format!(
                        "Disable {} in {product} from {}: none of its prerequisites ({}) is enabled.",
                        self.plan(*plan).display_name,
                        self.source_phrase(record.source),
                        self.plan_list(&self.plan(*plan).requires_any_of)
                    ),
                    redundant_license: false,
                    commands: vec![command],
                });
            }
            Cause::RemovalBlocked {
                dependent_plan,
                dependent_sku,
                dependent_source,
            } => {
                let requires = self.plan(*dependent_plan).requires_any_of;
                let granted = record
                    .granted_plans
                    .map(|id| *self.plan_sets.get(id))
                    .unwrap_or(PlanSet::EMPTY);
                let prerequisites = granted.intersection(&requires);
                if !prerequisites.is_empty() && record.source != Source::Direct {
                    // Keep only the prerequisite, directly: the user already holds the unit.
                    let disabled = self.sku(record.sku).plans.difference(&prerequisites);
                    candidates.push(Candidate {
                        kind: FixKind::KeepPrerequisiteDirectly,
                        description: format!(
                            "Keep {} through a direct assignment of {product} with only that plan enabled \
                             (the user already holds a seat of it), so {} keeps its prerequisite.",
                            self.plan_list(&prerequisites),
                            self.plan(*dependent_plan).display_name
                        ),
                        redundant_license: false,
                        commands: vec![Command::AssignUserLicenses {
                            user_id,
                            add_licenses: vec![self.assigned_license(record.sku, &disabled)],
                            remove_licenses: Vec::new(),
                        }],
                    });
                }
                match dependent_source {
                    Some(Source::Direct) => {
                        let direct = user_record
                            .direct
                            .iter()
                            .find(|direct| direct.sku == *dependent_sku);
                        if let Some(direct) = direct {
                            let mut disabled = *self.plan_sets.get(direct.disabled_plans);
                            disabled.insert(*dependent_plan);
                            let still_enabled = !self.sku(direct.sku).plans.difference(&disabled).is_empty();
                            let dependent_part_number = &self.sku(*dependent_sku).part_number;
                            candidates.push(Candidate {
                                kind: FixKind::DisableDependentPlan,
                                description: if still_enabled {
                                    format!(
                                        "Disable {} in the user's direct license {dependent_part_number} first.",
                                        self.plan(*dependent_plan).display_name
                                    )
                                } else {
                                    format!(
                                        "Remove the user's direct license {dependent_part_number}, whose only plan {} \
                                         needs the prerequisite.",
                                        self.plan(*dependent_plan).display_name
                                    )
                                },
                                redundant_license: false,
                                commands: vec![if still_enabled {
                                    Command::AssignUserLicenses {
                                        user_id,
                                        add_licenses: vec![self.assigned_license(direct.sku, &disabled)],
                                        remove_licenses: Vec::new(),
                                    }
                                } else {
                                    Command::AssignUserLicenses {
                                        user_id,
                                        add_licenses: Vec::new(),
                                        remove_licenses: vec![self.sku(direct.sku).id],
                                    }
                                }],
                            });
                        }
                    }
                    Some(Source::Group(group)) if self.group(*group).members.contains(&user) => {
                        candidates.push(Candidate {
                                kind: FixKind::RemoveFromDependentGroup,
                                description: format!(
                                    "Remove the user from group \"{}\", which gives {} that needs the prerequisite.",
                                    self.group_name(*group),
                                    self.plan(*dependent_plan).display_name
                                ),
                                redundant_license: false,
                                commands: vec![Command::RemoveGroupMember {
                                    group_id: self.group(*group).id,
                                    user_id,
                                }],
                            });
                    }
                    Some(Source::Group(_)) | None => {}
                }
            }
            Cause::UsageLocation { .. } => {
                let wanted =
                    self.wanted_by_source(user, Source::Direct)
                        .union(
                            &user_record
                                .memberships
                                .iter()
                                .fold(PlanSet::EMPTY, |plans, membership| {
                                    plans.union(&self.wanted_by_source(user, Source::Group(membership.group)))
                                }),
                        );
                let current = user_record
                    .usage_location
                    .or(self.settings.default_usage_location);
                let allowed = |location: &CountryCode| {
                    Some(*location) != current
                        && !self
                            .catalog
                            .prohibited_in(*location)
                            .is_some_and(|prohibited| prohibited.intersects(&wanted))
                };
                let candidate = self.common_locations(hints).iter().copied().find(allowed);
                if let Some(location) = candidate {
                    candidates.push(Candidate {
                        kind: FixKind::SetUsageLocation,
                        description: format!(
                            "If the user's real usage location is {location}, set it: every plan the user is \
                             assigned is available there."
                        ),
                        redundant_license: false,
                        commands: vec![Command::UpdateUser {
                            user_id,
                            changes: UserChanges {
                                usage_location: Some(Some(location)),
                                ..Default::default()
                            },
                        }],
                    });
                }
                match record.source {
                    Source::Group(group) if self.group(group).members.contains(&user) => {
                        candidates.push(Candidate {
                            kind: FixKind::RemoveFromGroup,
                            description: format!(
                                "Remove the user from group \"{}\": {product} cannot be used in the user's location.",
                                self.group_name(group)
                            ),
                            redundant_license: false,
                            commands: vec![Command::RemoveGroupMember {
                                group_id: self.group(group).id,
                                user_id,
                            }],
                        });
                    }
                    Source::Direct => candidates.push(Candidate {
                        kind: FixKind::RemoveDirectLicense,
                        description: format!(
                            "Remove the direct license {product}: it cannot be used in the user's location."
                        ),
                        redundant_license: false,
                        commands: vec![Command::AssignUserLicenses {
                            user_id,
                            add_licenses: Vec::new(),
                            remove_licenses: vec![self.sku(record.sku).id],
                        }],
                    }),
                    Source::Group(_) => {}
                }
            }
            Cause::Uniqueness { proxy_address } => {
                let without = |owner: UserRef| -> Vec<crate::model::ProxyAddress> {
                    self.user(owner)
                        .proxy_addresses
                        .iter()
                        .filter(|address| address.normalized() != **proxy_address)
                        .cloned()
                        .collect()
                };
                let others: Vec<UserRef> = self
                    .users_with_address(proxy_address)
                    .into_iter()
                    .filter(|other| *other != user)
                    .collect();
                if !others.is_empty() {
                    let names = others
                        .iter()
                        .map(|other| self.user(*other).user_principal_name.to_string())
                        .collect::<Vec<_>>()
                        .join(", ");
                    let mut commands: Vec<Command> = others
                        .iter()
                        .map(|other| Command::UpdateUser {
                            user_id: self.user(*other).id,
                            changes: UserChanges {
                                proxy_addresses: Some(without(*other)),
                                ..Default::default()
                            },
                        })
                        .collect();
                    // The others are reprocessed as well: they may be in error for the same address.
                    commands.extend(others.iter().map(|other| Command::ReprocessUser {
                        user_id: self.user(*other).id,
                    }));
                    candidates.push(Candidate {
                        kind: FixKind::RemoveProxyAddressFromOtherUsers,
                        description: format!(
                            "Remove the duplicate proxy address {proxy_address} from {names}."
                        ),
                        redundant_license: false,
                        commands,
                    });
                }
                candidates.push(Candidate {
                    kind: FixKind::RemoveProxyAddressFromUser,
                    description: format!(
                        "Remove the duplicate proxy address {proxy_address} from this user (it belongs to someone else)."
                    ),
                    redundant_license: false,
                    commands: vec![Command::UpdateUser {
                        user_id,
                        changes: UserChanges {
                            proxy_addresses: Some(without(user)),
                            ..Default::default()
                        },
                    }],
                });
            }
            Cause::BlockedBySibling { .. } => {}
        }
        for candidate in &mut candidates {
            candidate.commands.push(Command::ReprocessUser { user_id });
        }
        candidates
    }

    /// Whether `user`'s assignment of `sku` from `source` is in error in this engine (a user or
    /// assignment that no longer exists is not).
    fn assignment_in_error(&self, user_id: Uuid, sku_id: Uuid, source: AssignmentSource) -> bool {
        let Some(user) = self.directory.find_user(user_id) else {
            return false;
        };
        let Some(sku) = self.catalog.find_sku(sku_id) else {
            return false;
        };
        self.states.of(user).iter().any(|state| {
            state.sku == sku && self.source_of(state.source) == source && state.status.is_error()
        })
    }

    /// Predicts a fix; `targets` are the (user, product, source) errors it is meant to clear.
    fn predict(
        &self,
        candidate: Candidate,
        targets: &[(Uuid, Uuid, AssignmentSource)],
        covered_users: usize,
        at: Timestamp,
        options: &DiagnosisOptions,
    ) -> Option<Fix> {
        if !options.predict {
            return Some(Fix {
                kind: candidate.kind,
                description: candidate.description,
                redundant_license: candidate.redundant_license,
                commands: candidate.commands,
                covered_users,
                prediction: None,
                cleared_users: None,
            });
        }
        let result = self.what_if_inspect(&candidate.commands, at, options.what_if, |simulated| {
            let mut cleared_users: Vec<Uuid> = targets
                .iter()
                .filter(|(user_id, _, _)| {
                    targets.iter().filter(|(other, _, _)| other == user_id).all(
                        |(user_id, sku_id, source)| {
                            !simulated.assignment_in_error(*user_id, *sku_id, *source)
                        },
                    )
                })
                .map(|(user_id, _, _)| *user_id)
                .collect();
            cleared_users.sort_unstable();
            cleared_users.dedup();
            cleared_users.len()
        });
        match result {
            Ok((prediction, cleared)) if cleared > 0 => Some(Fix {
                kind: candidate.kind,
                description: candidate.description,
                redundant_license: candidate.redundant_license,
                commands: candidate.commands,
                covered_users,
                prediction: Some(prediction),
                cleared_users: Some(cleared),
            }),
            // Refused, or clears nothing: not a fix.
            Ok(_) | Err(WhatIfError::CommandRefused { .. }) | Err(WhatIfError::NoChanges) => None,
        }
    }

    fn problem_fixes(
        &self,
        user: UserRef,
        record: &StateRecord,
        hints: &mut Hints,
        at: Timestamp,
        options: &DiagnosisOptions,
    ) -> Vec<Fix> {
        let user_id = self.user(user).id;
        let target = (user_id, self.sku(record.sku).id, self.source_of(record.source));
        let mut fixes = Vec::new();
        let reprocess = Candidate {
            kind: FixKind::Reprocess,
            description: "Reprocess the user: the cause of the error is already gone.".to_string(),
            redundant_license: false,
            commands: vec![Command::ReprocessUser { user_id }],
        };
        if options.predict {
            if let Some(fix) = self.predict(reprocess, &[target], 1, at, options) {
                // Nothing else is needed.
                return vec![fix];
            }
        }
        let Some((root, root_cause)) = self.root_cause(user, record) else {
            return fixes;
        };
        for candidate in self.candidates(user, &root, root_cause, hints) {
            if let Some(fix) = self.predict(candidate, &[target], 1, at, options) {
                fixes.push(fix);
            }
        }
        fixes
    }

    /// The structured explanation of a user's errors, with fixes predicted at `at`.
    pub fn diagnose_user(
        &self,
        user_id: Uuid,
        at: Timestamp,
        options: DiagnosisOptions,
    ) -> Result<UserDiagnosis, DiagnosisError> {
        let user = self.user_ref(user_id)?;
        let record = self.user(user);
        let mut hints = Hints::default();
        let mut problems = Vec::new();
        let resolved = self.user_license_states(user_id)?;
        for state in self
            .states
            .of(user)
            .iter()
            .filter(|state| state.status.is_error())
        {
            let Some(cause_id) = state.cause else { continue };
            let cause = self.causes.get(cause_id);
            let sku_id = self.sku(state.sku).id;
            let source = self.source_of(state.source);
            let Some(view) = resolved
                .iter()
                .find(|view| view.sku_id == sku_id && view.assigned_by_group == source.assigned_by_group())
            else {
                continue;
            };
            let Some(detail) = view.error_detail.clone() else {
                continue;
            };
            problems.push(Problem {
                sku_id,
                sku_part_number: self.sku(state.sku).part_number.clone(),
                source,
                group_display_name: match state.source {
                    Source::Direct => None,
                    Source::Group(group) => Some(self.group_name(group)),
                },
                licensed_through: match state.source {
                    Source::Direct => None,
                    Source::Group(group) => self.licensing_path_text(user_id, self.group(group).id),
                },
                state: state.status,
                error: cause.kind(),
                detail,
                explanation: self.explain(view).unwrap_or_default(),
                involvement: self.involvement(user, state, cause),
                fixes: self.problem_fixes(user, state, &mut hints, at, &options),
            });
        }
        Ok(UserDiagnosis {
            user_id,
            user_principal_name: record.user_principal_name.to_string(),
            display_name: record.display_name.to_string(),
            account_enabled: record.account_enabled,
            usage_location: record.usage_location,
            effective_usage_location: record.usage_location.or(self.settings.default_usage_location),
            queued: self.queue.is_queued(user),
            pending_self_healing: self.healing.pending(user).cloned(),
            last_self_healing: self.healing.last(user).cloned(),
            problems,
        })
    }

    /// A group's members in error, grouped by cause (the largest first), each cause with the
    /// fixes that clear it for its users.
    pub fn diagnose_group(
        &self,
        group_id: Uuid,
        at: Timestamp,
        options: DiagnosisOptions,
    ) -> Result<GroupDiagnosis, DiagnosisError> {
        let group = self.group_ref(group_id)?;
        let record = self.group(group);
        let mut by_cause: BTreeMap<(SkuRef, CauseId), Vec<(UserRef, StateRecord)>> = BTreeMap::new();
        for user in self.states.group_error_users(group) {
            for state in self.states.of(*user) {
                if state.source == Source::Group(group) && state.status.is_error() {
                    if let Some(cause) = state.cause {
                        by_cause
                            .entry((state.sku, cause))
                            .or_default()
                            .push((*user, *state));
                    }
                }
            }
        }
        let mut ordered: Vec<CauseMembers> = by_cause.into_iter().collect();
        ordered.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        let mut hints = Hints::default();
        let mut causes = Vec::with_capacity(ordered.len());
        for (position, ((sku, cause_id), users)) in ordered.into_iter().enumerate() {
            let cause = self.causes.get(cause_id);
            let (first_user, first_state) = users[0];
            let view = self.resolve_state(first_user, &first_state);
            let detail = match view.error_detail.clone() {
                Some(detail) => detail,
                None => continue,
            };
            let covered: Vec<(UserRef, StateRecord)> =
                users.iter().take(options.max_listed_users).copied().collect();
            let targets: Vec<(Uuid, Uuid, AssignmentSource)> = covered
                .iter()
                .map(|(user, state)| {
                    (
                        self.user(*user).id,
                        self.sku(state.sku).id,
                        self.source_of(state.source),
                    )
                })
                .collect();
            // Merge the users' fixes by kind: a shared change once, per-user changes together.
            let mut merged: Vec<(Candidate, usize)> = Vec::new();
            let per_user_cause = !matches!(cause, Cause::Count { .. });
            let generating = if per_user_cause {
                &covered[..]
            } else {
                &covered[..1]
            };
            for (user, state) in generating {
                let Some((root, root_cause)) = self.root_cause(*user, state) else {
                    continue;
                };
                for mut candidate in self.candidates(*user, &root, root_cause, &mut hints) {
                    match merged
                        .iter_mut()
                        .find(|(existing, _)| existing.kind == candidate.kind)
                    {
                        Some((existing, count)) => {
                            if !candidate.kind.is_shared() {
                                existing.commands.append(&mut candidate.commands);
                                existing.redundant_license &= candidate.redundant_license;
                                *count += 1;
                            }
                        }
                        None => merged.push((candidate, 1)),
                    }
                }
            }
            let predicting = options.predict && position < options.max_predicted_causes;
            let cause_options = DiagnosisOptions {
                predict: predicting,
                ..options
            };
            let mut fixes = Vec::new();
            // Reprocessing the group first: when the cause is gone, nothing else is needed.
            if predicting {
                let reprocess = Candidate {
                    kind: FixKind::Reprocess,
                    description: format!(
                        "Reprocess group \"{}\": the cause of these errors is already gone.",
                        record.display_name
                    ),
                    redundant_license: false,
                    commands: vec![Command::ReprocessGroup { group_id }],
                };
                if let Some(fix) = self.predict(reprocess, &targets, covered.len(), at, &cause_options) {
                    if fix.cleared_users == Some(covered.len()) {
                        fixes.push(fix);
                    }
                }
            }
            if fixes.is_empty() {
                for (mut candidate, count) in merged {
                    let shared = candidate.kind.is_shared() || !per_user_cause;
                    let covered_users = if shared { covered.len() } else { count };
                    if count > 1 {
                        candidate.description =
                            format!("For each of the {count} users: {}", candidate.description);
                    }
                    // One reprocess of the group replaces the per-user ones.
                    candidate.commands.retain(|command| !matches!(command, Command::ReprocessUser { user_id } if covered.iter().any(|(user, _)| self.user(*user).id == *user_id)));
                    candidate.commands.push(Command::ReprocessGroup { group_id });
                    if let Some(fix) = self.predict(candidate, &targets, covered_users, at, &cause_options) {
                        fixes.push(fix);
                    }
                }
            }
            causes.push(CauseGroup {
                sku_id: self.sku(sku).id,
                sku_part_number: self.sku(sku).part_number.clone(),
                error: cause.kind(),
                explanation: self.explain(&view).unwrap_or_default(),
                detail,
                involvement: self.involvement(first_user, &first_state, cause),
                user_count: users.len(),
                users: covered
                    .iter()
                    .map(|(user, _)| self.involved_user(*user))
                    .collect(),
                fixes,
            });
        }
        Ok(GroupDiagnosis {
            group_id,
            display_name: record.display_name.clone(),
            users_in_error: self.states.group_error_users(group).len(),
            causes,
        })
    }
}
