//! Test support: databases (a temporary SQLite file, or a PostgreSQL schema of its own when
//! `LICENSD_TEST_POSTGRES_URL` is reachable), tenants built with the engine and stored, and
//! `licensd serve` processes.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use licensd_engine::{AssignedLicense, Engine, LicenseAssignmentState, Uuid};
use licensd_fixtures::seed_world::{SeedSeats, SeedWorld, OFFICE_365_E1, OFFICE_365_E3};
use licensd_store::{Store, WriteBatch};

/// A database for one test: a SQLite file in a temporary directory, or a PostgreSQL schema that
/// is dropped at the end.
pub struct TestDatabase {
    pub url: String,
    pub directory: tempfile::TempDir,
    postgres_schema: Option<(String, String)>,
}

impl TestDatabase {
    pub fn sqlite() -> TestDatabase {
        let directory = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", directory.path().join("licensd.db").display());
        TestDatabase {
            url,
            directory,
            postgres_schema: None,
        }
    }

    /// `None` (with the reason printed) when PostgreSQL is unreachable.
    pub fn postgres(test: &str) -> Option<TestDatabase> {
        let base = std::env::var("LICENSD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let mut client = match postgres::Client::connect(&base, postgres::NoTls) {
            Ok(client) => client,
            Err(error) => {
                // CI must run these tests: there, an unreachable server is a failure.
                if std::env::var_os("LICENSD_REQUIRE_POSTGRES").is_some() {
                    panic!("PostgreSQL is required (LICENSD_REQUIRE_POSTGRES) but {base} is unreachable: {error}");
                }
                println!("skipping PostgreSQL test {test}: cannot connect to {base}: {error}");
                return None;
            }
        };
        let schema = format!("licensd_{}_{}", test, std::process::id());
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .expect("create the test schema");
        let separator = if base.contains('?') { '&' } else { '?' };
        Some(TestDatabase {
            url: format!("{base}{separator}options=-csearch_path%3D{schema}"),
            directory: tempfile::tempdir().expect("temporary directory"),
            postgres_schema: Some((base, schema)),
        })
    }

