//! The SCIM protocol itself: SCIM errors (status as a string, `scimType`) with nothing changed,
//! filters (`eq`, `co`, `sw`, `pr`, `and`, `or`, value filters, extension attributes), paging,
//! `attributes`/`excludedAttributes`, ETags (`If-None-Match`, `If-Match`), content types, and
//! directory attributes (externalId, name, enterprise extension) surviving a restart.

use std::time::{Duration, Instant};

use licensd_server::ServerConfig;
use serde_json::{json, Value};

use super::support::{client_with_token, TestDatabase, TestServer};
use super::{expect_scim_error, id_of, list, patch_op, ENTERPRISE, SCIM, USER_SCHEMA};

async fn create(server: &TestServer, user_name: &str, extra: Value) -> uuid::Uuid {
    let mut body = json!({"schemas": [USER_SCHEMA], "userName": user_name});
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    id_of(&server.post(&format!("{SCIM}/Users"), body).await.expect(201))
}

fn user_names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["Resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|user| user["userName"].as_str().expect("userName").to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_scim_errors_and_change_nothing() {
    let server = TestServer::start(TestDatabase::sqlite()).await;
    let alice = create(&server, "alice@contoso.com", json!({"displayName": "Alice"})).await;
    let before = server.user_count().await;
    let conflict = server
        .post(&format!("{SCIM}/Users"), json!({"userName": "ALICE@contoso.com"}))
        .await;
    expect_scim_error(conflict, 409, Some("uniqueness"));
    for (body, scim_type) in [
        (json!({"displayName": "No user name"}), "invalidValue"),
        (
            json!({"userName": "x@contoso.com", "urn:licensd:params:scim:schemas:extension:licensing:2.0:User": {"usageLocation": "Atlantis"}}),
            "invalidValue",
        ),
        (
            json!({"userName": "x@contoso.com", "emails": [{"value": "not an address"}]}),
            "invalidValue",
        ),
        (
            json!({"userName": "x@contoso.com", "active": "sometimes"}),
            "invalidValue",
        ),
        (json!({"userName": "x@scim.invalid"}), "invalidValue"),
    ] {
        expect_scim_error(
            server.post(&format!("{SCIM}/Users"), body).await,
            400,
            Some(scim_type),
        );
    }
    let malformed = server
        .post_raw(
            &format!("{SCIM}/Users"),
            "application/scim+json",
            "{\"userName\": ",
        )
        .await;
    expect_scim_error(malformed, 400, Some("invalidSyntax"));
    expect_scim_error(
        server
            .post_raw(&format!("{SCIM}/Users"), "text/plain", "userName=x")
            .await,
        415,
        None,
    );
    assert_eq!(server.user_count().await, before, "nothing was created");
    // A PATCH that fails in its second operation changes nothing at all.
    let failed = server
        .patch(
            &format!("{SCIM}/Users/{alice}"),
            patch_op(json!([
                {"op": "replace", "path": "displayName", "value": "Changed"},
                {"op": "replace", "path": "active", "value": "perhaps"}
            ])),
        )
        .await;
    expect_scim_error(failed, 400, Some("invalidValue"));
    for (operations, status, scim_type) in [
        (
            json!([{"op": "jump", "path": "title", "value": "x"}]),
            400,
            "invalidSyntax",
        ),
        (json!([{"op": "remove"}]), 400, "noTarget"),
        (
            json!([{"op": "add", "path": "emails[type eq", "value": "x"}]),
            400,
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "id", "value": "x"}]),
            400,
            "mutability",
        ),
        (
            json!([{"op": "replace", "path": "phoneNumbers[type co \"w\"].value", "value": "1"}]),
            400,
            "noTarget",
        ),
    ] {
        let reply = server
            .patch(&format!("{SCIM}/Users/{alice}"), patch_op(operations.clone()))
            .await;
        expect_scim_error(reply, status, Some(scim_type));
    }
    let unchanged = server
        .get(&format!("{SCIM}/Users/{alice}"))
        .await
        .expect(200)
        .body;
    assert_eq!(unchanged["displayName"], "Alice");
    assert!(unchanged.get("title").is_none());
    // Unknown resources, addresses and methods.
    expect_scim_error(server.get(&format!("{SCIM}/Users/not-a-guid")).await, 404, None);
    expect_scim_error(server.get(&format!("{SCIM}/Groups/{alice}")).await, 404, None);
    expect_scim_error(server.get(&format!("{SCIM}/Nowhere")).await, 404, None);
    expect_scim_error(server.delete(&format!("{SCIM}/Schemas")).await, 405, None);
    expect_scim_error(server.post(&format!("{SCIM}/Bulk"), json!({})).await, 501, None);
    let filter = list_error(&server, "userName eq").await;
    assert!(filter.contains("userName eq"), "{filter}");
    // Groups: members must be existing users, not groups; nothing changes otherwise.
    let group = server
        .post(&format!("{SCIM}/Groups"), json!({"displayName": "Team"}))
        .await
        .expect(201);
    let group_id = id_of(&group);
    for member in [uuid::Uuid::new_v4(), group_id] {
        let reply = server
            .patch(
                &format!("{SCIM}/Groups/{group_id}"),
                patch_op(json!([
                    {"op": "add", "path": "members", "value": [{"value": alice.to_string()}]},
                    {"op": "add", "path": "members", "value": [{"value": member.to_string()}]}
                ])),
            )
            .await;
        expect_scim_error(reply, 400, Some("invalidValue"));
    }
    assert!(server
        .get(&format!("{SCIM}/Groups/{group_id}"))
        .await
        .expect(200)
        .body
        .get("members")
        .is_none());
    expect_scim_error(
        server
            .post(
                &format!("{SCIM}/Groups"),
                json!({"displayName": "Bad", "members": [{"value": "nope"}]}),
            )
            .await,
        400,
        Some("invalidValue"),
    );
    server.stop().await;
}

