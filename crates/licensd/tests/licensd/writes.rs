//! Concurrent writes through a real `licensd serve`: many clients adding members at once (the
//! runtime writes concurrent commands together, group commit) all land — every membership is
//! stored, each is audited once, a refused command fails alone, and the processor licenses the
//! new members.

use std::time::Duration;

use licensd_engine::{AssignedLicense, Uuid};
use licensd_fixtures::seed_world::{SeedSeats, SeedWorld, OFFICE_365_E3};

use crate::support::{http, load_engine, store_tenant, Server, TestDatabase};

const CLIENTS: usize = 8;
const ADDS_PER_CLIENT: usize = 12;

fn concurrent_membership_adds_all_land(database: TestDatabase) {
    let mut world = SeedWorld::new(SeedSeats {
        office_365_e1: 10,
        office_365_e3: (CLIENTS * ADDS_PER_CLIENT) as u32,
        ems_e3: 10,
        workplace_analytics: 10,
    })
    .expect("seed world");
    let users: Vec<Uuid> = (0..CLIENTS * ADDS_PER_CLIENT)
        .map(|number| {
            world
                .add_user(&format!("writer{number:03}"), Some("US"))
                .expect("user")
        })
        .collect();
    let licensed = world.add_group("Licensed").expect("group");
    world
        .assign_to_group(licensed, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])
        .expect("group E3");
    let plain = world.add_group("Plain").expect("group");
    let tenant_id = store_tenant(&database, &world.engine);
    let token = licensd_runtime::access::generate_token_text().expect("a token");
    let mut server = Server::start_with(
        &database,
        "writes",
        500,
        20,
        &[("LICENSD_BOOTSTRAP_TOKEN", token.as_str())],
    );
    server.wait_until_serving(Duration::from_secs(60));
    let address = server.address();

    // Every user joins both groups; client `k` adds users k, k + CLIENTS, ... Each client also
    // sends one add that must be refused (its first user again, already a member).
    let add = |group: Uuid, user: Uuid| {
        http(
            &address,
            "POST",
            &format!("/v1.0/groups/{group}/members/$ref"),
            &token,
            Some(&serde_json::json!({
                "@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{user}")
            })),
        )
    };
    std::thread::scope(|scope| {
        for client in 0..CLIENTS {
            let users = &users;
            let add = &add;
            scope.spawn(move || {
                let mine: Vec<Uuid> = users.iter().skip(client).step_by(CLIENTS).copied().collect();
                for (index, user) in mine.iter().enumerate() {
                    for group in [licensed, plain] {
                        let (status, body) = add(group, *user);
                        assert_eq!(status, 204, "adding {user} to {group}: {body}");
                    }
                    if index == 2 {
                        let (status, body) = add(licensed, mine[0]);
                        assert_eq!(status, 400, "adding a member again is refused: {body}");
                    }
                }
            });
        }
    });

    // Every member is licensed by the processor.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = http(
            &address,
            "GET",
            &format!("/v1.0/groups/{licensed}/members?$top=999"),
            &token,
            None,
        );
        assert_eq!(status, 200, "{body}");
        let members = body["value"].as_array().map_or(0, Vec::len);
        assert_eq!(members, users.len(), "every add landed in the served tenant");
        let (_, overview) = http(&address, "GET", "/licensd/v1/overview", &token, None);
        if overview["queuedUsers"] == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the members were not processed: {overview}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.stop();

    // The store holds every membership, in the order the engine holds them.
    let engine = load_engine(&database, tenant_id);
    for user in &users {
        let view = engine.user_view(*user).expect("user");
        let mut groups: Vec<Uuid> = view.member_of.clone();
        groups.sort();
        let mut expected = vec![licensed, plain];
        expected.sort();
        assert_eq!(groups, expected, "memberships of {user}");
        assert!(
            engine
                .user_license_states(*user)
                .expect("states")
                .iter()
                .any(|state| state.sku_id == OFFICE_365_E3 && state.assigned_by_group == Some(licensed)),
            "{user} holds the group's license"
        );
    }
    // One audit record per command: every add a success, every repeated add a failure.
    let mut store = database.open();
    let records = store
        .audit_records(
            tenant_id,
            &licensd_store::AuditQuery {
                activity: Some("Add member to group".to_string()),
                limit: 10_000,
                ..licensd_store::AuditQuery::default()
            },
        )
        .expect("audit records");
    let adds: Vec<_> = records.iter().map(|stored| &stored.record).collect();
    assert_eq!(
        adds.iter().filter(|record| record.result == "success").count(),
        2 * users.len()
    );
    assert_eq!(
        adds.iter().filter(|record| record.result == "failure").count(),
        CLIENTS
    );
}

#[test]
fn concurrent_membership_adds_all_land_sqlite() {
    concurrent_membership_adds_all_land(TestDatabase::sqlite());
}

#[test]
fn concurrent_membership_adds_all_land_postgres() {
    if let Some(database) = TestDatabase::postgres("concurrent_writes") {
        concurrent_membership_adds_all_land(database);
    }
}
