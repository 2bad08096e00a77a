//! The web console over real HTTP: a real server (`licensd_server::run` on `127.0.0.1:0`) over a
//! temporary SQLite database holding the demo tenant (the seed's world with every licensing
//! error), and every page handler checked for its status, its key content (the seed's notices,
//! error reasons and fixes), escaping of user-supplied text, paging bounds and error pages; the
//! seed's fixes are applied through the console's forms and seen to clear the errors.

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use licensd_engine::{Command, Engine, NewUser, Uuid};
use licensd_fixtures::seed_world::{DemoDirectory, SeedWorld, EMS_E3, OFFICE_365_E1, OFFICE_365_E3};
use licensd_server::ServerConfig;
use licensd_store::{Store, WriteBatch};
use reqwest::header::HeaderMap;

/// Microsoft Workplace Analytics (`WORKPLACE_ANALYTICS`).
const WORKPLACE_ANALYTICS: Uuid = Uuid::from_u128(0x3d957427_ecdc_4df2_aacd_01cc9d519da8);

/// An HTTP answer with its body as text.
#[derive(Debug)]
struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Page {
    #[track_caller]
    fn expect(self, status: u16) -> Page {
        assert_eq!(self.status, status, "unexpected status; body:\n{}", self.body);
        self
    }

    #[track_caller]
    fn contains(&self, text: &str) -> &Page {
        assert!(
            self.body.contains(text),
            "the page lacks {text:?}; body:\n{}",
            self.body
        );
        self
    }

    #[track_caller]
    fn lacks(&self, text: &str) -> &Page {
        assert!(
            !self.body.contains(text),
            "the page contains {text:?}; body:\n{}",
            self.body
        );
        self
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    }

    /// The `after=` key of the "Next page" link, if any.
    fn next_key(&self) -> Option<String> {
        let link = self.body.split("rel=\"next\" href=\"").nth(1)?;
        let link = &link[..link.find('"')?];
        let key = link.split("after=").nth(1)?;
        Some(key.split("&amp;").next()?.to_string())
    }

    /// How many rows link to `prefix` (`/users/`, `/groups/`) from their row header.
    fn row_links(&self, prefix: &str) -> usize {
        self.body
            .matches(&format!("<th scope=\"row\"><a href=\"{prefix}"))
            .count()
    }
}

/// HTML escaping as maud does it, for expected texts.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The demo tenant, built and evaluated in memory, plus who is who.
fn demo() -> (SeedWorld, DemoDirectory) {
    SeedWorld::demo().expect("the demo tenant builds")
}

/// Stores a whole tenant as `licensd gen` does.
fn store_tenant(database_url: &str, engine: &Engine) {
    let image = engine.to_image();
    let tenant_id = image.settings.tenant_id;
    let mut store = Store::open(database_url).expect("open the store");
    store.create_tenant(&image.settings).expect("create the tenant");
    store
        .write(tenant_id, &WriteBatch::from_image(image))
        .expect("write the tenant");
}

/// The fields of a plan form that enables every plan of a product.
fn every_plan_of(world: &SeedWorld, sku_id: Uuid) -> Vec<(&'static str, String)> {
    let mut fields = vec![("sku_id", sku_id.to_string())];
    for (plan_id, _, _) in world.engine.sku_usage(sku_id).expect("the product").service_plans {
        fields.push(("enabled_plan", plan_id.to_string()));
    }
    fields
}

fn fields_of<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    fields
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

/// A client that does not follow redirects and, with a token, sends the console's session cookie.
fn signed_in_client(token: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        headers.insert(
            reqwest::header::COOKIE,
            format!("licensd_session={token}").parse().expect("a cookie"),
        );
    }
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .default_headers(headers)
        .build()
        .expect("client")
}

/// A running server over a temporary SQLite database.
struct ConsoleServer {
    base: String,
    /// Signed in: sends the console's session cookie with the bootstrap administrator's token.
    client: reqwest::Client,
    token: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), licensd_server::ServerError>>>,
    _directory: tempfile::TempDir,
}

