//! Placeholder until written.
use licensd_engine::seed_world::*;
#[test]
fn dump() {
    let w = SeedWorld::new(SeedSeats::default()).unwrap();
    for u in w.engine.sku_usages() {
        println!("SKU {} {} {} prepaid {}", u.sku_id, u.sku_part_number, u.display_name, u.prepaid_units);
        for (id, name, dn) in &u.service_plans {
            let r = w.engine.service_plan_rules(*id).unwrap();
            println!("   {id} {name} {dn:?} excl={:?} req={:?} unavail={:?} mbx={}", r.mutually_exclusive_with, r.requires_any_of, r.unavailable_in, r.needs_unique_proxy_address);
        }
    }
}
