//! Test support: a real `licensd_server::run` on `127.0.0.1:0` over a temporary SQLite file or a
//! PostgreSQL schema of its own, a small HTTP client with JSON replies, the seed's products
//! imported through `/licensd/v1`, and polling until background processing is done.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use licensd_server::ServerConfig;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use uuid::Uuid;

/// Office 365 E1 (`STANDARDPACK`).
pub const E1: &str = "18181a46-0d4e-45cd-891e-60aabd171b4e";
/// Office 365 E3 (`ENTERPRISEPACK`).
pub const E3: &str = "6fd2c87f-b296-42f0-b197-1e91e994b900";
/// Enterprise Mobility + Security E3 (`EMS`).
pub const EMS: &str = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e";
/// Microsoft Workplace Analytics (`WORKPLACE_ANALYTICS`).
pub const WORKPLACE_ANALYTICS: &str = "3d957427-ecdc-4df2-aacd-01cc9d519da8";
/// Exchange Online (Plan 1), in E1.
pub const EXCHANGE_PLAN_1: &str = "9aaf7827-d63c-4b61-89c3-182f06f82e5c";
/// Exchange Online (Plan 2), in E3.
pub const EXCHANGE_PLAN_2: &str = "efb87545-963c-4e0d-99df-69c6916d9eb0";
/// Microsoft Teams (`TEAMS1`).
pub const TEAMS: &str = "57ff2da0-773e-42df-b2af-ffb7a2317929";

/// A database for one test: a SQLite file, or a PostgreSQL schema dropped at the end.
pub struct TestDatabase {
    url: String,
    directory: tempfile::TempDir,
    postgres_schema: Option<(String, String)>,
}

static SCHEMA_COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDatabase {
    pub fn sqlite() -> TestDatabase {
        TestDatabase::sqlite_in(&std::env::temp_dir())
    }

    /// A SQLite file in a new directory under `parent` (a small file system, for instance).
    pub fn sqlite_in(parent: &std::path::Path) -> TestDatabase {
        let directory = tempfile::tempdir_in(parent).expect("temporary directory");
        let url = format!("sqlite://{}", directory.path().join("licensd.db").display());
        TestDatabase {
            url,
            directory,
            postgres_schema: None,
        }
    }

    /// `None` (with the reason printed) when PostgreSQL is unreachable, unless
    /// `LICENSD_REQUIRE_POSTGRES` is set (as in CI), where that fails the test. The synchronous
    /// client runs on a thread of its own, outside the test's async runtime.
    pub fn postgres(test: &str) -> Option<TestDatabase> {
        let test = test.to_string();
        std::thread::spawn(move || TestDatabase::postgres_schema(&test))
            .join()
            .expect("creating the PostgreSQL schema")
    }

    fn postgres_schema(test: &str) -> Option<TestDatabase> {
        let base = std::env::var("LICENSD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let mut client = match postgres::Client::connect(&base, postgres::NoTls) {
            Ok(client) => client,
            Err(error) => {
                if std::env::var_os("LICENSD_REQUIRE_POSTGRES").is_some() {
                    panic!("PostgreSQL is required (LICENSD_REQUIRE_POSTGRES) but {base} is unreachable: {error}");
                }
                println!("skipping PostgreSQL test {test}: cannot connect to {base}: {error}");
                return None;
            }
        };
        // PostgreSQL names have at most 63 bytes: the unique part comes first.
        let mut schema = format!(
            "licensd_api_{}_{}_{test}",
            std::process::id(),
            SCHEMA_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        schema.truncate(63);
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
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((base, schema)) = self.postgres_schema.take() {
            // Outside the async runtime, as when it was created.
            let _ = std::thread::spawn(move || {
                if let Ok(mut client) = postgres::Client::connect(&base, postgres::NoTls) {
                    let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
                }
            })
            .join();
        }
    }
}

/// An HTTP answer: status, headers and the body as JSON (a JSON string for other bodies,
/// `null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(self.status, status, "unexpected status; body: {:#}", self.body);
        self
    }

    /// Asserts a Graph error envelope with this status and Graph code, and returns its message.
    #[track_caller]
    pub fn expect_error(self, status: u16, graph_code: &str) -> String {
        assert_eq!(self.status, status, "unexpected status; body: {:#}", self.body);
        let error = &self.body["error"];
        assert_eq!(error["code"], graph_code, "{:#}", self.body);
        let inner = &error["innerError"];
        let request_id = inner["request-id"].as_str().expect("request-id");
        assert!(!request_id.is_empty(), "{:#}", self.body);
        assert_eq!(
            self.headers
                .get("request-id")
                .and_then(|value| value.to_str().ok()),
            Some(request_id),
            "the header and the envelope name the same request"
        );
        assert!(inner["date"].is_string());
        assert!(inner["client-request-id"].is_string());
        error["message"].as_str().expect("message").to_string()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    }

    /// The `id` of the body as a GUID.
    pub fn id(&self) -> Uuid {
        Uuid::parse_str(self.body["id"].as_str().expect("an id")).expect("a GUID")
    }
}