impl ConsoleServer {
    /// Starts a server on the given tenant.
    async fn start(engine: &Engine) -> ConsoleServer {
        let directory = tempfile::tempdir().expect("temporary directory");
        let database_url = format!("sqlite://{}", directory.path().join("licensd.db").display());
        store_tenant(&database_url, engine);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let address = listener.local_addr().expect("local address");
        let mut config = ServerConfig::defaults(directory.path());
        config.database_url = database_url;
        config.listen = address;
        config.processing_idle_interval = Duration::from_millis(5);
        config.instance_id = format!("console-test-{}", Uuid::new_v4());
        let token = licensd_runtime::access::generate_token_text().expect("a token");
        config.bootstrap_token = Some(token.clone());
        config.rate_limit.per_second = 0;
        let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(licensd_server::run(listener, config, async move {
            let _ = receiver.await;
        }));
        let server = ConsoleServer {
            base: format!("http://{address}"),
            client: signed_in_client(Some(&token)),
            token,
            shutdown: Some(sender),
            task: Some(task),
            _directory: directory,
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

    /// Starts a server on the demo tenant.
    async fn demo() -> (ConsoleServer, SeedWorld, DemoDirectory) {
        let (world, directory) = demo();
        let server = ConsoleServer::start(&world.engine).await;
        (server, world, directory)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Page {
        let response = request.send().await.expect("the request is answered");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.expect("a body");
        Page {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Page {
        self.send(self.client.get(format!("{}{path}", self.base))).await
    }

    async fn get_htmx(&self, path: &str, target: &str) -> Page {
        self.send(
            self.client
                .get(format!("{}{path}", self.base))
                .header("HX-Request", "true")
                .header("HX-Target", target),
        )
        .await
    }

    fn form_request(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let mut body = form_urlencoded::Serializer::new(String::new());
        for (name, value) in fields {
            body.append_pair(name, value);
        }
        self.client
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.finish())
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.send(self.form_request(path, fields)).await
    }

    /// Posts a form and expects the redirect of a change that was made.
    async fn post_change(&self, path: &str, fields: &[(&str, &str)]) -> String {
        let answer = self.post(path, fields).await.expect(303);
        answer.header("location").expect("a Location")
    }

    /// Waits until background processing has nothing left to do.
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let activity = self.get("/processing").await.expect(200);
            if activity.body.contains("Processing is idle") {
                return;
            }
            assert!(Instant::now() < deadline, "processing did not finish");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("the server task")
                .expect("the server stops cleanly");
        }
    }
}

#[tokio::test]
async fn the_overview_shows_seats_the_groups_needing_attention_and_activity() {
    let (server, world, _) = ConsoleServer::demo().await;
    let page = server.get("/").await.expect(200);
    assert_eq!(
        page.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    let policy = page.header("content-security-policy").expect("a CSP");
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert_eq!(page.header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(page.header("cache-control").as_deref(), Some("no-store"));
    page.contains("3 groups need your attention")
        .contains("href=\"/groups?filter=errors\"")
        .contains("Processing is idle")
        .contains("<script src=\"/assets/htmx.min.js\" defer></script>")
        .contains("Skip to content");
    for product in world.engine.sku_usages() {
        page.contains(&escaped(&product.display_name)).contains(&format!(
            "{} purchased · {} assigned",
            product.prepaid_units, product.consumed_units
        ));
    }
    // EMS: 140 purchased, all assigned, 10 users waiting.
    page.contains("<td class=\"number\" data-field=\"available\">0</td>")
        .contains("10 users waiting");
    server.stop().await;
}

#[tokio::test]
async fn the_groups_list_pages_searches_and_filters_the_groups_with_errors() {
    let (server, _, directory) = ConsoleServer::demo().await;
    let all = server.get("/groups").await.expect(200);
    assert_eq!(all.row_links("/groups/"), 5);
    all.contains("All groups (5)").contains("Groups with errors (3)");

    let with_errors = server.get("/groups?filter=errors").await.expect(200);
    assert_eq!(with_errors.row_links("/groups/"), 3);
    with_errors
        .contains("Sales - Office 365 E3")
        .contains("Mobility - EMS E3")
        .contains("Frontline - Office 365 E1")
        .lacks("Analytics pilot")
        .contains(&format!("href=\"/groups/{}/errors\"", directory.sales_e3));

    let searched = server.get("/groups?search=SALES").await.expect(200);
    assert_eq!(searched.row_links("/groups/"), 1);
    searched.contains("Sales - Office 365 E3");
    let by_id = server
        .get(&format!("/groups?search={}", directory.analytics_pilot))
        .await
        .expect(200);
    by_id.contains("Analytics pilot");
    server
        .get("/groups?search=nothing-like-this")
        .await
        .expect(200)
        .contains("No group matches.");

    // htmx asks for the results alone while one types.
    let fragment = server
        .get_htmx("/groups?search=mobility", "list-results")
        .await
        .expect(200);
    assert!(
        fragment.body.starts_with("<div id=\"list-results\">"),
        "{}",
        fragment.body
    );
    fragment.contains("Mobility - EMS E3").lacks("<html");

    server
        .get("/groups?filter=bogus")
        .await
        .expect(400)
        .contains("Unknown filter");
    server.stop().await;
}

#[tokio::test]
async fn the_group_licenses_pane_shows_products_plans_state_and_the_users_in_error() {
    let (server, world, directory) = ConsoleServer::demo().await;
    let sales = world.engine.group_view(directory.sales_e3).expect("Sales");
    assert!(sales.members_with_license_errors >= 7);
    let pane = server
        .get(&format!("/groups/{}", directory.sales_e3))
        .await
        .expect(200);
    pane.contains(&format!(
        "{} users have license errors",
        sales.members_with_license_errors
    ))
    .contains(&format!("href=\"/groups/{}/errors\"", directory.sales_e3))
    .contains("Office 365 E3")
    .contains("Exchange Online (Plan 2)")
    .contains("plans enabled</summary>")
    .contains("data-state=\"ProcessingComplete\"")
    .contains(&format!("hx-post=\"/groups/{}/reprocess\"", directory.sales_e3))
    .contains(">Reprocess</button>");

    // The analytics pilot has E3 with only Exchange Online (Plan 2) enabled, plus the add-on.
    let pilot = server
        .get(&format!("/groups/{}", directory.analytics_pilot))
        .await
        .expect(200);
    pilot
        .contains("Microsoft Workplace Analytics")
        // One plan kept out of many: shown at once; the disabled ones folded.
        .contains("<details open><summary>1 of ")
        .contains("<li>Exchange Online (Plan 2)</li>")
        .contains(" plans disabled</summary>")
        .lacks("<li class=\"plan-off\">")
        .lacks("users have license errors");

    // The users in error, with the seed's reasons.
    let errors = server
        .get(&format!("/groups/{}/errors", directory.sales_e3))
        .await
        .expect(200);
    errors
        .contains("user001@contoso.com")
        .contains("Conflicting service plans")
        .contains("Duplicate proxy address")
        .contains("MutuallyExclusiveViolation");
    assert_eq!(
        errors.body.matches("<th scope=\"rowgroup\"").count(),
        sales.members_with_license_errors
    );
    let mobility = server
        .get(&format!("/groups/{}/errors", directory.mobility_ems))
        .await
        .expect(200);
    mobility
        .contains("Not enough licenses")
        .contains("CountViolation");
    assert_eq!(mobility.body.matches("<th scope=\"rowgroup\"").count(), 10);
    server
        .get(&format!("/groups/{}/errors", directory.frontline_e1))
        .await
        .expect(200)
        .contains("Usage location isn't allowed")
        .contains("is not available in CU");

    // Members: paged, oldest membership first.
    let members = server
        .get(&format!("/groups/{}/members", directory.sales_e3))
        .await
        .expect(200);
    assert_eq!(members.row_links("/users/"), 50);
    members.contains("Members (120)");
    server.stop().await;
}

#[tokio::test]
async fn a_users_page_explains_each_error_and_offers_the_seeds_fixes() {
    let (server, world, directory) = ConsoleServer::demo().await;
    let user001 = directory.users[0];
    let page = server.get(&format!("/users/{user001}")).await.expect(200);
    let conflict = world
        .engine
        .user_license_states(user001)
        .expect("states")
        .into_iter()
        .find(|state| state.error.is_some())
        .expect("user001 is in error");
    let reason = world.engine.explain(&conflict).expect("a reason");
    page.contains("user001@contoso.com")
        .contains("Conflicting service plans")
        .contains(&escaped(&reason))
        .contains("Remove the direct Office 365 E1 license")
        .contains(&format!(
            "action=\"/users/{user001}/licenses/{OFFICE_365_E1}/remove\""
        ))
        .contains(&format!(
            "href=\"/groups/{}/licenses/edit?sku_id={OFFICE_365_E3}&amp;change=",
            directory.sales_e3
        ))
        .contains("Inherited from")
        .contains("Direct")
        .contains("SMTP:user001@contoso.com")
        .contains("Effective service plans")
        .contains("Exchange Online (Plan 1)")
        .contains("The user's usage location is <strong>United States (US)</strong>");

    // The duplicate proxy address names the other user.
    let user062 = directory.users[61];
    server
        .get(&format!("/users/{user062}"))
        .await
        .expect(200)
        .contains("Duplicate proxy address")
        .contains("Fix the duplicate proxy address")
        .contains("user061@contoso.com");
    // Not enough licenses: buy or free seats.
    let waiting = directory.users[129];
    server
        .get(&format!("/users/{waiting}"))
        .await
        .expect(200)
        .contains("Not enough licenses")
        .contains(&format!("href=\"/products/{EMS_E3}#seats\""));
    // Usage location: correct it, or remove the user from the group.
    let cuban = directory.users[290];
    server
        .get(&format!("/users/{cuban}"))
        .await
        .expect(200)
        .contains("Correct the usage location")
        .contains(&format!(
            "action=\"/groups/{}/members/{cuban}/remove\"",
            directory.frontline_e1
        ));
    // The blocked removal: the dependent plan.
    let user121 = directory.users[120];
    server
        .get(&format!("/users/{user121}"))
        .await
        .expect(200)
        .contains("Other products depend on this license")
        .contains("ActiveWithError");
    server.stop().await;
}

#[tokio::test]
async fn removing_the_conflicting_direct_license_clears_the_error_and_moves_seats() {
    let (server, world, directory) = ConsoleServer::demo().await;
    let user001 = directory.users[0];
    let e1_before = world.engine.sku_usage(OFFICE_365_E1).expect("E1").consumed_units;
    let e3_before = world.engine.sku_usage(OFFICE_365_E3).expect("E3").consumed_units;
    let location = server
        .post_change(&format!("/users/{user001}/licenses/{OFFICE_365_E1}/remove"), &[])
        .await;
    assert_eq!(location, format!("/users/{user001}?done=license-removed"));
    server
        .get(&location)
        .await
        .expect(200)
        .contains("The license was removed");
    // The seed's last step: reprocess the group (plain POST, then htmx).
    let location = server
        .post_change(&format!("/groups/{}/reprocess", directory.sales_e3), &[])
        .await;
    assert_eq!(
        location,
        format!("/groups/{}?done=reprocess-queued", directory.sales_e3)
    );
    let fragment = server
        .send(
            server
                .form_request(&format!("/groups/{}/reprocess", directory.sales_e3), &[])
                .header("HX-Request", "true")
                .header("HX-Target", "group-processing"),
        )
        .await
        .expect(200);
    assert!(
        fragment
            .body
            .starts_with("<div class=\"processing\" id=\"group-processing\""),
        "{}",
        fragment.body
    );
    if fragment.body.contains("hx-trigger=\"every 1s\"") {
        assert!(fragment.header("hx-refresh").is_none());
    } else {
        assert_eq!(fragment.header("hx-refresh").as_deref(), Some("true"));
    }
    server.settle().await;
    // Polling a finished group reloads the page.
    let poll = server
        .get_htmx(
            &format!("/groups/{}/processing", directory.sales_e3),
            "group-processing",
        )
        .await
        .expect(200);
    assert_eq!(poll.header("hx-refresh").as_deref(), Some("true"));
    poll.contains("Processing complete");

    let page = server.get(&format!("/users/{user001}")).await.expect(200);
    page.lacks("Conflicting service plans")
        .lacks("Remove the direct Office 365 E1 license");
    let products = server.get("/products").await.expect(200);
    products
        .contains(&format!("{} purchased · {} assigned", 170, e1_before - 1))
        .contains(&format!("{} purchased · {} assigned", 160, e3_before + 1));
    let sales = server
        .get(&format!("/groups/{}", directory.sales_e3))
        .await
        .expect(200);
    let before = world
        .engine
        .group_view(directory.sales_e3)
        .expect("Sales")
        .members_with_license_errors;
    sales.contains(&format!("{} users have license errors", before - 1));
    server.stop().await;
}

#[tokio::test]
async fn buying_seats_serves_the_waiting_users() {
    let (server, _, directory) = ConsoleServer::demo().await;
    let product = server.get(&format!("/products/{EMS_E3}")).await.expect(200);
    product
        .contains("<dd data-field=\"waiting\">10</dd>")
        .contains("Change purchased seats");
    let location = server
        .post_change(&format!("/products/{EMS_E3}/seats"), &[("prepaid_units", "150")])
        .await;
    assert_eq!(location, format!("/products/{EMS_E3}?done=seats-saved"));
    server.settle().await;
    let product = server.get(&location).await.expect(200);
    product
        .contains("The purchased seats were changed")
        .contains("<dd data-field=\"purchased\">150</dd>")
        .contains("<dd data-field=\"assigned\">150</dd>")
        .contains("<dd data-field=\"waiting\">0</dd>");
    server
        .get(&format!("/groups/{}", directory.mobility_ems))
        .await
        .expect(200)
        .lacks("users have license errors");
    server
        .get("/")
        .await
        .expect(200)
        .contains("2 groups need your attention");
    // A user who was waiting: self-healing re-evaluated them, and their history says so.
    let user125 = directory.users[124];
    server
        .get(&format!("/users/{user125}"))
        .await
        .expect(200)
        .contains("<h2>History</h2>")
        .contains("data-activity=\"Self-heal user license assignments\"")
        .contains("seats of Enterprise Mobility + Security E3 became available; its license errors cleared.");

    // A reduction is previewed first: who would lose a seat; nothing changes until confirmed.
    let preview = server
        .post(&format!("/products/{EMS_E3}/seats"), &[("prepaid_units", "140")])
        .await
        .expect(200);
    preview
        .contains("Preview: what saving would do")
        .contains("Enterprise Mobility + Security E3: purchased 150 → 140")
        .contains("Reduce to 140 seats");
    server
        .get(&format!("/products/{EMS_E3}"))
        .await
        .expect(200)
        .contains("<dd data-field=\"purchased\">150</dd>");
    let location = server
        .post_change(
            &format!("/products/{EMS_E3}/seats"),
            &[("prepaid_units", "140"), ("confirmed", "yes")],
        )
        .await;
    assert_eq!(location, format!("/products/{EMS_E3}?done=seats-saved"));
    server
        .get(&location)
        .await
        .expect(200)
        .contains("<dd data-field=\"purchased\">140</dd>");

    // Not a number: the product page with the message.
    server
        .post(&format!("/products/{EMS_E3}/seats"), &[("prepaid_units", "many")])
        .await
        .expect(422)
        .contains("'many' is not a number of seats")
        .contains("Licensed users");
    server.stop().await;
}

#[tokio::test]
async fn the_prerequisite_refusal_is_shown_inline_with_the_form() {
    let (server, world, directory) = ConsoleServer::demo().await;
    // The edit form: a product's plans as toggles.
    let form = server
        .get(&format!(
            "/groups/{}/licenses/edit?sku_id={WORKPLACE_ANALYTICS}",
            directory.mobility_ems
        ))
        .await
        .expect(200);
    form.contains("type=\"checkbox\" name=\"enabled_plan\"")
        .contains("requires Exchange Online");
    let every_analytics_plan = every_plan_of(&world, WORKPLACE_ANALYTICS);
    let refused = server
        .post(
            &format!("/groups/{}/licenses", directory.mobility_ems),
            &fields_of(&every_analytics_plan),
        )
        .await
        .expect(422);
    refused
        .contains("License operation failed. Make sure that the group has necessary services before adding or removing a dependent service.")
        .contains("requires Exchange Online")
        .contains("role=\"alert\"")
        .contains("name=\"enabled_plan\"");
    // Nothing changed.
    server
        .get(&format!("/groups/{}", directory.mobility_ems))
        .await
        .expect(200)
        .lacks("Microsoft Workplace Analytics</a>");

    // Disabling the prerequisite in the pilot (E3 with only Exchange Online Plan 2) is refused too.
    let refused = server
        .post(
            &format!("/groups/{}/licenses", directory.analytics_pilot),
            &[("sku_id", &OFFICE_365_E3.to_string())],
        )
        .await
        .expect(422);
    refused.contains("License operation failed");

    // A valid change: E1 in Mobility with every plan but one enabled.
    let mut all_but_one_e1_plan = every_plan_of(&world, OFFICE_365_E1);
    all_but_one_e1_plan.remove(1);
    // Every member is affected: the first answer is a preview, and nothing changes yet.
    let preview = server
        .post(
            &format!("/groups/{}/licenses", directory.mobility_ems),
            &fields_of(&all_but_one_e1_plan),
        )
        .await
        .expect(200);
    preview
        .contains("Preview: what saving would do")
        .contains("users' licenses change")
        .contains("Office 365 E1: purchased 170 → 170, assigned 150 → ")
        .contains("name=\"confirmed\" value=\"yes\"")
        .contains("Save for all members");
    server
        .get(&format!("/groups/{}", directory.mobility_ems))
        .await
        .expect(200)
        .lacks("Office 365 E1</a>");
    all_but_one_e1_plan.push(("confirmed", "yes".to_string()));
    let location = server
        .post_change(
            &format!("/groups/{}/licenses", directory.mobility_ems),
            &fields_of(&all_but_one_e1_plan),
        )
        .await;
    assert_eq!(
        location,
        format!("/groups/{}?done=license-saved", directory.mobility_ems)
    );
    server
        .get(&location)
        .await
        .expect(200)
        .contains("The license assignment was saved")
        .contains("Office 365 E1</a>")
        .contains("<li class=\"plan-off\">");
    // And removing it again.
    server
        .post_change(
            &format!(
                "/groups/{}/licenses/{OFFICE_365_E1}/remove",
                directory.mobility_ems
            ),
            &[],
        )
        .await;
    // A plan that is not part of the product is a malformed form.
    server
        .post(
            &format!("/groups/{}/licenses", directory.mobility_ems),
            &[
                ("sku_id", &OFFICE_365_E1.to_string()),
                ("enabled_plan", &Uuid::from_u128(7).to_string()),
            ],
        )
        .await
        .expect(400)
        .contains("is not part of Office 365 E1");
    server.stop().await;
}

#[tokio::test]
async fn members_are_added_and_removed_and_direct_licenses_assigned() {
    let (server, world, directory) = ConsoleServer::demo().await;
    let group = directory.engineering_e3_ems;
    let location = server
        .post_change(
            &format!("/groups/{group}/members"),
            &[("user", "USER200@contoso.com")],
        )
        .await;
    assert_eq!(location, format!("/groups/{group}/members?done=member-added"));
    let members = server.get(&location).await.expect(200);
    members
        .contains("The member was added")
        .contains("user200@contoso.com");
    server
        .get(&format!("/groups/{group}/members?search=user200"))
        .await
        .expect(200)
        .contains("user200@contoso.com");
    // Unknown user and a second add are refused inline.
    server
        .post(
            &format!("/groups/{group}/members"),
            &[("user", "nobody@contoso.com")],
        )
        .await
        .expect(422)
        .contains("A user named 'nobody@contoso.com' does not exist")
        .contains("value=\"nobody@contoso.com\"");
    server
        .post(
            &format!("/groups/{group}/members"),
            &[("user", "user200@contoso.com")],
        )
        .await
        .expect(422)
        .contains("already a member");
    let user200 = directory.users[199];
    let location = server
        .post_change(
            &format!("/groups/{group}/members/{user200}/remove"),
            &[("return_to", &format!("/users/{user200}"))],
        )
        .await;
    assert_eq!(location, format!("/users/{user200}?done=member-removed"));
    // A return path off the site is ignored.
    server
        .post_change(
            &format!("/groups/{group}/members"),
            &[("user", &user200.to_string())],
        )
        .await;
    let location = server
        .post_change(
            &format!("/groups/{group}/members/{user200}/remove"),
            &[("return_to", "//evil.example/")],
        )
        .await;
    assert_eq!(location, format!("/groups/{group}/members?done=member-removed"));

    // A direct license: refused when it conflicts (user001 holds E1 directly, E3 conflicts).
    let user001 = directory.users[0];
    server
        .get(&format!("/users/{user001}/licenses/edit?sku_id={OFFICE_365_E3}"))
        .await
        .expect(200)
        .contains("Assign Office 365 E3 directly");
    let every_e3_plan = every_plan_of(&world, OFFICE_365_E3);
    server
        .post(&format!("/users/{user001}/licenses"), &fields_of(&every_e3_plan))
        .await
        .expect(422)
        .contains("mutually exclusive")
        .contains("role=\"alert\"");
    // EMS for a Frontline user: EMS has no free seat.
    let user160 = directory.users[159];
    let every_ems_plan = every_plan_of(&world, EMS_E3);
    server
        .post(&format!("/users/{user160}/licenses"), &fields_of(&every_ems_plan))
        .await
        .expect(422)
        .contains("Not enough licenses");
    server.stop().await;
}

#[tokio::test]
async fn usage_location_and_proxy_addresses_are_edited_on_the_users_page() {
    let (server, _, directory) = ConsoleServer::demo().await;
    let cuban = directory.users[290];
    server
        .post(
            &format!("/users/{cuban}/usage-location"),
            &[("usage_location", "XX")],
        )
        .await
        .expect(422)
        .contains("invalid usage location");
    // A field far over its limit is refused before anything reads it.
    server
        .post(
            &format!("/users/{cuban}/usage-location"),
            &[("usage_location", &"U".repeat(100_000))],
        )
        .await
        .expect(400)
        .contains("at most 1024 are accepted");
    let location = server
        .post_change(
            &format!("/users/{cuban}/usage-location"),
            &[("usage_location", "us")],
        )
        .await;
    assert_eq!(location, format!("/users/{cuban}?done=usage-location-saved"));
    server.settle().await;
    server
        .get(&location)
        .await
        .expect(200)
        .contains("The usage location was saved")
        .lacks("Usage location isn't allowed");
    // Clearing it: the tenant's default applies.
    server
        .post_change(
            &format!("/users/{cuban}/usage-location"),
            &[("usage_location", "")],
        )
        .await;
    server
        .get(&format!("/users/{cuban}"))
        .await
        .expect(200)
        .contains("inherits the tenant's, <strong>United States (US)</strong>");

    // The duplicate proxy address, fixed on user062.
    let user062 = directory.users[61];
    server
        .post(
            &format!("/users/{user062}/proxy-addresses"),
            &[("proxy_addresses", "not an address")],
        )
        .await
        .expect(422)
        .contains("invalid proxy address");
    server
        .post_change(
            &format!("/users/{user062}/proxy-addresses"),
            &[("proxy_addresses", "SMTP:user062@contoso.com\r\n\r\n")],
        )
        .await;
    server.settle().await;
    server
        .get(&format!("/users/{user062}"))
        .await
        .expect(200)
        .lacks("Duplicate proxy address")
        .lacks("smtp:user061@contoso.com");
    // A user reprocess: plain POST redirects, htmx gets the activity panel.
    let location = server
        .post_change(&format!("/users/{user062}/reprocess"), &[])
        .await;
    assert_eq!(location, format!("/users/{user062}?done=reprocess-queued"));
    let fragment = server
        .send(
            server
                .form_request(&format!("/users/{user062}/reprocess"), &[])
                .header("HX-Request", "true")
                .header("HX-Target", "user-processing"),
        )
        .await
        .expect(200);
    fragment.contains("id=\"tenant-processing\"");
    server.stop().await;
}

#[tokio::test]
async fn user_supplied_text_is_escaped_everywhere() {
    let (mut world, directory) = demo();
    let script = "<script>alert(1)</script>";
    let user_id = Uuid::from_u128(0xbad0_0000_0000_4000_8000_0000_0000_0001);
    let mut user = NewUser::new(user_id, "xss@contoso.com");
    user.display_name = script.to_string();
    world.apply(Command::CreateUser(user)).expect("the user");
    let group_id = world
        .add_group("<img src=x onerror=alert(2)> & \"friends\"")
        .expect("the group");
    world.add_member(group_id, user_id).expect("the member");
    world
        .add_member(directory.sales_e3, user_id)
        .expect("a licensed group");
    world.process();
    let server = ConsoleServer::start(&world.engine).await;
    let pages = [
        format!("/users/{user_id}"),
        "/users?search=xss".to_string(),
        format!("/groups/{group_id}"),
        format!("/groups/{group_id}/members"),
        "/groups?search=img".to_string(),
        format!("/products/{OFFICE_365_E3}?search=xss"),
        format!("/groups/{}/members?search=xss", directory.sales_e3),
    ];
    for path in pages {
        let page = server.get(&path).await.expect(200);
        page.lacks("<script>alert")
            .lacks("<img src=x")
            .lacks("alert(1)</script>");
        assert!(
            page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
                || page
                    .body
                    .contains("&lt;img src=x onerror=alert(2)&gt; &amp; &quot;friends&quot;"),
            "{path}: {}",
            page.body
        );
    }
    // Typed text is escaped where it is shown again.
    server
        .get("/users?search=%3Cscript%3Ealert(3)%3C%2Fscript%3E")
        .await
        .expect(200)
        .lacks("<script>alert(3)")
        .contains("value=\"&lt;script&gt;alert(3)&lt;/script&gt;\"");
    server
        .post(
            &format!("/groups/{group_id}/members"),
            &[("user", "<b>bold</b>\"")],
        )
        .await
        .expect(422)
        .lacks("<b>bold</b>")
        .contains("&lt;b&gt;bold&lt;/b&gt;&quot;");
    // Unknown notices are not reflected.
    server
        .get(&format!("/users/{user_id}?done=%3Cscript%3E"))
        .await
        .expect(200)
        .lacks("<script>")
        .lacks("&lt;script&gt;</div>");
    server.stop().await;
}

#[tokio::test]
async fn lists_page_by_a_stable_key_within_bounds() {
    let (server, world, _) = ConsoleServer::demo().await;
    let total = world.engine.user_count();
    let mut seen = Vec::new();
    let mut path = "/users".to_string();
    let mut pages = 0;
    loop {
        let page = server.get(&path).await.expect(200);
        let rows = page.row_links("/users/");
        assert!(rows <= 50, "a page has at most 50 rows, not {rows}");
        pages += 1;
        seen.push(rows);
        match page.next_key() {
            Some(key) => {
                assert_eq!(rows, 50, "only the last page is short");
                path = format!("/users?after={key}");
            }
            None => break,
        }
    }
    assert_eq!(seen.iter().sum::<usize>(), total);
    assert_eq!(pages, total.div_ceil(50));

    // Back from the second page: the first page again.
    let first = server.get("/users").await.expect(200);
    let key = first.next_key().expect("a second page");
    let second = server.get(&format!("/users?after={key}")).await.expect(200);
    second.contains("rel=\"prev\"").contains("First page");
    let previous_key = second
        .body
        .split("rel=\"prev\" href=\"/users?before=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a previous link")
        .to_string();
    let back = server
        .get(&format!("/users?before={previous_key}"))
        .await
        .expect(200);
    assert_eq!(back.row_links("/users/"), 50);
    assert_eq!(back.next_key(), Some(key.clone()));
    // Search keeps paging within the matches.
    let searched = server.get("/users?search=user1").await.expect(200);
    assert_eq!(searched.row_links("/users/"), 50);
    let next = searched.next_key().expect("more matches");
    let rest = server
        .get(&format!("/users?search=user1&after={next}"))
        .await
        .expect(200);
    // user100 to user199: two full pages, the second with a way back and no way on.
    assert_eq!(rest.row_links("/users/"), 50);
    rest.contains("search=user1&amp;before=");
    assert_eq!(rest.next_key(), None);
    // Users with errors.
    let with_errors = server.get("/users?filter=errors").await.expect(200);
    assert_eq!(
        with_errors.row_links("/users/"),
        world.engine.users_with_errors().len().min(50)
    );

    // A vanished key starts over; malformed keys are refused with a page.
    server
        .get(&format!("/users?after={}", Uuid::from_u128(42)))
        .await
        .expect(200)
        .contains("The list changed since the last page");
    server
        .get("/users?after=not-a-guid")
        .await
        .expect(400)
        .contains("'not-a-guid' is not a valid user id");
    server
        .get(&format!("/users?after={key}&before={key}"))
        .await
        .expect(400)
        .contains("either after or before");

    // A product's licensed users and groups are paged too.
    let licensed = server
        .get(&format!("/products/{OFFICE_365_E3}"))
        .await
        .expect(200);
    assert_eq!(licensed.row_links("/users/"), 50);
    licensed.contains("Inherited from").contains("Licensed groups");
    let next = licensed.next_key().expect("more licensed users");
    server
        .get(&format!("/products/{OFFICE_365_E3}?after={next}"))
        .await
        .expect(200);
    let groups = server
        .get(&format!("/products/{OFFICE_365_E3}?tab=groups"))
        .await
        .expect(200);
    assert_eq!(groups.row_links("/groups/"), 3);
    groups
        .contains("Sales - Office 365 E3")
        .contains("Analytics pilot");
    server.stop().await;
}

#[tokio::test]
async fn all_products_and_activity_pages() {
    let (server, world, _) = ConsoleServer::demo().await;
    let products = server.get("/products").await.expect(200);
    assert_eq!(products.row_links("/products/"), 4);
    for product in world.engine.sku_usages() {
        products.contains(&product.sku_part_number);
    }
    products.contains("aria-current=\"page\">All products");
    // A fresh demo tenant has no recorded activity; a change made through the console is listed
    // with who made it and what changed.
    server
        .get("/activity")
        .await
        .expect(200)
        .contains("No activity recorded yet.");
    let seats = world.engine.sku_usage(OFFICE_365_E3).expect("E3").prepaid_units + 5;
    server
        .post_change(
            &format!("/products/{OFFICE_365_E3}/seats"),
            &[("prepaid_units", &seats.to_string())],
        )
        .await;
    server
        .get("/activity")
        .await
        .expect(200)
        .contains("Update subscription seats")
        .contains("Bootstrap administrator (GlobalAdministrator)")
        .contains("PrepaidUnits");
    server
        .get("/activity?activity=Change+user+license")
        .await
        .expect(200)
        .contains("No activity matches these filters.");
    server
        .get("/processing")
        .await
        .expect(200)
        .contains("id=\"tenant-processing\"");
    let poll = server
        .get_htmx("/processing", "tenant-processing")
        .await
        .expect(200);
    assert_eq!(poll.header("hx-refresh").as_deref(), Some("true"));
    server.stop().await;
}

#[tokio::test]
async fn activity_is_paged_fifty_changes_at_a_time_with_an_older_link() {
    let (server, world, _) = ConsoleServer::demo().await;
    let seats = world.engine.sku_usage(OFFICE_365_E3).expect("E3").prepaid_units;
    // 55 changes: a first page of the newest 50, then the 5 oldest.
    for step in 1..=55u32 {
        server
            .post_change(
                &format!("/products/{OFFICE_365_E3}/seats"),
                &[("prepaid_units", &(seats + step).to_string())],
            )
            .await;
    }
    let row = "<tr data-activity=\"Update subscription seats\"";
    let first = server.get("/activity").await.expect(200);
    assert_eq!(first.body.matches(row).count(), 50);
    let older = first
        .body
        .split("<nav class=\"pager\"")
        .nth(1)
        .and_then(|pager| pager.split("href=\"").nth(1))
        .and_then(|link| link.split('"').next())
        .expect("an Older link")
        .replace("&amp;", "&");
    first.contains(">Older</a>");
    let second = server.get(&older).await.expect(200);
    assert_eq!(second.body.matches(row).count(), 5);
    second.lacks(">Older</a>");
    server.stop().await;
}

#[tokio::test]
async fn errors_are_pages_with_messages_never_blank() {
    let (server, _, directory) = ConsoleServer::demo().await;
    let unknown = Uuid::from_u128(0xdead);
    for (path, status, text) in [
        ("/groups/not-a-guid".to_string(), 400, "is not a valid group id"),
        (format!("/groups/{unknown}"), 404, "does not exist"),
        (format!("/groups/{unknown}/members"), 404, "does not exist"),
        (format!("/groups/{unknown}/errors"), 404, "does not exist"),
        (format!("/users/{unknown}"), 404, "does not exist"),
        ("/users/%ZZ".to_string(), 400, "cannot be read"),
        (format!("/products/{unknown}"), 404, "does not exist"),
        ("/products/x".to_string(), 400, "is not a valid product id"),
        (format!("/products/{EMS_E3}?tab=nope"), 400, "Unknown tab"),
        (
            format!("/groups/{}/licenses/edit", directory.sales_e3),
            400,
            "Choose a product",
        ),
        (
            format!("/groups/{}/licenses/edit?sku_id={unknown}", directory.sales_e3),
            404,
            "does not exist",
        ),
        ("/assets/nothing.js".to_string(), 404, "does not exist"),
    ] {
        let page = server.get(&path).await;
        assert_eq!(page.status, status, "{path}: {}", page.body);
        page.contains(text)
            .contains("<h1>")
            .contains("Back to the overview");
        assert_eq!(
            page.header("content-type").as_deref(),
            Some("text/html; charset=utf-8"),
            "{path}"
        );
    }
    // Changes to what does not exist.
    server
        .post(&format!("/groups/{unknown}/reprocess"), &[])
        .await
        .expect(404);
    server
        .post(&format!("/users/{unknown}/licenses/{OFFICE_365_E1}/remove"), &[])
        .await
        .expect(404);
    // Removing a license the user does not hold directly is refused on the user's page.
    let user200 = directory.users[199];
    server
        .post(&format!("/users/{user200}/licenses/{OFFICE_365_E3}/remove"), &[])
        .await
        .expect(422)
        .contains("The change was refused");
    // htmx errors land in the message area.
    let fragment = server
        .send(
            server
                .form_request(&format!("/groups/{unknown}/reprocess"), &[])
                .header("HX-Request", "true")
                .header("HX-Target", "group-processing"),
        )
        .await
        .expect(404);
    assert_eq!(
        fragment.header("hx-retarget").as_deref(),
        Some("#console-messages")
    );
    fragment.contains("role=\"alert\"").lacks("<html");
    // Changes come from the console's own pages, as forms.
    server
        .send(
            server
                .form_request(&format!("/groups/{}/reprocess", directory.sales_e3), &[])
                .header("Origin", "https://evil.example"),
        )
        .await
        .expect(403)
        .contains("Changes are accepted only from the console");
    server
        .send(
            server
                .form_request(&format!("/groups/{}/reprocess", directory.sales_e3), &[])
                .header("Sec-Fetch-Site", "cross-site"),
        )
        .await
        .expect(403);
    let same_origin = server
        .send(
            server
                .form_request(&format!("/groups/{}/reprocess", directory.sales_e3), &[])
                .header("Origin", server.base.clone())
                .header("Sec-Fetch-Site", "same-origin"),
        )
        .await;
    assert_eq!(same_origin.status, 303);
    server
        .send(
            server
                .client
                .post(format!("{}/products/{EMS_E3}/seats", server.base))
                .header("Content-Type", "application/json")
                .body("{\"prepaid_units\": 1}"),
        )
        .await
        .expect(400)
        .contains("application/x-www-form-urlencoded");
    // No GET changes anything: a GET on a change's address is not served.
    let get_change = server
        .get(&format!("/groups/{}/reprocess", directory.sales_e3))
        .await;
    assert_eq!(get_change.status, 405);
    // The assets are embedded.
    let htmx = server.get("/assets/htmx.min.js").await.expect(200);
    assert_eq!(
        htmx.header("content-type").as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    assert!(htmx.body.contains("htmx"));
    server
        .get("/assets/console.css")
        .await
        .expect(200)
        .contains(":focus-visible");
    server
        .get("/assets/htmx.LICENSE")
        .await
        .expect(200)
        .contains("Zero-Clause BSD");
    server.stop().await;
}

#[tokio::test]
async fn signing_in_sets_a_strict_session_cookie_and_roles_bound_the_console() {
    let (server, _world, directory) = ConsoleServer::demo().await;
    let anonymous = signed_in_client(None);
    let answer = server
        .send(anonymous.get(format!("{}/users", server.base)))
        .await
        .expect(303);
    assert_eq!(answer.header("location").as_deref(), Some("/login?next=%2Fusers"));
    server
        .send(anonymous.get(format!("{}/login?next=%2Fusers", server.base)))
        .await
        .expect(200)
        .contains("Sign in to licensd")
        .contains("value=\"/users\"")
        // No navigation for a visitor who is not signed in: every link would lead back here.
        .lacks("aria-label=\"Console\"")
        .lacks("href=\"/groups\"");
    let sign_in = |token: &str| {
        anonymous
            .post(format!("{}/login", server.base))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("next=%2Fusers&token={token}"))
    };
    server
        .send(sign_in("lsd_wrong"))
        .await
        .expect(401)
        .contains("This token is not valid");
    let signed_in = server.send(sign_in(&server.token)).await.expect(303);
    assert_eq!(signed_in.header("location").as_deref(), Some("/users"));
    let cookie = signed_in.header("set-cookie").expect("a session cookie");
    assert!(cookie.starts_with("licensd_session=lsd_"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    // A foreign site cannot post to another site's session-less console (no cookie) nor with it.
    server
        .send(
            server
                .form_request("/logout", &[])
                .header("Origin", "https://evil.example")
                .header("Sec-Fetch-Site", "cross-site"),
        )
        .await
        .expect(403);
    let signed_out = server.post("/logout", &[]).await.expect(303);
    assert!(signed_out
        .header("set-cookie")
        .expect("cleared")
        .contains("Max-Age=0"));

    // A Global Reader sees the pages but no change is offered or accepted.
    let created = reqwest::Client::new()
        .post(format!("{}/licensd/v1/tokens", server.base))
        .bearer_auth(&server.token)
        .json(&serde_json::json!({"displayName": "auditor", "role": "GlobalReader"}))
        .send()
        .await
        .expect("create a token");
    assert_eq!(created.status(), 201);
    let secret = created.json::<serde_json::Value>().await.expect("JSON")["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let reader = signed_in_client(Some(&secret));
    let user001 = directory.users[0];
    server
        .send(reader.get(format!("{}/users/{user001}", server.base)))
        .await
        .expect(200)
        .contains("disabled");
    server
        .send(
            reader
                .post(format!(
                    "{}/users/{user001}/licenses/{OFFICE_365_E1}/remove",
                    server.base
                ))
                .header("Content-Type", "application/x-www-form-urlencoded"),
        )
        .await
        .expect(403);
    // The license is still there.
    server
        .get(&format!("/users/{user001}"))
        .await
        .expect(200)
        .contains(&format!("/users/{user001}/licenses/{OFFICE_365_E1}/remove"));
    // A Reports Reader sees the overview but not the users.
    let created = reqwest::Client::new()
        .post(format!("{}/licensd/v1/tokens", server.base))
        .bearer_auth(&server.token)
        .json(&serde_json::json!({"displayName": "reports", "role": "ReportsReader"}))
        .send()
        .await
        .expect("create a token");
    let secret = created.json::<serde_json::Value>().await.expect("JSON")["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let reports = signed_in_client(Some(&secret));
    server
        .send(reports.get(format!("{}/", server.base)))
        .await
        .expect(200);
    server
        .send(reports.get(format!("{}/activity", server.base)))
        .await
        .expect(200);
    server
        .send(reports.get(format!("{}/users", server.base)))
        .await
        .expect(403);
    server.stop().await;
}

#[tokio::test]
async fn the_advisor_page_lists_findings_with_links_and_applies_a_fix() {
    let (server, _, directory) = ConsoleServer::demo().await;
    let user001 = directory.users[0];
    let page = server.get("/advisor").await.expect(200);
    page.contains("<a href=\"/advisor\" aria-current=\"page\">Advisor</a>")
        .contains("Redundant direct assignments (")
        // user001's E1 is superseded by Sales' E3: user, product and group are links.
        .contains(&format!(
            "<th scope=\"row\"><a href=\"/users/{user001}\">user001@contoso.com</a></th><td><a href=\"/products/{OFFICE_365_E1}\">Office 365 E1</a> <span class=\"muted\">(STANDARDPACK)</span></td><td><a href=\"/products/{OFFICE_365_E3}\">Office 365 E3</a> <span class=\"muted\">(ENTERPRISEPACK)</span> from group <a href=\"/groups/{}\">Sales - Office 365 E3</a></td><td>yes</td>",
            directory.sales_e3
        ))
        .contains("Remove the direct Office 365 E1 license from user001@contoso.com")
        // EMS: 10 users waiting and no free seat.
        .contains(&format!(
            "<tr data-sku=\"EMS\"><th scope=\"row\"><a href=\"/products/{EMS_E3}\">Enterprise Mobility + Security E3</a> <span class=\"muted\">(EMS)</span></th>"
        ))
        .contains("Products near exhaustion (")
        .contains("Reclaimable seats");
    // Every page's navigation has the entry.
    server
        .get("/products")
        .await
        .expect(200)
        .contains("<a href=\"/advisor\">Advisor</a>");

    // Applying the finding removes the direct E1; once processed, user001's conflict is gone.
    let location = server
        .post_change(
            "/advisor/apply",
            &[
                ("finding", "redundant-direct-assignment"),
                ("user_id", &user001.to_string()),
                ("sku_id", &OFFICE_365_E1.to_string()),
            ],
        )
        .await;
    assert_eq!(location, "/advisor?done=fix-applied");
    server.settle().await;
    let page = server.get(&location).await.expect(200);
    page.contains("The fix was applied.")
        .lacks(&format!("<th scope=\"row\"><a href=\"/users/{user001}\">"));
    server
        .get(&format!("/users/{user001}/diagnosis"))
        .await
        .expect(200)
        .contains("No license errors.");
    // The same finding again is gone; an unknown finding is refused with a message.
    server
        .post(
            "/advisor/apply",
            &[
                ("finding", "redundant-direct-assignment"),
                ("user_id", &user001.to_string()),
                ("sku_id", &OFFICE_365_E1.to_string()),
            ],
        )
        .await
        .expect(400)
        .contains("This finding is gone: nothing to apply.");
    server
        .post(
            "/advisor/apply",
            &[("finding", "<script>"), ("user_id", &user001.to_string())],
        )
        .await
        .expect(400)
        .contains("&lt;script&gt;")
        .lacks("<script>");
    server.stop().await;
}

#[tokio::test]
async fn the_diagnosis_page_explains_the_conflict_and_its_apply_button_clears_it() {
    let (server, _, directory) = ConsoleServer::demo().await;
    let user002 = directory.users[1];
    let path = format!("/users/{user002}/diagnosis");
    let page = server.get(&path).await.expect(200);
    page.contains("user002@contoso.com")
        // Product names first, the part number secondary; the rule and state in words.
        .contains(
            "Office 365 E3 <span class=\"muted\">(ENTERPRISEPACK)</span> from group Sales - Office 365 E3",
        )
        .contains("data-error=\"MutuallyExclusiveViolation\"")
        .contains("Some service plans cannot be enabled together")
        .lacks("mutuallyExclusiveWith")
        .lacks(">ActiveWithError<")
        .contains("Exchange Online (Plan 2)")
        .contains("Exchange Online (Plan 1)")
        .contains("Office 365 E1 <span class=\"muted\">(STANDARDPACK)</span> — direct")
        .lacks("Remove the direct license STANDARDPACK")
        .contains("Remove the direct license Office 365 E1")
        .contains("RemoveConflictingDirectLicense")
        .contains(&format!("action=\"/users/{user002}/diagnosis/apply\""))
        .contains("1 fixed, 0 newly broken");

    let location = server
        .post_change(
            &format!("{path}/apply"),
            &[
                ("sku_id", &OFFICE_365_E3.to_string()),
                ("group_id", &directory.sales_e3.to_string()),
                ("kind", "RemoveConflictingDirectLicense"),
            ],
        )
        .await;
    // Back to Diagnosis with the result said.
    assert_eq!(location, format!("{path}?done=fix-applied"));
    server.settle().await;
    let page = server.get(&location).await.expect(200);
    page.contains("The fix was applied.")
        .contains("Processing finished: this page shows the result.")
        .contains("No license errors.")
        .contains("Re-evaluated automatically on ")
        .contains("because its direct Office 365 E1 license was removed; its errors cleared.")
        .lacks("MutuallyExclusiveViolation");
    let user = server.get(&format!("/users/{user002}")).await.expect(200);
    user.lacks("Conflicting service plans")
        .contains("data-reason=\"DirectLicenseRemoved\"");
    // The error is gone: applying again says so.
    server
        .post(
            &format!("{path}/apply"),
            &[
                ("sku_id", &OFFICE_365_E3.to_string()),
                ("group_id", &directory.sales_e3.to_string()),
                ("kind", "RemoveConflictingDirectLicense"),
            ],
        )
        .await
        .expect(400)
        .contains("This error is gone: nothing to fix.");
    server.stop().await;
}

/// The `data-fix="…"` kinds of a page's fix buttons.
fn fix_kinds(page: &Page) -> std::collections::BTreeSet<String> {
    page.body
        .split("<button type=\"submit\" data-fix=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn the_users_page_offers_every_fix_that_diagnosis_offers() {
    let (server, _, directory) = ConsoleServer::demo().await;
    // A conflict, a duplicate address, a missing seat, a blocked removal, a location.
    for number in [2_usize, 61, 130, 121, 291] {
        let user_id = directory.users[number - 1];
        let diagnosis = server
            .get(&format!("/users/{user_id}/diagnosis"))
            .await
            .expect(200);
        let user = server.get(&format!("/users/{user_id}")).await.expect(200);
        let offered = fix_kinds(&diagnosis);
        assert!(!offered.is_empty(), "user{number:03} has fixes on Diagnosis");
        assert_eq!(
            fix_kinds(&user),
            offered,
            "user{number:03}: the user page offers Diagnosis's fixes"
        );
    }
    // The seed's first remedy for the dependency error: keep Exchange through a direct E3.
    let user121 = directory.users[120];
    server
        .get(&format!("/users/{user121}"))
        .await
        .expect(200)
        .contains("data-fix=\"KeepPrerequisiteDirectly\"")
        .contains("Active with error")
        .lacks(">ActiveWithError<");
    server.stop().await;
}

#[tokio::test]
async fn a_plan_fix_opens_the_editor_with_the_plans_to_disable_unticked_and_marked() {
    let (server, world, directory) = ConsoleServer::demo().await;
    let user002 = directory.users[1];
    let user = server.get(&format!("/users/{user002}")).await.expect(200);
    let link = user
        .body
        .split("href=\"")
        .map(|rest| rest.split('"').next().unwrap_or(""))
        .find(|href| {
            href.starts_with(&format!(
                "/users/{user002}/licenses/edit?sku_id={OFFICE_365_E1}&amp;change="
            ))
        })
        .expect("a link to disable the conflicting plans of the direct E1")
        .replace("&amp;", "&");
    // Every conflicting plan at once: Exchange Online (Plan 1) and SharePoint (Plan 1).
    let changed: Vec<String> = link
        .split("change=")
        .nth(1)
        .expect("the plans")
        .split(',')
        .map(str::to_string)
        .collect();
    assert_eq!(changed.len(), 2, "{link}");
    let editor = server.get(&link).await.expect(200);
    editor
        .contains("suggested: disable")
        .contains("data-pick=\"all\"")
        .contains("data-pick=\"none\"")
        .contains("Only this plan");
    for plan in &changed {
        editor
            .contains(&format!("data-plan=\"{plan}\""))
            .contains(&format!("name=\"enabled_plan\" value=\"{plan}\">"))
            .lacks(&format!("name=\"enabled_plan\" value=\"{plan}\" checked"));
    }
    // Every other plan of the direct E1 stays ticked.
    // (`every_plan_of` lists the product's field, then one field per plan.)
    let plans = every_plan_of(&world, OFFICE_365_E1).len() - 1;
    assert_eq!(editor.body.matches("name=\"enabled_plan\"").count(), plans);
    assert_eq!(editor.body.matches("\" checked>").count(), plans - 2);
    // A change naming something that is not a plan id is refused.
    server
        .get(&format!(
            "/users/{user002}/licenses/edit?sku_id={OFFICE_365_E1}&change=not-a-plan"
        ))
        .await
        .expect(400);
    server.stop().await;
}

#[tokio::test]
async fn activity_names_products_and_filters_by_target_initiator_and_dates() {
    let (server, _, directory) = ConsoleServer::demo().await;
    let user003 = directory.users[2];
    server
        .post_change(
            &format!("/users/{user003}/licenses"),
            &[("sku_id", &OFFICE_365_E1.to_string())],
        )
        .await;
    server.settle().await;
    let page = server.get("/activity").await.expect(200);
    page.contains("Change user license")
        .contains("<time datetime=\"")
        .lacks(&format!("{OFFICE_365_E1}</span>"));
    // The change's values name the product rather than its id.
    server
        .get("/activity?target=user003")
        .await
        .expect(200)
        .contains("user003")
        .lacks("user004@contoso.com");
    server
        .get("/activity?initiator=nobody-of-that-name")
        .await
        .expect(200)
        .contains("No activity matches these filters.");
    server
        .get("/activity?from=2000-01-01&to=2000-01-02")
        .await
        .expect(200)
        .contains("No activity matches these filters.");
    server
        .get("/activity?from=yesterday")
        .await
        .expect(400)
        .contains("'yesterday' is not a date for From");
    server.stop().await;
}

#[tokio::test]
async fn the_advisor_pages_each_list_and_filters_by_product_and_user() {
    let (server, _, directory) = ConsoleServer::demo().await;
    let user001 = directory.users[0];
    let user002 = directory.users[1];
    let row_of = |user_id| format!("<th scope=\"row\"><a href=\"/users/{user_id}\">");
    // One finding per page: the first page has user001 and a link to the next.
    let first = server.get("/advisor?per_page=1").await.expect(200);
    first
        .contains(&row_of(user001))
        .lacks(&row_of(user002))
        .contains("Page 1 of ")
        .contains("href=\"/advisor?per_page=1&amp;redundant_page=2#redundant\"");
    server
        .get("/advisor?per_page=1&redundant_page=2")
        .await
        .expect(200)
        .contains(&row_of(user002))
        .lacks(&row_of(user001))
        .contains("Page 2 of ");
    // Narrowed to one user, or to a product none of them holds directly.
    server
        .get("/advisor?user=user002")
        .await
        .expect(200)
        .contains(&row_of(user002))
        .lacks(&row_of(user001));
    server
        .get(&format!("/advisor?product={EMS_E3}"))
        .await
        .expect(200)
        .lacks(&row_of(user001))
        .contains("Redundant direct assignments (0)");
    server
        .get("/advisor?per_page=0")
        .await
        .expect(400)
        .contains("'0' is not a valid per_page");
    server.get("/advisor?product=nope").await.expect(400);
    server.stop().await;
}

#[tokio::test]
async fn users_in_error_are_filtered_by_kind_and_product_and_fixed_in_bulk() {
    let (server, _, directory) = ConsoleServer::demo().await;
    let sales = directory.sales_e3;
    let user001 = directory.users[0];
    let user061 = directory.users[60];
    let all = server.get(&format!("/groups/{sales}/errors")).await.expect(200);
    all.contains(&format!("href=\"/users/{user001}\""))
        .contains(&format!("href=\"/users/{user061}\""))
        .contains("Reprocess the group")
        .contains("name=\"user_id\"");
    let conflicts = server
        .get(&format!("/groups/{sales}/errors?kind=MutuallyExclusiveViolation"))
        .await
        .expect(200);
    conflicts
        .contains(&format!("href=\"/users/{user001}\""))
        .lacks(&format!("href=\"/users/{user061}\""));
    server
        .get(&format!("/groups/{sales}/errors?kind=CountViolation"))
        .await
        .expect(200)
        .contains("No user of this group is in error with these filters.");
    server
        .get(&format!("/groups/{sales}/errors?product={OFFICE_365_E1}"))
        .await
        .expect(200)
        .lacks(&format!("href=\"/users/{user001}\""));
    server
        .get(&format!("/groups/{sales}/errors?kind=Nonsense"))
        .await
        .expect(400)
        .contains("'Nonsense' is not a kind of license error.");
    // One fix applied to the five users with a redundant direct E1.
    let mut fields = vec![("action".to_string(), "RemoveConflictingDirectLicense".to_string())];
    for number in 1..=5 {
        fields.push(("user_id".to_string(), directory.users[number - 1].to_string()));
    }
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    // First a preview: each user's change and the prediction; nothing is changed.
    server
        .post(&format!("/groups/{sales}/errors/fix"), &fields)
        .await
        .expect(200)
        .contains("<h1>Apply a fix to 5 users</h1>")
        .contains("<strong data-field=\"with-fix\">5</strong>")
        .contains("<strong data-field=\"fixed\">5</strong>")
        .contains("Remove the direct license Office 365 E1")
        .contains("name=\"confirmed\" value=\"yes\"");
    server
        .get(&format!("/groups/{sales}/errors"))
        .await
        .expect(200)
        .contains(&format!("href=\"/users/{user001}\""));
    let mut confirmed = fields.clone();
    confirmed.push(("confirmed", "yes"));
    let location = server
        .post_change(&format!("/groups/{sales}/errors/fix"), &confirmed)
        .await;
    assert_eq!(
        location,
        format!("/groups/{sales}/errors?done=fix-applied-to-many")
    );
    server.settle().await;
    let after = server.get(&location).await.expect(200);
    after
        .contains("The fix was applied to the selected users.")
        .lacks(&format!("href=\"/users/{user001}\""))
        .contains(&format!("href=\"/users/{user061}\""));
    server
        .get(&format!("/groups/{sales}/errors?kind=MutuallyExclusiveViolation"))
        .await
        .expect(200)
        .contains("No user of this group is in error with these filters.");
    // Reprocess selected users; nothing selected is refused.
    let location = server
        .post_change(
            &format!("/groups/{sales}/errors/fix"),
            &[("action", "reprocess"), ("user_id", &user061.to_string())],
        )
        .await;
    assert_eq!(location, format!("/groups/{sales}/errors?done=reprocess-many"));
    server
        .post(&format!("/groups/{sales}/errors/fix"), &[("action", "reprocess")])
        .await
        .expect(400)
        .contains("Select at least one user.");
    // Tenant-wide: the users in error of every group, filtered; the same bulk actions.
    let user291 = directory.users[290];
    let tenant = server
        .get("/users?filter=errors&kind=ProhibitedInUsageLocationViolation")
        .await
        .expect(200);
    assert_eq!(tenant.row_links("/users/"), 5);
    tenant
        .contains(&format!("href=\"/users/{user291}\""))
        .lacks(&format!("href=\"/users/{user061}\""))
        .contains("action=\"/users/errors/fix\"")
        .contains("data-error=\"ProhibitedInUsageLocationViolation\"");
    server
        .get("/users?filter=errors&kind=Nonsense")
        .await
        .expect(400)
        .contains("'Nonsense' is not a kind of license error.");
    server
        .post(
            "/users/errors/fix",
            &[("action", "SetUsageLocation"), ("user_id", &user291.to_string())],
        )
        .await
        .expect(200)
        .contains("<h1>Apply a fix to 1 users</h1>")
        .contains("<strong data-field=\"fixed\">1</strong>");
    let location = server
        .post_change(
            "/users/errors/fix",
            &[("action", "reprocess"), ("user_id", &user291.to_string())],
        )
        .await;
    assert_eq!(location, "/users?filter=errors&done=reprocess-many");
    server.stop().await;
}

#[tokio::test]
async fn several_products_are_added_in_one_step_to_a_group_after_a_preview_and_to_a_user() {
    let (server, _, directory) = ConsoleServer::demo().await;
    let pilot = directory.analytics_pilot;
    let user150 = directory.users[149];
    let (e1, ems) = (OFFICE_365_E1.to_string(), EMS_E3.to_string());
    let products = [("sku_id", e1.as_str()), ("sku_id", ems.as_str())];
    server
        .get(&format!("/groups/{pilot}"))
        .await
        .expect(200)
        .contains(&format!("action=\"/groups/{pilot}/licenses/add\""));
    // The preview changes nothing.
    server
        .post(&format!("/groups/{pilot}/licenses/add"), &products)
        .await
        .expect(200)
        .contains("<h1>Add 2 products to Analytics pilot</h1>")
        .contains("data-testid=\"preview\"");
    server
        .get(&format!("/groups/{pilot}"))
        .await
        .expect(200)
        .lacks(&format!("href=\"/products/{OFFICE_365_E1}\""));
    server
        .post(&format!("/groups/{pilot}/licenses/add"), &[("confirmed", "yes")])
        .await
        .expect(400)
        .contains("Select at least one product to add.");
    let mut confirmed = products.to_vec();
    confirmed.push(("confirmed", "yes"));
    let location = server
        .post_change(&format!("/groups/{pilot}/licenses/add"), &confirmed)
        .await;
    assert_eq!(location, format!("/groups/{pilot}?done=products-assigned"));
    server
        .get(&location)
        .await
        .expect(200)
        .contains(&format!("href=\"/products/{OFFICE_365_E1}\""))
        .contains(&format!("href=\"/products/{EMS_E3}\""));
    // A user: directly, in one change.
    let location = server
        .post_change(
            &format!("/users/{user150}/licenses/add"),
            &[("sku_id", ems.as_str())],
        )
        .await;
    assert_eq!(location, format!("/users/{user150}?done=products-assigned"));
    server
        .get(&location)
        .await
        .expect(200)
        .contains("The products were assigned, every plan enabled.");
    server.stop().await;
}

#[tokio::test]
async fn an_empty_tenant_opens_on_the_first_run_page_and_is_set_up_from_it() {
    let settings = licensd_engine::TenantSettings::new(Uuid::new_v4(), "Fresh tenant");
    let server = ConsoleServer::start(&Engine::new(settings)).await;
    let home = server.get("/").await.expect(200);
    home.contains("<h1>Get started</h1>")
        .contains("Add products")
        .contains("Office 365 E3")
        .contains("Create a group");
    server
        .get("/setup?search=mobility")
        .await
        .expect(200)
        .contains(&format!("value=\"{EMS_E3}\""));
    // Two products in one step, with the catalog's rules.
    let location = server
        .post_change(
            "/setup/products",
            &[
                ("sku_id", &OFFICE_365_E1.to_string()),
                ("sku_id", &OFFICE_365_E3.to_string()),
                ("prepaid_units", "30"),
            ],
        )
        .await;
    assert_eq!(location, "/setup?done=products-added");
    server
        .get(&location)
        .await
        .expect(200)
        .contains("The products were added with the catalog's rules.")
        .contains("data-testid=\"products-added\"")
        .contains("already subscribed");
    // Nothing selected, or seats that are not a number: refused, nothing changes.
    server
        .post("/setup/products", &[("prepaid_units", "30")])
        .await
        .expect(400)
        .contains("Select at least one product.");
    server
        .post(
            "/setup/products",
            &[("sku_id", &EMS_E3.to_string()), ("prepaid_units", "lots")],
        )
        .await
        .expect(400)
        .contains("'lots' is not a number of seats");
    // A group: created and opened, ready for a product.
    let location = server
        .post_change("/setup/groups", &[("display_name", "Sales")])
        .await;
    assert!(location.ends_with("?done=group-created"), "{location}");
    server
        .get(&location)
        .await
        .expect(200)
        .contains("<h1>Sales</h1>")
        .contains("The group was created.");
    // No longer empty: the overview is the usual one.
    server.get("/").await.expect(200).contains("Licenses overview");
    server
        .post("/setup/groups", &[("display_name", "  ")])
        .await
        .expect(400);
    server.stop().await;
}

#[tokio::test]
async fn the_spend_page_shows_cost_by_department_as_svg_and_tables() {
    let (mut world, directory) = demo();
    for command in SeedWorld::demo_attribute_commands(&directory) {
        world.apply(command).expect("departments");
    }
    let server = ConsoleServer::start(&world.engine).await;
    let api = reqwest::Client::new();
    for (sku, price) in [(OFFICE_365_E1, "10"), (OFFICE_365_E3, "33.50")] {
        let response = api
            .put(format!("{}/licensd/v1/skus/{sku}/price", server.base))
            .bearer_auth(&server.token)
            .json(&serde_json::json!({"pricePerSeat": price, "currency": "EUR"}))
            .send()
            .await
            .expect("price");
        assert_eq!(response.status().as_u16(), 200);
    }
    let page = server.get("/spend").await.expect(200);
    page.contains("aria-current=\"page\">Spend")
        .contains("<svg")
        .contains("Cost by department")
        .contains("Engineering")
        .contains("Operations")
        .contains("Sales");
    // E3 for Engineering (users 131-150, 20 seats) at 33.50 EUR, in the table and the chart.
    page.contains("670.00 EUR");
    // Every amount is written with thousands separators ("5,360.00 EUR" for E3's 160 seats),
    // products by name first.
    let amounts: Vec<&str> = page
        .body
        .split(" EUR")
        .filter_map(|before| {
            before
                .rsplit(|character: char| {
                    !(character.is_ascii_digit() || character == ',' || character == '.')
                })
                .next()
        })
        .filter(|amount| amount.contains('.'))
        .collect();
    assert!(amounts.iter().any(|amount| amount.contains(',')), "{amounts:?}");
    for amount in &amounts {
        let whole = amount.split('.').next().unwrap_or_default();
        let groups: Vec<&str> = whole.split(',').collect();
        assert!(
            (1..=3).contains(&groups[0].len()) && groups[1..].iter().all(|group| group.len() == 3),
            "{amount} EUR is not grouped by thousands"
        );
    }
    page.contains("Office 365 E3</a><br><span class=\"muted\">ENTERPRISEPACK</span>");
    let history = server
        .get(&format!("/spend/products/{OFFICE_365_E3}"))
        .await
        .expect(200);
    history
        .contains("Seat usage: Office 365 E3")
        .contains("ENTERPRISEPACK");
    server.get("/spend/products/not-a-guid").await.expect(404);
    server.stop().await;
}

/// The demo tenant with the users' departments (131-150 Engineering), as `licensd demo` serves it.
async fn demo_with_departments() -> (ConsoleServer, SeedWorld, DemoDirectory) {
    let (mut world, directory) = demo();
    for command in SeedWorld::demo_attribute_commands(&directory) {
        world.apply(command).expect("departments");
    }
    let server = ConsoleServer::start(&world.engine).await;
    (server, world, directory)
}

/// The id of a group created from `/groups/new`, from the redirect to its page.
fn created_group(location: &str) -> Uuid {
    let id = location
        .trim_start_matches("/groups/")
        .split('?')
        .next()
        .expect("an id");
    Uuid::try_parse(id).expect("a group id")
}

#[tokio::test]
async fn a_dynamic_group_is_created_after_a_preview_and_its_rule_edited_paused_and_checked() {
    let (server, _, _) = demo_with_departments().await;
    // The rule is checked as it is typed: the parser's position, marked.
    server
        .get("/groups/rule-check?membership_rule=user.department%20-eq")
        .await
        .expect(200)
        .contains("Invalid rule at character 20")
        .contains("<mark class=\"rule-position\">");
    server
        .get("/groups/rule-check?membership_rule=user.department%20-eq%20%22Sales%22")
        .await
        .expect(200)
        .contains("The rule is valid");
    // An invalid rule is refused next to the field; nothing is created.
    let typed = [
        ("display_name", "Engineering (dynamic)"),
        ("membership", "dynamic"),
        ("membership_rule", "user.department -eq"),
        ("processing_state", "On"),
        ("sku_id", "3d957427-ecdc-4df2-aacd-01cc9d519da8"),
        ("sku_id", "6fd2c87f-b296-42f0-b197-1e91e994b900"),
        ("confirmed", "yes"),
    ];
    server
        .post("/groups/new", &typed)
        .await
        .expect(422)
        .contains("Invalid rule at character 20")
        .contains("value=\"Engineering (dynamic)\"");
    server.get("/groups").await.expect(200).contains("All groups (5)");
    // A processing state that does not exist is a bad request.
    let mut bogus = typed;
    bogus[2].1 = "user.department -eq \"Engineering\"";
    bogus[3].1 = "Sometimes";
    server
        .post("/groups/new", &bogus)
        .await
        .expect(400)
        .contains("'Sometimes' is not a processing state");
    // The preview: who joins, the licenses they gain, seats and new errors; nothing saved yet.
    let mut valid = bogus;
    valid[3].1 = "On";
    valid[6].1 = "no";
    server
        .post("/groups/new", &valid)
        .await
        .expect(200)
        .contains("<strong data-field=\"joined\">20</strong> users would join")
        .contains("gains Microsoft Workplace Analytics")
        .contains("Microsoft Workplace Analytics: purchased 20 → 20, assigned 16 → 20")
        .contains("<strong data-field=\"broken\">16</strong> newly in error");
    server.get("/groups").await.expect(200).contains("All groups (5)");
    valid[6].1 = "yes";
    let location = server.post_change("/groups/new", &valid).await;
    assert!(location.ends_with("?done=dynamic-group-created"), "{location}");
    let group = created_group(&location);
    server.settle().await;
    server
        .get(&format!("/groups/{group}"))
        .await
        .expect(200)
        .contains("Dynamic membership")
        .contains("20 members");
    // Its members cannot be changed by hand: not offered, and refused if sent anyway.
    let members = server.get(&format!("/groups/{group}/members")).await.expect(200);
    members
        .contains("cannot be added or removed by hand")
        .lacks("Add member")
        .lacks("/remove\"");
    server
        .post(
            &format!("/groups/{group}/members"),
            &[("user", "user001@contoso.com")],
        )
        .await
        .expect(422)
        .contains("is a dynamic membership group");
    // The rule edited: previewed (one leaves), then saved.
    let rule = "user.department -eq \"Engineering\" -and user.userPrincipalName -ne \"user131@contoso.com\"";
    let path = format!("/groups/{group}/rule");
    server
        .post(
            &path,
            &[
                ("membership_rule", rule),
                ("processing_state", "On"),
                ("confirmed", "no"),
            ],
        )
        .await
        .expect(200)
        .contains("<strong data-field=\"left\">1</strong> would leave")
        .contains("user131@contoso.com")
        .contains(&format!(
            "{}</pre>",
            escaped("user.department -eq \"Engineering\"")
        ));
    let location = server
        .post_change(
            &path,
            &[
                ("membership_rule", rule),
                ("processing_state", "Paused"),
                ("confirmed", "yes"),
            ],
        )
        .await;
    assert_eq!(location, format!("{path}?done=rule-saved"));
    server
        .get(&path)
        .await
        .expect(200)
        .contains(&escaped(rule))
        .contains("Paused")
        .contains("Preview resuming the rule");
    // An invalid rule changes nothing.
    server
        .post(
            &path,
            &[
                ("membership_rule", "user.department -eq \"x\" -and"),
                ("confirmed", "yes"),
            ],
        )
        .await
        .expect(422)
        .contains("Invalid rule at character");
    server.get(&path).await.expect(200).contains(&escaped(rule));
    server.stop().await;
}

#[tokio::test]
async fn nesting_refuses_a_cycle_and_transitive_licensing_is_previewed_then_switched() {
    let (server, _, directory) = demo_with_departments().await;
    let create = |name: &'static str| {
        [
            ("display_name", name),
            ("membership", "assigned"),
            ("confirmed", "yes"),
        ]
    };
    let all_staff = created_group(&server.post_change("/groups/new", &create("All Staff")).await);
    let platform = created_group(&server.post_change("/groups/new", &create("Platform")).await);
    // Platform into All Staff: previewed, then added.
    let nesting = format!("/groups/{all_staff}/nesting");
    server
        .post(&nesting, &[("group", "platform"), ("confirmed", "no")])
        .await
        .expect(200)
        .contains("Preview: what saving would do")
        .contains("Add the group");
    server
        .get(&nesting)
        .await
        .expect(200)
        .contains("No group is nested in this one.");
    let location = server
        .post_change(&nesting, &[("group", "Platform"), ("confirmed", "yes")])
        .await;
    assert_eq!(location, format!("{nesting}?done=group-nested"));
    server
        .get(&nesting)
        .await
        .expect(200)
        .contains(&format!("href=\"/groups/{platform}\">Platform</a>"));
    // All Staff into Platform would be a cycle: refused, saying why; nothing changes.
    let platform_nesting = format!("/groups/{platform}/nesting");
    for confirmed in ["no", "yes"] {
        server
            .post(&platform_nesting, &[("group", &all_staff.to_string()), ("confirmed", confirmed)])
            .await
            .expect(422)
            .contains("All Staff cannot become a member of Platform: Platform is already inside All Staff (All Staff ⊃ Platform)");
    }
    server
        .get(&platform_nesting)
        .await
        .expect(200)
        .contains("No group is nested in this one.")
        .contains("— directly");
    server
        .post(
            &platform_nesting,
            &[("group", "No such group"), ("confirmed", "no")],
        )
        .await
        .expect(422)
        .contains("A group named 'No such group' does not exist.");
    // Transitive licensing: previewed (the setting stays off), then on.
    let setting = format!("{nesting}/transitive-licensing");
    server
        .post(&setting, &[("enabled", "on"), ("confirmed", "no")])
        .await
        .expect(200)
        .contains("Turn transitive licensing on");
    server
        .get(&nesting)
        .await
        .expect(200)
        .contains("<span class=\"badge muted\">Off</span>");
    server.post(&setting, &[("enabled", "maybe")]).await.expect(400);
    let location = server
        .post_change(&setting, &[("enabled", "on"), ("confirmed", "yes")])
        .await;
    assert_eq!(location, format!("{nesting}?done=transitive-licensing-saved"));
    server
        .get(&nesting)
        .await
        .expect(200)
        .contains("<span class=\"badge ok\">On</span>")
        .contains("Preview turning it off");
    // The groups list says which groups are dynamic; a member of a nested group sees the path.
    let user = directory.users[120];
    server
        .post_change(
            &format!("/groups/{platform}/members"),
            &[("user", "user121@contoso.com")],
        )
        .await;
    server.settle().await;
    server
        .get(&format!("/users/{user}"))
        .await
        .expect(200)
        .contains("Through nesting, via Platform → All Staff")
        .contains(">Direct member<");
    // And out again.
    let location = server
        .post_change(&format!("{nesting}/{platform}/remove"), &[])
        .await;
    assert_eq!(location, format!("{nesting}?done=group-unnested"));
    server
        .get(&nesting)
        .await
        .expect(200)
        .contains("No group is nested in this one.");
    server.stop().await;
}

#[tokio::test]
async fn a_users_directory_attributes_are_edited_cleared_and_checked() {
    let (server, _, directory) = demo_with_departments().await;
    let user = directory.users[131];
    let page = server.get(&format!("/users/{user}")).await.expect(200);
    page.contains("id=\"attribute-department\" type=\"text\" name=\"attr_department\" value=\"Engineering\"");
    let location = server
        .post_change(
            &format!("/users/{user}/attributes"),
            &[
                ("attr_department", "Research"),
                ("attr_jobTitle", "Platform engineer"),
                ("attr_extensionAttribute3", "cc-42"),
                ("confirmed", "yes"),
            ],
        )
        .await;
    assert_eq!(location, format!("/users/{user}?done=attributes-saved"));
    server
        .get(&location)
        .await
        .expect(200)
        .contains("value=\"Research\"")
        .contains("value=\"Platform engineer\"")
        .contains("value=\"cc-42\"")
        .contains("(1 set)");
    // Emptied clears; over the limit is refused next to the attributes, nothing changed.
    server
        .post_change(
            &format!("/users/{user}/attributes"),
            &[("attr_jobTitle", ""), ("confirmed", "yes")],
        )
        .await;
    server
        .post(
            &format!("/users/{user}/attributes"),
            &[
                ("attr_employeeId", "12345678901234567"),
                ("attr_department", "Sales"),
            ],
        )
        .await
        .expect(422)
        .contains("invalid employeeId: at most 16 characters");
    server
        .get(&format!("/users/{user}"))
        .await
        .expect(200)
        .contains("value=\"Research\"")
        .lacks("value=\"Platform engineer\"");
    server.stop().await;
}

/// The demo with departments, a new hire in Operations (no license yet) and two dynamic groups:
/// "Operations (dynamic)" (no product) and "Research (dynamic)" (Office 365 E3, none yet).
async fn demo_with_dynamic_groups() -> (ConsoleServer, Uuid, Uuid, Uuid) {
    use licensd_engine::{AssignedLicense, RuleProcessingState, UserAttribute, UserChanges};
    let (mut world, directory) = demo();
    for command in SeedWorld::demo_attribute_commands(&directory) {
        world.apply(command).expect("departments");
    }
    let new_hire = world.add_user("newhire", Some("US")).expect("user");
    world
        .apply(Command::UpdateUser {
            user_id: new_hire,
            changes: UserChanges {
                attributes: [(UserAttribute::DEPARTMENT, Some("Operations".to_string()))].into(),
                ..UserChanges::default()
            },
        })
        .expect("department");
    let mut dynamic = |name: &str, department: &str| {
        let group = world.add_group(name).expect("group");
        world
            .apply(Command::SetMembershipRule {
                group_id: group,
                rule: Some(format!("user.department -eq \"{department}\"")),
                processing_state: RuleProcessingState::On,
            })
            .expect("rule");
        group
    };
    let operations = dynamic("Operations (dynamic)", "Operations");
    let research = dynamic("Research (dynamic)", "Research");
    world
        .assign_to_group(research, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])
        .expect("E3");
    world.process();
    let server = ConsoleServer::start(&world.engine).await;
    (server, new_hire, operations, research)
}

#[tokio::test]
async fn a_users_attribute_change_is_previewed_with_the_groups_and_licenses_it_moves() {
    let (server, new_hire, operations, research) = demo_with_dynamic_groups().await;
    let path = format!("/users/{new_hire}/attributes");
    server
        .get(&format!("/users/{new_hire}"))
        .await
        .expect(200)
        .contains("Preview the change")
        .lacks(">Save attributes<");
    // The preview: the groups joined and left, the license gained, the seats; nothing saved.
    let page = server
        .post(&path, &[("attr_department", "Research"), ("confirmed", "no")])
        .await
        .expect(200);
    page.contains("data-testid=\"attributes-preview\"")
        .contains(&format!(
            "Joins <a href=\"/groups/{research}\">Research (dynamic)</a>"
        ))
        .contains(&format!(
            "Leaves <a href=\"/groups/{operations}\">Operations (dynamic)</a>"
        ))
        .contains("Gains Office 365 E3.")
        .contains("Office 365 E3: purchased 160 → 160, assigned")
        .contains("value=\"Research\"")
        .contains(">Save attributes<");
    server
        .get(&format!("/users/{new_hire}"))
        .await
        .expect(200)
        .contains("value=\"Operations\"")
        .lacks("Research (dynamic)");
    // A change no rule reads moves nothing, and says so.
    server
        .post(&path, &[("attr_jobTitle", "Analyst")])
        .await
        .expect(200)
        .contains("The user would join and leave no dynamic group.")
        .contains("No license would be gained or lost.");
    // A refused value is refused at the preview, next to the attributes.
    server
        .post(&path, &[("attr_employeeId", "12345678901234567")])
        .await
        .expect(422)
        .contains("invalid employeeId: at most 16 characters");
    // Saved: the user moves and the license follows.
    let location = server
        .post_change(&path, &[("attr_department", "Research"), ("confirmed", "yes")])
        .await;
    assert_eq!(location, format!("/users/{new_hire}?done=attributes-saved"));
    server.settle().await;
    server
        .get(&format!("/users/{new_hire}"))
        .await
        .expect(200)
        .contains("value=\"Research\"")
        .contains("data-group=\"Research (dynamic)\"")
        .lacks("data-group=\"Operations (dynamic)\"")
        .contains("Office 365 E3");
    server.stop().await;
}

#[tokio::test]
async fn a_dynamic_group_is_converted_to_static_after_a_preview_and_made_dynamic_again() {
    let (server, _, operations, _) = demo_with_dynamic_groups().await;
    let rule_page = format!("/groups/{operations}/rule");
    server
        .get(&rule_page)
        .await
        .expect(200)
        .contains("Membership type")
        .contains("Preview converting to a static group");
    // The preview: nothing changes now; the group is still dynamic.
    server
        .post(&rule_page, &[("membership", "assigned"), ("confirmed", "no")])
        .await
        .expect(200)
        .contains("data-testid=\"convert-to-static\"")
        .contains("<strong>Nothing changes now.</strong> The 151 current members stay, as assigned members")
        .contains("<strong data-field=\"joined\">0</strong> users would join")
        .contains("<strong data-field=\"left\">0</strong> would leave")
        .contains(">Convert to static group<");
    server
        .get(&format!("/groups/{operations}"))
        .await
        .expect(200)
        .contains("Dynamic membership");
    server
        .post(&rule_page, &[("membership", "sometimes")])
        .await
        .expect(400);
    // Converted: the members stay; they are now added and removed by hand.
    let location = server
        .post_change(&rule_page, &[("membership", "assigned"), ("confirmed", "yes")])
        .await;
    assert_eq!(location, format!("/groups/{operations}?done=group-made-static"));
    server
        .get(&location)
        .await
        .expect(200)
        .contains("The group is now an assigned (static) group")
        .contains("Assigned membership")
        .contains("151 members");
    server
        .post(&rule_page, &[("membership", "assigned"), ("confirmed", "no")])
        .await
        .expect(400)
        .contains("not a dynamic group");
    server
        .post_change(
            &format!("/groups/{operations}/members"),
            &[("user", "user001@contoso.com")],
        )
        .await;
    // Made dynamic again: previewed (user001 would leave), then saved with "Make dynamic".
    let page = server.get(&rule_page).await.expect(200);
    page.contains("Make it a dynamic group");
    let rule = [
        ("membership", "dynamic"),
        ("membership_rule", "user.department -eq \"Operations\""),
        ("processing_state", "On"),
        ("confirmed", "no"),
    ];
    server
        .post(&rule_page, &rule)
        .await
        .expect(200)
        .contains("<strong data-field=\"left\">1</strong> would leave")
        .contains("user001@contoso.com")
        .contains(">Make dynamic<");
    let mut save = rule;
    save[3].1 = "yes";
    let location = server.post_change(&rule_page, &save).await;
    assert_eq!(location, format!("{rule_page}?done=group-made-dynamic"));
    server
        .get(&location)
        .await
        .expect(200)
        .contains("The group is now a dynamic group")
        .contains("151 members");
    // The changes are in Activity as "Update group" with the old and new group types.
    server
        .get("/activity?activity=Update+group")
        .await
        .expect(200)
        .contains("GroupTypes");
    server.stop().await;
}

#[tokio::test]
async fn reclamation_policies_are_added_dry_run_then_run_and_a_reclamation_reverted() {
    let (server, _, directory) = ConsoleServer::demo().await;
    let (user001, user002, user160) = (directory.users[0], directory.users[1], directory.users[159]);
    let day = 24 * 60 * 60 * 1000_i64;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock")
        .as_millis() as i64;
    let api = reqwest::Client::new();
    // user001 (E1 direct) and user160 (E1 from Frontline) left yesterday; user002 has not signed
    // in for 100 days.
    let response = api
        .post(format!("{}/licensd/v1/activity", server.base))
        .bearer_auth(&server.token)
        .json(&serde_json::json!({"value": [
            {"id": "user001@contoso.com", "employeeLeaveDateTime": licensd_api_types::time::format_date_time(now - day)},
            {"id": "user160@contoso.com", "employeeLeaveDateTime": licensd_api_types::time::format_date_time(now - day)},
            {"id": "user002@contoso.com", "signInActivity": {"lastSignInDateTime": licensd_api_types::time::format_date_time(now - 100 * day)}},
        ]}))
        .send()
        .await
        .expect("activity");
    assert_eq!(response.status().as_u16(), 200);

    // The advisor and the spend page lead here; nothing yet.
    server
        .get("/advisor")
        .await
        .expect(200)
        .contains("<a href=\"/spend/reclamation\">Reclamation policies</a>");
    server
        .get("/spend")
        .await
        .expect(200)
        .contains("<a href=\"/spend/reclamation\">Reclaim idle seats</a>");
    server
        .get("/spend/reclamation")
        .await
        .expect(200)
        .contains("No reclamation policy yet.")
        .contains("No seat is waiting to be reclaimed.")
        .contains("No seat has been reclaimed.");

    // Bad policies are refused with what was wrong, nothing stored.
    server
        .post(
            "/spend/reclamation/policies",
            &[("display_name", "x"), ("reason", "bored")],
        )
        .await
        .expect(400)
        .contains("'bored' is not a reason")
        .lacks("<td>bored</td>");
    server
        .post(
            "/spend/reclamation/policies",
            &[
                ("display_name", "x"),
                ("reason", "inactive"),
                ("inactive_days", "0"),
            ],
        )
        .await
        .expect(400)
        .contains("is not a valid number of days without sign-in");
    server
        .post(
            "/spend/reclamation/policies",
            &[
                ("display_name", "x"),
                ("reason", "left"),
                ("sku_id", &Uuid::new_v4().to_string()),
            ],
        )
        .await
        .expect(400)
        .contains("There is no product");
    server
        .get("/spend/reclamation")
        .await
        .expect(200)
        .contains("No reclamation policy yet.");

    // A leavers' policy on E1 acting at once, and an inactivity policy with 14 days' notice.
    let location = server
        .post_change(
            "/spend/reclamation/policies",
            &[
                ("display_name", "Leavers E1"),
                ("reason", "left"),
                ("sku_id", &OFFICE_365_E1.to_string()),
                ("notice_days", "0"),
            ],
        )
        .await;
    assert_eq!(location, "/spend/reclamation?done=reclamation-policy-added");
    server
        .post_change(
            "/spend/reclamation/policies",
            &[
                ("display_name", "Idle <30>"),
                ("reason", "inactive"),
                ("inactive_days", "30"),
                ("notice_days", "14"),
            ],
        )
        .await;
    let page = server.get(&location).await.expect(200);
    page.contains("The reclamation policy was added.")
        .contains("Policies (2)")
        .contains("Leavers E1")
        .contains("Idle &lt;30&gt;")
        .contains("no sign-in for 30 days")
        .contains("left the company");
    let policies = api
        .get(format!("{}/licensd/v1/reclamationPolicies", server.base))
        .bearer_auth(&server.token)
        .send()
        .await
        .expect("policies")
        .json::<serde_json::Value>()
        .await
        .expect("json");
    let policy_id = |name: &str| -> String {
        policies["value"]
            .as_array()
            .expect("policies")
            .iter()
            .find(|policy| policy["displayName"] == name)
            .expect("the policy")["id"]
            .as_str()
            .expect("an id")
            .to_string()
    };
    let (leavers, idle) = (policy_id("Leavers E1"), policy_id("Idle <30>"));
    // Each policy was audited.
    server
        .get("/activity")
        .await
        .expect(200)
        .contains("Add reclamation policy");

    // The dry run shows what would happen and changes nothing.
    let dry = server
        .get(&format!("/spend/reclamation/policies/{leavers}/dry-run"))
        .await
        .expect(200);
    dry.contains("Nothing was changed.")
        .contains(&format!("<a href=\"/users/{user001}\">user001@contoso.com</a>"))
        .contains("<td data-field=\"outcome\">reclaimed now</td>")
        .contains("remove the direct license")
        .contains(&format!("<a href=\"/users/{user160}\">user160@contoso.com</a>"))
        .contains(&format!(
            "remove from group <a href=\"/groups/{}\">Frontline - Office 365 E1</a>",
            directory.frontline_e1
        ))
        .contains("Running now would reclaim 2 seat(s)")
        .contains(&format!("action=\"/spend/reclamation/policies/{leavers}/run\""))
        .contains("data-confirm=\"Run Leavers E1 now: reclaim 2 seat(s) and give the notices?\"")
        .lacks("user002@contoso.com");
    server
        .get("/spend/reclamation")
        .await
        .expect(200)
        .contains("No seat has been reclaimed.");
    assert!(member_of_frontline(&server, user160).await);

    // Run now: user001's direct E1 and user160's Frontline membership go, each listed with a
    // Revert button.
    let location = server
        .post_change(&format!("/spend/reclamation/policies/{leavers}/run"), &[])
        .await;
    assert_eq!(location, "/spend/reclamation?done=reclamation-run");
    server.settle().await;
    let page = server.get(&location).await.expect(200);
    page.contains("The policy ran")
        .contains(&format!("<th scope=\"row\"><a href=\"/users/{user001}\">user001@contoso.com</a></th><td>Office 365 E1</td><td>Leavers E1</td>"))
        .contains("the direct license")
        .contains("membership of Frontline - Office 365 E1")
        .contains("data-confirm=\"Restore what was reclaimed from user160@contoso.com?\"");
    let revert_id = |body: &str, user: &str| -> String {
        let row = body
            .split("<tr>")
            .find(|row| row.contains(&format!(">{user}</a>")) && row.contains("name=\"audit_id\""))
            .expect("a Revert form for the user");
        row.split("name=\"audit_id\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("an audit id")
            .to_string()
    };
    let audit_id = revert_id(&page.body, "user160@contoso.com");
    let user001_audit_id = revert_id(&page.body, "user001@contoso.com");
    assert!(!member_of_frontline(&server, user160).await);
    server
        .get(&format!("/users/{user001}"))
        .await
        .expect(200)
        .contains("No product is assigned directly.");

    // The inactivity policy's run gives user002 a notice, acted on in 14 days.
    server
        .post_change(&format!("/spend/reclamation/policies/{idle}/run"), &[])
        .await;
    let action_date = &licensd_api_types::time::format_date_time(now + 14 * day)[..10];
    let page = server.get("/spend/reclamation").await.expect(200);
    page.contains(&format!("<a href=\"/users/{user002}\">user002@contoso.com</a>"))
        .contains("<td>pending</td>")
        .contains(&format!("<td data-field=\"action-date\">{action_date}"));
    assert!(!page.body.contains("Pending notices (0)"), "{}", page.body);

    // Revert restores the membership, once.
    let location = server
        .post_change("/spend/reclamation/reverts", &[("audit_id", &audit_id)])
        .await;
    assert_eq!(location, "/spend/reclamation?done=reclamation-reverted");
    server.settle().await;
    server
        .get(&location)
        .await
        .expect(200)
        .contains("The reclamation was reverted")
        .contains("<td data-field=\"revert\">reverted</td>");
    assert!(member_of_frontline(&server, user160).await);
    // user001's E1 conflicts with the E3 from Sales: the revert says what it could not restore.
    server
        .post("/spend/reclamation/reverts", &[("audit_id", &user001_audit_id)])
        .await
        .expect(200)
        .contains("Reverted in part")
        .contains("Not everything that was reclaimed could be restored");
    server
        .post("/spend/reclamation/reverts", &[("audit_id", &audit_id)])
        .await
        .expect(400)
        .contains("already reverted");
    server
        .post("/spend/reclamation/reverts", &[("audit_id", "nope")])
        .await
        .expect(400)
        .contains("'nope' is not a valid audit record id.");

    // Removing a policy drops its notices.
    let location = server
        .post_change(&format!("/spend/reclamation/policies/{idle}/delete"), &[])
        .await;
    assert_eq!(location, "/spend/reclamation?done=reclamation-policy-removed");
    server
        .get(&location)
        .await
        .expect(200)
        .contains("Policies (1)")
        .contains("No seat is waiting to be reclaimed.");
    server
        .get(&format!("/spend/reclamation/policies/{idle}/dry-run"))
        .await
        .expect(404);
    server.stop().await;
}

#[tokio::test]
async fn a_policy_is_disabled_and_enabled_and_users_exempted_from_the_reclamation_page() {
    let (server, _, directory) = ConsoleServer::demo().await;
    let (user001, user160) = (directory.users[0], directory.users[159]);
    let day = 24 * 60 * 60 * 1000_i64;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock")
        .as_millis() as i64;
    let api = reqwest::Client::new();
    let response = api
        .post(format!("{}/licensd/v1/activity", server.base))
        .bearer_auth(&server.token)
        .json(&serde_json::json!({"value": [
            {"id": "user001@contoso.com", "employeeLeaveDateTime": licensd_api_types::time::format_date_time(now - day)},
            {"id": "user160@contoso.com", "employeeLeaveDateTime": licensd_api_types::time::format_date_time(now - day)},
        ]}))
        .send()
        .await
        .expect("activity");
    assert_eq!(response.status().as_u16(), 200);
    server
        .post_change(
            "/spend/reclamation/policies",
            &[
                ("display_name", "Leavers E1"),
                ("reason", "left"),
                ("sku_id", &OFFICE_365_E1.to_string()),
                ("notice_days", "14"),
            ],
        )
        .await;
    let policies = api
        .get(format!("{}/licensd/v1/reclamationPolicies", server.base))
        .bearer_auth(&server.token)
        .send()
        .await
        .expect("policies")
        .json::<serde_json::Value>()
        .await
        .expect("json");
    let policy = policies["value"][0]["id"].as_str().expect("an id").to_string();
    server
        .post_change(&format!("/spend/reclamation/policies/{policy}/run"), &[])
        .await;
    let page = server.get("/spend/reclamation").await.expect(200);
    page.contains(&format!("<tr data-notice=\"{user001}\">"))
        .contains(&format!("<tr data-notice=\"{user160}\">"))
        .contains(&format!("action=\"/spend/reclamation/policies/{policy}/exemptions\""))
        .contains("data-confirm=\"Exempt user001@contoso.com from Leavers E1? The policy will never act on this user.\"")
        .contains("<button type=\"submit\" data-action=\"toggle\">Disable</button>");

    // Exempt from the notice: the notice goes, the user is listed with an Undo button.
    let location = server
        .post_change(
            &format!("/spend/reclamation/policies/{policy}/exemptions"),
            &[("user", &user001.to_string())],
        )
        .await;
    assert_eq!(location, "/spend/reclamation?done=reclamation-user-exempted");
    let page = server.get(&location).await.expect(200);
    page.contains("The user is exempt from the policy")
        .lacks(&format!("<tr data-notice=\"{user001}\">"))
        .contains(&format!("<tr data-notice=\"{user160}\">"))
        .contains(&format!(
            "<li data-exempt=\"{user001}\"><a href=\"/users/{user001}\">user001@contoso.com</a>"
        ))
        .contains(&format!(
            "action=\"/spend/reclamation/policies/{policy}/exemptions/{user001}/delete\""
        ));
    // By user principal name too; an unknown user is refused, nothing changed.
    server
        .post_change(
            &format!("/spend/reclamation/policies/{policy}/exemptions"),
            &[("user", "user160@contoso.com")],
        )
        .await;
    server
        .post(
            &format!("/spend/reclamation/policies/{policy}/exemptions"),
            &[("user", "nobody@contoso.com")],
        )
        .await
        .expect(400)
        .contains("There is no user 'nobody@contoso.com' in this tenant.");
    let page = server.get("/spend/reclamation").await.expect(200);
    page.contains("Pending notices (0)")
        .contains(&format!("<li data-exempt=\"{user160}\">"));

    // Undo: the policy applies again; undoing twice finds nothing.
    let location = server
        .post_change(
            &format!("/spend/reclamation/policies/{policy}/exemptions/{user001}/delete"),
            &[],
        )
        .await;
    assert_eq!(location, "/spend/reclamation?done=reclamation-exemption-removed");
    server
        .get(&location)
        .await
        .expect(200)
        .contains("The exemption was removed")
        .lacks(&format!("<li data-exempt=\"{user001}\">"));
    server
        .post(
            &format!("/spend/reclamation/policies/{policy}/exemptions/{user001}/delete"),
            &[],
        )
        .await
        .expect(404);

    // Disable, then enable.
    let location = server
        .post_change(
            &format!("/spend/reclamation/policies/{policy}/enabled"),
            &[("enabled", "false")],
        )
        .await;
    assert_eq!(location, "/spend/reclamation?done=reclamation-policy-disabled");
    server
        .get(&location)
        .await
        .expect(200)
        .contains("The reclamation policy was disabled")
        .contains("<span class=\"muted\" data-field=\"disabled\">(disabled)</span>")
        .contains("<input type=\"hidden\" name=\"enabled\" value=\"true\">")
        .contains("data-action=\"toggle\">Enable</button>");
    let enabled = |body: serde_json::Value| body["value"][0]["enabled"].clone();
    let read = || async {
        api.get(format!("{}/licensd/v1/reclamationPolicies", server.base))
            .bearer_auth(&server.token)
            .send()
            .await
            .expect("policies")
            .json::<serde_json::Value>()
            .await
            .expect("json")
    };
    assert_eq!(enabled(read().await), serde_json::json!(false));
    server
        .post(
            &format!("/spend/reclamation/policies/{policy}/enabled"),
            &[("enabled", "maybe")],
        )
        .await
        .expect(400)
        .contains("'maybe' is not a choice");
    server
        .post_change(
            &format!("/spend/reclamation/policies/{policy}/enabled"),
            &[("enabled", "true")],
        )
        .await;
    assert_eq!(enabled(read().await), serde_json::json!(true));
    server
        .get("/activity")
        .await
        .expect(200)
        .contains("Update reclamation policy");
    server.stop().await;
}

/// Whether a user is a member of "Frontline - Office 365 E1", as Graph says.
async fn member_of_frontline(server: &ConsoleServer, user: Uuid) -> bool {
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/v1.0/users/{user}/memberOf", server.base))
        .bearer_auth(&server.token)
        .send()
        .await
        .expect("memberOf")
        .json()
        .await
        .expect("json");
    body["value"]
        .as_array()
        .expect("memberOf")
        .iter()
        .any(|group| group["displayName"] == "Frontline - Office 365 E1")
}
