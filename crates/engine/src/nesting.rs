//! Nested groups: groups that are members of groups, kept acyclic, and what the tenant's
//! licensing setting makes of them. With `transitive_licensing` off (Entra's behaviour, the
//! default) only a group's direct user members receive its products; with it on, the members
//! of every group nested in it, at any depth, do too, each state still naming the group that
//! carries the license (Graph's `assignedByGroup`), and a user reached through several paths
//! holds one state per licensed group (one seat).

use rustc_hash::{FxHashMap, FxHashSet};

use crate::error::CommandError;
use crate::handles::{GroupRef, UserRef};
use crate::model::Uuid;
use crate::Engine;

/// The nesting edges of a tenant, in both directions. A parent lists its member groups in the
/// order they were added, each with the logical time it was added.
#[derive(Clone, Debug, Default)]
pub(crate) struct Nesting {
    /// Member groups of a group, oldest first, with when each was added.
    children: FxHashMap<GroupRef, Vec<(GroupRef, u64)>>,
    /// Groups a group is a member of, with when it was added to each.
    parents: FxHashMap<GroupRef, Vec<(GroupRef, u64)>>,
    edge_count: usize,
}

impl Nesting {
    pub(crate) fn is_empty(&self) -> bool {
        self.edge_count == 0
    }

    pub(crate) fn contains(&self, parent: GroupRef, child: GroupRef) -> bool {
        self.parent_edges(child)
            .iter()
            .any(|(candidate, _)| *candidate == parent)
    }

    /// The groups `group` is a direct member of, with when it was added to each.
    pub(crate) fn parent_edges(&self, group: GroupRef) -> &[(GroupRef, u64)] {
        self.parents.get(&group).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The groups `group` is a direct member of.
    pub(crate) fn parents_of(&self, group: GroupRef) -> impl Iterator<Item = GroupRef> + '_ {
        self.parent_edges(group).iter().map(|(parent, _)| *parent)
    }