/// An HTTP client that sends `Authorization: Bearer <token>` with every request.
pub fn client_with_token(token: &str) -> reqwest::Client {
    let mut headers = HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("a header value"),
    );
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .default_headers(headers)
        .build()
        .expect("client")
}

/// A running server for one test.
pub struct TestServer {
    pub base: String,
    /// Sends the bootstrap Global Administrator's token with every request.
    pub client: reqwest::Client,
    /// The bootstrap Global Administrator token of the default tenant.
    pub token: String,
    /// The database address (another instance can be started on it).
    pub database_url: String,
    data_directory: std::path::PathBuf,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), licensd_server::ServerError>>>,
    /// Owned by the first instance; dropped (and a PostgreSQL schema removed) with it.
    _database: Option<TestDatabase>,
}

impl TestServer {
    pub async fn start(database: TestDatabase) -> TestServer {
        TestServer::start_with(database, |_| {}).await
    }

    /// Starts a server with a configuration adjusted by `configure` (rate limits, retention...).
    pub async fn start_with(database: TestDatabase, configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let token = licensd_runtime::access::generate_token_text().expect("a token");
        let url = database.url.clone();
        let directory = database.directory.path().to_path_buf();
        let mut server = TestServer::launch(&url, &directory, token, configure).await;
        server._database = Some(database);
        server
    }

    /// Starts a second instance on this server's database (PostgreSQL: scale-out).
    pub async fn start_another(&self) -> TestServer {
        TestServer::launch(
            &self.database_url,
            &self.data_directory,
            self.token.clone(),
            |_| {},
        )
        .await
    }

    /// Starts a second instance on this server's database with its configuration adjusted by
    /// `configure`.
    pub async fn start_another_with(&self, configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
        TestServer::launch(
            &self.database_url,
            &self.data_directory,
            self.token.clone(),
            configure,
        )
        .await
    }

