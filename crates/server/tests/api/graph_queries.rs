//! Graph's advanced queries over HTTP: `$orderby` (and when it needs `ConsistencyLevel:
//! eventual` with `$count=true`), tokenized `$search`, `$expand` of `members` / `memberOf` with
//! Graph's limit of 20, `$count` on navigation collections, `transitiveMembers`,
//! `transitiveMemberOf`, type casts, `directoryObjects/getByIds`, the "licensed users" query
//! `assignedLicenses/$count ne 0`, `$metadata` naming every `@odata.context`'s entity set, and 400s (not 404s) for what licensd does not support.

use serde_json::{json, Value};

use crate::support::{on_both_backends, TestServer, E3};

on_both_backends!(
    order_by_sorts_and_keeps_paging_stable,
    search_matches_tokens_and_needs_the_header,
    expand_members_and_member_of,
    navigation_counts_transitive_lists_and_casts,
    get_by_ids_returns_users_and_groups,
    licensed_users_query_counts_assigned_licenses,
    every_odata_context_names_an_entity_set_of_the_metadata,
);

const EVENTUAL: &[(&str, &str)] = &[("ConsistencyLevel", "eventual")];

fn names(page: &Value, property: &str) -> Vec<String> {
    page["value"]
        .as_array()
        .expect("a collection")
        .iter()
        .map(|item| item[property].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn order_by_sorts_and_keeps_paging_stable(server: &TestServer) {
    for name in ["carl", "Anna", "bob", "dora", "Eve"] {
        server.create_user(name, None).await;
    }
    let ascending = server
        .get("/v1.0/users?$orderby=displayName&$select=displayName")
        .await
        .expect(200)
        .body;
    assert_eq!(
        names(&ascending, "displayName"),
        ["Anna", "bob", "carl", "dora", "Eve"]
    );
    // Pages follow the order: two by two, descending, through @odata.nextLink.
    let mut seen = Vec::new();
    let mut next = Some("/v1.0/users?$orderby=userPrincipalName%20desc&$top=2".to_string());
    while let Some(address) = next {
        let page = server.get(&address).await.expect(200).body;
        seen.extend(names(&page, "displayName"));
        next = page["@odata.nextLink"].as_str().map(str::to_string);
        if let Some(link) = &next {
            assert!(link.contains("$orderby=userPrincipalName%20desc"), "{link}");
        }
    }
    assert_eq!(seen, ["Eve", "dora", "carl", "bob", "Anna"]);

    // With $filter, or on mail, sorting is an advanced query, as in Graph.
    let filtered = "/v1.0/users?$filter=accountEnabled eq true&$orderby=displayName desc";
    let message = server
        .get(filtered)
        .await
        .expect_error(400, "Request_UnsupportedQuery");
    assert!(
        message.starts_with("Sorting not supported for current query"),
        "{message}"
    );
    let advanced = server
        .get_with_headers(&format!("{filtered}&$count=true"), EVENTUAL)
        .await
        .expect(200)
        .body;
    assert_eq!(advanced["@odata.count"], 5);
    assert_eq!(names(&advanced, "displayName")[0], "Eve");
    server
        .get("/v1.0/users?$orderby=mail")
        .await
        .expect_error(400, "Request_UnsupportedQuery");
    let by_mail = server
        .get_with_headers("/v1.0/users?$orderby=mail&$count=true", EVENTUAL)
        .await
        .expect(200)
        .body;
    assert_eq!(names(&by_mail, "displayName")[0], "Anna");

    for name in ["Sales", "accounting"] {
        server.create_group(name).await;
    }
    let groups = server
        .get("/v1.0/groups?$orderby=displayName")
        .await
        .expect(200)
        .body;
    assert_eq!(names(&groups, "displayName"), ["accounting", "Sales"]);
    for (address, code) in [
        (
            "/v1.0/groups?$orderby=securityEnabled",
            "Request_UnsupportedQuery",
        ),
        (
            "/v1.0/users?$orderby=displayName,mail",
            "Request_UnsupportedQuery",
        ),
        (
            "/v1.0/users?$orderby=displayName%20sideways",
            "Request_BadRequest",
        ),
        ("/v1.0/users?$orderby=shoeSize", "Request_BadRequest"),
    ] {
        server.get(address).await.expect_error(400, code);
    }
}

async fn search_matches_tokens_and_needs_the_header(server: &TestServer) {
    for (display_name, principal_name) in [
        ("Adele Vance", "AdeleV@contoso.com"),
        ("Alex Wilber", "AlexW@contoso.com"),
        ("Megan Bowen", "MeganB@contoso.com"),
    ] {
        server
            .post(
                "/v1.0/users",
                json!({"displayName": display_name, "userPrincipalName": principal_name, "accountEnabled": true}),
            )
            .await
            .expect(201);
    }
    let message = server
        .get("/v1.0/users?$search=\"displayName:adele\"")
        .await
        .expect_error(400, "Request_UnsupportedQuery");
    assert!(message.contains("ConsistencyLevel"), "{message}");
    for (search, expected) in [
        ("\"displayName:adele\"", vec!["Adele Vance"]),
        ("\"displayName:VAN\"", vec!["Adele Vance"]),
        ("\"displayName:ale\"", vec!["Alex Wilber"]),
        (
            "\"displayName:adele\" OR \"displayName:megan\"",
            vec!["Adele Vance", "Megan Bowen"],
        ),
        ("\"displayName:a\" AND \"displayName:wil\"", vec!["Alex Wilber"]),
        ("\"userPrincipalName:megan\"", vec!["Megan Bowen"]),
        ("\"displayName:nobody\"", vec![]),
    ] {
        let encoded: String = url_encode(search);
        let page = server
            .get_with_headers(
                &format!("/v1.0/users?$search={encoded}&$orderby=displayName"),
                EVENTUAL,
            )
            .await
            .expect(200)
            .body;
        assert_eq!(names(&page, "displayName"), expected, "{search}");
    }
    let count = server
        .get_with_headers("/v1.0/users/$count?$search=\"displayName:a\"", EVENTUAL)
        .await
        .expect(200);
    assert_eq!(count.body, json!(2));
    for (search, code) in [
        ("adele", "Request_BadRequest"),
        ("\"adele\"", "Request_BadRequest"),
        ("\"usageLocation:US\"", "Request_UnsupportedQuery"),
    ] {
        server
            .get_with_headers(&format!("/v1.0/users?$search={}", url_encode(search)), EVENTUAL)
            .await
            .expect_error(400, code);
    }
    server.create_group("Room 101 Owners").await;
    let groups = server
        .get_with_headers("/v1.0/groups?$search=\"displayName:101\"", EVENTUAL)
        .await
        .expect(200)
        .body;
    assert_eq!(names(&groups, "displayName"), ["Room 101 Owners"]);
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

async fn expand_members_and_member_of(server: &TestServer) {
    let group = server.create_group("Big").await;
    let mut first = None;
    for number in 0..25 {
        let user = server.create_user(&format!("member{number:02}"), None).await;
        server.add_member(group, user).await;
        first.get_or_insert(user);
    }
    let first = first.expect("a member");
    let expanded = server
        .get(&format!("/v1.0/groups/{group}?$expand=members"))
        .await
        .expect(200)
        .body;
    let members = expanded["members"].as_array().expect("members");
    assert_eq!(members.len(), 20, "Graph expands at most 20 objects");
    assert_eq!(members[0]["@odata.type"], "#microsoft.graph.user");
    assert_eq!(members[0]["userPrincipalName"], "member00@contoso.com");
    assert!(expanded["@odata.context"]
        .as_str()
        .is_some_and(|context| context.ends_with("$metadata#groups(members())/$entity")));

    let selected = server
        .get("/v1.0/groups?$select=displayName&$expand=members($select=id,displayName)")
        .await
        .expect(200)
        .body;
    let group_json = &selected["value"][0];
    assert_eq!(group_json["displayName"], "Big");
    assert!(group_json.get("id").is_none(), "$select applies to the group");
    let member = &group_json["members"][0];
    assert_eq!(
        member.as_object().map(|object| object.len()),
        Some(3),
        "@odata.type, id and displayName: {member}"
    );

    let user = server
        .get(&format!("/v1.0/users/{first}?$expand=memberOf"))
        .await
        .expect(200)
        .body;
    assert_eq!(user["memberOf"][0]["id"], json!(group.to_string()));
    assert_eq!(user["memberOf"][0]["@odata.type"], "#microsoft.graph.group");
    let listed = server
        .get("/v1.0/users?$expand=memberOf($select=displayName)&$top=1")
        .await
        .expect(200)
        .body;
    assert_eq!(
        listed["value"][0]["memberOf"],
        json!([{"@odata.type": "#microsoft.graph.group", "displayName": "Big"}])
    );

    for (address, code) in [
        (
            format!("/v1.0/groups/{group}?$expand=owners"),
            "Request_UnsupportedQuery",
        ),
        (
            format!("/v1.0/groups/{group}?$expand=members,owners"),
            "Request_UnsupportedQuery",
        ),
        (
            format!("/v1.0/users/{first}?$expand=members"),
            "Request_UnsupportedQuery",
        ),
        (
            format!("/v1.0/groups/{group}?$expand=members($top=1)"),
            "Request_UnsupportedQuery",
        ),
        (
            "/v1.0/subscribedSkus?$expand=servicePlans".to_string(),
            "Request_UnsupportedQuery",
        ),
    ] {
        server.get(&address).await.expect_error(400, code);
    }
}

async fn navigation_counts_transitive_lists_and_casts(server: &TestServer) {
    let group = server.create_group("Staff").await;
    let other = server.create_group("Other").await;
    let anna = server.create_user("anna", None).await;
    let bob = server.create_user("bob", None).await;
    server.create_user("carl", None).await;
    server.add_member(group, anna).await;
    server.add_member(group, bob).await;
    server.add_member(other, anna).await;

    for (address, expected) in [
        (format!("/v1.0/groups/{group}/members/$count"), 2),
        (format!("/v1.0/groups/{group}/transitiveMembers/$count"), 2),
        (
            format!("/v1.0/groups/{group}/members/microsoft.graph.user/$count"),
            2,
        ),
        (
            format!("/v1.0/groups/{group}/members/$count?$filter=startswith(displayName,'a')"),
            1,
        ),
        (format!("/v1.0/users/{anna}/memberOf/$count"), 2),
        (
            "/v1.0/users/anna@contoso.com/transitiveMemberOf/$count".to_string(),
            2,
        ),
    ] {
        let reply = server.get_with_headers(&address, EVENTUAL).await.expect(200);
        assert_eq!(
            reply.header("content-type").as_deref(),
            Some("text/plain"),
            "{address}"
        );
        assert_eq!(reply.body, json!(expected), "{address}");
        server
            .get(&address)
            .await
            .expect_error(400, "Request_UnsupportedQuery");
    }
    server
        .get_with_headers(
            &format!("/v1.0/groups/{}/members/$count", licensd_engine::Uuid::nil()),
            EVENTUAL,
        )
        .await
        .expect_error(404, "Request_ResourceNotFound");

    let transitive = server
        .get(&format!(
            "/v1.0/groups/{group}/transitiveMembers?$orderby=displayName desc"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(names(&transitive, "displayName"), ["bob", "anna"]);
    assert_eq!(transitive["value"][0]["@odata.type"], "#microsoft.graph.user");
    assert!(transitive["@odata.context"]
        .as_str()
        .is_some_and(|context| context.ends_with("$metadata#directoryObjects")));
    let memberships = server
        .get(&format!(
            "/v1.0/users/{anna}/transitiveMemberOf?$orderby=displayName"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(names(&memberships, "displayName"), ["Other", "Staff"]);

    let users = server
        .get(&format!(
            "/v1.0/groups/{group}/members/microsoft.graph.user?$select=displayName"
        ))
        .await
        .expect(200)
        .body;
    assert!(users["@odata.context"]
        .as_str()
        .is_some_and(|context| context.ends_with("$metadata#users(displayName)")));
    assert_eq!(
        users["value"],
        json!([{"displayName": "anna"}, {"displayName": "bob"}])
    );
    // The SDKs' form, with the namespace's alias.
    let aliased = server
        .get(&format!(
            "/v1.0/groups/{group}/members/graph.user?$select=displayName"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(aliased["value"], users["value"]);
    let aliased_groups = server
        .get(&format!(
            "/v1.0/users/{anna}/memberOf/graph.group?$select=displayName"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(aliased_groups["value"].as_array().map(Vec::len), Some(2));
    let groups = server
        .get(&format!("/v1.0/groups/{group}/members/microsoft.graph.group"))
        .await
        .expect(200)
        .body;
    assert_eq!(groups["value"], json!([]));
    let cast = server
        .get(&format!(
            "/v1.0/users/{anna}/memberOf/microsoft.graph.group?$select=displayName"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(
        cast["value"],
        json!([{"displayName": "Staff"}, {"displayName": "Other"}])
    );

    let member = server
        .get(&format!("/v1.0/groups/{group}/members/{bob}"))
        .await
        .expect(200)
        .body;
    assert_eq!(member["userPrincipalName"], "bob@contoso.com");
    server
        .get(&format!("/v1.0/groups/{other}/members/{bob}"))
        .await
        .expect_error(404, "Request_ResourceNotFound");
    let membership = server
        .get(&format!("/v1.0/users/{anna}/memberOf/{other}"))
        .await
        .expect(200)
        .body;
    assert_eq!(membership["displayName"], "Other");
    // Casts licensd does not model are refused as such, never a 404.
    for address in [
        format!("/v1.0/groups/{group}/members/microsoft.graph.device"),
        format!("/v1.0/users/{anna}/memberOf/microsoft.graph.directoryRole"),
        format!("/v1.0/groups/{group}/members/graph.device"),
    ] {
        let message = server
            .get(&address)
            .await
            .expect_error(400, "Request_UnsupportedQuery");
        assert!(
            message.contains("licensd models users and groups only"),
            "{message}"
        );
    }
}

async fn get_by_ids_returns_users_and_groups(server: &TestServer) {
    let group = server.create_group("Staff").await;
    let anna = server.create_user("anna", None).await;
    let missing = licensd_engine::Uuid::from_u128(42);
    let all = server
        .post(
            "/v1.0/directoryObjects/getByIds",
            json!({"ids": [group.to_string(), missing.to_string(), anna.to_string()]}),
        )
        .await
        .expect(200)
        .body;
    assert!(all["@odata.context"]
        .as_str()
        .is_some_and(|context| context.ends_with("$metadata#directoryObjects")));
    let values = all["value"].as_array().expect("values");
    assert_eq!(values.len(), 2, "unknown ids are left out: {all}");
    assert_eq!(values[0]["@odata.type"], "#microsoft.graph.group");
    assert_eq!(values[1]["@odata.type"], "#microsoft.graph.user");
    let users_only = server
        .post(
            "/v1.0/directoryObjects/getByIds",
            json!({"ids": [group.to_string(), anna.to_string()], "types": ["user"]}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(users_only["value"].as_array().map(Vec::len), Some(1));
    assert_eq!(users_only["value"][0]["id"], json!(anna.to_string()));
    server
        .post(
            "/v1.0/directoryObjects/getByIds",
            json!({"ids": [anna.to_string()], "types": ["device"]}),
        )
        .await
        .expect_error(400, "Request_NotSupported");
    server
        .post("/v1.0/directoryObjects/getByIds", json!({"ids": ["not-a-guid"]}))
        .await
        .expect_error(400, "Request_BadRequest");
    let too_many: Vec<String> = (0..1001u128)
        .map(|number| licensd_engine::Uuid::from_u128(number).to_string())
        .collect();
    server
        .post("/v1.0/directoryObjects/getByIds", json!({"ids": too_many}))
        .await
        .expect_error(400, "Request_BadRequest");
}

async fn licensed_users_query_counts_assigned_licenses(server: &TestServer) {
    server.import_seed_products(5, 5, 5, 5).await;
    let anna = server.create_user("anna", Some("US")).await;
    server.create_user("bob", Some("US")).await;
    server
        .post(
            &format!("/v1.0/users/{anna}/assignLicense"),
            json!({"addLicenses": [{"skuId": E3}], "removeLicenses": []}),
        )
        .await
        .expect(200);
    let query = "/v1.0/users?$filter=assignedLicenses/$count ne 0&$count=true&$select=userPrincipalName";
    let licensed = server.get_with_headers(query, EVENTUAL).await.expect(200).body;
    assert_eq!(licensed["@odata.count"], 1);
    assert_eq!(names(&licensed, "userPrincipalName"), ["anna@contoso.com"]);
    let unlicensed = server
        .get_with_headers(
            "/v1.0/users?$filter=assignedLicenses/$count eq 0&$count=true&$select=userPrincipalName",
            EVENTUAL,
        )
        .await
        .expect(200)
        .body;
    assert_eq!(names(&unlicensed, "userPrincipalName"), ["bob@contoso.com"]);
    // Without the advanced query parameters, Graph refuses it too.
    server
        .get("/v1.0/users?$filter=assignedLicenses/$count ne 0")
        .await
        .expect_error(400, "Request_UnsupportedQuery");
    server
        .get_with_headers(
            "/v1.0/users?$filter=assignedLicenses/$count ne 'x'&$count=true",
            EVENTUAL,
        )
        .await
        .expect_error(400, "Request_BadRequest");
}

/// The names of the entity sets and singletons of a CSDL document.
fn container_names(xml: &str) -> Vec<String> {
    let mut names = Vec::new();
    for element in ["<EntitySet Name=\"", "<Singleton Name=\""] {
        for (position, _) in xml.match_indices(element) {
            let rest = &xml[position + element.len()..];
            if let Some(end) = rest.find('"') {
                names.push(rest[..end].to_string());
            }
        }
    }
    names
}

async fn every_odata_context_names_an_entity_set_of_the_metadata(server: &TestServer) {
    server.import_seed_products(5, 5, 5, 5).await;
    let group = server.create_group("Staff").await;
    let anna = server.create_user("anna", Some("US")).await;
    server.add_member(group, anna).await;
    server
        .post(
            &format!("/v1.0/users/{anna}/assignLicense"),
            json!({"addLicenses": [{"skuId": E3}], "removeLicenses": []}),
        )
        .await
        .expect(200);
    let metadata = server.get("/v1.0/$metadata").await.expect(200);
    assert_eq!(
        metadata.header("content-type").as_deref(),
        Some("application/xml")
    );
    let xml = metadata.body.as_str().expect("XML text").to_string();
    assert!(xml.starts_with("<?xml"), "{xml}");
    for expected in [
        "<EntityType Name=\"user\" BaseType=\"microsoft.graph.directoryObject\"",
        "<Property Name=\"assignedLicenses\" Type=\"Collection(microsoft.graph.assignedLicense)\"",
        "<NavigationProperty Name=\"memberOf\"",
        "<Action Name=\"assignLicense\" IsBound=\"true\">",
        "<ComplexType Name=\"licenseAssignmentState\">",
    ] {
        assert!(xml.contains(expected), "{expected} in {xml}");
    }
    let sets = container_names(&xml);
    let sku = server.get("/v1.0/subscribedSkus").await.expect(200).body["value"][0]["id"]
        .as_str()
        .expect("a product")
        .to_string();
    let mut contexts = Vec::new();
    for address in [
        "/v1.0/users".to_string(),
        "/v1.0/users?$select=displayName&$expand=memberOf".to_string(),
        format!("/v1.0/users/{anna}"),
        format!("/v1.0/users/{anna}/licenseDetails"),
        format!("/v1.0/users/{anna}/memberOf"),
        format!("/v1.0/users/{anna}/memberOf/{group}"),
        format!("/v1.0/users/{anna}/memberOf/microsoft.graph.group"),
        format!("/v1.0/users/{anna}/transitiveMemberOf"),
        "/v1.0/groups".to_string(),
        format!("/v1.0/groups/{group}?$expand=members"),
        format!("/v1.0/groups/{group}/members"),
        format!("/v1.0/groups/{group}/members/{anna}"),
        format!("/v1.0/groups/{group}/members/microsoft.graph.user"),
        format!("/v1.0/groups/{group}/members/microsoft.graph.group"),
        format!("/v1.0/groups/{group}/transitiveMembers"),
        format!("/v1.0/groups/{group}/membersWithLicenseErrors"),
        "/v1.0/subscribedSkus".to_string(),
        format!("/v1.0/subscribedSkus/{sku}"),
        "/v1.0/auditLogs/directoryAudits".to_string(),
    ] {
        let body = server.get(&address).await.expect(200).body;
        contexts.push((
            address,
            body["@odata.context"].as_str().unwrap_or_default().to_string(),
        ));
    }
    let by_ids = server
        .post(
            "/v1.0/directoryObjects/getByIds",
            json!({"ids": [anna.to_string()]}),
        )
        .await
        .expect(200)
        .body;
    contexts.push((
        "getByIds".to_string(),
        by_ids["@odata.context"].as_str().unwrap_or_default().to_string(),
    ));
    let created = server
        .post("/v1.0/groups", json!({"displayName": "New"}))
        .await
        .expect(201)
        .body;
    contexts.push((
        "POST /v1.0/groups".to_string(),
        created["@odata.context"].as_str().unwrap_or_default().to_string(),
    ));
    for (address, context) in contexts {
        let prefix = format!("{}/v1.0/$metadata#", server.base);
        let fragment = context
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{address}: {context} points to $metadata"));
        let set = fragment.split(['(', '/']).next().unwrap_or_default();
        assert!(
            sets.iter().any(|name| name == set),
            "{address}: '{set}' of {context} is not in {sets:?}"
        );
    }
}