async fn list_error(server: &TestServer, filter: &str) -> String {
    let mut url = reqwest::Url::parse(&server.url(&format!("{SCIM}/Users"))).expect("url");
    url.query_pairs_mut().append_pair("filter", filter);
    expect_scim_error(server.get(url.as_str()).await, 400, Some("invalidFilter"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_paging_and_attribute_selection() {
    let server = TestServer::start(TestDatabase::sqlite()).await;
    create(
        &server,
        "pat@contoso.com",
        json!({"title": "Boss", "externalId": "P-1", "active": true}),
    )
    .await;
    create(
        &server,
        "paul@contoso.com",
        json!({"active": false, "emails": [{"value": "paul@fabrikam.com", "type": "work", "primary": true}]}),
    )
    .await;
    create(
        &server,
        "quinn@contoso.com",
        json!({ENTERPRISE: {"department": "Sales"}}),
    )
    .await;
    create(&server, "rita", json!({"name": {"givenName": "Rita"}})).await;
    for (filter, expected) in [
        ("userName sw \"pa\"", vec!["pat@contoso.com", "paul@contoso.com"]),
        ("userName co \"UIN\"", vec!["quinn@contoso.com"]),
        ("title pr", vec!["pat@contoso.com"]),
        ("externalId eq \"P-1\"", vec!["pat@contoso.com"]),
        ("externalId eq \"p-1\"", vec![]),
        (
            "active eq false or name.givenName eq \"rita\"",
            vec!["paul@contoso.com", "rita"],
        ),
        (
            "userName sw \"p\" and not (active eq false)",
            vec!["pat@contoso.com"],
        ),
        (
            "emails[type eq \"work\" and value ew \"fabrikam.com\"]",
            vec!["paul@contoso.com"],
        ),
        (
            &format!("{ENTERPRISE}:department eq \"sales\""),
            vec!["quinn@contoso.com"],
        ),
        ("userName eq \"rita\"", vec!["rita"]),
    ] {
        let found = list(&server, "Users", &[("filter", filter)]).await;
        assert_eq!(user_names(&found), expected, "{filter}");
        assert_eq!(found["totalResults"], expected.len(), "{filter}");
    }
    let page = list(&server, "Users", &[("startIndex", "2"), ("count", "2")]).await;
    assert_eq!(
        (
            page["totalResults"].as_u64(),
            page["startIndex"].as_u64(),
            page["itemsPerPage"].as_u64()
        ),
        (Some(4), Some(2), Some(2))
    );
    assert_eq!(
        page["Resources"][0]["userName"], "paul@contoso.com",
        "creation order"
    );
    let counted = list(&server, "Users", &[("count", "0")]).await;
    assert_eq!(
        (
            counted["totalResults"].as_u64(),
            counted["Resources"].as_array().map(Vec::len)
        ),
        (Some(4), Some(0))
    );
    let selected = list(
        &server,
        "Users",
        &[
            ("filter", "userName eq \"pat@contoso.com\""),
            ("attributes", "userName,title"),
        ],
    )
    .await;
    let pat = &selected["Resources"][0];
    assert_eq!(pat["title"], "Boss");
    assert!(pat.get("id").is_some(), "id is always returned");
    assert!(pat.get("externalId").is_none() && pat.get("active").is_none());
    let excluded = list(
        &server,
        "Users",
        &[
            ("filter", "userName eq \"pat@contoso.com\""),
            ("excludedAttributes", "title,meta"),
        ],
    )
    .await;
    assert!(excluded["Resources"][0].get("title").is_none());
    assert_eq!(excluded["Resources"][0]["externalId"], "P-1");
    let searched = server
        .post(&format!("{SCIM}/Users/.search"), json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName sw \"q\"", "attributes": ["userName"]}))
        .await
        .expect(200);
    assert_eq!(user_names(&searched.body), ["quinn@contoso.com"]);
    // A user name without '@' reads back as given and is a principal name in Graph.
    let rita = list(&server, "Users", &[("filter", "userName eq \"RITA\"")]).await;
    let rita_id = rita["Resources"][0]["id"].as_str().expect("id").to_string();
    let graph = server
        .get(&format!("/v1.0/users/{rita_id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(graph["userPrincipalName"], "rita@scim.invalid");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_protect_against_lost_updates() {
    let server = TestServer::start(TestDatabase::sqlite()).await;
    let id = create(&server, "eve@contoso.com", json!({"displayName": "Eve"})).await;
    let read = server.get(&format!("{SCIM}/Users/{id}")).await.expect(200);
    let etag = read
        .headers
        .get("etag")
        .and_then(|value| value.to_str().ok())
        .expect("an ETag")
        .to_string();
    assert_eq!(read.body["meta"]["version"], etag);
    assert!(read
        .headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/scim+json")));
    server
        .get_with_headers(&format!("{SCIM}/Users/{id}"), &[("If-None-Match", &etag)])
        .await
        .expect(304);
    let changed = server
        .send(
            client_with_token(&server.token)
                .patch(server.url(&format!("{SCIM}/Users/{id}")))
                .header("If-Match", &etag)
                .header("content-type", "application/scim+json")
                .body(
                    patch_op(json!([{"op": "replace", "path": "displayName", "value": "Eve 2"}])).to_string(),
                ),
        )
        .await
        .expect(200);
    assert_ne!(changed.body["meta"]["version"], etag);
    let stale = server
        .send(
            client_with_token(&server.token)
                .put(server.url(&format!("{SCIM}/Users/{id}")))
                .header("If-Match", &etag)
                .json(&json!({"userName": "eve@contoso.com", "displayName": "Lost update"})),
        )
        .await;
    expect_scim_error(stale, 412, None);
    assert_eq!(
        server.get(&format!("{SCIM}/Users/{id}")).await.expect(200).body["displayName"],
        "Eve 2"
    );
    server.stop().await;
}

/// Starts `licensd_server::run` on `url` and returns its address, shutdown and task.
async fn start(
    directory: &std::path::Path,
    url: &str,
    token: &str,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), licensd_server::ServerError>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let mut config = ServerConfig::defaults(directory);
    config.database_url = url.to_string();
    config.listen = address;
    config.bootstrap_token = Some(token.to_string());
    config.instance_id = format!("scim-restart-{}", uuid::Uuid::new_v4());
    let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(licensd_server::run(listener, config, async move {
        let _ = receiver.await;
    }));
    let base = format!("http://{address}");
    let client = client_with_token(token);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|response| response.status().is_success())
    {
        assert!(Instant::now() < deadline, "the server did not become ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (base, sender, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_attributes_survive_a_restart() {
    let directory = tempfile::tempdir().expect("directory");
    let url = format!("sqlite://{}", directory.path().join("licensd.db").display());
    let token = licensd_runtime::access::generate_token_text().expect("token");
    let client = client_with_token(&token);
    let (base, stop, task) = start(directory.path(), &url, &token).await;
    let user: Value = client
        .post(format!("{base}{SCIM}/Users"))
        .json(&json!({"userName": "frank@contoso.com", "externalId": "F-1", "name": {"givenName": "Frank"}, ENTERPRISE: {"costCenter": "CC7"}}))
        .send()
        .await
        .expect("created")
        .json()
        .await
        .expect("json");
    let group: Value = client
        .post(format!("{base}{SCIM}/Groups"))
        .json(&json!({"displayName": "Ops", "externalId": "G-1", "members": [{"value": user["id"]}]}))
        .send()
        .await
        .expect("created")
        .json()
        .await
        .expect("json");
    let before: Value = client
        .get(format!("{base}{SCIM}/Users/{}", user["id"].as_str().expect("id")))
        .send()
        .await
        .expect("read")
        .json()
        .await
        .expect("json");
    stop.send(()).expect("stop");
    task.await.expect("task").expect("clean stop");

    let (base, stop, task) = start(directory.path(), &url, &token).await;
    let read: Value = client
        .get(format!("{base}{SCIM}/Users/{}", user["id"].as_str().expect("id")))
        .send()
        .await
        .expect("read")
        .json()
        .await
        .expect("json");
    assert_eq!(read["externalId"], "F-1");
    assert_eq!(read["name"], json!({"givenName": "Frank"}));
    assert_eq!(read[ENTERPRISE]["costCenter"], "CC7");
    // The same representation, but for the addresses (the port changed with the restart).
    let without_addresses = |mut user: Value| {
        user.as_object_mut().expect("object").remove("meta");
        for group in user["groups"].as_array_mut().expect("groups") {
            group.as_object_mut().expect("group").remove("$ref");
        }
        user
    };
    assert_eq!(without_addresses(read.clone()), without_addresses(before));
    assert_eq!(read["groups"][0]["value"], group["id"]);
    let found: Value = client
        .get(format!("{base}{SCIM}/Groups?filter=externalId%20eq%20%22G-1%22"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(found["Resources"][0]["id"], group["id"]);
    assert_eq!(found["Resources"][0]["members"][0]["value"], user["id"]);
    // Deleting the user deletes its attributes with it (a new user with its name has none).
    let deleted = client
        .delete(format!("{base}{SCIM}/Users/{}", user["id"].as_str().expect("id")))
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status().as_u16(), 204);
    stop.send(()).expect("stop");
    task.await.expect("task").expect("clean stop");
    let (base, stop, task) = start(directory.path(), &url, &token).await;
    let users: Value = client
        .get(format!("{base}{SCIM}/Users"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(users["totalResults"], 0);
    stop.send(()).expect("stop");
    task.await.expect("task").expect("clean stop");
}
