//! The work queue: users whose licenses must be evaluated again, in the order they were queued,
//! each at most once, with the per-group counters behind a group's processing state (how many
//! of its members are queued, whether its processing has started).

use std::collections::VecDeque;

use rustc_hash::FxHashSet;

use crate::handles::{GroupRef, UserRef};

/// Users waiting for evaluation. Users and groups get their slot when they are created
/// ([`WorkQueue::add_user`], [`WorkQueue::add_group`]); the engine passes a user's groups to
/// every call that queues or dequeues it, so the per-group counters stay in step.
#[derive(Clone, Debug, Default)]
pub(crate) struct WorkQueue {
    /// Queue order; may hold users no longer queued (dequeued when deleted), skipped on pop.
    order: VecDeque<UserRef>,
    /// Per user: whether it is queued.
    queued: Vec<bool>,
    queued_count: usize,
    /// Users queued since the last command or processing step returned.
    newly_queued: Vec<UserRef>,
    /// Per group: queued users who are members.
    pending_users: Vec<u64>,
    /// Per group: whether some of its queued members were evaluated already.
    processing_started: Vec<bool>,
}

impl WorkQueue {
    pub(crate) fn add_user(&mut self) {
        self.queued.push(false);
    }

    pub(crate) fn reserve_users(&mut self, users: usize) {
        self.queued.reserve(users);
    }

    pub(crate) fn add_group(&mut self) {
        self.pending_users.push(0);
        self.processing_started.push(false);
    }

    pub(crate) fn is_queued(&self, user: UserRef) -> bool {
        self.queued[user.0 as usize]
    }

    /// Number of users waiting for evaluation.
    pub(crate) fn len(&self) -> usize {
        self.queued_count
    }

    /// Whether the queue order holds any entry (possibly of a user dequeued since).
    pub(crate) fn has_entries(&self) -> bool {
        !self.order.is_empty()
    }

    /// Queues a user, a member of `groups`, once: a queued user stays where it is. Returns
    /// whether it was queued now.
    pub(crate) fn enqueue(&mut self, user: UserRef, groups: impl Iterator<Item = GroupRef>) -> bool {
        if self.queued[user.0 as usize] {
            return false;
        }
        self.queued[user.0 as usize] = true;
        self.queued_count += 1;
        self.order.push_back(user);
        self.newly_queued.push(user);
        for group in groups {
            self.pending_users[group.0 as usize] += 1;
        }
        true
    }

    /// A user joined a group: a queued user now counts for it.
    pub(crate) fn member_added(&mut self, group: GroupRef, user: UserRef) {
        if self.is_queued(user) {
            self.pending_users[group.0 as usize] += 1;
        }
    }

    /// A user left a group: a queued user no longer counts for it.
    pub(crate) fn member_removed(&mut self, group: GroupRef, user: UserRef) {
        if self.is_queued(user) {
            self.release_pending(group);
        }
    }

    fn release_pending(&mut self, group: GroupRef) {
        let pending = &mut self.pending_users[group.0 as usize];
        *pending = pending.saturating_sub(1);
        self.processing_started[group.0 as usize] = *pending > 0;
    }

    /// Takes a user, a member of `groups`, out of the queue's bookkeeping (it is evaluated now,
    /// or deleted).
    pub(crate) fn dequeue(&mut self, user: UserRef, groups: impl Iterator<Item = GroupRef>) {
        if !self.queued[user.0 as usize] {
            return;
        }
        self.queued[user.0 as usize] = false;
        self.queued_count -= 1;
        for group in groups {
            self.release_pending(group);
        }
    }

    /// The next queued user in queue order, taken off the order (still counted as queued until
    /// [`WorkQueue::dequeue`]).
    pub(crate) fn pop_next(&mut self) -> Option<UserRef> {
        while let Some(user) = self.order.pop_front() {
            if self.queued[user.0 as usize] {
                return Some(user);
            }
        }
        None
    }

    /// Empties the queue and its per-group counters, as in a new engine (users and groups keep
    /// their slots).
    pub(crate) fn reset(&mut self) {
        self.order.clear();
        self.queued.fill(false);
        self.queued_count = 0;
        self.newly_queued.clear();
        self.pending_users.fill(0);
        self.processing_started.fill(false);
    }

    /// Forgets which users were queued since the last command or step.
    pub(crate) fn clear_newly_queued(&mut self) {
        self.newly_queued.clear();
    }

    /// The users queued since the last command or step, in order (a user may appear twice when
    /// it was evaluated in between).
    pub(crate) fn take_newly_queued(&mut self) -> Vec<UserRef> {
        std::mem::take(&mut self.newly_queued)
    }

    /// Queued users in queue order, each once.
    pub(crate) fn queued_in_order(&self) -> impl Iterator<Item = UserRef> + '_ {
        let mut seen = FxHashSet::default();
        self.order
            .iter()
            .copied()
            .filter(move |user| self.queued[user.0 as usize] && seen.insert(*user))
    }

    /// A group's queued members, and whether some of its members were evaluated already while
    /// others are still queued.
    pub(crate) fn group_processing(&self, group: GroupRef) -> (u64, bool) {
        (
            self.pending_users[group.0 as usize],
            self.processing_started[group.0 as usize],
        )
    }
}
