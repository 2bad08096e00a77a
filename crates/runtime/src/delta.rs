//! What a Graph delta round lists, from the store's change log (`tenant_changes`) and the engine:
//! without a token every user or group; from a token the objects the writes after its version
//! touched — users whose properties, licenses, memberships or license states changed; groups whose
//! properties or licenses changed, and when members are followed those a changed user belongs to —
//! each present or removed, sorted by id so pages follow each other. The server parses the tokens
//! (`licensd_protocols::odata::delta`), pages the entries and renders them.

use licensd_engine::{Engine, Uuid};
use licensd_store::{Store, StoreError};

/// Which objects a delta query follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeltaKind {
    Users,
    Groups,
}

/// Why the changes since a token cannot be listed (the client starts a new round), or the store
/// could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// A version in the range has no record: the log was compacted past the token.
    #[error("the change log no longer reaches back to it")]
    LogCompacted,
    /// A write in the range touched too many objects to list them.
    #[error("a change since touched too many objects to list; the whole directory must be read again")]
    TooManyObjects,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the writes of a range of versions touched, from the change log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// Objects of the round's kind that were written (they may have been deleted since).
    pub touched: Vec<Uuid>,
    pub deleted: Vec<Uuid>,
    /// Groups rounds: users that were written, whose groups count as changed when members are
    /// followed (memberships are stored with users).
    pub users_of_groups: Vec<Uuid>,
}

/// The ids the writes in `(after, up_to]` touched, present and deleted, from the change log.
pub fn changed_since(
    store: &mut Store,
    tenant_id: Uuid,
    kind: DeltaKind,
    after: u64,
    up_to: u64,
) -> Result<Changed, DeltaError> {
    let changes = store.changes_since(tenant_id, after)?;
    let changes: Vec<_> = changes
        .into_iter()
        .filter(|change| change.version <= up_to)
        .collect();
    // Every version has its record: a gap means the log was compacted past the token.
    let complete = changes
        .iter()
        .enumerate()
        .all(|(index, change)| change.version == after + 1 + index as u64)
        && changes.len() as u64 == up_to - after;
    if !complete {
        return Err(DeltaError::LogCompacted);
    }
    if changes.iter().any(|change| change.everything) {
        return Err(DeltaError::TooManyObjects);
    }
    let mut changed = Changed::default();
    for change in changes {
        match kind {
            DeltaKind::Users => {
                changed.touched.extend(change.users);
                changed.deleted.extend(change.deleted_users);
            }
            DeltaKind::Groups => {
                changed.touched.extend(change.groups);
                changed.deleted.extend(change.deleted_groups);
                changed.users_of_groups.extend(change.users);
            }
        }
    }
    Ok(changed)
}

/// One entry of a round: an object to show, or one that was deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeltaEntry {
    Present(Uuid),
    Removed(Uuid),
}

impl DeltaEntry {
    pub fn id(&self) -> Uuid {
        match self {
            DeltaEntry::Present(id) | DeltaEntry::Removed(id) => *id,
        }
    }
}

/// The entries of a round, sorted by id: everything (`changed` is `None`) or the changes, with
/// the groups of changed users when `members` are followed.
pub fn round_entries(
    engine: &Engine,
    kind: DeltaKind,
    changed: Option<Changed>,
    members: bool,
) -> Vec<DeltaEntry> {
    let exists = |id: Uuid| match kind {
        DeltaKind::Users => engine.user_view(id).is_ok(),
        DeltaKind::Groups => engine.group_view(id).is_ok(),
    };
    let mut entries: Vec<DeltaEntry> = match changed {
        None => match kind {
            DeltaKind::Users => engine.user_ids(),
            DeltaKind::Groups => engine.group_ids(),
        }
        .into_iter()
        .map(DeltaEntry::Present)
        .collect(),
        Some(changed) => {
            let mut ids = changed.touched;
            if members {
                for user_id in changed.users_of_groups {
                    if let Ok(view) = engine.user_view(user_id) {
                        ids.extend(view.member_of);
                    }
                }
            }
            ids.extend(changed.deleted);
            ids.sort();
            ids.dedup();
            ids.into_iter()
                .map(|id| {
                    if exists(id) {
                        DeltaEntry::Present(id)
                    } else {
                        DeltaEntry::Removed(id)
                    }
                })
                .collect()
        }
    };
    entries.sort_by_key(DeltaEntry::id);
    entries
}

#[cfg(test)]
mod tests {
    use licensd_engine::{Command, NewUser, TenantSettings, Timestamp};
    use licensd_store::WriteBatch;

    use super::*;

    const TENANT: Uuid = Uuid::from_u128(1);
    const ALICE: Uuid = Uuid::from_u128(10);
    const BOB: Uuid = Uuid::from_u128(11);
    const SALES: Uuid = Uuid::from_u128(20);
    const TEMPORARY: Uuid = Uuid::from_u128(21);

