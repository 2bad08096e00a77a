//! Security over real HTTP: no credential → 401 everywhere but the health checks; every
//! documented endpoint × every role (allowed → success and an audit record for a change;
//! denied → 403 and nothing changed); tenant isolation (another tenant's ids → 404); revoked
//! and expired tokens refused at once, on another instance too; per-token rate limits; the
//! audit log's Graph shape and filters; security headers.

use std::collections::BTreeMap;
use std::time::Duration;

use licensd_runtime::access::Role;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{client_with_token, on_both_backends, TestServer, E1, E3, EXCHANGE_PLAN_2};

on_both_backends!(
    requests_without_a_valid_token_are_refused_everywhere_but_health_checks,
    every_endpoint_obeys_every_role_and_every_change_is_audited,
    another_tenants_objects_do_not_exist,
    revoked_and_expired_tokens_are_refused_at_once,
    the_audit_log_has_graphs_shape_filters_and_pages,
);

/// Microsoft 365 E5 (`SPE_E5`), in the bundled catalog, not imported by the fixtures.
const M365_E5: &str = "06ebc4ee-1bb5-47dd-8120-11324bc54e06";

/// Every documented operation: `(method, path)` from the OpenAPI document.
async fn documented_operations(server: &TestServer) -> Vec<(String, String)> {
    let document = server.get("/openapi.json").await.expect(200).body;
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                operations.push((method.to_string(), path.clone()));
            }
        }
    }
    operations.sort();
    operations
}

/// What a role may do, as docs/security.md's permission matrix says (written out here
/// independently of the server's code).
fn allowed(role: Role, method: &str, path: &str) -> bool {
    use Role::*;
    let everyone_but_provisioning = role != ProvisioningAgent;
    let readers_of_licensing = matches!(
        role,
        GlobalAdministrator | LicenseAdministrator | UserAdministrator | GlobalReader
    );
    let directory_readers = readers_of_licensing || role == ProvisioningAgent;
    let directory_writers = matches!(role, GlobalAdministrator | UserAdministrator | ProvisioningAgent);
    let license_writers = matches!(
        role,
        GlobalAdministrator | LicenseAdministrator | UserAdministrator
    );
    let global = role == GlobalAdministrator;
    match (method, path) {
        (_, p) if p.starts_with("/licensd/v1/tokens") => global,
        // Change notifications: watching users and groups (and seeing what was delivered)
        // needs reading them, as in Graph.
        (_, p) if p.starts_with("/v1.0/subscriptions") => directory_readers,
        ("get", "/licensd/v1/subscriptions")
        | ("get", "/licensd/v1/subscriptions/{id}/deliveries")
        | ("get", "/licensd/v1/deliveries")
        | ("get", "/licensd/v1/users/{id}/activity") => directory_readers,
        // Users' activity as the identity provider reports it is directory data.
        ("patch", "/licensd/v1/users/{id}/activity") | ("post", "/licensd/v1/activity") => directory_writers,
        // Moving direct licenses to a group removes licenses.
        ("post", "/licensd/v1/migrations/directToGroup") => license_writers,
        ("get", "/v1.0/$metadata") => true,
        ("post", "/v1.0/directoryObjects/getByIds") => directory_readers,
        // The batch itself; each of its requests is checked as if sent alone.
        ("post", "/v1.0/$batch") => true,
        ("get", "/licensd/v1/overview") | ("get", "/v1.0/auditLogs/directoryAudits") => {
            everyone_but_provisioning
        }
        ("get", p)
            if (p.starts_with("/v1.0/users") || p.starts_with("/v1.0/groups"))
                && !p.ends_with("/licenseDetails")
                && !p.ends_with("/membersWithLicenseErrors") =>
        {
            directory_readers
        }
        ("get", _) | ("post", "/licensd/v1/whatif") => readers_of_licensing,
        (_, p) if p.ends_with("/assignLicense") || p.ends_with("/reprocessLicenseAssignment") => {
            license_writers
        }
        // The changes applied in this test assign a license.
        ("post", "/licensd/v1/changes") => license_writers,
        // Reclamation removes licenses (a dry run asks the same).
        (_, p) if p.starts_with("/licensd/v1/reclamation") => license_writers,
        (_, p) if p.starts_with("/v1.0/users") || p.starts_with("/v1.0/groups") => directory_writers,
        // Subscriptions, service plan rules and tenant settings.
        _ => global,
    }
}

/// Objects one request acts on, created fresh for it.
struct Fixture {
    user: Uuid,
    member: Uuid,
    group: Uuid,
    token: Uuid,
    alert_rule: Uuid,
    /// A reclamation policy (made only for the operations on one).
    reclamation_policy: Uuid,
    /// The audit record of a reclaimed seat (`fixture.user`'s direct E1, made only for reverts).
    reclamation: Uuid,
    /// An alert rule and a change-notification subscription to `user` (each made only for
    /// the operations on one).
    subscription: Uuid,
}