    /// The groups directly nested in `group`, oldest first, with when each was added.
    pub(crate) fn children_of(&self, group: GroupRef) -> &[(GroupRef, u64)] {
        self.children.get(&group).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether nesting `child` in `parent` would close a cycle: `parent` is `child` or is
    /// nested (at any depth) in `child`.
    pub(crate) fn would_cycle(&self, parent: GroupRef, child: GroupRef) -> bool {
        self.descendants(child).contains(&parent)
    }

    pub(crate) fn insert(&mut self, parent: GroupRef, child: GroupRef, since: u64) {
        self.children.entry(parent).or_default().push((child, since));
        self.parents.entry(child).or_default().push((parent, since));
        self.edge_count += 1;
    }

    pub(crate) fn remove(&mut self, parent: GroupRef, child: GroupRef) {
        let mut removed = false;
        if let Some(children) = self.children.get_mut(&parent) {
            let before = children.len();
            children.retain(|(candidate, _)| *candidate != child);
            removed = children.len() != before;
            if children.is_empty() {
                self.children.remove(&parent);
            }
        }
        if let Some(parents) = self.parents.get_mut(&child) {
            parents.retain(|(candidate, _)| *candidate != parent);
            if parents.is_empty() {
                self.parents.remove(&child);
            }
        }
        if removed {
            self.edge_count -= 1;
        }
    }

    /// Orders a group's edges as restoring sorted edges orders them: its members by the time
    /// they were added, then id; the groups it is in by id.
    pub(crate) fn order_edges_of(&mut self, group: GroupRef, id_of: &dyn Fn(GroupRef) -> Uuid) {
        if let Some(children) = self.children.get_mut(&group) {
            children.sort_by_key(|(child, since)| (*since, id_of(*child)));
        }
        if let Some(parents) = self.parents.get_mut(&group) {
            parents.sort_by_key(|(parent, since)| (id_of(*parent), *since));
        }
    }

    /// Removes every edge of a group (it is being deleted).
    pub(crate) fn remove_group(&mut self, group: GroupRef) {
        let parents: Vec<GroupRef> = self.parents_of(group).collect();
        for parent in parents {
            self.remove(parent, group);
        }
        let children: Vec<GroupRef> = self.children_of(group).iter().map(|(child, _)| *child).collect();
        for child in children {
            self.remove(group, child);
        }
    }

    /// `group` and every group nested in it at any depth, each once, nearest first.
    pub(crate) fn descendants(&self, group: GroupRef) -> Vec<GroupRef> {
        let mut seen = FxHashSet::default();
        seen.insert(group);
        let mut order = vec![group];
        let mut next = 0;
        while next < order.len() {
            let current = order[next];
            next += 1;
            for (child, _) in self.children_of(current) {
                if seen.insert(*child) {
                    order.push(*child);
                }
            }
        }
        order
    }

    /// `group` and every group it is nested in at any depth, each once, nearest first.
    pub(crate) fn ancestors(&self, group: GroupRef) -> Vec<GroupRef> {
        let mut seen = FxHashSet::default();
        seen.insert(group);
        let mut order = vec![group];
        let mut next = 0;
        while next < order.len() {
            let current = order[next];
            next += 1;
            for parent in self.parents_of(current) {
                if seen.insert(parent) {
                    order.push(parent);
                }
            }
        }
        order
    }

    /// The groups a user belongs to through its direct memberships `(group, since)`, at any
    /// depth, each once with the earliest time the user has been in it without interruption
    /// along some path (a path's time is its latest edge), into `out`. A user is in few groups:
    /// linear searches in `out` cost less than hashing.
    pub(crate) fn effective_groups(
        &self,
        direct: impl Iterator<Item = (GroupRef, u64)>,
        out: &mut Vec<(GroupRef, u64)>,
    ) {
        out.clear();
        for (group, since) in direct {
            match out.iter_mut().find(|entry| entry.0 == group) {
                Some(entry) => entry.1 = entry.1.min(since),
                None => out.push((group, since)),
            }
        }
        if self.is_empty() {
            return;
        }
        // Relax along parent edges until nothing improves: times only decrease and the graph
        // is acyclic, so this ends (one pass, plus one when a later path was earlier).
        loop {
            let mut improved = false;
            let mut index = 0;
            while index < out.len() {
                let (group, since) = out[index];
                index += 1;
                for (parent, edge_since) in self.parent_edges(group) {
                    let through = since.max(*edge_since);
                    match out.iter().position(|entry| entry.0 == *parent) {
                        Some(place) => {
                            if through < out[place].1 {
                                out[place].1 = through;
                                improved = true;
                            }
                        }
                        None => out.push((*parent, through)),
                    }
                }
            }
            if !improved {
                break;
            }
        }
    }

    /// The shortest chain of groups from one of `direct` (first) to `target` (last), following
    /// parent edges; `None` when `target` cannot be reached.
    pub(crate) fn path_to(&self, direct: &[GroupRef], target: GroupRef) -> Option<Vec<GroupRef>> {
        let mut came_from: FxHashMap<GroupRef, Option<GroupRef>> = FxHashMap::default();
        let mut order: Vec<GroupRef> = Vec::new();
        for group in direct {
            if came_from.insert(*group, None).is_none() {
                order.push(*group);
            }
        }
        let mut next = 0;
        while next < order.len() {
            let current = order[next];
            next += 1;
            if current == target {
                let mut path = vec![current];
                let mut cursor = current;
                while let Some(Some(previous)) = came_from.get(&cursor) {
                    path.push(*previous);
                    cursor = *previous;
                }
                path.reverse();
                return Some(path);
            }
            for parent in self.parents_of(current) {
                if let std::collections::hash_map::Entry::Vacant(entry) = came_from.entry(parent) {
                    entry.insert(Some(current));
                    order.push(parent);
                }
            }
        }
        None
    }

    /// Every edge as (parent, child, since), parents in handle order, children oldest first.
    pub(crate) fn edges(&self) -> Vec<(GroupRef, GroupRef, u64)> {
        let mut parents: Vec<&GroupRef> = self.children.keys().collect();
        parents.sort();
        parents
            .into_iter()
            .flat_map(|parent| {
                self.children_of(*parent)
                    .iter()
                    .map(move |(child, since)| (*parent, *child, *since))
            })
            .collect()
    }
}

/// One nesting edge as stored: `member_group_id` is a member of `group_id` since `since`.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupNestingImage {
    pub group_id: Uuid,
    pub member_group_id: Uuid,
    pub since: u64,
}

