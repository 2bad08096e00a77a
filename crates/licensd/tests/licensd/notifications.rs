//! Change notifications survive `kill -9`: a user is created while the subscriber's endpoint
//! refuses notifications (503), so the notification is written (in the user's transaction) but
//! never acknowledged; licensd is killed with SIGKILL, started again, the endpoint recovers —
//! and the notification arrives (once or more, never zero). On both databases, loopback only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::receiver::Receiver;
use crate::support::{http, Server, TestDatabase};

/// Starts `licensd serve` with quick retries and a fixed instance id.
fn start(database: &TestDatabase, name: &str, token: &str) -> Server {
    let config = database.directory.path().join(format!("{name}.toml"));
    std::fs::write(
        &config,
        "instance-id = \"notify\"\nlisten = \"127.0.0.1:0\"\nnotification-retry-base-ms = 100\n\
         notification-retry-max-ms = 300\nnotification-max-attempts = 1000\n",
    )
    .expect("write the configuration");
    let log = database.directory.path().join(format!("{name}.log"));
    let log_file = std::fs::File::create(&log).expect("log file");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_licensd"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--database-url")
        .arg(&database.url)
        .env("LICENSD_LOG", "info")
        .env("LICENSD_BOOTSTRAP_TOKEN", token)
        .stdout(std::process::Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("start licensd serve");
    let mut server = Server { child, log };
    server.wait_until_serving(Duration::from_secs(60));
    server
}

fn a_notification_written_before_kill_9_arrives_after_the_restart(database: TestDatabase) {
    let token = licensd_runtime::access::generate_token_text().expect("a token");
    // Handshakes are answered; notifications get 503 until `up`, then 202.
    let up = Arc::new(AtomicBool::new(false));
    let receiver = Receiver::scripted({
        let up = up.clone();
        move |request, _| {
            if request.validation_token().is_some() {
                200
            } else if up.load(Ordering::SeqCst) {
                202
            } else {
                503
            }
        }
    });
    let server = start(&database, "before", &token);
    let address = server.address();
    let (status, subscription) = http(
        &address,
        "POST",
        "/v1.0/subscriptions",
        &token,
        Some(&json!({
            "changeType": "created",
            "notificationUrl": receiver.url("/notify"),
            "resource": "users",
            "expirationDateTime": licensd_api_types::time::format_date_time(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock")
                    .as_millis() as i64
                    + 3_600_000
            ),
            "clientState": "crash-test",
        })),
    );
    assert_eq!(status, 201, "{subscription}");
    let (status, user) = http(
        &address,
        "POST",
        "/v1.0/users",
        &token,
        Some(&json!({
            "displayName": "Crash",
            "userPrincipalName": "crash@contoso.com",
            "mailNickname": "crash",
            "passwordProfile": {"password": "not stored"},
        })),
    );
    assert_eq!(status, 201, "{user}");
    let user_id = user["id"].as_str().expect("the user's id").to_string();
    // The notification was tried (and refused) at least once: it is written and pending.
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver
        .received()
        .iter()
        .filter(|request| request.validation_token().is_none())
        .count()
        == 0
    {
        assert!(Instant::now() < deadline, "no delivery was attempted");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill_hard();

    up.store(true, Ordering::SeqCst);
    let accepted_before = receiver.received().len();
    let mut server = start(&database, "after", &token);
    let deadline = Instant::now() + Duration::from_secs(30);
    let arrived = loop {
        let received = receiver.received();
        let arrived: Vec<serde_json::Value> = received[accepted_before..]
            .iter()
            .filter(|request| request.validation_token().is_none())
            .flat_map(|request| {
                let body: serde_json::Value = serde_json::from_slice(&request.body).expect("JSON");
                body["value"].as_array().expect("value").clone()
            })
            .filter(|notification| {
                notification["changeType"] == "created"
                    && notification["resourceData"]["id"] == user_id.as_str()
            })
            .collect();
        if !arrived.is_empty() {
            break arrived;
        }
        server.assert_running();
        assert!(
            Instant::now() < deadline,
            "the notification did not arrive after the restart: {}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(arrived[0]["clientState"], "crash-test");
    server.stop();
}

#[test]
fn a_notification_written_before_kill_9_arrives_after_the_restart_sqlite() {
    a_notification_written_before_kill_9_arrives_after_the_restart(TestDatabase::sqlite());
}

#[test]
fn a_notification_written_before_kill_9_arrives_after_the_restart_postgres() {
    if let Some(database) = TestDatabase::postgres("notification_kill_9") {
        a_notification_written_before_kill_9_arrives_after_the_restart(database);
    }
}
