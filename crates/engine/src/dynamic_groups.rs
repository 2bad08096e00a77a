//! Dynamic membership groups: groups whose members are the users their membership rule
//! selects. A rule is applied when it is set (every user), when a user is created (every rule)
//! and when a user changes (only the rules that read a property that changed); a membership a
//! rule adds or removes queues the user as any membership change does, so licensing follows.
//! A paused rule (`membershipRuleProcessingState: Paused`) freezes the group's members. Rules
//! that read `user.memberOf` are applied after the dynamic groups they name (cycles are
//! refused), so one pass settles a user.

use std::borrow::Cow;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::directory::User;
use crate::engine::Engine;
use crate::error::CommandError;
use crate::handles::GroupRef;
use crate::handles::UserRef;
use crate::image_data::DynamicMembershipImage;
use crate::membership_rule::{MembershipRule, Property, PropertySet, RuleProcessingState, RuleTarget};
use crate::model::Uuid;
use crate::rule_sets::RuleSets;

/// A dynamic group's rule and whether it is applied.
#[derive(Clone, Debug, PartialEq)]
pub struct DynamicMembership {
    pub rule: MembershipRule,
    pub processing_state: RuleProcessingState,
}

/// The tenant's dynamic groups.
#[derive(Clone, Debug, Default)]
pub(crate) struct DynamicGroups {
    /// Shared with the engine's copies (a what-if's) until written.
    rules: Arc<FxHashMap<GroupRef, DynamicMembership>>,
    /// The groups with a rule, each after the dynamic groups its rule names.
    order: Vec<GroupRef>,
    /// Users whose memberships rules changed since [`DynamicGroups::take_changed_users`].
    changed_users: Vec<UserRef>,
}

impl DynamicGroups {
    pub(crate) fn get(&self, group: GroupRef) -> Option<&DynamicMembership> {
        self.rules.get(&group)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub(crate) fn take_changed_users(&mut self) -> Vec<UserRef> {
        std::mem::take(&mut self.changed_users)
    }

    /// Whether some rule reads `user.memberOf`.
    pub(crate) fn reads_member_of(&self) -> bool {
        self.rules
            .values()
            .any(|membership| membership.rule.reads().contains(Property::MemberOf))
    }

    /// Every dynamic group, in evaluation order.
    pub(crate) fn groups(&self) -> &[GroupRef] {
        &self.order
    }
}

/// A user as a rule reads it.
pub(crate) struct UserTarget<'a> {
    engine: &'a Engine,
    user: &'a User,
}

impl RuleTarget for UserTarget<'_> {
    fn text(&self, property: Property) -> Option<Cow<'_, str>> {
        let user = self.user;
        match property {
            Property::Attribute(attribute) => crate::user_attributes::find(&user.attributes, attribute)
                .map(|id| Cow::Borrowed(self.engine.directory.attribute_values().lowercase(id))),
            Property::UsageLocation => user
                .usage_location
                .map(|code| Cow::Owned(code.as_str().to_ascii_lowercase())),
            Property::UserPrincipalName => Some(Cow::Owned(user.user_principal_name.to_lowercase())),
            Property::DisplayName => Some(Cow::Owned(user.display_name.to_lowercase())),
            Property::ObjectId => Some(Cow::Owned(user.id.to_string())),
            Property::AccountEnabled | Property::ProxyAddresses | Property::MemberOf => None,
        }
    }

    fn account_enabled(&self) -> bool {
        self.user.account_enabled
    }

    fn proxy_addresses(&self) -> Vec<String> {
        self.user
            .proxy_addresses
            .iter()
            .map(|address| address.as_str().to_lowercase())
            .collect()
    }

    fn member_of(&self) -> Vec<Uuid> {
        self.user
            .groups()
            .map(|group| self.engine.directory.group(group).id)
            .collect()
    }
}

impl Engine {
    /// A group's rule and processing state, `None` for a group with assigned members.
    pub fn dynamic_membership(&self, group_id: Uuid) -> Result<Option<&DynamicMembership>, CommandError> {
        let group = self.directory.group_ref(group_id)?;
        Ok(self.dynamic.get(group))
    }

    /// The ids of the dynamic groups, each after the dynamic groups its rule names.
    pub fn dynamic_group_ids(&self) -> Vec<Uuid> {
        self.dynamic
            .groups()
            .iter()
            .map(|group| self.directory.group(*group).id)
            .collect()
    }