/// The loopback endpoint that answers the subscriptions' validation handshakes.
fn notification_receiver() -> &'static crate::receiver::Receiver {
    static RECEIVER: std::sync::OnceLock<crate::receiver::Receiver> = std::sync::OnceLock::new();
    RECEIVER.get_or_init(crate::receiver::Receiver::start)
}

/// An `expirationDateTime` `minutes` from now.
fn in_minutes(minutes: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0);
    licensd_api_types::time::format_date_time(now + minutes * 60_000)
}

static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// Fresh objects for a request on the documented `path` (what the path acts on exists: a
/// subscription, a price to remove, direct licenses a group covers).
async fn fixture(server: &TestServer, path: &str) -> Fixture {
    let user = server.create_user(&unique("target"), Some("US")).await;
    let member = server.create_user(&unique("member"), Some("US")).await;
    let group = server.create_group(&unique("Group ")).await;
    server.add_member(group, member).await;
    let token = server
        .post(
            "/licensd/v1/tokens",
            json!({"displayName": unique("fixture token "), "role": "GlobalReader"}),
        )
        .await
        .expect(201)
        .id();
    // A tenant has at most 100 alert rules: one is made only for the operations on one.
    let alert_rule = if path.starts_with("/licensd/v1/alertRules/") {
        server
            .post(
                "/licensd/v1/alertRules",
                json!({"displayName": unique("fixture rule "), "condition": "licenseErrorEntered",
                    "webhookUrl": "https://hooks.example.com/fixture"}),
            )
            .await
            .expect(201)
            .id()
    } else {
        Uuid::nil()
    };
    // Disabled, so that the background runs of enabled policies leave the test's tenant alone;
    // `member` exempt (what undoing an exemption acts on).
    let reclamation_policy = if path.starts_with("/licensd/v1/reclamationPolicies/") {
        server
            .post(
                "/licensd/v1/reclamationPolicies",
                json!({"displayName": unique("fixture policy "), "reason": "left", "skuId": E1,
                    "noticeDays": 0, "enabled": false, "excludedUserIds": [member]}),
            )
            .await
            .expect(201)
            .id()
    } else {
        Uuid::nil()
    };
    // A reclaimed seat: the user's direct E1, reclaimed because the user left.
    let reclamation = if path.starts_with("/licensd/v1/reclamations/") {
        server
            .post(
                &format!("/v1.0/users/{user}/assignLicense"),
                json!({"addLicenses": [{"skuId": E1, "disabledPlans": []}], "removeLicenses": []}),
            )
            .await
            .expect(200);
        server
            .post(
                "/licensd/v1/activity",
                json!({"value": [{"id": user, "employeeLeaveDateTime": in_minutes(-24 * 60)}]}),
            )
            .await
            .expect(200);
        server.settle().await;
        let policy = server
            .post(
                "/licensd/v1/reclamationPolicies",
                json!({"displayName": unique("fixture policy "), "reason": "left", "skuId": E1,
                    "noticeDays": 0, "enabled": false}),
            )
            .await
            .expect(201)
            .id();
        let run = server
            .post(
                &format!("/licensd/v1/reclamationPolicies/{policy}/run"),
                json!({"dryRun": false}),
            )
            .await
            .expect(200)
            .body;
        server.settle().await;
        let seat = run["seats"]
            .as_array()
            .expect("seats")
            .iter()
            .find(|seat| seat["userId"] == user.to_string())
            .unwrap_or_else(|| panic!("{user} reclaimed in {run:#}"))
            .clone();
        seat["auditId"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("an audit id in {seat:#}"))
    } else {
        Uuid::nil()
    };
    let subscription =
        if path.starts_with("/v1.0/subscriptions/") || path.starts_with("/licensd/v1/subscriptions/") {
            server
                .post(
                    "/v1.0/subscriptions",
                    json!({"changeType": "updated", "resource": format!("users/{user}"),
                    "notificationUrl": notification_receiver().url("/notify"),
                    "expirationDateTime": in_minutes(60)}),
                )
                .await
                .expect(201)
                .id()
        } else {
            Uuid::nil()
        };
    if path == "/licensd/v1/skus/{sku_id}/price" {
        server
            .put(
                &format!("/licensd/v1/skus/{E3}/price"),
                json!({"pricePerSeat": "10.00", "currency": "EUR"}),
            )
            .await
            .expect(200);
    }
    if path == "/licensd/v1/migrations/directToGroup" {
        // The group assigns E3, which `member` also has directly: a migration removes it.
        server.assign_to_group(group, &[E3]).await.expect(202);
        server
            .post(
                &format!("/v1.0/users/{member}/assignLicense"),
                json!({"addLicenses": [{"skuId": E3, "disabledPlans": []}], "removeLicenses": []}),
            )
            .await
            .expect(200);
        server.settle().await;
    }
    Fixture {
        user,
        member,
        group,
        token,
        alert_rule,
        reclamation_policy,
        reclamation,
        subscription,
    }
}

