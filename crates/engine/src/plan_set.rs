//! Compact sets of service plans: fixed-width bitsets over tenant-local plan indices, and an
//! interner so that the millions of license assignment states share a few thousand distinct sets.

use rustc_hash::FxHashMap;

/// The most service plans one tenant can know. The whole Microsoft catalog has 723.
pub const MAX_SERVICE_PLANS: usize = 1024;
const WORDS: usize = MAX_SERVICE_PLANS / 64;

/// Tenant-local index of a service plan (position in the engine's plan table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PlanRef(pub u16);

/// A set of service plans as a bitset over [`PlanRef`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlanSet {
    words: [u64; WORDS],
}

impl Default for PlanSet {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl std::fmt::Debug for PlanSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter().map(|p| p.0)).finish()
    }
}

impl PlanSet {
    pub const EMPTY: PlanSet = PlanSet { words: [0; WORDS] };

    pub fn from_plans(plans: impl IntoIterator<Item = PlanRef>) -> Self {
        let mut set = Self::EMPTY;
        for plan in plans {
            set.insert(plan);
        }
        set
    }

    pub fn insert(&mut self, plan: PlanRef) {
        let index = plan.0 as usize;
        self.words[index / 64] |= 1 << (index % 64);
    }

    pub fn remove(&mut self, plan: PlanRef) {
        let index = plan.0 as usize;
        self.words[index / 64] &= !(1 << (index % 64));
    }

    pub fn contains(&self, plan: PlanRef) -> bool {
        let index = plan.0 as usize;
        self.words[index / 64] & (1 << (index % 64)) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|word| *word == 0)
    }

    pub fn len(&self) -> usize {
        self.words.iter().map(|word| word.count_ones() as usize).sum()
    }

    pub fn union(&self, other: &PlanSet) -> PlanSet {
        let mut out = *self;
        out.union_with(other);
        out
    }

    pub fn union_with(&mut self, other: &PlanSet) {
        for (mine, theirs) in self.words.iter_mut().zip(other.words.iter()) {
            *mine |= *theirs;
        }
    }

    pub fn intersection(&self, other: &PlanSet) -> PlanSet {
        let mut out = *self;
        for (mine, theirs) in out.words.iter_mut().zip(other.words.iter()) {
            *mine &= *theirs;
        }
        out
    }

    pub fn difference(&self, other: &PlanSet) -> PlanSet {
        let mut out = *self;
        for (mine, theirs) in out.words.iter_mut().zip(other.words.iter()) {
            *mine &= !*theirs;
        }
        out
    }

    pub fn intersects(&self, other: &PlanSet) -> bool {
        self.words
            .iter()
            .zip(other.words.iter())
            .any(|(mine, theirs)| mine & theirs != 0)
    }

    pub fn is_subset(&self, other: &PlanSet) -> bool {
        self.words
            .iter()
            .zip(other.words.iter())
            .all(|(mine, theirs)| mine & !theirs == 0)
    }

    pub fn iter(&self) -> impl Iterator<Item = PlanRef> + '_ {
        self.words.iter().enumerate().flat_map(|(word_index, word)| {
            let mut remaining = *word;
            std::iter::from_fn(move || {
                if remaining == 0 {
                    return None;
                }
                let bit = remaining.trailing_zeros() as usize;
                remaining &= remaining - 1;
                Some(PlanRef((word_index * 64 + bit) as u16))
            })
        })
    }
}

/// Handle of an interned [`PlanSet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PlanSetId(pub u32);

impl PlanSetId {
    /// The empty set is always interned first.
    pub const EMPTY: PlanSetId = PlanSetId(0);
}

/// Deduplicating store of plan sets. Sets are never freed: the number of distinct sets is bounded
/// by the distinct (product, disabled plans) combinations a tenant ever used.
#[derive(Clone, Debug)]
pub struct PlanSetInterner {
    sets: Vec<PlanSet>,
    ids: FxHashMap<PlanSet, PlanSetId>,
}

impl Default for PlanSetInterner {
    fn default() -> Self {
        let mut interner = PlanSetInterner {
            sets: Vec::new(),
            ids: FxHashMap::default(),
        };
        interner.intern(PlanSet::EMPTY);
        interner
    }
}

impl PlanSetInterner {
    pub fn intern(&mut self, set: PlanSet) -> PlanSetId {
        if let Some(id) = self.ids.get(&set) {
            return *id;
        }
        let id = PlanSetId(self.sets.len() as u32);
        self.sets.push(set);
        self.ids.insert(set, id);
        id
    }

    pub fn get(&self, id: PlanSetId) -> &PlanSet {
        &self.sets[id.0 as usize]
    }

    /// Number of distinct sets interned so far.
    pub fn len(&self) -> usize {
        self.sets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations_follow_set_algebra() {
        let a = PlanSet::from_plans([PlanRef(1), PlanRef(64), PlanRef(1023)]);
        let b = PlanSet::from_plans([PlanRef(64), PlanRef(2)]);
        assert_eq!(a.len(), 3);
        assert!(a.contains(PlanRef(1023)));
        assert!(!a.contains(PlanRef(2)));
        assert_eq!(a.intersection(&b), PlanSet::from_plans([PlanRef(64)]));
        assert_eq!(a.difference(&b), PlanSet::from_plans([PlanRef(1), PlanRef(1023)]));
        assert_eq!(a.union(&b).len(), 4);
        assert!(a.intersects(&b));
        assert!(!a.difference(&b).intersects(&b));
        assert!(PlanSet::from_plans([PlanRef(64)]).is_subset(&a));
        assert!(!b.is_subset(&a));
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            vec![PlanRef(1), PlanRef(64), PlanRef(1023)]
        );
        let mut c = a;
        c.remove(PlanRef(64));
        assert_eq!(c.len(), 2);
        assert!(PlanSet::EMPTY.is_empty());
    }

    #[test]
    fn interner_returns_the_same_id_for_equal_sets() {
        let mut interner = PlanSetInterner::default();
        assert_eq!(interner.intern(PlanSet::EMPTY), PlanSetId::EMPTY);
        let a = interner.intern(PlanSet::from_plans([PlanRef(3)]));
        let b = interner.intern(PlanSet::from_plans([PlanRef(3)]));
        let c = interner.intern(PlanSet::from_plans([PlanRef(4)]));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(interner.get(c), &PlanSet::from_plans([PlanRef(4)]));
        assert_eq!(interner.len(), 3);
    }
}
