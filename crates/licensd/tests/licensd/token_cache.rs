//! The token cache from outside (real `licensd serve` processes over HTTP): a token verified a
//! moment ago is remembered by each instance, and yet a revocation is refused at once — by the
//! instance it went through, by every other instance on the same PostgreSQL database (the
//! revoking transaction's notice), and within the watcher's check interval when it sent no
//! notice (another process writing the database); expiry is exact.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use licensd_engine::Uuid;
use licensd_fixtures::seed_world::{SeedSeats, SeedWorld};
use licensd_runtime::processor::VERSION_CHECK_INTERVAL;

use crate::support::{http, store_tenant, Server, TestDatabase};

/// How soon another instance refuses a token revoked through the first: the notice arrives in
/// milliseconds; generous for a loaded machine, yet well under the check interval (1 s), so
/// that an instance relying on the periodic check alone fails this test for most tokens.
const NOTICE_BOUND: Duration = Duration::from_millis(250);

/// How soon a revocation that sent no notice is refused: the watcher's next check, at most
/// [`VERSION_CHECK_INTERVAL`] away, plus its duration on a loaded machine — less than the
/// cache's own age limit (`TOKEN_CACHE_MEMORY`, 5 s), so a cache that waited for its entries to
/// age out fails.
const FALLBACK_BOUND: Duration = Duration::from_millis(3_000);

/// How late after its expiry a token is refused at most: the time between two requests of
/// this test on a loaded machine (the server compares the expiry on every request).
const EXPIRY_BOUND_MS: i64 = 500;

/// A route every role may read.
const READ: &str = "/v1.0/subscribedSkus";

/// The start of an answer, for failure messages (a list of products is long).
fn brief(body: &serde_json::Value) -> String {
    body.to_string().chars().take(300).collect()
}

fn milliseconds_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or_default()
}

/// A stored tenant and a bootstrap token for it.
fn tenant(database: &TestDatabase) -> String {
    let world = SeedWorld::new(SeedSeats {
        office_365_e1: 10,
        office_365_e3: 10,
        ems_e3: 10,
        workplace_analytics: 10,
    })
    .expect("seed world");
    store_tenant(database, &world.engine);
    licensd_runtime::access::generate_token_text().expect("a token")
}