    /// Evaluates every dynamic group's rule on every user from scratch, changing nothing;
    /// returns how many (user, group) pairs match (the benchmark of a full re-evaluation).
    /// Each comparison is evaluated once per distinct attribute value and each rule yields a
    /// set of users (`crate::rule_sets`); the result is the per-user evaluator's
    /// ([`Engine::evaluate_every_rule_per_user`]).
    pub fn evaluate_every_rule_from_scratch(&self) -> usize {
        let mut sets = RuleSets::new(self);
        self.dynamic
            .groups()
            .iter()
            .filter_map(|group| self.dynamic.get(*group))
            .map(|dynamic| sets.members(dynamic.rule.expression()).len())
            .sum()
    }

    /// As [`Engine::evaluate_every_rule_from_scratch`], with the per-user evaluator: every rule
    /// interpreted on every user (what an attribute change does for one user).
    pub fn evaluate_every_rule_per_user(&self) -> usize {
        let rules: Vec<&MembershipRule> = self
            .dynamic
            .groups()
            .iter()
            .filter_map(|group| self.dynamic.get(*group))
            .map(|dynamic| &dynamic.rule)
            .collect();
        let mut matches = 0;
        for (user, _) in self.directory.users() {
            let target = self.rule_target(user);
            for rule in &rules {
                matches += usize::from(rule.matches(&target));
            }
        }
        matches
    }

    /// The users a rule selects now (whatever the groups say), evaluated over every user at
    /// once as [`Engine::evaluate_every_rule_from_scratch`] does, in creation order.
    pub fn users_matching_rule(&self, rule: &MembershipRule) -> Vec<Uuid> {
        RuleSets::new(self)
            .members(rule.expression())
            .iter()
            .map(|user| self.directory.user(user).id)
            .collect()
    }

    /// A reference pass for the benchmark of [`Engine::evaluate_every_rule_from_scratch`]:
    /// every user's value of each directory attribute some rule reads, read once
    /// (lower-cased), comparing nothing.
    pub fn read_rule_attributes_once(&self) -> usize {
        let mut read = crate::membership_rule::PropertySet::EMPTY;
        let mut attributes = Vec::new();
        for dynamic in self.dynamic.rules.values() {
            for attribute in crate::user_attributes::UserAttribute::all() {
                let property = Property::Attribute(attribute);
                if dynamic.rule.reads().contains(property) && !read.contains(property) {
                    read.insert(property);
                    attributes.push(attribute);
                }
            }
        }
        let values = self.directory.attribute_values();
        let mut total = 0;
        for attribute in &attributes {
            for (_, id) in self.directory.users_with_attribute(*attribute) {
                total += values.lowercase(id).len();
            }
        }
        total
    }

    /// The reference of [`Engine::evaluate_every_rule_per_user`]: the same pass reading, for
    /// every rule and user, the lower-cased values of the directory attributes the rule reads,
    /// and comparing nothing.
    pub fn read_every_rule_attribute(&self) -> usize {
        let reads: Vec<Vec<crate::user_attributes::UserAttribute>> = self
            .dynamic
            .groups()
            .iter()
            .filter_map(|group| self.dynamic.get(*group))
            .map(|dynamic| {
                crate::user_attributes::UserAttribute::all()
                    .filter(|attribute| dynamic.rule.reads().contains(Property::Attribute(*attribute)))
                    .collect()
            })
            .collect();
        let mut total = 0;
        for (user, _) in self.directory.users() {
            let target = self.rule_target(user);
            for attributes in &reads {
                for attribute in attributes {
                    total += target
                        .text(Property::Attribute(*attribute))
                        .map_or(0, |value| value.len());
                }
            }
        }
        total
    }

    /// Whether a user satisfies a rule now (whatever the groups say).
    pub fn user_matches_rule(&self, user_id: Uuid, rule: &MembershipRule) -> Result<bool, CommandError> {
        let user = self.directory.user_ref(user_id)?;
        Ok(rule.matches(&self.rule_target(user)))
    }