impl Engine {
    /// Whether members of nested groups receive the products of the groups they are nested in.
    pub fn transitive_licensing(&self) -> bool {
        self.settings.transitive_licensing
    }

    /// The users whose group-based states a change at `group` can affect: the direct members
    /// of `group` and of every group nested in it, each once, in the order found.
    pub(crate) fn users_below(&self, group: GroupRef) -> Vec<UserRef> {
        let mut seen = FxHashSet::default();
        let mut users = Vec::new();
        for descendant in self.directory.nesting().descendants(group) {
            let mut members: Vec<(u64, UserRef)> = self
                .directory
                .group(descendant)
                .members
                .iter()
                .map(|member| (self.directory.member_since(*member, descendant), *member))
                .collect();
            members.sort_unstable();
            for (_, member) in members {
                if seen.insert(member) {
                    users.push(member);
                }
            }
        }
        users
    }

    /// Whether transitive licensing is on and a group `group` is nested in (at any depth)
    /// carries products: its members then receive them too.
    pub(crate) fn licensed_above(&self, group: GroupRef) -> bool {
        self.settings.transitive_licensing
            && self
                .directory
                .nesting()
                .ancestors(group)
                .into_iter()
                .skip(1)
                .any(|ancestor| !self.directory.group(ancestor).licenses.is_empty())
    }

    /// Users who may hold a state from an ancestor of `group` through `group`: when transitive
    /// licensing is on and some group at or above `group` carries products, every user below it.
    fn enqueue_users_below_if_licensed_above(&mut self, group: GroupRef) {
        if !self.settings.transitive_licensing {
            return;
        }
        let licensed_above = self
            .directory
            .nesting()
            .ancestors(group)
            .into_iter()
            .any(|ancestor| !self.directory.group(ancestor).licenses.is_empty());
        if licensed_above {
            for user in self.users_below(group) {
                self.enqueue(user);
            }
        }
    }

    pub(crate) fn add_group_member_group(
        &mut self,
        group_id: Uuid,
        member_group_id: Uuid,
    ) -> Result<(), CommandError> {
        let parent = self.directory.group_ref(group_id)?;
        let child = self.directory.group_ref(member_group_id)?;
        if self.directory.nesting().contains(parent, child) {
            return Err(CommandError::AlreadyNested {
                group_id,
                member_group_id,
            });
        }
        if self.directory.nesting().would_cycle(parent, child) {
            return Err(CommandError::NestingCycle {
                group_id,
                member_group_id,
            });
        }
        let since = self.tick_clock();
        self.directory.nesting_mut().insert(parent, child, since);
        self.enqueue_users_below_if_licensed_above(child);
        Ok(())
    }

    pub(crate) fn remove_group_member_group(
        &mut self,
        group_id: Uuid,
        member_group_id: Uuid,
    ) -> Result<(), CommandError> {
        let parent = self.directory.group_ref(group_id)?;
        let child = self.directory.group_ref(member_group_id)?;
        if !self.directory.nesting().contains(parent, child) {
            return Err(CommandError::NotNested {
                group_id,
                member_group_id,
            });
        }
        self.tick_clock();
        // Who is below the child is not changed by the edge above it: queue them while the
        // edge still says whether a licensed group was above.
        self.enqueue_users_below_if_licensed_above(child);
        self.directory.nesting_mut().remove(parent, child);
        Ok(())
    }