/// Creates a Global Reader token through `address`; returns its id and text.
fn create_reader(address: &str, admin: &str, name: &str) -> (Uuid, String) {
    let (status, created) = http(
        address,
        "POST",
        "/licensd/v1/tokens",
        admin,
        Some(&serde_json::json!({"displayName": name, "role": "GlobalReader"})),
    );
    assert_eq!(status, 201, "{created}");
    let id = created["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("the token's id");
    let secret = created["secret"].as_str().expect("the token's text").to_string();
    (id, secret)
}

fn revoke(address: &str, admin: &str, token_id: Uuid) {
    let (status, body) = http(
        address,
        "DELETE",
        &format!("/licensd/v1/tokens/{token_id}"),
        admin,
        None,
    );
    assert_eq!(status, 204, "{body}");
}

/// Reads through `address` with `token` until it is refused (401); fails after `bound`. Returns
/// how long it took from `since`.
fn refused_within(address: &str, token: &str, since: Instant, bound: Duration, what: &str) -> Duration {
    loop {
        let (status, body) = http(address, "GET", READ, token, None);
        if status == 401 {
            return since.elapsed();
        }
        assert_eq!(status, 200, "{what}: {}", brief(&body));
        assert!(
            since.elapsed() < bound,
            "{what}: still accepted {:?} after the revocation",
            since.elapsed()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Uses a token twice through `address` (the first request verifies it against the store and
/// the cache remembers it; the second is answered from the cache).
fn use_token(address: &str, token: &str) {
    for _ in 0..2 {
        let (status, body) = http(address, "GET", READ, token, None);
        assert_eq!(status, 200, "{}", brief(&body));
    }
}

/// Two instances on one PostgreSQL database: tokens used through the second and revoked through
/// the first are refused by the second within [`NOTICE_BOUND`]; a token revoked in the database
/// without a notice (as a lost notice would leave it) within [`FALLBACK_BOUND`].
#[test]
fn a_revocation_through_one_instance_is_refused_by_the_other_at_once_postgres() {
    let Some(database) = TestDatabase::postgres("token_cache") else {
        return;
    };
    let admin = tenant(&database);
    let environment = [("LICENSD_BOOTSTRAP_TOKEN", admin.as_str())];
    let mut first = Server::start_with(&database, "first", 500, 20, &environment);
    first.wait_until_serving(Duration::from_secs(60));
    let mut second = Server::start_with(&database, "second", 500, 20, &environment);
    second.wait_until_serving(Duration::from_secs(60));
    let (through_first, through_second) = (first.address(), second.address());

    // Three tokens: an instance that relied on its once-a-second check would refuse each within
    // the bound only by chance (about one time in four).
    for round in 0..3 {
        let (token_id, token) = create_reader(&through_first, &admin, &format!("Reader {round}"));
        use_token(&through_second, &token);
        revoke(&through_first, &admin, token_id);
        let took = refused_within(
            &through_second,
            &token,
            Instant::now(),
            NOTICE_BOUND,
            "a token revoked through the other instance",
        );
        println!("revoked through the first instance, refused by the second after {took:?}");
    }

    // A revocation that announces nothing (written by another program): the periodic check.
    let (token_id, token) = create_reader(&through_first, &admin, "Reader without notice");
    use_token(&through_second, &token);
    let mut client = postgres::Client::connect(&database.url, postgres::NoTls).expect("connect");
    let revoked = Instant::now();
    let changed = client
        .execute(
            "UPDATE access_tokens SET revoked_at = $1 WHERE token_id = $2",
            &[&milliseconds_now(), &token_id],
        )
        .expect("revoke without a notice");
    assert_eq!(changed, 1);
    let took = refused_within(
        &through_second,
        &token,
        revoked,
        FALLBACK_BOUND,
        "a token revoked without a notice",
    );
    println!("revoked without a notice, refused after {took:?} (check interval {VERSION_CHECK_INTERVAL:?})");
    first.stop();
    second.stop();
}

/// One instance on SQLite: a token revoked through its API is refused by the very next request;
/// one revoked by another process writing the database (no notices on SQLite) within
/// [`FALLBACK_BOUND`]; one that expires is accepted before its expiry and refused right after.
#[test]
fn revocations_and_expiry_are_seen_at_once_sqlite() {
    let database = TestDatabase::sqlite();
    let admin = tenant(&database);
    let environment = [("LICENSD_BOOTSTRAP_TOKEN", admin.as_str())];
    let mut server = Server::start_with(&database, "only", 500, 20, &environment);
    server.wait_until_serving(Duration::from_secs(60));
    let address = server.address();

    // Through the API: forgotten before the revocation is answered.
    let (token_id, token) = create_reader(&address, &admin, "Revoked through the API");
    use_token(&address, &token);
    revoke(&address, &admin, token_id);
    let (status, body) = http(&address, "GET", READ, &token, None);
    assert_eq!(
        status,
        401,
        "the next request after the revocation: {}",
        brief(&body)
    );

    // By another process: this test's own connection to the database file.
    let (token_id, token) = create_reader(&address, &admin, "Revoked by another process");
    use_token(&address, &token);
    let mut store = database.open();
    let tenant_id = store.tenant_ids().expect("tenants")[0];
    let revoked = Instant::now();
    assert!(store
        .revoke_access_token(tenant_id, token_id, milliseconds_now())
        .expect("revoke"));
    let took = refused_within(
        &address,
        &token,
        revoked,
        FALLBACK_BOUND,
        "a token revoked by another process",
    );
    println!("revoked by another process, refused after {took:?}");

    // Expiry: exact, whatever the cache remembers.
    let issued = licensd_runtime::access::generate_token_text().expect("a token");
    let parsed = licensd_runtime::access::IssuedToken::parse(&issued).expect("parses");
    let expires_at = milliseconds_now() + 1_500;
    store
        .create_access_token(&licensd_store::AccessTokenRecord {
            token_id: parsed.token_id,
            tenant_id,
            display_name: "Expiring".to_string(),
            role: "GlobalReader".to_string(),
            secret_hash: parsed.secret_hash(),
            created_at: milliseconds_now(),
            created_by: "test".to_string(),
            expires_at: Some(expires_at),
            revoked_at: None,
        })
        .expect("store an expiring token");
    let mut accepted = 0;
    loop {
        let sent = milliseconds_now();
        let (status, body) = http(&address, "GET", READ, &issued, None);
        if status == 401 {
            let late = milliseconds_now() - expires_at;
            assert!(late < EXPIRY_BOUND_MS, "refused {late} ms after the expiry");
            break;
        }
        assert_eq!(status, 200, "{}", brief(&body));
        assert!(
            sent < expires_at,
            "accepted a request sent {} ms after the expiry",
            sent - expires_at
        );
        accepted += 1;
        assert!(milliseconds_now() < expires_at + 5_000, "never refused");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        accepted > 1,
        "the token was used before it expired ({accepted} requests)"
    );
    server.stop();
}
