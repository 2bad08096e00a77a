//! `users/delta` and `groups/delta`: a first round page by page to an `@odata.deltaLink`, later
//! rounds returning only what changed (license changes included, deletions as `@removed`),
//! tokens read from the store's change log (so another instance honours them), and
//! `syncStateNotFound` for tokens that do not match the tenant's log.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{on_both_backends, TestServer, E3};

on_both_backends!(
    users_delta_pages_then_returns_only_changes,
    groups_delta_follows_groups_and_members,
    invalid_delta_tokens_are_refused
);

const PAGE_OF_TWO: (&str, &str) = ("Prefer", "odata.maxpagesize=2");

/// Follows `@odata.nextLink` to the end of a round; returns the objects and the delta link.
async fn whole_round(server: &TestServer, first: &str) -> (Vec<Value>, String) {
    let mut items = Vec::new();
    let mut next = server.url(first);
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages < 50, "the round ends");
        let page = server
            .get_with_headers(&next, &[PAGE_OF_TWO])
            .await
            .expect(200)
            .body;
        assert!(page["value"].as_array().expect("value").len() <= 2, "{page:#}");
        items.extend(page["value"].as_array().expect("value").iter().cloned());
        if let Some(link) = page["@odata.nextLink"].as_str() {
            assert!(page.get("@odata.deltaLink").is_none());
            assert!(link.starts_with(&server.base), "{link}");
            next = link.to_string();
            continue;
        }
        let delta = page["@odata.deltaLink"]
            .as_str()
            .expect("a delta link on the last page");
        assert!(
            delta.starts_with(&server.base) && delta.contains("$deltatoken="),
            "{delta}"
        );
        return (items, delta.to_string());
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = items
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    ids
}

async fn users_delta_pages_then_returns_only_changes(server: &TestServer) {
    server.import_seed_products(5, 3, 2, 1).await;
    let stays = server.create_user("stays", Some("US")).await;
    let licensed = server.create_user("licensed", Some("US")).await;
    let deleted = server.create_user("deleted", Some("US")).await;
    let through_group = server.create_user("throughgroup", Some("US")).await;
    // `delta()` is the function-call form Microsoft's SDKs send.
    let select = "/v1.0/users/delta()?$select=id,displayName,assignedLicenses";
    let (first, delta_link) = whole_round(server, select).await;
    let mut expected: Vec<String> = [stays, licensed, deleted, through_group]
        .iter()
        .map(Uuid::to_string)
        .collect();
    expected.sort();
    assert_eq!(ids(&first), expected);
    assert!(first
        .iter()
        .all(|user| user.get("userPrincipalName").is_none() && user["displayName"].is_string()));

    // Nothing changed: an empty round and a delta link again.
    let (nothing, same_link) = whole_round(server, &delta_link).await;
    assert_eq!(nothing, Vec::<Value>::new());
    assert!(same_link.contains("$select="), "{same_link}");

    server
        .post(
            &format!("/v1.0/users/{licensed}/assignLicense"),
            json!({"addLicenses": [{"skuId": E3}], "removeLicenses": []}),
        )
        .await
        .expect(200);
    server.delete(&format!("/v1.0/users/{deleted}")).await.expect(204);
    let created = server.create_user("created", Some("US")).await;
    let (changes, next_link) = whole_round(server, &delta_link).await;
    let mut expected: Vec<String> = [licensed, deleted, created].iter().map(Uuid::to_string).collect();
    expected.sort();
    assert_eq!(ids(&changes), expected, "{changes:#?}");
    let licensed_entry = changes
        .iter()
        .find(|user| user["id"] == licensed.to_string())
        .expect("licensed");
    assert_eq!(licensed_entry["assignedLicenses"][0]["skuId"], E3);
    let deleted_entry = changes
        .iter()
        .find(|user| user["id"] == deleted.to_string())
        .expect("deleted");
    assert_eq!(deleted_entry["@removed"], json!({"reason": "deleted"}));

    // A license that arrives through a group (background processing) is a change of the user.
    let group = server.create_group("Delta group").await;
    server.add_member(group, through_group).await;
    server.assign_to_group(group, &[E3]).await.expect(202);
    server.settle().await;
    let (group_changes, _) = whole_round(server, &next_link).await;
    let entry = group_changes
        .iter()
        .find(|user| user["id"] == through_group.to_string())
        .unwrap_or_else(|| panic!("the group-licensed user changed: {group_changes:#?}"));
    assert_eq!(entry["assignedLicenses"][0]["skuId"], E3, "{entry:#}");
    assert!(group_changes.iter().all(|user| user["id"] != stays.to_string()));

    // The token is the store's: another instance on the same database honours it.
    if server.database_url.starts_with("postgres") {
        let other = server.start_another().await;
        let answer = other
            .get(&next_link.replace(&server.base, &other.base))
            .await
            .expect(200)
            .body;
        assert!(answer["value"]
            .as_array()
            .expect("value")
            .iter()
            .any(|user| user["id"] == through_group.to_string()));
        other.stop().await;
    }

    // `latest` gives a link from now without listing anything.
    let latest = server
        .get("/v1.0/users/delta?$deltatoken=latest")
        .await
        .expect(200)
        .body;
    assert_eq!(latest["value"], json!([]));
    let (after_latest, _) = whole_round(server, latest["@odata.deltaLink"].as_str().expect("link")).await;
    assert_eq!(after_latest, Vec::<Value>::new());
}