    /// Turns transitive licensing on or off; every user in a nested group below a licensed
    /// group is evaluated again.
    pub(crate) fn set_transitive_licensing(&mut self, enabled: bool) {
        self.tick_clock();
        let was = self.settings.transitive_licensing;
        self.settings.transitive_licensing = true;
        let mut affected = Vec::new();
        let nested: Vec<GroupRef> = self
            .directory
            .groups()
            .map(|(group, _)| group)
            .filter(|group| !self.directory.nesting().parent_edges(*group).is_empty())
            .collect();
        let mut seen = FxHashSet::default();
        for group in nested {
            for user in self.users_below(group) {
                if seen.insert(user) {
                    affected.push(user);
                }
            }
        }
        self.settings.transitive_licensing = enabled;
        if was != enabled {
            for user in affected {
                self.enqueue(user);
            }
        }
    }

    /// Before a group is deleted: its edges go, and the users below it that may have received
    /// products of groups above it are evaluated again.
    pub(crate) fn forget_group_nesting(&mut self, group: GroupRef) {
        self.enqueue_users_below_if_licensed_above(group);
        self.directory.nesting_mut().remove_group(group);
    }

    /// The groups directly nested in a group, oldest first.
    pub fn member_groups(&self, group_id: Uuid) -> Result<Vec<Uuid>, CommandError> {
        let group = self.directory.group_ref(group_id)?;
        Ok(self
            .directory
            .nesting()
            .children_of(group)
            .iter()
            .map(|(child, _)| self.directory.group(*child).id)
            .collect())
    }

    /// The groups a group is a direct member of.
    pub fn group_member_of(&self, group_id: Uuid) -> Result<Vec<Uuid>, CommandError> {
        let group = self.directory.group_ref(group_id)?;
        Ok(self
            .directory
            .nesting()
            .parents_of(group)
            .map(|parent| self.directory.group(parent).id)
            .collect())
    }

    /// Every group nested in a group at any depth (not the group itself), nearest first.
    pub fn transitive_member_groups(&self, group_id: Uuid) -> Result<Vec<Uuid>, CommandError> {
        let group = self.directory.group_ref(group_id)?;
        Ok(self
            .directory
            .nesting()
            .descendants(group)
            .into_iter()
            .skip(1)
            .map(|child| self.directory.group(child).id)
            .collect())
    }

    /// Every user member of a group or of a group nested in it, each once.
    pub fn transitive_member_users(&self, group_id: Uuid) -> Result<Vec<Uuid>, CommandError> {
        let group = self.directory.group_ref(group_id)?;
        Ok(self
            .users_below(group)
            .into_iter()
            .map(|user| self.directory.user(user).id)
            .collect())
    }

    /// Every group a group is nested in at any depth (not the group itself), nearest first.
    pub fn group_transitive_member_of(&self, group_id: Uuid) -> Result<Vec<Uuid>, CommandError> {
        let group = self.directory.group_ref(group_id)?;
        Ok(self
            .directory
            .nesting()
            .ancestors(group)
            .into_iter()
            .skip(1)
            .map(|parent| self.directory.group(parent).id)
            .collect())
    }

    /// Every group a user belongs to, directly or through nesting, each once: direct
    /// memberships first.
    pub fn user_transitive_member_of(&self, user_id: Uuid) -> Result<Vec<Uuid>, CommandError> {
        let user = self.directory.user_ref(user_id)?;
        let record = self.directory.user(user);
        let mut groups = Vec::new();
        self.directory
            .nesting()
            .effective_groups(record.memberships.iter().map(|m| (m.group, m.since)), &mut groups);
        Ok(groups
            .into_iter()
            .map(|(group, _)| self.directory.group(group).id)
            .collect())
    }

    /// How a user reaches a group: the chain of group ids from one of its direct groups to
    /// `group_id` (a single id when it is a direct member), or `None` when it does not.
    pub fn membership_path(&self, user_id: Uuid, group_id: Uuid) -> Result<Option<Vec<Uuid>>, CommandError> {
        let user = self.directory.user_ref(user_id)?;
        let target = self.directory.group_ref(group_id)?;
        let direct: Vec<GroupRef> = self.directory.user(user).groups().collect();
        Ok(self.directory.nesting().path_to(&direct, target).map(|path| {
            path.into_iter()
                .map(|group| self.directory.group(group).id)
                .collect()
        }))
    }

