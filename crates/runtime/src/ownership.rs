//! Which instance processes which tenant: the tenants are shared out among the live processing
//! instances (those whose announcement in the store has not expired) by rendezvous hashing. Each
//! instance computes the same answer from the same list, so N instances each process about 1/N
//! of the tenants, and when one joins or leaves only the tenants it gains or loses move. The
//! processing lease still guarantees that at most one instance processes a tenant at a time
//! while instances' lists briefly differ.

use licensd_engine::Uuid;
use sha2::{Digest, Sha256};

/// The weight of `instance` for `tenant`: the tenant goes to the live instance of highest weight.
/// A hash of both, stable across processes, versions and platforms.
fn weight(instance: &str, tenant: Uuid) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(tenant.as_bytes());
    hasher.update(instance.as_bytes());
    hasher.finalize().into()
}

/// The instance among `live` that processes `tenant` (`None` when `live` is empty).
pub fn owner(live: &[String], tenant: Uuid) -> Option<&str> {
    live.iter()
        .map(|instance| (weight(instance, tenant), instance))
        .max()
        .map(|(_, instance)| instance.as_str())
}

/// Whether `instance` processes `tenant` when `live` are the live instances. An instance that
/// does not see itself among them (its announcement failed or has not landed yet) counts itself
/// in, so a lone instance always processes.
pub fn owns(live: &[String], instance: &str, tenant: Uuid) -> bool {
    if live.iter().any(|live| live == instance) {
        owner(live, tenant) == Some(instance)
    } else {
        let mut with_self = live.to_vec();
        with_self.push(instance.to_string());
        owner(&with_self, tenant) == Some(instance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instances(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    fn tenants(count: u128) -> Vec<Uuid> {
        (1..=count).map(Uuid::from_u128).collect()
    }

    #[test]
    fn every_tenant_has_exactly_one_owner_among_the_live_instances() {
        let live = instances(&["a", "b", "c"]);
        for tenant in tenants(300) {
            let owners = live
                .iter()
                .filter(|instance| owns(&live, instance, tenant))
                .count();
            assert_eq!(owners, 1, "tenant {tenant}");
        }
    }

    #[test]
    fn tenants_are_shared_out_evenly() {
        let live = instances(&["licensd-a", "licensd-b", "licensd-c"]);
        let all = tenants(3000);
        for instance in &live {
            let owned = all
                .iter()
                .filter(|tenant| owns(&live, instance, **tenant))
                .count();
            // 1,000 expected; a fair hash stays well within ±15 %.
            assert!((850..=1150).contains(&owned), "{instance} owns {owned} of 3000");
        }
    }

    #[test]
    fn a_joining_instance_takes_tenants_only_from_the_others_and_a_leaving_one_hands_only_its_own() {
        let before = instances(&["a", "b"]);
        let after = instances(&["a", "b", "c"]);
        let mut moved = 0;
        for tenant in tenants(600) {
            let old = owner(&before, tenant);
            let new = owner(&after, tenant);
            if old != new {
                assert_eq!(new, Some("c"), "only the newcomer gains tenants");
                moved += 1;
            }
        }
        assert!((150..=250).contains(&moved), "about a third moves, {moved} did");
        // And back: when c leaves, exactly its tenants return to where they were.
        for tenant in tenants(600) {
            if owner(&after, tenant) != Some("c") {
                assert_eq!(owner(&after, tenant), owner(&before, tenant));
            }
        }
    }

    #[test]
    fn an_instance_missing_from_the_list_counts_itself_in() {
        let tenant = Uuid::from_u128(7);
        assert!(owns(&[], "alone", tenant));
        let others = instances(&["a"]);
        let with_me = instances(&["a", "me"]);
        assert_eq!(owns(&others, "me", tenant), owner(&with_me, tenant) == Some("me"));
    }
}