    pub(crate) fn rule_target(&self, user: UserRef) -> UserTarget<'_> {
        UserTarget {
            engine: self,
            user: self.directory.user(user),
        }
    }

    /// Refuses a hand-made membership change of a dynamic group.
    pub(crate) fn check_assigned_membership(&self, group_id: Uuid) -> Result<(), CommandError> {
        if let Some(group) = self.directory.find_group(group_id) {
            if self.dynamic.get(group).is_some() {
                return Err(CommandError::DynamicMembershipGroup { group_id });
            }
        }
        Ok(())
    }

    /// Refuses making a group with nested member groups dynamic: a dynamic group's members are
    /// users its rule selects (Entra ID does not nest groups in a dynamic group).
    fn check_no_member_groups(&self, group: GroupRef) -> Result<(), CommandError> {
        let children = self.directory.nesting().children_of(group);
        if children.is_empty() {
            return Ok(());
        }
        let mut names: Vec<String> = children
            .iter()
            .map(|(child, _)| self.directory.group(*child).display_name.clone())
            .collect();
        names.sort();
        Err(CommandError::InvalidValue {
            field: "groupTypes",
            reason: format!(
                "group {} has groups as members ({}): a dynamic group's members are the users its rule selects; take the nested groups out first",
                self.directory.group(group).id,
                names.join(", ")
            ),
        })
    }

    /// Refuses deleting a group another group's rule names.
    pub(crate) fn check_group_not_named_by_rules(&self, group_id: Uuid) -> Result<(), CommandError> {
        for (other, membership) in self.dynamic.rules.iter() {
            let other_id = self.directory.group(*other).id;
            if other_id != group_id && membership.rule.referenced_groups().contains(&group_id) {
                return Err(CommandError::InvalidValue {
                    field: "group",
                    reason: format!(
                        "group {group_id} is named by the membershipRule of group {other_id}; change that rule first"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Forgets a deleted group's rule.
    pub(crate) fn forget_dynamic_group(&mut self, group: GroupRef) {
        if self.dynamic.rules.contains_key(&group) {
            Arc::make_mut(&mut self.dynamic.rules).remove(&group);
            self.dynamic.order.retain(|candidate| *candidate != group);
        }
    }

    /// Validates a rule for a group: it parses, the groups it names exist, are not the group
    /// itself and do not name it back.
    pub(crate) fn check_membership_rule(
        &self,
        group_id: Uuid,
        rule: &str,
    ) -> Result<(MembershipRule, Vec<GroupRef>), CommandError> {
        let group = self.directory.group_ref(group_id)?;
        let rule = MembershipRule::parse(rule).map_err(|error| CommandError::InvalidMembershipRule {
            position: error.position,
            message: error.message,
        })?;
        let mut order = Vec::new();
        let mut rules: FxHashMap<GroupRef, &MembershipRule> = self
            .dynamic
            .rules
            .iter()
            .map(|(group, membership)| (*group, &membership.rule))
            .collect();
        for named in rule.referenced_groups() {
            if *named == group_id {
                return Err(CommandError::InvalidMembershipRule {
                    position: 1,
                    message: "a rule cannot name its own group in user.memberOf".to_string(),
                });
            }
            if self.directory.find_group(*named).is_none() {
                return Err(CommandError::InvalidMembershipRule {
                    position: 1,
                    message: format!("user.memberOf names group {named}, which does not exist"),
                });
            }
        }
        rules.insert(group, &rule);
        self.evaluation_order(&rules, &mut order)?;
        Ok((rule, order))
    }

    /// The dynamic groups ordered so that each comes after the dynamic groups its rule names.
    fn evaluation_order(
        &self,
        rules: &FxHashMap<GroupRef, &MembershipRule>,
        order: &mut Vec<GroupRef>,
    ) -> Result<(), CommandError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Visiting,
            Done,
        }
        fn visit(
            engine: &Engine,
            group: GroupRef,
            rules: &FxHashMap<GroupRef, &MembershipRule>,
            marks: &mut FxHashMap<GroupRef, Mark>,
            order: &mut Vec<GroupRef>,
        ) -> Result<(), CommandError> {
            match marks.get(&group) {
                Some(Mark::Done) => return Ok(()),
                Some(Mark::Visiting) => {
                    return Err(CommandError::InvalidMembershipRule {
                        position: 1,
                        message: format!(
                            "user.memberOf rules would form a cycle through group {}",
                            engine.directory.group(group).id
                        ),
                    })
                }
                None => {}
            }
            marks.insert(group, Mark::Visiting);
            if let Some(rule) = rules.get(&group) {
                for named in rule.referenced_groups() {
                    if let Some(named) = engine.directory.find_group(*named) {
                        if rules.contains_key(&named) {
                            visit(engine, named, rules, marks, order)?;
                        }
                    }
                }
            }
            marks.insert(group, Mark::Done);
            order.push(group);
            Ok(())
        }
        let mut marks = FxHashMap::default();
        let mut groups: Vec<GroupRef> = rules.keys().copied().collect();
        groups.sort_unstable();
        for group in groups {
            visit(self, group, rules, &mut marks, order)?;
        }
        Ok(())
    }

    /// `SetMembershipRule`: validated, then applied to every user when it is on.
    pub(crate) fn set_membership_rule(
        &mut self,
        group_id: Uuid,
        rule: Option<String>,
        processing_state: RuleProcessingState,
    ) -> Result<(), CommandError> {
        let group = self.directory.group_ref(group_id)?;
        match rule {
            None => {
                self.tick();
                self.forget_dynamic_group(group);
            }
            Some(text) => {
                let (rule, order) = self.check_membership_rule(group_id, &text)?;
                if self.dynamic.get(group).is_none() {
                    self.check_no_member_groups(group)?;
                }
                self.tick();
                Arc::make_mut(&mut self.dynamic.rules).insert(
                    group,
                    DynamicMembership {
                        rule,
                        processing_state,
                    },
                );
                self.dynamic.order = order;
                if processing_state == RuleProcessingState::On {
                    self.apply_rule_to_everyone(group);
                }
            }
        }
        Ok(())
    }

    /// Puts a restored group's rule in place (no membership changes: they were stored).
    pub(crate) fn restore_dynamic_membership(
        &mut self,
        group: GroupRef,
        image: Option<&DynamicMembershipImage>,
    ) -> Result<(), crate::image::RestoreError> {
        self.forget_dynamic_group(group);
        let Some(image) = image else {
            return Ok(());
        };
        let rule = MembershipRule::parse(&image.rule).map_err(|error| {
            crate::image::RestoreError::Invalid(format!(
                "the membershipRule of group {}: {error}",
                self.directory.group(group).id
            ))
        })?;
        Arc::make_mut(&mut self.dynamic.rules).insert(
            group,
            DynamicMembership {
                rule,
                processing_state: image.processing_state,
            },
        );
        Ok(())
    }

    /// Orders the restored rules (after every group is restored); a cycle in stored rules is
    /// tolerated by ordering what it can.
    pub(crate) fn order_restored_rules(&mut self) {
        let rules: FxHashMap<GroupRef, &MembershipRule> = self
            .dynamic
            .rules
            .iter()
            .map(|(group, membership)| (*group, &membership.rule))
            .collect();
        let mut order = Vec::new();
        if self.evaluation_order(&rules, &mut order).is_err() {
            order = rules.keys().copied().collect();
            order.sort_unstable();
        }
        self.dynamic.order = order;
    }

    /// The image of a group's rule.
    pub(crate) fn dynamic_membership_image(&self, group: GroupRef) -> Option<DynamicMembershipImage> {
        self.dynamic.get(group).map(|membership| DynamicMembershipImage {
            rule: membership.rule.text().to_string(),
            processing_state: membership.processing_state,
        })
    }

    /// Applies one group's rule to every user: the rule's users are computed at once
    /// (`crate::rule_sets`), then the users whose membership differs join or leave.
    fn apply_rule_to_everyone(&mut self, group: GroupRef) {
        let Some(membership) = self.dynamic.get(group) else {
            return;
        };
        let wanted = RuleSets::new(self).members(membership.rule.expression());
        let current = &self.directory.group(group).members;
        let mut moved: Vec<UserRef> = current
            .iter()
            .copied()
            .filter(|user| !wanted.contains(*user))
            .chain(wanted.iter().filter(|user| !current.contains(user)))
            .collect();
        moved.sort_unstable();
        for user in &moved {
            self.set_rule_membership(group, *user, wanted.contains(*user));
        }
        // Rules that read memberOf follow the users who moved.
        if self.dynamic.reads_member_of() {
            for user in moved {
                self.apply_rules(user, PropertySet::of([Property::MemberOf]));
            }
        }
    }

    /// Applies the rules that read a property of `changed` to a user, in evaluation order;
    /// a membership a rule changes makes the later rules that read `user.memberOf` apply too.
    pub(crate) fn apply_rules(&mut self, user: UserRef, mut changed: PropertySet) {
        if self.dynamic.is_empty() {
            return;
        }
        // The order does not change while rules are applied.
        for index in 0..self.dynamic.order.len() {
            let group = self.dynamic.order[index];
            let Some(membership) = self.dynamic.get(group) else {
                continue;
            };
            if membership.processing_state != RuleProcessingState::On
                || !membership.rule.reads().intersects(changed)
            {
                continue;
            }
            if self.apply_one_rule(group, user) {
                changed.insert(Property::MemberOf);
            }
        }
    }

    /// Makes a user a member of a dynamic group or not as its rule says; returns whether the
    /// membership changed.
    fn apply_one_rule(&mut self, group: GroupRef, user: UserRef) -> bool {
        let Some(membership) = self.dynamic.get(group) else {
            return false;
        };
        let wanted = membership.rule.matches(&self.rule_target(user));
        self.set_rule_membership(group, user, wanted)
    }

    /// Makes a user a member of a dynamic group or not; returns whether the membership changed.
    fn set_rule_membership(&mut self, group: GroupRef, user: UserRef, wanted: bool) -> bool {
        let is_member = self.directory.is_member(group, user);
        if wanted == is_member {
            return false;
        }
        if wanted {
            let since = self.tick();
            self.directory.add_member(group, user, since);
            if self.queue.is_queued(user) {
                self.queue.member_added(group, user);
            } else if !self.directory.group(group).licenses.is_empty() {
                self.enqueue(user);
            }
        } else {
            self.directory.remove_member(group, user);
            self.queue.member_removed(group, user);
            let has_records = self.states.has_from(user, crate::handles::Source::Group(group));
            if has_records || !self.directory.group(group).licenses.is_empty() {
                self.enqueue(user);
            }
        }
        self.dynamic.changed_users.push(user);
        true
    }

    /// After a hand-made membership change: the rules that read `user.memberOf`.
    pub(crate) fn apply_rules_after_membership(&mut self, user_id: Uuid) {
        if let Some(user) = self.directory.find_user(user_id) {
            self.apply_rules(user, PropertySet::of([Property::MemberOf]));
        }
    }

    /// The user ids whose memberships rules changed during the command.
    pub(crate) fn take_rule_changed_users(&mut self) -> Vec<Uuid> {
        let mut users = self.dynamic.take_changed_users();
        users.sort_unstable();
        users.dedup();
        users
            .into_iter()
            .filter_map(|user| self.directory.user_if_live(user).map(|record| record.id))
            .collect()
    }
}

/// Who would join and leave one group (a what-if).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipPrediction {
    pub group_id: Uuid,
    pub display_name: String,
    pub joined: usize,
    pub left: usize,
    /// At most the what-if's listed users of each, by id.
    pub joined_users: Vec<Uuid>,
    pub left_users: Vec<Uuid>,
}

/// The member changes of the dynamic groups (of either engine) between an engine and a copy of
/// it changed since (a what-if's: handles are shared, the copy only adds to them).
pub(crate) fn membership_changes(
    before: &Engine,
    after: &Engine,
    max_listed: usize,
) -> Vec<MembershipPrediction> {
    let mut groups: Vec<GroupRef> = before
        .dynamic
        .groups()
        .iter()
        .chain(after.dynamic.groups())
        .copied()
        .collect();
    groups.sort_unstable();
    groups.dedup();
    let mut predictions = Vec::new();
    for group in groups {
        let (Some(old), Some(new)) = (
            before.directory.group_if_live(group),
            after.directory.group_if_live(group),
        ) else {
            continue;
        };
        // `after` is a copy of `before`: no member added or removed since, same members.
        if old.member_changes == new.member_changes {
            continue;
        }
        let mut joined: Vec<UserRef> = new.members.difference(&old.members).copied().collect();
        let mut left: Vec<UserRef> = old.members.difference(&new.members).copied().collect();
        if joined.is_empty() && left.is_empty() {
            continue;
        }
        joined.sort_unstable();
        left.sort_unstable();
        let ids = |engine: &Engine, users: &[UserRef]| -> Vec<Uuid> {
            users
                .iter()
                .take(max_listed)
                .filter_map(|user| engine.directory.user_if_live(*user).map(|record| record.id))
                .collect()
        };
        predictions.push(MembershipPrediction {
            group_id: new.id,
            display_name: new.display_name.clone(),
            joined: joined.len(),
            left: left.len(),
            joined_users: ids(after, &joined),
            left_users: ids(before, &left),
        });
    }
    predictions
}

/// The properties a user change touched.
pub(crate) fn changed_properties(changes: &crate::model::UserChanges) -> PropertySet {
    let mut set = PropertySet::EMPTY;
    if changes.user_principal_name.is_some() {
        set.insert(Property::UserPrincipalName);
    }
    if changes.display_name.is_some() {
        set.insert(Property::DisplayName);
    }
    if changes.usage_location.is_some() {
        set.insert(Property::UsageLocation);
    }
    if changes.proxy_addresses.is_some() {
        set.insert(Property::ProxyAddresses);
    }
    if changes.account_enabled.is_some() {
        set.insert(Property::AccountEnabled);
    }
    for attribute in changes.attributes.keys() {
        set.insert(Property::Attribute(*attribute));
    }
    set
}