/// The concrete request of a documented operation on a fixture.
fn request(method: &str, path: &str, fixture: &Fixture) -> (String, Option<Value>) {
    let concrete = path
        .replace(
            "/v1.0/users/{id}/memberOf/{group_id}",
            &format!("/v1.0/users/{}/memberOf/{}", fixture.member, fixture.group),
        )
        .replace("/v1.0/users/{id}", &format!("/v1.0/users/{}", fixture.user))
        .replace(
            "/licensd/v1/users/{id}",
            &format!("/licensd/v1/users/{}", fixture.user),
        )
        .replace("/v1.0/groups/{id}", &format!("/v1.0/groups/{}", fixture.group))
        .replace(
            "/licensd/v1/groups/{id}",
            &format!("/licensd/v1/groups/{}", fixture.group),
        )
        .replace("{member_id}", &fixture.member.to_string())
        .replace(
            "/licensd/v1/tokens/{id}",
            &format!("/licensd/v1/tokens/{}", fixture.token),
        )
        .replace(
            "/licensd/v1/alertRules/{id}",
            &format!("/licensd/v1/alertRules/{}", fixture.alert_rule),
        )
        .replace(
            "/licensd/v1/reclamationPolicies/{id}",
            &format!("/licensd/v1/reclamationPolicies/{}", fixture.reclamation_policy),
        )
        // Exempting the fixture's user; undoing the exemption of its member (exempt from the start).
        .replace(
            "/exemptions/{user_id}",
            &format!(
                "/exemptions/{}",
                if method == "delete" {
                    fixture.member
                } else {
                    fixture.user
                }
            ),
        )
        .replace(
            "/licensd/v1/reclamations/{audit_id}",
            &format!("/licensd/v1/reclamations/{}", fixture.reclamation),
        )
        .replace("/v1.0/subscribedSkus/{id}", &format!("/v1.0/subscribedSkus/{E3}"))
        .replace(
            "/v1.0/directory/subscriptions/{id}",
            &format!("/v1.0/directory/subscriptions/{E3}"),
        )
        .replace(
            "/v1.0/subscriptions/{id}",
            &format!("/v1.0/subscriptions/{}", fixture.subscription),
        )
        .replace(
            "/licensd/v1/subscriptions/{id}",
            &format!("/licensd/v1/subscriptions/{}", fixture.subscription),
        )
        .replace("{sku_id}", E3)
        .replace("{service_plan_id}", EXCHANGE_PLAN_2);
    let license = json!({"addLicenses": [{"skuId": E1, "disabledPlans": []}], "removeLicenses": []});
    let name = unique("created");
    let body = match (method, path) {
        ("post", "/v1.0/users") => Some(json!({
            "displayName": name, "userPrincipalName": format!("{name}@contoso.com"), "mailNickname": name,
            "usageLocation": "US", "accountEnabled": true,
        })),
        ("post", "/v1.0/groups") => Some(json!({
            "displayName": name, "mailEnabled": false, "mailNickname": name, "securityEnabled": true,
        })),
        ("patch", "/v1.0/users/{id}") | ("patch", "/v1.0/groups/{id}") => Some(json!({"displayName": name})),
        (_, p) if p.ends_with("/assignLicense") => Some(license),
        ("post", "/v1.0/groups/{id}/members/$ref") => Some(json!({
            "@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{}", fixture.user)
        })),
        ("post", "/v1.0/directoryObjects/getByIds") => Some(json!({
            "ids": [fixture.user, fixture.group], "types": ["user", "group"]
        })),
        ("post", "/licensd/v1/alertRules") => Some(json!({
            "displayName": name, "condition": "seats", "threshold": "noneAvailable",
            "webhookUrl": "https://hooks.example.com/created",
        })),
        ("post", "/licensd/v1/catalog/import") => {
            Some(json!({"products": [{"skuId": M365_E5, "prepaidUnits": 5}]}))
        }
        ("post", "/licensd/v1/skus") => Some(json!({
            "skuPartNumber": name.to_uppercase(), "prepaidUnits": 5,
            "servicePlans": [{"servicePlanName": format!("{}_PLAN", name.to_uppercase())}],
        })),
        ("patch", "/licensd/v1/skus/{sku_id}") => Some(json!({"prepaidUnits": 1000})),
        ("post", "/licensd/v1/skus/{sku_id}/servicePlans") => {
            Some(json!({"servicePlanName": format!("{}_ADDED", name.to_uppercase())}))
        }
        ("put", "/licensd/v1/servicePlans/{service_plan_id}/rules") => Some(json!({
            "mutuallyExclusiveWith": [], "requiresAnyOf": [], "unavailableIn": [], "needsUniqueProxyAddress": true,
        })),
        ("patch", "/licensd/v1/settings") => Some(json!({"selfHealing": true})),
        ("patch", "/licensd/v1/skus/{sku_id}/subscription") => Some(json!({"isTrial": true})),
        ("post", "/v1.0/$batch") => {
            Some(json!({"requests": [{"id": "1", "method": "GET", "url": "/subscribedSkus"}]}))
        }
        ("post", "/licensd/v1/tokens") => Some(json!({"displayName": name, "role": "ReportsReader"})),
        ("post", "/licensd/v1/whatif") => Some(json!({
            "changes": [{"type": "addGroupMember", "groupId": fixture.group, "userId": fixture.user}]
        })),
        ("put", "/licensd/v1/skus/{sku_id}/price") => {
            Some(json!({"pricePerSeat": "12.50", "currency": "EUR"}))
        }
        ("patch", "/licensd/v1/users/{id}/activity") => {
            Some(json!({"signInActivity": {"lastSignInDateTime": in_minutes(-60)}}))
        }
        ("post", "/licensd/v1/activity") => Some(json!({"value": [
            {"id": fixture.user, "signInActivity": {"lastSignInDateTime": in_minutes(-60)}}
        ]})),
        ("post", "/licensd/v1/migrations/directToGroup") => {
            Some(json!({"groupId": fixture.group, "skuId": E3, "dryRun": false}))
        }
        ("post", "/v1.0/subscriptions") => Some(json!({
            "changeType": "updated", "resource": format!("users/{}", fixture.user),
            "notificationUrl": notification_receiver().url("/notify"),
            "expirationDateTime": in_minutes(60),
        })),
        ("patch", "/v1.0/subscriptions/{id}") => Some(json!({"expirationDateTime": in_minutes(120)})),
        ("post", "/licensd/v1/reclamationPolicies") => Some(json!({
            "displayName": name, "reason": "inactive", "inactiveDays": 90, "enabled": false,
        })),
        // A dry run: a real run of a policy with nothing to act on changes nothing either.
        ("post", "/licensd/v1/reclamationPolicies/{id}/run") => Some(json!({"dryRun": true})),
        ("patch", "/licensd/v1/reclamationPolicies/{id}") => Some(json!({"noticeDays": 3})),
        ("post", "/licensd/v1/changes") => Some(json!({
            "changes": [{"type": "assignUserLicenses", "userId": fixture.user,
                         "addLicenses": [{"skuId": E1, "disabledPlans": []}]}]
        })),
        _ => None,
    };
    (concrete, body)
}

