//! Cost and idle seats on the demo tenant: the product, source (group or direct) and total views
//! add up to the same amounts; idle seats are found for each reason; a seat held through two
//! sources is counted once.

use std::collections::BTreeMap;

use licensd_engine::spend::{
    CostOwner, IdlePolicy, IdleReason, SeatPrice, SpendInputs, UserActivity, DAY_MILLISECONDS,
};
use licensd_engine::{Command, Timestamp, UserAttribute, UserChanges, Uuid};
use licensd_fixtures::seed_world::{SeedWorld, EMS_E3, OFFICE_365_E1, OFFICE_365_E3};
use rustc_hash::FxHashMap;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn prices() -> FxHashMap<Uuid, SeatPrice> {
    let mut prices = FxHashMap::default();
    prices.insert(
        OFFICE_365_E1,
        SeatPrice {
            minor_units: 1000,
            currency: "EUR".into(),
        },
    );
    prices.insert(
        OFFICE_365_E3,
        SeatPrice {
            minor_units: 3300,
            currency: "EUR".into(),
        },
    );
    prices.insert(
        EMS_E3,
        SeatPrice {
            minor_units: 1060,
            currency: "USD".into(),
        },
    );
    prices
}

#[test]
fn cost_views_add_up_and_idle_seats_have_their_reason() -> TestResult {
    let (mut world, directory) = SeedWorld::demo()?;
    let now = Timestamp(400 * DAY_MILLISECONDS);
    // User 200 disabled, user 201 left, user 202 inactive for 100 days, user 203 active.
    world.apply(Command::UpdateUser {
        user_id: directory.users[199],
        changes: UserChanges {
            account_enabled: Some(false),
            ..Default::default()
        },
    })?;
    for (number, department) in [
        (1, "Sales"),
        (2, "Sales"),
        (140, "Engineering"),
        (200, "Frontline"),
    ] {
        world.apply(Command::UpdateUser {
            user_id: directory.users[number - 1],
            changes: UserChanges {
                attributes: [(UserAttribute::DEPARTMENT, Some(department.to_string()))].into(),
                ..Default::default()
            },
        })?;
    }
    world.apply(Command::UpdateUser {
        user_id: directory.users[0],
        changes: UserChanges {
            attributes: [(UserAttribute::COMPANY_NAME, Some("Contoso".to_string()))].into(),
            ..Default::default()
        },
    })?;
    world.process();
    let mut activity = FxHashMap::default();
    activity.insert(
        directory.users[200],
        UserActivity {
            last_sign_in: None,
            leave_date: Some(Timestamp(now.0 - DAY_MILLISECONDS)),
        },
    );
    activity.insert(
        directory.users[201],
        UserActivity {
            last_sign_in: Some(Timestamp(now.0 - 100 * DAY_MILLISECONDS)),
            leave_date: None,
        },
    );
    activity.insert(
        directory.users[202],
        UserActivity {
            last_sign_in: Some(Timestamp(now.0 - DAY_MILLISECONDS)),
            leave_date: None,
        },
    );
    let prices = prices();
    let inputs = SpendInputs {
        prices: &prices,
        activity: &activity,
        policy: IdlePolicy {
            now,
            inactive_after_days: 90,
        },
    };
    let report = world.engine.cost_report(&inputs);

    // Products: consumed seats as the engine counts them, cost = seats × price.
    for product in &report.products {
        let usage = world.engine.sku_usage(product.sku_id)?;
        assert_eq!(product.consumed, usage.consumed_units);
        assert_eq!(product.purchased, usage.prepaid_units);
        let price = product.price.as_ref().map_or(0, |price| price.minor_units);
        assert_eq!(product.consumed_cost, price * i64::from(usage.consumed_units));
        assert_eq!(product.idle_cost, price * i64::from(product.idle_seats()));
    }
    // Sources: each product's consumed seats are split over the sources without loss.
    let mut seats_by_sources: BTreeMap<Uuid, u32> = BTreeMap::new();
    let mut cost_by_sources: BTreeMap<String, i64> = BTreeMap::new();
    let mut idle_by_sources: BTreeMap<String, i64> = BTreeMap::new();
    for source in &report.sources {
        for (sku_id, _, seats) in &source.seats {
            *seats_by_sources.entry(*sku_id).or_default() += seats;
        }
        for (currency, amount) in &source.cost {
            *cost_by_sources.entry(currency.clone()).or_default() += amount;
        }
        for (currency, amount) in &source.idle_cost {
            *idle_by_sources.entry(currency.clone()).or_default() += amount;
        }
    }
    for product in &report.products {
        assert_eq!(
            seats_by_sources.get(&product.sku_id).copied().unwrap_or(0),
            product.consumed
        );
    }
    assert_eq!(cost_by_sources, report.consumed_cost);
    let eur: i64 = report
        .products
        .iter()
        .filter(|product| {
            product
                .price
                .as_ref()
                .is_some_and(|price| price.currency == "EUR")
        })
        .map(|product| product.consumed_cost)
        .sum();
    assert_eq!(report.consumed_cost["EUR"], eur);
    // Departments and companies: every consumed seat once, every amount once.
    let total_consumed: u32 = report.products.iter().map(|product| product.consumed).sum();
    for view in [&report.departments, &report.companies] {
        assert_eq!(view.iter().map(|entry| entry.seats).sum::<u32>(), total_consumed);
        let mut cost: BTreeMap<String, i64> = BTreeMap::new();
        for entry in view.iter() {
            for (currency, amount) in &entry.cost {
                *cost.entry(currency.clone()).or_default() += amount;
            }
        }
        assert_eq!(cost, report.consumed_cost);
    }
    let sales = report
        .departments
        .iter()
        .find(|entry| entry.value.as_deref() == Some("Sales"))
        .ok_or("no Sales department")?;
    // Users 1 and 2: E1 (direct, decided first), EMS (Mobility); Sales' E3 conflicts with E1
    // and holds no seat.
    assert_eq!(sales.seats, 4, "{sales:?}");
    assert_eq!(sales.cost["EUR"], 2 * 1000);
    assert_eq!(sales.cost["USD"], 2 * 1060);
    let frontline = report
        .departments
        .iter()
        .find(|entry| entry.value.as_deref() == Some("Frontline"))
        .ok_or("no Frontline department")?;
    assert_eq!(
        (frontline.seats, frontline.idle_seats),
        (1, 1),
        "user 200 is disabled"
    );
    assert_eq!(report.companies.len(), 2, "Contoso and users without a company");

    // Users 1-5 hold E1 directly: the direct source has those seats.
    let direct = report
        .sources
        .iter()
        .find(|source| source.owner == CostOwner::Direct)
        .ok_or("no direct source")?;
    assert!(direct
        .seats
        .iter()
        .any(|(sku, _, seats)| *sku == OFFICE_365_E1 && *seats == 5));
    // Users 101-115 hold E3 through Sales and the Analytics pilot: one seat each, attributed once.
    let e3_seats: u32 = report
        .sources
        .iter()
        .flat_map(|source| source.seats.iter())
        .filter(|(sku, _, _)| *sku == OFFICE_365_E3)
        .map(|(_, _, seats)| seats)
        .sum();
    assert_eq!(e3_seats, world.engine.sku_usage(OFFICE_365_E3)?.consumed_units);

    // Idle seats: users 200 (disabled), 201 (left), 202 (inactive), each in Frontline (E1).
    let idle = world.engine.idle_seats(&inputs);
    let reason_of = |user: Uuid| {
        idle.iter()
            .filter(|seat| seat.user.user_id == user)
            .map(|seat| seat.reason)
            .collect::<Vec<_>>()
    };
    assert_eq!(reason_of(directory.users[199]), vec![IdleReason::Disabled]);
    assert_eq!(reason_of(directory.users[200]), vec![IdleReason::Left]);
    assert_eq!(reason_of(directory.users[201]), vec![IdleReason::Inactive]);
    assert!(reason_of(directory.users[202]).is_empty());
    assert_eq!(idle.len(), 3);
    let e1 = report
        .products
        .iter()
        .find(|product| product.sku_id == OFFICE_365_E1)
        .ok_or("no E1")?;
    assert_eq!(e1.idle_held, [1, 1, 1]);
    // The console's count of seats held by idle users comes from the cost report: the same seats.
    let held_by_idle: u32 = report.products.iter().flat_map(|product| product.idle_held).sum();
    assert_eq!(held_by_idle as usize, idle.len());
    assert_eq!(idle_by_sources.values().sum::<i64>(), 3 * 1000);
    Ok(())
}