    async fn launch(
        url: &str,
        directory: &std::path::Path,
        token: String,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let address = listener.local_addr().expect("local address");
        let mut config = ServerConfig::defaults(directory);
        config.database_url = url.to_string();
        config.listen = address;
        config.processing_idle_interval = Duration::from_millis(5);
        config.processing_batch_size = 500;
        config.instance_id = format!("api-test-{}", Uuid::new_v4());
        config.bootstrap_token = Some(token.clone());
        // Tests send bursts of requests; the rate-limit test turns it back on.
        config.rate_limit.per_second = 0;
        // Tests send many refused credentials on purpose; the flood test turns this back on.
        config.authentication_failure_limit.per_second = 0;
        configure(&mut config);
        let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(licensd_server::run(listener, config, async move {
            let _ = receiver.await;
        }));
        let server = TestServer {
            base: format!("http://{address}"),
            client: client_with_token(&token),
            token,
            database_url: url.to_string(),
            data_directory: directory.to_path_buf(),
            shutdown: Some(sender),
            task: Some(task),
            _database: None,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = server.client.get(format!("{}/readyz", server.base)).send().await {
                if response.status().is_success() {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "the server did not become ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server
    }

    /// Stops this server and starts a new one on the same database (a restart: every in-memory
    /// state is rebuilt from the store), with the same configuration adjustments.
    pub async fn restart(mut self, configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let database = self._database.take();
        let (url, directory, token) = (
            self.database_url.clone(),
            self.data_directory.clone(),
            self.token.clone(),
        );
        self.stop().await;
        let mut server = TestServer::launch(&url, &directory, token, configure).await;
        server._database = database;
        server
    }

    /// Shuts the server down gracefully and checks it ended without error.
    pub async fn stop(mut self) {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
        if let Some(task) = self.task.take() {
            let ended = tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("the server stops");
            ended
                .expect("the server task")
                .expect("the server ran without error");
        }
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("the request is answered");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("a body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(self.url(path))).await
    }

    pub async fn get_with_headers(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.client.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.client.post(self.url(path)).json(&body)).await
    }

    /// A POST without a body (actions such as reprocessLicenseAssignment).
    pub async fn post_empty(&self, path: &str) -> Reply {
        self.send(self.client.post(self.url(path))).await
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Reply {
        self.send(
            self.client
                .post(self.url(path))
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(self.client.patch(self.url(path)).json(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(self.client.put(self.url(path)).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.client.delete(self.url(path))).await
    }

    /// Subscribes to the seed's four products with the catalog's default rules, marks the
    /// Exchange plans as mailbox plans and makes Teams unavailable in Cuba.
    pub async fn import_seed_products(&self, e1: u32, e3: u32, ems: u32, workplace_analytics: u32) {
        self.post(
            "/licensd/v1/catalog/import",
            json!({"products": [
                {"skuPartNumber": "STANDARDPACK", "prepaidUnits": e1},
                {"skuPartNumber": "ENTERPRISEPACK", "prepaidUnits": e3},
                {"skuId": EMS, "prepaidUnits": ems},
                {"skuPartNumber": "WORKPLACE_ANALYTICS", "prepaidUnits": workplace_analytics},
            ]}),
        )
        .await
        .expect(201);
        for plan in [EXCHANGE_PLAN_1, EXCHANGE_PLAN_2] {
            self.change_rules(plan, |rules| rules["needsUniqueProxyAddress"] = json!(true))
                .await;
        }
        self.change_rules(TEAMS, |rules| rules["unavailableIn"] = json!(["CU"]))
            .await;
    }

    /// Reads a plan's rules, changes them and writes them back.
    pub async fn change_rules(&self, plan: &str, change: impl FnOnce(&mut Value)) {
        let mut rules = self
            .get(&format!("/licensd/v1/servicePlans/{plan}"))
            .await
            .expect(200)
            .body["rules"]
            .clone();
        change(&mut rules);
        self.put(&format!("/licensd/v1/servicePlans/{plan}/rules"), rules)
            .await
            .expect(200);
    }

    /// Creates `name@contoso.com` with `SMTP:name@contoso.com` and an optional usage location.
    pub async fn create_user(&self, name: &str, usage_location: Option<&str>) -> Uuid {
        self.post(
            "/v1.0/users",
            json!({
                "displayName": name,
                "userPrincipalName": format!("{name}@contoso.com"),
                "mailNickname": name,
                "usageLocation": usage_location,
                "proxyAddresses": [format!("SMTP:{name}@contoso.com")],
                "passwordProfile": {"password": "not stored", "forceChangePasswordNextSignIn": true},
            }),
        )
        .await
        .expect(201)
        .id()
    }

    pub async fn create_group(&self, name: &str) -> Uuid {
        self.post(
            "/v1.0/groups",
            json!({"displayName": name, "mailEnabled": false, "mailNickname": name.replace(' ', ""), "securityEnabled": true}),
        )
        .await
        .expect(201)
        .id()
    }

    pub async fn add_member(&self, group: Uuid, user: Uuid) {
        self.post(
            &format!("/v1.0/groups/{group}/members/$ref"),
            json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{user}")}),
        )
        .await
        .expect(204);
    }

    pub async fn assign_to_group(&self, group: Uuid, skus: &[&str]) -> Reply {
        let add: Vec<Value> = skus
            .iter()
            .map(|sku| json!({"skuId": sku, "disabledPlans": []}))
            .collect();
        self.post(
            &format!("/v1.0/groups/{group}/assignLicense"),
            json!({"addLicenses": add, "removeLicenses": []}),
        )
        .await
    }

    /// Waits (at most 30 seconds) until no user is queued and every group's processing is
    /// complete, as an administrator would watch `licenseProcessingState`.
    pub async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let overview = self.get("/licensd/v1/overview").await.expect(200).body;
            let groups = self
                .get("/v1.0/groups?$select=id,licenseProcessingState&$top=999")
                .await
                .expect(200)
                .body;
            let all_complete = groups["value"]
                .as_array()
                .expect("groups")
                .iter()
                .all(|group| group["licenseProcessingState"]["state"] == "ProcessingComplete");
            if overview["queuedUsers"] == 0 && all_complete {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "background processing did not finish: {overview:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A user's license assignment states.
    pub async fn states(&self, user: Uuid) -> Vec<Value> {
        self.get(&format!("/v1.0/users/{user}?$select=licenseAssignmentStates"))
            .await
            .expect(200)
            .body["licenseAssignmentStates"]
            .as_array()
            .expect("states")
            .clone()
    }

    /// The state of a user's assignment of `sku` from `group` (`None` for direct).
    pub async fn state(&self, user: Uuid, sku: &str, group: Option<Uuid>) -> Value {
        let group = group.map(|group| json!(group.to_string())).unwrap_or(Value::Null);
        self.states(user)
            .await
            .into_iter()
            .find(|state| state["skuId"] == sku && state["assignedByGroup"] == group)
            .unwrap_or_else(|| panic!("no state of {sku} from {group} on {user}"))
    }

    /// `consumedUnits` of a product.
    pub async fn consumed_units(&self, sku: &str) -> i64 {
        self.get(&format!("/v1.0/subscribedSkus/{sku}"))
            .await
            .expect(200)
            .body["consumedUnits"]
            .as_i64()
            .expect("consumedUnits")
    }

    /// How many users exist (through `$count`).
    pub async fn user_count(&self) -> u64 {
        let reply = self
            .get_with_headers("/v1.0/users/$count", &[("ConsistencyLevel", "eventual")])
            .await
            .expect(200);
        reply
            .body
            .as_u64()
            .or_else(|| reply.body.as_str().and_then(|text| text.parse().ok()))
            .expect("a count")
    }
}

/// Runs each test case on SQLite and on PostgreSQL, each with its own server and database.
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let server = crate::support::TestServer::start(crate::support::TestDatabase::sqlite()).await;
                    super::$case(&server).await;
                    server.stop().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(database) = crate::support::TestDatabase::postgres(stringify!($case)) else {
                        return;
                    };
                    let server = crate::support::TestServer::start(database).await;
                    super::$case(&server).await;
                    server.stop().await;
                }
            )*
        }
    };
}

pub(crate) use on_both_backends;