/// What an administrator sees of the tenant (users, groups, products, tokens, audit log size),
/// to check that a refused request changed nothing.
async fn snapshot(server: &TestServer) -> BTreeMap<&'static str, Value> {
    let mut state = BTreeMap::new();
    for (name, path) in [
        (
            "users",
            "/v1.0/users?$select=id,displayName,assignedLicenses,usageLocation&$top=999",
        ),
        ("groups", "/v1.0/groups?$top=999"),
        ("skus", "/licensd/v1/skus"),
        ("settings", "/licensd/v1/settings"),
        ("tokens", "/licensd/v1/tokens"),
        ("audit", "/v1.0/auditLogs/directoryAudits?$top=1"),
    ] {
        let mut body = server.get(path).await.expect(200).body;
        if let Some(object) = body.as_object_mut() {
            object.remove("@odata.context");
        }
        state.insert(name, body);
    }
    state
}

/// The stored version of the default tenant, read from the database itself: every accepted
/// write bumps it.
async fn stored_version(server: &TestServer) -> u64 {
    let url = server.database_url.clone();
    tokio::task::spawn_blocking(move || {
        let mut store = licensd_store::Store::open(&url).expect("store");
        let tenant_id = store.tenant_ids().expect("tenants")[0];
        store.tenant_version(tenant_id).expect("version")
    })
    .await
    .expect("task")
}

/// The id of the newest audit record (a change adds a newer one).
async fn newest_audit_record(server: &TestServer) -> Value {
    server
        .get("/v1.0/auditLogs/directoryAudits?$top=1")
        .await
        .expect(200)
        .body["value"][0]["id"]
        .clone()
}

