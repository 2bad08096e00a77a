//! The spend commands end to end against `licensd demo` (whose tenant has prices, departments,
//! a few leavers and inactive users): `licensd cost`, `licensd idle`, `licensd price set` and a
//! dry run of `licensd migrate direct-to-group`.

use serde_json::Value;

use crate::admin_cli::DemoServer;

fn amount(value: &Value) -> i64 {
    licensd_api_types::spend::parse_amount(value.as_str().unwrap_or_else(|| panic!("amount {value}")))
        .expect("an amount")
}

#[test]
fn spend_commands_on_the_demo_tenant() {
    let server = DemoServer::start();
    let cost = server.json(&["cost"]);
    let total = &cost["totals"][0];
    assert_eq!(total["currency"], "EUR", "{cost:#}");
    // The departments' costs add up to the consumed total.
    let departments: i64 = cost["departments"]
        .as_array()
        .expect("departments")
        .iter()
        .flat_map(|entry| entry["cost"].as_array().cloned().unwrap_or_default())
        .map(|entry| amount(&entry["amount"]))
        .sum();
    assert_eq!(departments, amount(&total["consumed"]));
    let names: Vec<&str> = cost["departments"]
        .as_array()
        .expect("departments")
        .iter()
        .filter_map(|entry| entry["value"].as_str())
        .collect();
    assert_eq!(names, vec!["Engineering", "Operations", "Sales"]);
    let table = server.text(&["cost"]);
    assert!(table.contains("Per department:"), "{table}");

    // Leavers (users 286-290) and inactive users (271-285) hold Frontline's E1.
    let idle = server.json(&["idle"]);
    let reasons: Vec<(&str, &str)> = idle["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|seat| {
            (
                seat["userPrincipalName"].as_str().unwrap_or_default(),
                seat["reason"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert!(reasons.contains(&("user288@contoso.com", "left")), "{idle:#}");
    assert!(reasons.contains(&("user275@contoso.com", "inactive")), "{idle:#}");
    assert_eq!(reasons.iter().filter(|(_, reason)| *reason == "left").count(), 5);

    let price = server.json(&[
        "price",
        "set",
        "--sku",
        "STANDARDPACK",
        "--price",
        "8.25",
        "--currency",
        "EUR",
    ]);
    assert_eq!(price["pricePerSeat"], "8.25");

    // Users 1-5 hold E1 directly and are not in Frontline: nothing to migrate, nothing changed.
    let dry = server.json(&[
        "migrate",
        "direct-to-group",
        "--group",
        "Frontline - Office 365 E1",
        "--sku",
        "STANDARDPACK",
    ]);
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["covered"], serde_json::json!([]));
    assert_eq!(dry["notInGroup"].as_array().expect("notInGroup").len(), 5);
    assert_eq!(dry["removed"], 0);
}
