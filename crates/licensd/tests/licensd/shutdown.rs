//! `licensd serve` and SIGTERM (issue 20): a client holding a half-sent request does not keep
//! the process alive; it exits once the configured drain period has passed.

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::TestDatabase;

#[test]
fn sigterm_with_a_half_sent_request_exits_within_the_drain_period() {
    let database = TestDatabase::sqlite();
    let config = database.directory.path().join("drain.toml");
    // Read timeouts far longer than the drain: only the drain can end the held connections.
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\nheader-read-timeout-ms = 600000\nbody-read-timeout-ms = 600000\n\
         shutdown-drain-ms = 500\n",
    )
    .expect("write the configuration");
    let log = database.directory.path().join("drain.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_licensd"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--database-url")
        .arg(&database.url)
        .env("LICENSD_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start licensd serve");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    let address = loop {
        let text = log_text();
        if let Some(line) = text.lines().find(|line| line.contains("licensd is serving")) {
            let address = line
                .split("address=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .expect("the log names the address")
                .to_string();
            break address;
        }
        assert!(Instant::now() < deadline, "licensd serve did not start: {text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut half_head = TcpStream::connect(&address).expect("connect");
    half_head
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: licensd\r\n")
        .expect("write");
    let mut half_body = TcpStream::connect(&address).expect("connect");
    half_body
        .write_all(b"POST /v1.0/users HTTP/1.1\r\nHost: licensd\r\nContent-Length: 100\r\n\r\n{")
        .expect("write");
    // A whole request on a third connection, answered: the server has accepted the two before
    // it (the listen backlog is first in, first out), however loaded the machine is.
    let mut whole = TcpStream::connect(&address).expect("connect");
    whole
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: licensd\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut whole, &mut answer).expect("read the answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    std::thread::sleep(Duration::from_millis(100));
    let signalled = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("send SIGTERM");
    assert!(signalled.success());
    // A bound far above the 500 ms drain; without it the process never exits.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(
                status.success(),
                "licensd serve exited with {status}: {}",
                log_text()
            );
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("licensd serve did not exit after SIGTERM: {}", log_text());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        log_text().contains("connections still open after the drain period are closed"),
        "{}",
        log_text()
    );
    drop((half_head, half_body));
}