    /// A tenant on a fresh SQLite store, written one command (one version) at a time as the
    /// runtime writes it.
    struct Tenant {
        _directory: tempfile::TempDir,
        store: Store,
        engine: Engine,
    }

    impl Tenant {
        fn new() -> Tenant {
            let directory = tempfile::tempdir().expect("temporary directory");
            let url = format!("sqlite://{}", directory.path().join("delta.db").display());
            let mut store = Store::open(&url).expect("open");
            let settings = TenantSettings::new(TENANT, "Contoso");
            store.create_tenant(&settings).expect("tenant");
            Tenant {
                _directory: directory,
                store,
                engine: Engine::new(settings),
            }
        }

        /// Applies and stores one command; returns the version it was written as.
        fn write(&mut self, command: Command) -> u64 {
            let outcome = self.engine.apply(command, Timestamp(0)).expect("accepted");
            self.store
                .write(TENANT, &WriteBatch::from_command_outcome(&outcome))
                .expect("written")
        }
    }

    /// Alice and Bob, Sales with Alice in it, and a group deleted again.
    fn directory() -> (Tenant, u64) {
        let mut tenant = Tenant::new();
        tenant.write(Command::CreateUser(NewUser::new(ALICE, "alice@contoso.com")));
        tenant.write(Command::CreateUser(NewUser::new(BOB, "bob@contoso.com")));
        tenant.write(Command::CreateGroup {
            group_id: SALES,
            display_name: "Sales".to_string(),
        });
        tenant.write(Command::CreateGroup {
            group_id: TEMPORARY,
            display_name: "Temporary".to_string(),
        });
        let before_changes = tenant.write(Command::AddGroupMember {
            group_id: SALES,
            user_id: ALICE,
        });
        (tenant, before_changes)
    }

    #[test]
    fn a_range_lists_what_its_writes_touched_and_deleted() {
        let (mut tenant, after) = directory();
        tenant.write(Command::DeleteUser { user_id: BOB });
        let latest = tenant.write(Command::DeleteGroup { group_id: TEMPORARY });

        let users = changed_since(&mut tenant.store, TENANT, DeltaKind::Users, after, latest).expect("users");
        assert_eq!(users.deleted, [BOB]);
        assert!(
            !users.touched.contains(&ALICE),
            "Alice was not written after the token"
        );

        let groups =
            changed_since(&mut tenant.store, TENANT, DeltaKind::Groups, after, latest).expect("groups");
        assert_eq!(groups.deleted, [TEMPORARY]);
        assert!(groups.touched.is_empty());

        // Everything since the first write: Alice and Bob were written, Bob deleted.
        let all = changed_since(&mut tenant.store, TENANT, DeltaKind::Users, 0, latest).expect("all");
        assert!(
            all.touched.contains(&ALICE) && all.touched.contains(&BOB),
            "{all:?}"
        );
    }

    #[test]
    fn a_range_the_log_does_not_cover_is_refused() {
        let (mut tenant, latest) = directory();
        let beyond = changed_since(&mut tenant.store, TENANT, DeltaKind::Users, 0, latest + 3);
        assert!(matches!(beyond, Err(DeltaError::LogCompacted)), "{beyond:?}");
    }

    #[test]
    fn entries_are_sorted_present_or_removed_and_follow_members_on_request() {
        let (mut tenant, _) = directory();
        tenant.write(Command::DeleteUser { user_id: BOB });
        tenant.write(Command::DeleteGroup { group_id: TEMPORARY });

        let everything = round_entries(&tenant.engine, DeltaKind::Users, None, false);
        assert_eq!(everything, [DeltaEntry::Present(ALICE)], "Bob is gone");

        let changed = Changed {
            touched: vec![BOB, ALICE],
            deleted: vec![BOB],
            users_of_groups: Vec::new(),
        };
        assert_eq!(
            round_entries(&tenant.engine, DeltaKind::Users, Some(changed), false),
            [DeltaEntry::Present(ALICE), DeltaEntry::Removed(BOB)],
            "sorted by id, each once"
        );

        let groups_changed = Changed {
            touched: Vec::new(),
            deleted: vec![TEMPORARY],
            users_of_groups: vec![ALICE],
        };
        assert_eq!(
            round_entries(
                &tenant.engine,
                DeltaKind::Groups,
                Some(groups_changed.clone()),
                true
            ),
            [DeltaEntry::Present(SALES), DeltaEntry::Removed(TEMPORARY)],
            "Alice's group counts as changed when members are followed"
        );
        assert_eq!(
            round_entries(&tenant.engine, DeltaKind::Groups, Some(groups_changed), false),
            [DeltaEntry::Removed(TEMPORARY)]
        );
    }
}