    pub fn open(&self) -> Store {
        Store::open(&self.url).expect("open the store")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((base, schema)) = &self.postgres_schema {
            if let Ok(mut client) = postgres::Client::connect(base, postgres::NoTls) {
                let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

/// A tenant with one group of `members` users holding Office 365 E3, with fewer E3 seats than
/// members (`CountViolation`s), 1% of the users holding E1 directly (`MutuallyExclusiveViolation`)
/// and 1% in Cuba (`ProhibitedInUsageLocationViolation`). Nothing is evaluated yet: every member
/// is queued.
pub fn big_group_tenant(members: usize, e3_seats: u32) -> (Engine, Uuid) {
    let mut world = SeedWorld::new(SeedSeats {
        office_365_e1: members as u32,
        office_365_e3: e3_seats,
        ems_e3: 10,
        workplace_analytics: 10,
    })
    .expect("seed world");
    let mut users = Vec::with_capacity(members);
    for number in 0..members {
        let location = if number % 100 == 50 { "CU" } else { "US" };
        let user = world
            .add_user(&format!("member{number:06}"), Some(location))
            .expect("user");
        if number % 100 == 7 {
            world
                .assign_to_user(user, vec![AssignedLicense::new(OFFICE_365_E1)], vec![])
                .expect("direct E1");
        }
        users.push(user);
    }
    let group = world.add_group("All staff").expect("group");
    world
        .assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])
        .expect("group E3");
    for user in users {
        world.add_member(group, user).expect("member");
    }
    (world.engine, group)
}

/// Stores a whole tenant (as `licensd gen` does).
pub fn store_tenant(database: &TestDatabase, engine: &Engine) -> Uuid {
    let image = engine.to_image();
    let tenant_id = image.settings.tenant_id;
    let mut store = database.open();
    store.create_tenant(&image.settings).expect("create tenant");
    store
        .write(tenant_id, &WriteBatch::from_image(image))
        .expect("write tenant");
    tenant_id
}

/// The stored tenant rebuilt as an engine.
pub fn load_engine(database: &TestDatabase, tenant_id: Uuid) -> Engine {
    let (image, _) = database.open().load_tenant(tenant_id).expect("load tenant");
    Engine::from_image(image).expect("rebuild engine")
}

/// Every user's states without time stamps (which depend on when processing ran).
pub fn outcome(engine: &Engine) -> Vec<(Uuid, Vec<LicenseAssignmentState>)> {
    engine
        .license_snapshot()
        .into_iter()
        .map(|(user, states)| {
            let states = states
                .into_iter()
                .map(|mut state| {
                    state.last_updated = Default::default();
                    state
                })
                .collect();
            (user, states)
        })
        .collect()
}

/// A running `licensd serve`.
pub struct Server {
    pub child: Child,
    pub log: PathBuf,
}

impl Server {
    /// Starts `licensd serve` on the database with small processing batches.
    pub fn start(database: &TestDatabase, name: &str, batch_size: usize) -> Server {
        Server::start_with(database, name, batch_size, 20, &[])
    }

    /// Starts `licensd serve` with the processor's idle interval and extra environment variables
    /// (`LICENSD_BOOTSTRAP_TOKEN`).
    pub fn start_with(
        database: &TestDatabase,
        name: &str,
        batch_size: usize,
        idle_interval_ms: u64,
        environment: &[(&str, &str)],
    ) -> Server {
        let config = database.directory.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "processing-batch-size = {batch_size}\nprocessing-idle-interval-ms = {idle_interval_ms}\n\
                 processing-lease-ms = 2000\ninstance-id = \"{name}\"\nlisten = \"127.0.0.1:0\"\n"
            ),
        )
        .expect("write the configuration");
        let log = database.directory.path().join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_licensd"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--database-url")
            .arg(&database.url)
            .env("LICENSD_LOG", "info")
            .envs(environment.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start licensd serve");
        Server { child, log }
    }

    /// Waits until the server has loaded its tenants and serves (its log says so).
    pub fn wait_until_serving(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log_text().contains("licensd is serving") {
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "licensd serve did not start: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process at once (SIGKILL): nothing is flushed, nothing is finished.
    pub fn kill_hard(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// Asks for a graceful shutdown (SIGTERM) and waits for the process to exit.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("send SIGTERM");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(
                    status.success(),
                    "licensd serve exited with {status}: {}",
                    self.log_text()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "licensd serve did not stop: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address the server listens on, read from its log (after `wait_until_serving`).
    pub fn address(&self) -> String {
        let log = self.log_text();
        let line = log
            .lines()
            .find(|line| line.contains("licensd is serving"))
            .unwrap_or_else(|| panic!("the server has not said where it listens: {log}"));
        let start = line.find("address=").expect("an address in the log") + "address=".len();
        line[start..]
            .split_whitespace()
            .next()
            .expect("the address")
            .to_string()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails the test if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("wait") {
            panic!("licensd serve exited with {status}: {}", self.log_text());
        }
    }
}

/// Waits until `condition` holds on a fresh store connection, or fails after `timeout`.
pub fn wait_for(
    database: &TestDatabase,
    server: &mut Server,
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut(&mut Store) -> bool,
) {
    let deadline = Instant::now() + timeout;
    let mut store = database.open();
    loop {
        if condition(&mut store) {
            return;
        }
        server.assert_running();
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One HTTP/1.1 request to a server on loopback with a bearer token; returns the status and the
/// body parsed as JSON (`Null` when empty).
pub fn http(
    address: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let body = body.map(|body| body.to_string()).unwrap_or_default();
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the server");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send the request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read the response");
    let response = String::from_utf8_lossy(&response);
    let (head, text) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head}"));
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding: chunked"),
        "chunked responses are not read by this helper: {head}"
    );
    let value = if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(text)
            .unwrap_or_else(|error| panic!("{method} {path}: not JSON ({error}): {text}"))
    };
    (status, value)
}