    /// The same path as display names, "via Engineering → All Staff" style: `None` for a direct
    /// member or a user who does not reach the group.
    pub fn licensing_path_text(&self, user_id: Uuid, group_id: Uuid) -> Option<String> {
        let path = self.membership_path(user_id, group_id).ok().flatten()?;
        if path.len() < 2 {
            return None;
        }
        let names: Vec<String> = path
            .iter()
            .filter_map(|id| self.directory.find_group(*id))
            .map(|group| self.directory.group(group).display_name.clone())
            .collect();
        Some(format!("via {}", names.join(" → ")))
    }

    /// Every nesting edge, for an image, by group id then oldest first.
    pub(crate) fn nesting_images(&self) -> Vec<GroupNestingImage> {
        let mut edges: Vec<GroupNestingImage> = self
            .directory
            .nesting()
            .edges()
            .into_iter()
            .map(|(parent, child, since)| GroupNestingImage {
                group_id: self.directory.group(parent).id,
                member_group_id: self.directory.group(child).id,
                since,
            })
            .collect();
        edges.sort_unstable_by_key(|edge| (edge.group_id, edge.since, edge.member_group_id));
        edges
    }

    /// The touched edges as they are now (`None` once removed).
    pub(crate) fn nesting_edge_images(
        &self,
        touched: &[(Uuid, Uuid)],
    ) -> Vec<((Uuid, Uuid), Option<GroupNestingImage>)> {
        touched
            .iter()
            .map(|(group_id, member_group_id)| {
                let edge = self
                    .directory
                    .find_group(*group_id)
                    .zip(self.directory.find_group(*member_group_id))
                    .and_then(|(parent, child)| {
                        self.directory
                            .nesting()
                            .children_of(parent)
                            .iter()
                            .find(|(candidate, _)| *candidate == child)
                            .map(|(_, since)| GroupNestingImage {
                                group_id: *group_id,
                                member_group_id: *member_group_id,
                                since: *since,
                            })
                    });
                ((*group_id, *member_group_id), edge)
            })
            .collect()
    }

    /// Restores nesting edges from an image (groups already restored).
    pub(crate) fn restore_nesting(&mut self, edges: &[GroupNestingImage]) -> Result<(), CommandError> {
        for edge in edges {
            let parent = self.directory.group_ref(edge.group_id)?;
            let child = self.directory.group_ref(edge.member_group_id)?;
            if self.directory.nesting().contains(parent, child)
                || self.directory.nesting().would_cycle(parent, child)
            {
                return Err(CommandError::NestingCycle {
                    group_id: edge.group_id,
                    member_group_id: edge.member_group_id,
                });
            }
            self.directory.nesting_mut().insert(parent, child, edge.since);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_groups_take_each_ancestor_once_with_its_earliest_path() {
        let mut nesting = Nesting::default();
        let (a, b, c, d) = (GroupRef(0), GroupRef(1), GroupRef(2), GroupRef(3));
        // a in b at 5, b in d at 9, c in d at 2: a user in a (since 1) and c (since 7).
        nesting.insert(b, a, 5);
        nesting.insert(d, b, 9);
        nesting.insert(d, c, 2);
        let mut out = Vec::new();
        nesting.effective_groups([(a, 1), (c, 7)].into_iter(), &mut out);
        out.sort();
        assert_eq!(out, vec![(a, 1), (b, 5), (c, 7), (d, 7)]);
        assert!(nesting.would_cycle(a, d));
        assert!(nesting.would_cycle(a, a));
        assert!(!nesting.would_cycle(d, a));
        assert_eq!(nesting.path_to(&[a, c], d), Some(vec![c, d]));
        nesting.remove_group(d);
        assert_eq!(nesting.edges(), vec![(b, a, 5)]);
    }
}
