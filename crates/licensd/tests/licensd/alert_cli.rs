//! `licensd alert list|add|remove` (and `licensd reclaim exempt|unexempt|enable|disable`) end to
//! end: the CLI as a process against `licensd demo`, a
//! rule added through it delivering a Slack message to a webhook receiver on the loopback when
//! seats run over, a bad rule refused with exit code 1 and the field named, and removal.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::admin_cli::{sku_id, wait_for_json, DemoServer};

/// A webhook receiver on the loopback (plain HTTP/1.1 over a thread): every POST body.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));
        let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
        let received = Arc::clone(&bodies);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_ok() {
                    received
                        .lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                }
                let _ =
                    stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        Receiver { url, bodies }
    }

    fn wait_for(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.bodies.lock().unwrap().len() < count {
            assert!(Instant::now() < deadline, "no alert arrived");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        self.bodies.lock().unwrap().clone()
    }
}

#[test]
fn alert_rules_are_added_listed_delivered_to_chat_and_removed() {
    let server = DemoServer::start();
    let receiver = Receiver::start();
    let ems = sku_id(&server, "EMS");
    // Refused with the field named, exit code 1, nothing stored.
    let bad = server.run(&[
        "alert",
        "add",
        "--name",
        "x",
        "--condition",
        "seats",
        "--threshold",
        "half",
        "--webhook",
        &receiver.url,
    ]);
    bad.assert_exit(1);
    assert!(bad.stderr.contains("threshold"), "{}", bad.stderr);
    assert_eq!(server.text(&["alert", "list"]), "No alert rules.\n");

    let added = server.json(&[
        "alert",
        "add",
        "--name",
        "EMS over-allocated",
        "--condition",
        "seats",
        "--sku",
        &ems,
        "--threshold",
        "overAllocated",
        "--webhook",
        &receiver.url,
        "--format",
        "slack",
    ]);
    assert_eq!(added["condition"], "seats");
    assert_eq!(added["threshold"], "overAllocated");
    let id = added["id"].as_str().expect("id").to_string();
    let table = server.text(&["alert", "list"]);
    assert!(
        table.contains("EMS over-allocated") && table.contains("overAllocated"),
        "{table}"
    );

    // Every waiting user gets a seat (150 of 150: not over), then seats are lowered to 145.
    server.json(&["seats", "set", "EMS", "150"]);
    wait_for_json(&server, &["sku", "list"], "150 EMS seats used", |products| {
        products["value"].as_array().is_some_and(|products| {
            products
                .iter()
                .any(|p| p["skuPartNumber"] == "EMS" && p["consumedUnits"] == 150)
        })
    });
    assert!(receiver.bodies.lock().unwrap().is_empty());
    server.json(&["seats", "set", "EMS", "145"]);
    let alerts = receiver.wait_for(1);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(
        alerts[0]["text"],
        "EMS over-allocated: EMS now has more seats used than purchased"
    );
    assert!(alerts[0]["blocks"][1]["text"]["text"]
        .as_str()
        .is_some_and(|text| text.contains("EMS: 150 of 145 seats used")));

    let removed = server.text(&["alert", "remove", &id]);
    assert_eq!(removed, format!("Removed alert rule {id}.\n"));
    server.run(&["alert", "remove", &id]).assert_exit(1);

    // A rule on one reclamation policy's notices; an unknown policy is refused, named.
    let policy = server.json(&[
        "reclaim",
        "add",
        "--name",
        "Leavers",
        "--reason",
        "left",
        "--disabled",
    ]);
    let policy = policy["id"].as_str().expect("a policy id").to_string();
    let unknown = server.run(&[
        "alert",
        "add",
        "--name",
        "x",
        "--condition",
        "reclamationNoticed",
        "--policy",
        "0b6a5d1e-5b1f-4d7e-9c8a-2f0e8f1b7c11",
        "--webhook",
        &receiver.url,
    ]);
    unknown.assert_exit(1);
    assert!(unknown.stderr.contains("policyId"), "{}", unknown.stderr);
    let added = server.json(&[
        "alert",
        "add",
        "--name",
        "Seats about to be reclaimed",
        "--condition",
        "reclamationNoticed",
        "--policy",
        &policy,
        "--webhook",
        &receiver.url,
        "--format",
        "teams",
    ]);
    assert_eq!(added["condition"], "reclamationNoticed");
    assert_eq!(added["policyId"], policy.as_str());
    let table = server.text(&["alert", "list"]);
    assert!(
        table.contains("Seats about to be reclaimed")
            && table.contains(&format!("reclamationNoticed policy={policy}")),
        "{table}"
    );

    // `licensd reclaim exempt|unexempt|enable|disable`: a demo leaver exempted and back; the
    // policy enabled and disabled again.
    let exempted = server.json(&["reclaim", "exempt", "Leavers", "user286@contoso.com"]);
    assert_eq!(exempted["exempt"], true);
    let user = exempted["userId"].as_str().expect("a user id").to_string();
    let policies = server.json(&["reclaim", "policies"]);
    assert_eq!(policies["value"][0]["excludedUserIds"], serde_json::json!([user]));
    assert_eq!(
        server.text(&["reclaim", "unexempt", "Leavers", "user286@contoso.com"]),
        "user286@contoso.com is no longer exempt from Leavers.\n"
    );
    server
        .run(&["reclaim", "unexempt", "Leavers", "user286@contoso.com"])
        .assert_exit(1);
    assert_eq!(server.json(&["reclaim", "enable", "Leavers"])["enabled"], true);
    assert!(server.text(&["reclaim", "disable", "Leavers"]).contains("manual"));
    assert_eq!(
        server.json(&["reclaim", "policies"])["value"][0]["enabled"],
        false
    );
}
