//! Engine-local handles of users, groups, products, sources and error causes: small copyable
//! indexes every part of the engine shares, kept apart so no part depends on another to name them.

/// Engine-local handle of a user (stable for the engine's lifetime, never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserRef(pub u32);

/// Engine-local handle of a group (stable for the engine's lifetime, never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupRef(pub u32);

/// Engine-local handle of a product (SKU).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SkuRef(pub u16);

/// Where an assignment comes from, in engine-local handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Direct,
    Group(GroupRef),
}

/// Handle of an interned error cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CauseId(pub u32);

#[cold]
// The workspace denies `panic!` outside tests; this is its one exception, an internal invariant
// of the engine's arenas (like an index out of bounds), never reachable from input: every
// command is validated against the live indexes before a handle is taken.
#[allow(clippy::panic)]
pub(crate) fn unreachable_deleted() -> ! {
    // Handles are only ever taken from the live indexes, and a deleted slot is never looked up
    // through one: reaching this is a bug in the engine itself.
    panic!("licensd-engine: a handle pointed at a deleted user or group")
}
