//! A real HTTP receiver for tests: a loopback listener on its own thread that records every
//! request (method, target, headers, body, when) and answers each with the status its script
//! gives (with the `validationToken` echoed as Graph's handshake wants when asked to).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `validationToken` query parameter, decoded.
    pub fn validation_token(&self) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let value = pair.strip_prefix("validationToken=")?;
            Some(percent_decode(value))
        })
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        let hex = bytes
            .get(index + 1..index + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (byte, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                index += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                index += 1;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What to answer a request: a status, and whether to echo the validation token.
pub type Script = dyn Fn(&Received, usize) -> u16 + Send + Sync;

pub struct Receiver {
    pub address: SocketAddr,
    received: Arc<(Mutex<Vec<Received>>, Condvar)>,
}

impl Receiver {
    /// Answers a validation handshake 200 with the token, every other request 202 (Graph's
    /// "accepted").
    pub fn start() -> Receiver {
        Receiver::scripted(|request, _| {
            if request.validation_token().is_some() {
                200
            } else {
                202
            }
        })
    }

    /// Answers the n-th request (from 0, handshakes included) with `script`'s status; a request
    /// with a `validationToken` answered 200 gets the token back as `text/plain`.
    pub fn scripted(script: impl Fn(&Received, usize) -> u16 + Send + Sync + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let address = listener.local_addr().expect("receiver address");
        let received: Arc<(Mutex<Vec<Received>>, Condvar)> =
            Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let script: Arc<Script> = Arc::new(script);
        let shared = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = shared.clone();
                let script = script.clone();
                std::thread::spawn(move || serve(stream, &shared, script.as_ref()));
            }
        });
        Receiver { address, received }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.0.lock().expect("receiver lock").clone()
    }

    /// Hands the requests from the `from`-th on to `visit` (under the lock, without copying
    /// them); returns how many requests arrived in all.
    pub fn visit_from(&self, from: usize, mut visit: impl FnMut(&Received)) -> usize {
        let received = self.received.0.lock().expect("receiver lock");
        received.iter().skip(from).for_each(&mut visit);
        received.len()
    }

    /// Waits until `count` requests arrived (at most `timeout`); returns all received.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let (lock, changed) = &*self.received;
        let deadline = Instant::now() + timeout;
        let mut received = lock.lock().expect("receiver lock");
        while received.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            received = changed.wait_timeout(received, left).expect("receiver lock").0;
        }
        received.clone()
    }
}

fn serve(stream: TcpStream, shared: &(Mutex<Vec<Received>>, Condvar), script: &Script) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(clone) => clone,
        Err(_) => return,
    });
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        let length: usize = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request = Received {
            method,
            target,
            headers,
            body,
            at: Instant::now(),
        };
        let (lock, changed) = shared;
        let index = {
            let mut received = lock.lock().expect("receiver lock");
            received.push(request.clone());
            received.len() - 1
        };
        let status = script(&request, index);
        let body = match request.validation_token() {
            Some(token) if status == 200 => token,
            _ => String::new(),
        };
        let response = format!(
            "HTTP/1.1 {status} Status\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
        changed.notify_all();
    }
}
