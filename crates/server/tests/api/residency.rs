//! Which tenants an instance holds in memory (`tenant-idle-eviction-s`): an instance that does
//! not process a tenant loads it at the first request about it, answers as the instance that
//! wrote, evicts it after the idle period and loads it again at the next request — on SQLite
//! and PostgreSQL. Residency is read from `/readyz` as an operator would.

use std::time::{Duration, Instant};

use licensd_engine::Uuid;

use crate::support::{TestDatabase, TestServer, E3};

/// What `/readyz` says this instance holds: (in memory, loaded since start, evicted since start).
async fn residency(server: &TestServer) -> (u64, u64, u64) {
    let response = reqwest::get(server.url("/readyz")).await.expect("readyz");
    let text = response.text().await.expect("a body");
    // "ready: R tenant(s) in memory of K known (L loaded, E evicted since start); ..."
    let numbers: Vec<u64> = text
        .split(|character: char| !character.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().expect("a number"))
        .collect();
    assert!(numbers.len() >= 4, "{text}");
    (numbers[0], numbers[2], numbers[3])
}

/// Waits (at most 30 seconds) until `done` holds of the instance's residency.
async fn wait_for(
    server: &TestServer,
    what: &str,
    done: impl Fn((u64, u64, u64)) -> bool,
) -> (u64, u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let figures = residency(server).await;
        if done(figures) {
            return figures;
        }
        assert!(Instant::now() < deadline, "{what}: residency {figures:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_tenant_not_held_is_loaded_at_the_first_request_and_again_after_eviction(database: TestDatabase) {
    let first = TestServer::start_with(database, |config| {
        config.instance_id = "residency-first".to_string();
        config.processing_lease = Duration::from_secs(1);
    })
    .await;
    let url = first.database_url.clone();
    let tenant: Uuid = std::thread::spawn(move || {
        licensd_store::Store::open(&url)
            .expect("store")
            .tenant_ids()
            .expect("tenants")[0]
    })
    .join()
    .expect("tenant id");
    // The second instance is named so that the first processes the tenant: the second holds it
    // only for requests.
    let second_id = (0..)
        .map(|number| format!("residency-second-{number}"))
        .find(|id| {
            licensd_runtime::ownership::owner(&["residency-first".to_string(), id.clone()], tenant)
                == Some("residency-first")
        })
        .expect("a name");
    let second = first
        .start_another_with(|config| {
            config.instance_id = second_id;
            config.processing_lease = Duration::from_secs(1);
            config.tenant_idle_eviction = Some(Duration::from_millis(300));
        })
        .await;
    // Nothing is loaded at start (or, if the second briefly processed the tenant before it saw
    // the first, it is evicted once handed over and idle).
    wait_for(
        &second,
        "the second instance holds no tenant",
        |(resident, _, _)| resident == 0,
    )
    .await;

    first.import_seed_products(5, 5, 0, 0).await;
    let group = first.create_group("Everyone").await;
    first.assign_to_group(group, &[E3]).await.expect(202);
    let user = first.create_user("resident", Some("US")).await;
    first.add_member(group, user).await;
    first.settle().await;
    let expected = first.states(user).await;
    assert_eq!(expected.len(), 1, "{expected:#?}");
    let (_, loads_before, _) = residency(&second).await;

    // The first request loads the tenant and answers as the instance that wrote.
    assert_eq!(second.states(user).await, expected);
    let (resident, loads, _) = residency(&second).await;
    assert!(loads > loads_before, "the request loaded the tenant");
    assert!(resident <= 1);

    // Idle past the eviction period, it leaves memory.
    let (_, loads_after_first, evictions) =
        wait_for(&second, "the idle tenant is evicted", |(resident, _, evicted)| {
            resident == 0 && evicted >= 1
        })
        .await;
    assert!(evictions >= 1);

    // Writes made meanwhile are in what the next request loads.
    let later = first.create_user("later", Some("US")).await;
    first.add_member(group, later).await;
    first.settle().await;
    let expected_later = first.states(later).await;
    assert_eq!(expected_later.len(), 1, "{expected_later:#?}");
    assert_eq!(second.states(later).await, expected_later);
    assert_eq!(second.states(user).await, expected);
    let (_, loads, _) = residency(&second).await;
    assert!(loads > loads_after_first, "the evicted tenant was loaded again");

    second.stop().await;
    first.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_not_held_is_loaded_at_the_first_request_and_again_after_eviction_sqlite() {
    a_tenant_not_held_is_loaded_at_the_first_request_and_again_after_eviction(TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_not_held_is_loaded_at_the_first_request_and_again_after_eviction_postgres() {
    let Some(database) = TestDatabase::postgres("residency_on_demand") else {
        return;
    };
    a_tenant_not_held_is_loaded_at_the_first_request_and_again_after_eviction(database).await;
}
