//! OData over HTTP: server-side paging with absolute `@odata.nextLink`, `$top`, `$count` with
//! `ConsistencyLevel: eventual`, `/$count`, filters sent fully or partially percent-encoded,
//! `any` on `assignedLicenses` and `proxyAddresses`, and 400s for what is not supported.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::support::{on_both_backends, TestServer, E1, E3};

on_both_backends!(
    users_page_through_next_links,
    filters_select_the_right_users,
    unsupported_queries_are_refused_not_answered_wrongly,
);

async fn users_page_through_next_links(server: &TestServer) {
    for number in 0..250 {
        server.create_user(&format!("user{number:03}"), Some("US")).await;
    }
    let mut seen = HashSet::new();
    let mut next = Some("/v1.0/users?$select=id,userPrincipalName".to_string());
    let mut pages = 0;
    while let Some(address) = next {
        let page = server.get(&address).await.expect(200).body;
        pages += 1;
        for user in page["value"].as_array().expect("users") {
            assert!(seen.insert(user["id"].clone()), "no user twice");
            assert_eq!(user.as_object().map(|object| object.len()), Some(2), "{user}");
        }
        next = page["@odata.nextLink"].as_str().map(str::to_string);
        if let Some(link) = &next {
            assert!(
                link.starts_with(&format!("{}/v1.0/users?", server.base)),
                "absolute: {link}"
            );
            assert!(link.contains("$skiptoken="), "{link}");
            assert!(
                link.contains("$select=id%2CuserPrincipalName"),
                "keeps the options: {link}"
            );
        }
    }
    assert_eq!(pages, 3, "pages of 100 by default");
    assert_eq!(seen.len(), 250);

    let counted = server
        .get_with_headers(
            "/v1.0/users?$top=40&$count=true",
            &[("ConsistencyLevel", "eventual")],
        )
        .await
        .expect(200)
        .body;
    assert_eq!(counted["@odata.count"], 250);
    assert_eq!(counted["value"].as_array().map(Vec::len), Some(40));
    // The next link keeps $top and $count.
    let link = counted["@odata.nextLink"].as_str().expect("next").to_string();
    // Following the link needs no header: the first request was the advanced query.
    let second = server.get(&link).await.expect(200).body;
    assert_eq!(second["value"].as_array().map(Vec::len), Some(40));
    assert_eq!(second["@odata.count"], 250);

    let count = server
        .get_with_headers(
            "/v1.0/users/$count?$filter=startswith(userPrincipalName,'user1')",
            &[("ConsistencyLevel", "eventual")],
        )
        .await
        .expect(200);
    assert_eq!(count.header("content-type").as_deref(), Some("text/plain"));
    assert_eq!(count.body, json!(100));
    server
        .get("/v1.0/users/$count")
        .await
        .expect_error(400, "Request_UnsupportedQuery");
    server
        .get("/v1.0/users?$count=true")
        .await
        .expect_error(400, "Request_UnsupportedQuery");
    let group = server.create_group("Counted").await;
    let groups = server
        .get_with_headers("/v1.0/groups/$count", &[("ConsistencyLevel", "eventual")])
        .await
        .expect(200);
    assert_eq!(groups.body, json!(1));
    assert!(!group.is_nil());
}