async fn requests_without_a_valid_token_are_refused_everywhere_but_health_checks(server: &TestServer) {
    server.import_seed_products(10, 10, 10, 10).await;
    let fixture = fixture(server, "").await;
    server.settle().await;
    let before = snapshot(server).await;
    let version = stored_version(server).await;
    let anonymous = reqwest::Client::new();
    let wrong = client_with_token(&licensd_runtime::access::generate_token_text().expect("token"));
    let malformed = client_with_token("not-a-licensd-token");
    for (method, path) in documented_operations(server).await {
        if path == "/v1.0/$metadata" {
            // Public, as in Graph: checked with the other open paths below.
            continue;
        }
        let (concrete, body) = request(&method, &path, &fixture);
        for (name, client) in [
            ("no token", &anonymous),
            ("unknown token", &wrong),
            ("malformed token", &malformed),
        ] {
            let mut builder = client.request(
                method.to_uppercase().parse().expect("method"),
                server.url(&concrete),
            );
            if let Some(body) = &body {
                builder = builder.json(body);
            }
            let reply = server.send(builder).await;
            assert_eq!(reply.status, 401, "{name}: {method} {path}: {}", reply.body);
            assert_eq!(
                reply.body["error"]["code"], "InvalidAuthenticationToken",
                "{method} {path}"
            );
            assert_eq!(
                reply.header("www-authenticate").as_deref(),
                Some("Bearer realm=\"licensd\"")
            );
        }
    }
    // The console's pages send a browser to sign in; SCIM answers 401 too.
    let page = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(server.url("/groups"))
        .send()
        .await
        .expect("answer");
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/login?next=%2Fgroups");
    let scim = server.send(anonymous.get(server.url("/scim/v2/Users"))).await;
    assert_eq!(scim.status, 401, "{}", scim.body);
    assert_eq!(
        scim.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    for open in [
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/v1.0/$metadata",
        "/login",
    ] {
        let reply = server.send(anonymous.get(server.url(open))).await;
        assert_eq!(reply.status, 200, "{open} is open");
    }
    assert_eq!(snapshot(server).await, before, "refused requests changed nothing");
    assert_eq!(
        stored_version(server).await,
        version,
        "nothing was written to the store"
    );
}

async fn every_endpoint_obeys_every_role_and_every_change_is_audited(server: &TestServer) {
    server.import_seed_products(1000, 1000, 1000, 1000).await;
    let mut clients = Vec::new();
    for role in Role::ALL {
        let created = server
            .post(
                "/licensd/v1/tokens",
                json!({"displayName": format!("{} token", role.display_name()), "role": role.as_str()}),
            )
            .await
            .expect(201);
        let secret = created.body["secret"].as_str().expect("secret").to_string();
        assert_eq!(created.body["role"], role.as_str());
        clients.push((role, client_with_token(&secret)));
    }
    let operations = documented_operations(server).await;
    assert!(operations.len() >= 45, "{operations:?}");
    for (method, path) in &operations {
        // A refused request leaves its fixture as it was, so the next role reuses it; an
        // accepted change may have consumed it (a deleted user, a used token), so a new one is
        // made. This keeps the tenant, and each snapshot, small.
        let mut fixture_in_use: Option<Fixture> = None;
        for (role, client) in &clients {
            let fixture = match fixture_in_use.take() {
                Some(fixture) => fixture,
                None => fixture(server, path).await,
            };
            let (concrete, body) = request(method, path, &fixture);
            // Background processing of earlier changes must not be mistaken for this request's.
            server.settle().await;
            let refused_expected = !allowed(*role, method, path);
            let before = if refused_expected {
                Some(snapshot(server).await)
            } else {
                None
            };
            let version = stored_version(server).await;
            let audited_before = newest_audit_record(server).await;
            let mut builder = client
                .request(
                    method.to_uppercase().parse().expect("method"),
                    server.url(&concrete),
                )
                .header("ConsistencyLevel", "eventual");
            if let Some(body) = &body {
                builder = builder.json(body);
            }
            let reply = server.send(builder).await;
            if allowed(*role, method, path) {
                assert!(
                    (200..300).contains(&reply.status),
                    "{role} may {method} {path}: {} {}",
                    reply.status,
                    reply.body
                );
                let changes = method != "get"
                    && path != "/licensd/v1/whatif"
                    && path != "/v1.0/directoryObjects/getByIds"
                    && path != "/v1.0/$batch"
                    && path != "/licensd/v1/reclamationPolicies/{id}/run";
                if changes {
                    assert!(
                        newest_audit_record(server).await != audited_before,
                        "{method} {path} by {role} left no audit record"
                    );
                } else {
                    fixture_in_use = Some(fixture);
                }
            } else {
                assert_eq!(
                    reply.status, 403,
                    "{role} may not {method} {path}: {}",
                    reply.body
                );
                assert_eq!(reply.body["error"]["code"], "Authorization_RequestDenied");
                assert_eq!(
                    Some(snapshot(server).await),
                    before,
                    "{role} {method} {path} changed something"
                );
                assert_eq!(
                    stored_version(server).await,
                    version,
                    "{role} {method} {path} wrote to the store"
                );
                fixture_in_use = Some(fixture);
            }
        }
    }
    // Changes record who made them, with which role.
    let log = server
        .get("/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName eq 'Change user license'&$top=999")
        .await
        .expect(200)
        .body;
    let by_license_administrator = log["value"].as_array().expect("value").iter().any(|record| {
        record["initiatedBy"]["app"]["displayName"] == "License Administrator token"
            && record["additionalDetails"][0]["value"] == "LicenseAdministrator"
    });
    assert!(by_license_administrator, "{log:#}");
}

async fn another_tenants_objects_do_not_exist(server: &TestServer) {
    server.import_seed_products(10, 10, 10, 10).await;
    let user = server.create_user("isolated", Some("US")).await;
    let group = server.create_group("Isolated group").await;
    // A second tenant, created in the store as `licensd tenant create` does, with its own
    // Global Administrator token.
    let url = server.database_url.clone();
    let other_token = tokio::task::spawn_blocking(move || {
        let mut store = licensd_store::Store::open(&url).expect("store");
        let settings = licensd_engine::TenantSettings::new(Uuid::new_v4(), "Fabrikam");
        store.create_tenant(&settings).expect("tenant");
        let shared = std::sync::Arc::new(std::sync::Mutex::new(store));
        let (_, token) = licensd_runtime::access::create_token(
            &shared,
            settings.tenant_id,
            "Fabrikam admin",
            Role::GlobalAdministrator,
            None,
            "test",
        )
        .expect("token");
        token
    })
    .await
    .expect("task");
    let other = client_with_token(&other_token);
    let own_token_id = server.get("/licensd/v1/tokens").await.expect(200).body["value"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    server.settle().await;
    let before = snapshot(server).await;
    let version = stored_version(server).await;
    for (method, path, body) in [
        ("GET", format!("/v1.0/users/{user}"), None),
        (
            "PATCH",
            format!("/v1.0/users/{user}"),
            Some(json!({"displayName": "stolen"})),
        ),
        ("DELETE", format!("/v1.0/users/{user}"), None),
        (
            "POST",
            format!("/v1.0/users/{user}/assignLicense"),
            Some(json!({"addLicenses": [], "removeLicenses": []})),
        ),
        (
            "POST",
            format!("/v1.0/users/{user}/reprocessLicenseAssignment"),
            None,
        ),
        ("GET", format!("/v1.0/groups/{group}"), None),
        ("GET", format!("/v1.0/groups/{group}/members"), None),
        (
            "POST",
            format!("/v1.0/groups/{group}/reprocessLicenseAssignment"),
            None,
        ),
        ("GET", format!("/v1.0/subscribedSkus/{E3}"), None),
        (
            "GET",
            format!("/licensd/v1/users/{user}/licenseAssignmentStates"),
            None,
        ),
        ("DELETE", format!("/licensd/v1/tokens/{own_token_id}"), None),
    ] {
        let mut builder = other.request(method.parse().expect("method"), server.url(&path));
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        let reply = server.send(builder).await;
        assert_eq!(reply.status, 404, "{method} {path}: {}", reply.body);
    }
    // Lists show only the other tenant's own (empty) directory and log.
    let users = server
        .send(other.get(server.url("/v1.0/users")))
        .await
        .expect(200)
        .body;
    assert_eq!(users["value"].as_array().map(Vec::len), Some(0));
    let skus = server
        .send(other.get(server.url("/v1.0/subscribedSkus")))
        .await
        .expect(200)
        .body;
    assert_eq!(skus["value"].as_array().map(Vec::len), Some(0));
    let log = server
        .send(other.get(server.url("/v1.0/auditLogs/directoryAudits")))
        .await
        .expect(200)
        .body;
    // Only its own (failed) attempts, none of this tenant's records.
    for record in log["value"].as_array().expect("value") {
        assert_eq!(record["result"], "failure", "{record:#}");
        assert_eq!(record["initiatedBy"]["app"]["displayName"], "Fabrikam admin");
    }
    let tokens = server
        .send(other.get(server.url("/licensd/v1/tokens")))
        .await
        .expect(200)
        .body;
    assert_eq!(tokens["value"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        snapshot(server).await,
        before,
        "the other tenant changed nothing here"
    );
    assert_eq!(
        stored_version(server).await,
        version,
        "nothing was written to this tenant"
    );
}

async fn revoked_and_expired_tokens_are_refused_at_once(server: &TestServer) {
    let created = server
        .post(
            "/licensd/v1/tokens",
            json!({"displayName": "short-lived", "role": "GlobalReader"}),
        )
        .await
        .expect(201);
    let id = created.id();
    let reader = client_with_token(created.body["secret"].as_str().expect("secret"));
    server
        .send(reader.get(server.url("/v1.0/users")))
        .await
        .expect(200);
    // A second instance on the same database honours the token, then its revocation.
    let second = server.start_another().await;
    second
        .send(reader.get(second.url("/v1.0/users")))
        .await
        .expect(200);
    server
        .delete(&format!("/licensd/v1/tokens/{id}"))
        .await
        .expect(204);
    // The instance it went through forgot the token before answering.
    server
        .send(reader.get(server.url("/v1.0/users")))
        .await
        .expect(401);
    // The other instance remembered it (its token cache): on PostgreSQL the revocation's notice
    // makes it forget the token in milliseconds; SQLite has no notices (several instances on one
    // file are not the supported set-up), the watcher's once-a-second re-read does. Polled, so
    // a loaded machine does not fail the test; the bounds stay below the cache's 5 s.
    let bound = if server.database_url.starts_with("postgres") {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(3)
    };
    let revoked = std::time::Instant::now();
    loop {
        let status = second.send(reader.get(second.url("/v1.0/users"))).await.status;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            revoked.elapsed() < bound,
            "the other instance still accepts the revoked token after {:?}",
            revoked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let listed = server.get("/licensd/v1/tokens").await.expect(200).body;
    let entry = listed["value"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|token| token["id"] == id.to_string())
        .expect("the revoked token is listed")
        .clone();
    assert_eq!(entry["status"], "revoked");
    assert!(entry.get("secret").is_none() && !entry.to_string().contains("lsd_"));
    // An expired token (stored directly with a past expiry) is refused too.
    let url = server.database_url.clone();
    let expired = tokio::task::spawn_blocking(move || {
        let token = licensd_runtime::access::IssuedToken::generate().expect("token");
        let mut store = licensd_store::Store::open(&url).expect("store");
        let tenant_id = store.tenant_ids().expect("tenants")[0];
        store
            .create_access_token(&licensd_store::AccessTokenRecord {
                token_id: token.token_id,
                tenant_id,
                display_name: "expired".into(),
                role: "GlobalAdministrator".into(),
                secret_hash: token.secret_hash(),
                created_at: 0,
                created_by: "test".into(),
                expires_at: Some(1_000),
                revoked_at: None,
            })
            .expect("store the token");
        token.reveal()
    })
    .await
    .expect("task");
    let expired = client_with_token(&expired);
    server
        .send(expired.get(server.url("/v1.0/users")))
        .await
        .expect(401);
    second
        .send(expired.get(second.url("/v1.0/users")))
        .await
        .expect(401);
    // Bad token requests are refused with a clear error and change nothing.
    let bad = server
        .post("/licensd/v1/tokens", json!({"displayName": "x", "role": "Owner"}))
        .await;
    assert!(bad
        .expect_error(400, "Request_BadRequest")
        .contains("unknown role 'Owner'"));
    server
        .post(
            "/licensd/v1/tokens",
            json!({"displayName": "x", "role": "GlobalReader", "expiresInDays": 0}),
        )
        .await
        .expect(400);
    server
        .delete(&format!("/licensd/v1/tokens/{}", Uuid::new_v4()))
        .await
        .expect(404);
    second.stop().await;
}

async fn the_audit_log_has_graphs_shape_filters_and_pages(server: &TestServer) {
    server.import_seed_products(10, 10, 10, 10).await;
    let user = server.create_user("audited", Some("US")).await;
    let group = server.create_group("Audited group").await;
    let direct = server.create_user("direct", Some("US")).await;
    server.add_member(group, user).await;
    server.assign_to_group(group, &[E3]).await.expect(202);
    server
        .post(
            &format!("/v1.0/users/{direct}/assignLicense"),
            json!({"addLicenses": [{"skuId": E1, "disabledPlans": []}], "removeLicenses": []}),
        )
        .await
        .expect(200);
    server.settle().await;
    let log = server
        .get("/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName eq 'Set group license'")
        .await
        .expect(200)
        .body;
    let records = log["value"].as_array().expect("value");
    assert_eq!(records.len(), 1, "{log:#}");
    let record = &records[0];
    assert_eq!(record["category"], "GroupManagement");
    assert_eq!(record["result"], "success");
    assert_eq!(record["loggedByService"], "Core Directory");
    let target = &record["targetResources"][0];
    assert_eq!(target["id"], group.to_string());
    assert_eq!(target["type"], "Group");
    let changed = &target["modifiedProperties"][0];
    assert_eq!(changed["displayName"], "AssignedLicense");
    assert_eq!(changed["oldValue"], "[]");
    assert_eq!(changed["newValue"], "[ENTERPRISEPACK]");
    // The user's own changes are found by target.
    let by_target = server
        .get(&format!(
            "/v1.0/auditLogs/directoryAudits?$filter=targetResources/any(t:t/id eq '{direct}')"
        ))
        .await
        .expect(200)
        .body;
    let activities: Vec<&str> = by_target["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|record| record["activityDisplayName"].as_str().unwrap_or_default())
        .collect();
    assert!(activities.contains(&"Change user license"), "{activities:?}");
    assert!(activities.contains(&"Add user"), "{activities:?}");
    assert!(!activities.contains(&"Set group license"), "{activities:?}");
    // Background runs per group: started, then finished with Entra's counts.
    let finished = server
        .get("/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName eq 'Finish applying group based license to users'")
        .await
        .expect(200)
        .body;
    let finished = finished["value"].as_array().expect("value");
    assert!(!finished.is_empty());
    assert_eq!(
        finished[0]["resultReason"],
        "Users successfully assigned licenses: 1, Users for whom license assignment failed: 0."
    );
    let started = server
        .get("/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName eq 'Start applying group based license to users'")
        .await
        .expect(200)
        .body;
    assert!(!started["value"].as_array().expect("value").is_empty());
    // Dates and paging.
    server
        .get("/v1.0/auditLogs/directoryAudits?$filter=activityDateTime ge 2000-01-01T00:00:00Z")
        .await
        .expect(200);
    let none = server
        .get("/v1.0/auditLogs/directoryAudits?$filter=activityDateTime lt 2000-01-01T00:00:00Z")
        .await
        .expect(200)
        .body;
    assert_eq!(none["value"].as_array().map(Vec::len), Some(0));
    let first = server
        .get("/v1.0/auditLogs/directoryAudits?$top=2")
        .await
        .expect(200)
        .body;
    assert_eq!(first["value"].as_array().map(Vec::len), Some(2));
    let next = first["@odata.nextLink"]
        .as_str()
        .expect("a next page")
        .to_string();
    let second = server.get(&next).await.expect(200).body;
    assert_ne!(second["value"][0]["id"], first["value"][0]["id"]);
    for bad in [
        "$filter=activityDisplayName ne 'x'",
        "$filter=activityDateTime ge yesterday",
        "$top=0",
        "$skiptoken=abc",
    ] {
        server
            .get(&format!("/v1.0/auditLogs/directoryAudits?{bad}"))
            .await
            .expect_error(400, "Request_BadRequest");
    }
    // Responses carry security headers.
    let reply = server.get("/v1.0/users").await.expect(200);
    assert_eq!(reply.header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_its_rate_limit_is_answered_429_with_retry_after() {
    let server = TestServer::start_with(crate::support::TestDatabase::sqlite(), |config| {
        config.rate_limit.per_second = 1;
        config.rate_limit.burst = 5;
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let reply = server.get("/v1.0/users").await;
        statuses.push(reply.status);
        if reply.status == 429 {
            let retry_after: u64 = reply
                .header("retry-after")
                .expect("Retry-After")
                .parse()
                .expect("seconds");
            assert!((1..=2).contains(&retry_after));
            assert_eq!(reply.body["error"]["code"], "TooManyRequests");
        }
    }
    assert_eq!(&statuses[..5], &[200; 5], "{statuses:?}");
    assert!(statuses[5..].contains(&429), "{statuses:?}");
    // Health checks are not limited.
    server
        .send(reqwest::Client::new().get(server.url("/healthz")))
        .await
        .expect(200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_with_the_given_certificate() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let certificate = directory.path().join("cert.pem");
    let private_key = directory.path().join("key.pem");
    std::fs::write(&certificate, certified.cert.pem()).expect("write the certificate");
    std::fs::write(&private_key, certified.key_pair.serialize_pem()).expect("write the key");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let token = licensd_runtime::access::generate_token_text().expect("token");
    let mut config = licensd_server::ServerConfig::defaults(directory.path());
    config.listen = listener.local_addr().expect("address");
    config.bootstrap_token = Some(token.clone());
    config.tls = Some(licensd_server::TlsFiles {
        certificate,
        private_key,
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(licensd_server::run(listener, config, async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).expect("pem"))
        .build()
        .expect("client");
    let base = format!("https://localhost:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Ok(response) = client.get(format!("{base}/readyz")).send().await {
            if response.status().is_success() {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the HTTPS server did not become ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let users = client
        .get(format!("{base}/v1.0/users"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answer");
    assert_eq!(users.status(), 200);
    // Plain HTTP on the HTTPS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(plain.is_err() || plain.is_ok_and(|response| !response.status().is_success()));
    let _ = stop.send(());
    server.await.expect("task").expect("the server stopped cleanly");
}
