//! The client against a scripted HTTP server on a real socket: what it sends (paths, token,
//! bodies), how it follows pages, and how each kind of failure comes back as a typed error.

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;

use licensd_client::api_types::graph::AssignLicenseRequest;
use licensd_client::{ClientConfig, ClientError, FailureKind, LicensdClient, Uuid};

/// A request as the scripted server received it.
#[derive(Debug)]
struct ReceivedRequest {
    request_line: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl ReceivedRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A server answering each connection with the next of `responses` (status, content type, body;
/// `{origin}` in a body is replaced by the server's address), then stopping.
struct ScriptedServer {
    origin: String,
    received: mpsc::Receiver<ReceivedRequest>,
    thread: Option<JoinHandle<()>>,
}

impl ScriptedServer {
    fn start(responses: Vec<(u16, &'static str, String)>) -> ScriptedServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let origin = format!("http://{}", listener.local_addr().expect("address"));
        let (sender, received) = mpsc::channel();
        let origin_for_thread = origin.clone();
        let thread = std::thread::spawn(move || {
            for (status, content_type, body) in responses {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let request = read_request(&stream);
                let _ = sender.send(request);
                let body = body.replace("{origin}", &origin_for_thread);
                respond(stream, status, content_type, &body);
            }
        });
        ScriptedServer {
            origin,
            received,
            thread: Some(thread),
        }
    }

    fn client(&self, token: Option<&str>) -> LicensdClient {
        LicensdClient::new(&ClientConfig {
            server: self.origin.clone(),
            token: token.map(str::to_string),
        })
        .expect("client")
    }

    fn next_request(&self) -> ReceivedRequest {
        self.received
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("a request reached the server")
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

fn read_request(stream: &TcpStream) -> ReceivedRequest {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).expect("request line");
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("body");
    ReceivedRequest {
        request_line: request_line.trim_end().to_string(),
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    }
}

fn respond(mut stream: TcpStream, status: u16, content_type: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 {status} Scripted\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         request-id: 0f0f0f0f-0000-4000-8000-000000000001\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

fn error_envelope(code: &str, licensd_code: &str, license_error: Option<&str>, message: &str) -> String {
    let mut inner = serde_json::json!({
        "date": "2026-11-24T21:12:20",
        "request-id": "62b5999d-0ea3-41ec-a072-6fa5decee724",
        "client-request-id": "62b5999d-0ea3-41ec-a072-6fa5decee724",
        "licensdCode": licensd_code,
    });
    if let Some(license_error) = license_error {
        inner["licenseError"] = serde_json::Value::from(license_error);
    }
    serde_json::json!({"error": {"code": code, "message": message, "innerError": inner}}).to_string()
}

const JSON: &str = "application/json";

#[test]
fn the_token_is_sent_as_a_bearer_credential_and_absent_without_one() {
    let server = ScriptedServer::start(vec![
        (200, JSON, r#"{"value": []}"#.to_string()),
        (200, JSON, r#"{"value": []}"#.to_string()),
    ]);
    let products = server.client(Some("s3cret")).products().expect("products");
    assert!(products.is_empty());
    let request = server.next_request();
    assert_eq!(request.request_line, "GET /licensd/v1/skus HTTP/1.1");
    assert_eq!(request.header("authorization"), Some("Bearer s3cret"));
    assert_eq!(request.header("accept"), Some("application/json"));
    server.client(None).products().expect("products");
    assert_eq!(server.next_request().header("authorization"), None);
}

#[test]
fn a_refusal_keeps_the_servers_error_envelope() {
    let server = ScriptedServer::start(vec![(
        400,
        JSON,
        error_envelope(
            "Request_BadRequest",
            "license_assignment_failed",
            Some("CountViolation"),
            "License assignment failed because there are not enough licenses.",
        ),
    )]);
    let sku_id = Uuid::from_u128(7);
    let request = AssignLicenseRequest {
        add_licenses: Some(vec![licensd_client::api_types::graph::AssignedLicense {
            disabled_plans: Vec::new(),
            sku_id,
            odata_type: None,
        }]),
        remove_licenses: Some(Vec::new()),
    };
    let error = server
        .client(None)
        .assign_user_license("AdeleV@contoso.com", &request)
        .expect_err("refused");
    let received = server.next_request();
    assert_eq!(
        received.request_line,
        "POST /v1.0/users/AdeleV@contoso.com/assignLicense HTTP/1.1"
    );
    let body: serde_json::Value = serde_json::from_str(&received.body).expect("a JSON body");
    assert_eq!(body["addLicenses"][0]["skuId"], sku_id.to_string());
    assert_eq!(body["removeLicenses"], serde_json::json!([]));
    assert_eq!(error.kind(), FailureKind::Refused);
    assert_eq!(error.http_status(), Some(400));
    let envelope = error.server_error().expect("the envelope");
    assert_eq!(envelope.inner_error.licensd_code, "license_assignment_failed");
    assert_eq!(
        envelope.inner_error.license_error.as_deref(),
        Some("CountViolation")
    );
    let message = error.to_string();
    assert!(message.contains("not enough licenses"), "{message}");
    assert!(message.contains("Request_BadRequest"), "{message}");
    assert!(
        message.contains("request-id 62b5999d-0ea3-41ec-a072-6fa5decee724"),
        "{message}"
    );
}

#[test]
fn server_failures_and_foreign_answers_are_unavailable() {
    let server = ScriptedServer::start(vec![
        (
            503,
            JSON,
            error_envelope(
                "serviceNotAvailable",
                "storage_unavailable",
                None,
                "The database is not available; nothing was changed. Try again.",
            ),
        ),
        (
            502,
            "text/html",
            "<html><h1>502 Bad Gateway</h1></html>".to_string(),
        ),
        (200, "text/html", "<html>a login page</html>".to_string()),
    ]);
    let client = server.client(None);
    let error = client.products().expect_err("503");
    assert_eq!(error.kind(), FailureKind::Unavailable);
    assert!(error.to_string().contains("Try again"), "{error}");
    let error = client.products().expect_err("502");
    assert_eq!(error.kind(), FailureKind::Unavailable);
    assert!(
        matches!(error, ClientError::UnexpectedStatus { status: 502, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("502 Bad Gateway"), "{error}");
    assert!(error.to_string().contains("request-id 0f0f0f0f"), "{error}");
    let error = client.products().expect_err("not JSON");
    assert!(matches!(error, ClientError::InvalidResponse { .. }), "{error:?}");
    assert_eq!(error.kind(), FailureKind::Unavailable);
}

#[test]
fn an_unreachable_server_says_where_it_was_looked_for() {
    let address = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    };
    let client = LicensdClient::new(&ClientConfig {
        server: address.to_string(),
        token: None,
    })
    .expect("client");
    let error = client.products().expect_err("nobody listens");
    assert_eq!(error.kind(), FailureKind::Unavailable);
    assert!(matches!(error, ClientError::Unreachable { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&format!("cannot reach licensd at http://{address}")),
        "{message}"
    );
    assert!(message.to_lowercase().contains("refused"), "{message}");
}

#[test]
fn collections_are_read_to_their_last_page() {
    let user = |number: u128, upn: &str| {
        serde_json::json!({
            "@odata.type": "#microsoft.graph.user",
            "id": Uuid::from_u128(number).to_string(),
            "displayName": upn,
            "userPrincipalName": upn,
            "mail": null,
            "accountEnabled": true,
            "usageLocation": "US",
            "proxyAddresses": [],
            "assignedLicenses": [],
            "licenseAssignmentStates": [{
                "assignedByGroup": null,
                "disabledPlans": [],
                "error": "None",
                "lastUpdatedDateTime": null,
                "skuId": Uuid::from_u128(9).to_string(),
                "state": "Active"
            }]
        })
    };
    let first = serde_json::json!({
        "@odata.context": "{origin}/v1.0/$metadata#users",
        "@odata.nextLink": "{origin}/v1.0/users?$top=999&$skiptoken=page2",
        "value": [user(1, "a@contoso.com")]
    });
    let second = serde_json::json!({
        "@odata.context": "{origin}/v1.0/$metadata#users",
        "value": [user(2, "b@contoso.com")]
    });
    let server = ScriptedServer::start(vec![
        (200, JSON, first.to_string()),
        (200, JSON, second.to_string()),
    ]);
    let users = server
        .client(None)
        .users_with_license_states()
        .expect("two pages");
    let names: Vec<&str> = users
        .iter()
        .map(|user| user.user_principal_name.as_str())
        .collect();
    assert_eq!(names, ["a@contoso.com", "b@contoso.com"]);
    assert_eq!(users[1].license_assignment_states[0].state, "Active");
    let first_request = server.next_request();
    assert!(
        first_request
            .request_line
            .starts_with("GET /v1.0/users?%24select=")
            && first_request.request_line.contains("licenseAssignmentStates"),
        "{}",
        first_request.request_line
    );
    assert_eq!(
        server.next_request().request_line,
        "GET /v1.0/users?$top=999&$skiptoken=page2 HTTP/1.1"
    );
}

#[test]
fn explanations_are_optional_when_the_server_lacks_the_endpoint() {
    let server = ScriptedServer::start(vec![
        (
            404,
            JSON,
            error_envelope(
                "Request_ResourceNotFound",
                "route_not_found",
                None,
                "No resource exists at this address.",
            ),
        ),
        (
            404,
            JSON,
            error_envelope(
                "Request_ResourceNotFound",
                "resource_not_found",
                None,
                "Resource 'nobody' does not exist or one of its queried reference-property objects are not present.",
            ),
        ),
    ]);
    let client = server.client(None);
    assert_eq!(
        client.explained_license_states("adele").expect("no endpoint"),
        None
    );
    let error = client
        .explained_license_states("nobody")
        .expect_err("no such user");
    assert_eq!(error.kind(), FailureKind::Refused);
    assert!(
        error.to_string().contains("Resource 'nobody' does not exist"),
        "{error}"
    );
}
