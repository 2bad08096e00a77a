//! `/v1.0/subscribedSkus`: products with Graph's shape, seats per subscription status, `$select`,
//! lookup by `{tenantId}_{skuId}` or `skuId`, and the query options Graph does not support here.

use serde_json::json;

use crate::support::{on_both_backends, TestServer, E1, E3};

on_both_backends!(subscribed_skus_have_graphs_shape_and_count_seats);

async fn subscribed_skus_have_graphs_shape_and_count_seats(server: &TestServer) {
    let empty = server.get("/v1.0/subscribedSkus").await.expect(200).body;
    assert_eq!(empty["value"], json!([]));
    server.import_seed_products(5, 3, 2, 1).await;
    let user = server.create_user("joni", Some("US")).await;
    server
        .post(
            &format!("/v1.0/users/{user}/assignLicense"),
            json!({"addLicenses": [{"skuId": E3}], "removeLicenses": []}),
        )
        .await
        .expect(200);

    let listed = server.get("/v1.0/subscribedSkus").await.expect(200).body;
    assert_eq!(
        listed["@odata.context"],
        format!("{}/v1.0/$metadata#subscribedSkus", server.base)
    );
    let skus = listed["value"].as_array().expect("skus");
    assert_eq!(skus.len(), 4);
    let e3 = skus.iter().find(|sku| sku["skuId"] == E3).expect("E3");
    let tenant = e3["accountId"].as_str().expect("accountId").to_string();
    assert_eq!(e3["id"], format!("{tenant}_{E3}"));
    assert_eq!(e3["skuPartNumber"], "ENTERPRISEPACK");
    assert_eq!(e3["appliesTo"], "User");
    assert_eq!(e3["capabilityStatus"], "Enabled");
    assert_eq!(e3["consumedUnits"], 1);
    assert_eq!(
        e3["prepaidUnits"],
        json!({"enabled": 3, "suspended": 0, "warning": 0, "lockedOut": 0})
    );
    let plan = &e3["servicePlans"][0];
    for property in [
        "servicePlanId",
        "servicePlanName",
        "provisioningStatus",
        "appliesTo",
    ] {
        assert!(
            plan.get(property).is_some(),
            "servicePlanInfo has {property}: {plan:#}"
        );
    }

    let by_graph_id = server
        .get(&format!("/v1.0/subscribedSkus/{tenant}_{E3}"))
        .await
        .expect(200)
        .body;
    let by_sku_id = server
        .get(&format!("/v1.0/subscribedSkus/{E3}"))
        .await
        .expect(200)
        .body;
    assert_eq!(by_graph_id, by_sku_id);
    assert_eq!(by_graph_id["consumedUnits"], 1);

    let selected = server
        .get("/v1.0/subscribedSkus?$select=skuPartNumber,consumedUnits")
        .await
        .expect(200)
        .body;
    assert_eq!(
        selected["value"][0],
        json!({"skuPartNumber": "STANDARDPACK", "consumedUnits": 0})
    );

    // A suspended subscription shows its units as suspended.
    server
        .patch(
            &format!("/licensd/v1/skus/{E1}"),
            json!({"capabilityStatus": "Suspended"}),
        )
        .await
        .expect(200);
    let suspended = server
        .get(&format!("/v1.0/subscribedSkus/{E1}"))
        .await
        .expect(200)
        .body;
    assert_eq!(suspended["capabilityStatus"], "Suspended");
    assert_eq!(
        suspended["prepaidUnits"],
        json!({"enabled": 0, "suspended": 5, "warning": 0, "lockedOut": 0})
    );

    server
        .get("/v1.0/subscribedSkus?$filter=skuPartNumber eq 'ENTERPRISEPACK'")
        .await
        .expect_error(400, "Request_UnsupportedQuery");
    server
        .get("/v1.0/subscribedSkus?$top=1")
        .await
        .expect_error(400, "Request_UnsupportedQuery");
    server
        .get(&format!("/v1.0/subscribedSkus/{}", uuid::Uuid::new_v4()))
        .await
        .expect_error(404, "Request_ResourceNotFound");
    server
        .get(&format!("/v1.0/subscribedSkus/{}_{E3}", uuid::Uuid::new_v4()))
        .await
        .expect_error(404, "Request_ResourceNotFound");
    server
        .get("/v1.0/subscribedSkus/garbage")
        .await
        .expect_error(404, "Request_ResourceNotFound");
}