async fn groups_delta_follows_groups_and_members(server: &TestServer) {
    let member = server.create_user("member", Some("US")).await;
    let group = server.create_group("Members").await;
    let untouched = server.create_group("Untouched").await;
    server.add_member(group, member).await;
    let (first, delta_link) = whole_round(server, "/v1.0/groups/delta").await;
    assert_eq!(ids(&first), {
        let mut expected = vec![group.to_string(), untouched.to_string()];
        expected.sort();
        expected
    });
    let listed = first
        .iter()
        .find(|entry| entry["id"] == group.to_string())
        .expect("group");
    assert_eq!(
        listed["members@delta"],
        json!([{"@odata.type": "#microsoft.graph.user", "id": member}])
    );

    let joining = server.create_user("joining", Some("US")).await;
    server.add_member(group, joining).await;
    let (changes, next_link) = whole_round(server, &delta_link).await;
    assert_eq!(ids(&changes), vec![group.to_string()], "{changes:#?}");
    let members = changes[0]["members@delta"].as_array().expect("members@delta");
    assert!(
        members.iter().any(|entry| entry["id"] == joining.to_string()),
        "{changes:#?}"
    );

    // A member leaves: the group is listed again, without them (replace the member list).
    server
        .delete(&format!("/v1.0/groups/{group}/members/{member}/$ref"))
        .await
        .expect(204);
    let (left, next_link) = whole_round(server, &next_link).await;
    assert_eq!(ids(&left), vec![group.to_string()], "{left:#?}");
    let members = left[0]["members@delta"].as_array().expect("members@delta");
    assert!(
        members.iter().all(|entry| entry["id"] != member.to_string()),
        "{left:#?}"
    );

    server
        .delete(&format!("/v1.0/groups/{untouched}"))
        .await
        .expect(204);
    let (deleted, _) = whole_round(server, &next_link).await;
    assert_eq!(
        deleted,
        vec![json!({"id": untouched, "@removed": {"reason": "deleted"}})],
        "{deleted:#?}"
    );
    // Without members: the group's properties only.
    let plain = server
        .get("/v1.0/groups/delta?$select=displayName")
        .await
        .expect(200)
        .body;
    assert!(plain["value"][0].get("members@delta").is_none(), "{plain:#}");
}

async fn invalid_delta_tokens_are_refused(server: &TestServer) {
    server.create_user("someone", Some("US")).await;
    let round = server.get("/v1.0/users/delta").await.expect(200).body;
    let link = round["@odata.deltaLink"].as_str().expect("link").to_string();
    let token = link.split("$deltatoken=").nth(1).expect("token").to_string();
    let (tenant, version) = token.split_once('.').expect("tenant.version");
    let other_tenant = Uuid::new_v4().simple().to_string();
    let future = version.parse::<u64>().expect("version") + 1000;
    for wrong in [
        "garbage".to_string(),
        format!("{other_tenant}.{version}"),
        format!("{tenant}.{future}"),
    ] {
        let message = server
            .get(&format!("/v1.0/users/delta?$deltatoken={wrong}"))
            .await
            .expect_error(410, "syncStateNotFound");
        assert!(message.contains("Start a new delta round"), "{message}");
    }
    server
        .get("/v1.0/users/delta?$skiptoken=nope")
        .await
        .expect_error(410, "syncStateNotFound");
    server
        .get("/v1.0/users/delta?$filter=displayName eq 'x'")
        .await
        .expect_error(400, "Request_UnsupportedQuery");
    server
        .get("/v1.0/users/delta?$select=noSuchProperty")
        .await
        .expect_error(400, "Request_BadRequest");
}