fn ids(page: &Value) -> Vec<String> {
    let mut ids: Vec<String> = page["value"]
        .as_array()
        .expect("a collection")
        .iter()
        .map(|item| item["userPrincipalName"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

async fn filters_select_the_right_users(server: &TestServer) {
    server.import_seed_products(10, 10, 10, 10).await;
    let anna = server.create_user("anna", Some("US")).await;
    let bob = server.create_user("bob", Some("NL")).await;
    server.create_user("carl", None).await;
    server
        .post(
            &format!("/v1.0/users/{anna}/assignLicense"),
            json!({"addLicenses": [{"skuId": E3}], "removeLicenses": []}),
        )
        .await
        .expect(200);
    server
        .post(
            &format!("/v1.0/users/{bob}/assignLicense"),
            json!({"addLicenses": [{"skuId": E1}], "removeLicenses": []}),
        )
        .await
        .expect(200);

    let cases: Vec<(String, Vec<&str>)> = vec![
        // Microsoft's Python SDK encodes everything.
        (
            format!("/v1.0/users?%24filter=assignedLicenses%2Fany%28x%3Ax%2FskuId%20eq%20{E3}%29"),
            vec!["anna@contoso.com"],
        ),
        // Its JavaScript client leaves / ( ) : as they are.
        (
            format!("/v1.0/users?$filter=assignedLicenses/any(x:x/skuId%20eq%20{E1})"),
            vec!["bob@contoso.com"],
        ),
        (
            "/v1.0/users?$filter=proxyAddresses/any(p:p eq 'smtp:BOB@contoso.com')".to_string(),
            vec!["bob@contoso.com"],
        ),
        (
            "/v1.0/users?$filter=usageLocation in ('US','NL')".to_string(),
            vec!["anna@contoso.com", "bob@contoso.com"],
        ),
        (
            "/v1.0/users?$filter=usageLocation ne 'US'".to_string(),
            vec!["bob@contoso.com", "carl@contoso.com"],
        ),
        (
            "/v1.0/users?$filter=usageLocation eq null".to_string(),
            vec!["carl@contoso.com"],
        ),
        (
            "/v1.0/users?$filter=startswith(displayName,'a') or userPrincipalName eq 'CARL@contoso.com'"
                .to_string(),
            vec!["anna@contoso.com", "carl@contoso.com"],
        ),
        (
            "/v1.0/users?$filter=accountEnabled eq true and not assignedLicenses/any()".to_string(),
            vec!["carl@contoso.com"],
        ),
        (
            format!("/v1.0/users?$filter=id eq '{bob}'"),
            vec!["bob@contoso.com"],
        ),
        (
            "/v1.0/users?$filter=mail eq 'anna@contoso.com'".to_string(),
            vec!["anna@contoso.com"],
        ),
    ];
    for (address, expected) in cases {
        let page = server.get(&address).await.expect(200).body;
        assert_eq!(ids(&page), expected, "{address}");
    }

    let group = server.create_group("E3 holders").await;
    server.assign_to_group(group, &[E3]).await.expect(202);
    let licensed = server
        .get(&format!(
            "/v1.0/groups?$filter=assignedLicenses/any(x:x/skuId eq {E3})&$select=displayName"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(licensed["value"], json!([{"displayName": "E3 holders"}]));
    let by_name = server
        .get("/v1.0/groups?$filter=displayName eq 'nobody'")
        .await
        .expect(200)
        .body;
    assert_eq!(by_name["value"], json!([]));
}

async fn unsupported_queries_are_refused_not_answered_wrongly(server: &TestServer) {
    server.create_user("anna", Some("US")).await;
    for (address, code) in [
        ("/v1.0/users?$orderby=usageLocation", "Request_UnsupportedQuery"),
        (
            "/v1.0/users?$search=\"displayName:anna\"",
            "Request_UnsupportedQuery",
        ),
        ("/v1.0/users?$expand=manager", "Request_UnsupportedQuery"),
        ("/v1.0/users?$skip=10", "Request_UnsupportedQuery"),
        (
            "/v1.0/users?$filter=endswith(userPrincipalName,'contoso.com')",
            "Request_UnsupportedQuery",
        ),
        (
            "/v1.0/users?$filter=displayName gt 'a'",
            "Request_UnsupportedQuery",
        ),
        (
            "/v1.0/users?$filter=proxyAddresses/all(p:p eq 'x')",
            "Request_UnsupportedQuery",
        ),
        (
            "/v1.0/users?$filter=manager/displayName eq 'x'",
            "Request_UnsupportedQuery",
        ),
        ("/v1.0/users?$filter=shoeSize eq 44", "Request_BadRequest"),
        ("/v1.0/users?$filter=displayName eq", "Request_BadRequest"),
        (
            "/v1.0/users?$filter=accountEnabled eq 'yes'",
            "Request_BadRequest",
        ),
        ("/v1.0/users?$filter=proxyAddresses eq 'x'", "Request_BadRequest"),
        ("/v1.0/users?$top=0", "Request_BadRequest"),
        ("/v1.0/users?$top=1000", "Request_BadRequest"),
        ("/v1.0/users?$top=ten", "Request_BadRequest"),
        ("/v1.0/users?$skiptoken=forged", "Request_BadRequest"),
        ("/v1.0/users?$select=shoeSize", "Request_BadRequest"),
        ("/v1.0/users?$select=manager/id", "Request_UnsupportedQuery"),
        ("/v1.0/users?$bogus=1", "Request_BadRequest"),
        ("/v1.0/users?$top=5&$top=6", "Request_BadRequest"),
        (
            "/v1.0/groups?$filter=hasMembersWithLicenseErrors eq 'yes'",
            "Request_BadRequest",
        ),
    ] {
        let message = server.get(address).await.expect_error(400, code);
        assert!(!message.is_empty(), "{address}");
    }
    let message = server
        .get("/v1.0/users?$top=1000")
        .await
        .expect_error(400, "Request_BadRequest");
    assert_eq!(
        message,
        "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive."
    );
}
