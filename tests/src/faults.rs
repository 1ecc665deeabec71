//! An HTTP fault injector for S3-compatible servers: a proxy that handles
//! each request on its own connection (it answers `Connection: close`, so
//! every request of the client passes through its rules) and can, per rule,
//! answer a status without forwarding, forward and then lose the response,
//! forward and then answer a 5xx, cut a request off mid-body, corrupt a
//! response body, replace it, or delay it.
//!
//! Rules match on method and a substring of the request line's path; each
//! fires a limited number of times, in order.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do to a matching request.
#[derive(Debug, Clone)]
pub enum Action {
    /// Answer this status (with an S3-style error body) without forwarding.
    Status(u16),
    /// Forward the request, wait for the server's answer, then close the
    /// connection without answering: the write landed, the client cannot know.
    ForwardThenDrop,
    /// Forward the request, then answer this status instead of the server's.
    ForwardThenStatus(u16),
    /// Forward the headers and part of the body, then cut both connections.
    DropMidRequest,
    /// Forward, then flip one byte in the middle of the response body.
    CorruptBody,
    /// Forward, then answer 200 with this body instead.
    ReplaceBody(Vec<u8>),
    /// Wait, then forward.
    Delay(Duration),
}

/// One rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `GET`, `PUT`, … or `None` for any.
    pub method: Option<String>,
    /// A substring of the path and query.
    pub path_contains: String,
    /// What to do.
    pub action: Action,
    /// How many matching requests it applies to (then it is spent).
    pub times: usize,
}

impl Rule {
    /// A rule for `method` requests whose path contains `path`, `times` times.
    pub fn new(method: &str, path: &str, action: Action, times: usize) -> Self {
        Self {
            method: Some(method.to_string()),
            path_contains: path.to_string(),
            action,
            times,
        }
    }
}

/// The proxy.
#[derive(Debug)]
pub struct FaultyHttp {
    addr: std::net::SocketAddr,
    rules: Arc<Mutex<Vec<Rule>>>,
    injected: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

/// A parsed request: the head as text lines and the body.
struct Req {
    method: String,
    path: String,
    head_lines: Vec<String>,
    body: Vec<u8>,
}

fn read_req(stream: &TcpStream) -> Option<Req> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    let mut parts = first.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut head_lines = vec![first.trim_end().to_string()];
    let mut len = 0usize;
    let mut chunked = false;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end().to_string();
        if h.is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
        if lower.starts_with("connection:") {
            continue;
        }
        head_lines.push(h);
    }
    let mut body = Vec::new();
    if chunked {
        // Re-frame as a plain body of known length.
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0u8; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        head_lines.retain(|l| !l.to_ascii_lowercase().starts_with("transfer-encoding:"));
        head_lines.push(format!("Content-Length: {}", body.len()));
    } else {
        body = vec![0u8; len];
        reader.read_exact(&mut body).ok()?;
    }
    Some(Req {
        method,
        path,
        head_lines,
        body,
    })
}

fn raw_request(req: &Req) -> Vec<u8> {
    let mut out = req.head_lines.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    out.extend_from_slice(&req.body);
    out
}

/// Forward `req` on a new connection and read the whole answer (the server
/// closes after it, as asked).
fn forward(up: &str, req: &Req) -> Option<Vec<u8>> {
    let mut server = TcpStream::connect(up).ok()?;
    server.set_read_timeout(Some(Duration::from_secs(60))).ok();
    server.write_all(&raw_request(req)).ok()?;
    let mut resp = Vec::new();
    server.read_to_end(&mut resp).ok()?;
    Some(resp)
}

/// Split a response into head and body.
fn split(resp: &[u8]) -> (Vec<u8>, Vec<u8>) {
    match resp.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (resp[..i].to_vec(), resp[i + 4..].to_vec()),
        None => (resp.to_vec(), Vec::new()),
    }
}

/// The same response, with `Connection: close` and, if given, a new body.
fn rewrite(resp: &[u8], new_body: Option<Vec<u8>>) -> Vec<u8> {
    let (head, body) = split(resp);
    let head = String::from_utf8_lossy(&head).to_string();
    if head.contains("\r\nX-Lifeboat-Head: 1") {
        // A HEAD answer: its Content-Length is the object's, with no body.
        let mut lines: Vec<String> = head
            .split("\r\n")
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                !l.starts_with("connection:") && !l.starts_with("x-lifeboat-head:")
            })
            .map(str::to_string)
            .collect();
        lines.push("Connection: close".into());
        let mut out = lines.join("\r\n").into_bytes();
        out.extend_from_slice(b"\r\n\r\n");
        return out;
    }
    let mut lines: Vec<String> = head.split("\r\n").map(str::to_string).collect();
    lines.retain(|l| {
        let l = l.to_ascii_lowercase();
        !l.starts_with("connection:")
            && !l.starts_with("content-length:")
            && !l.starts_with("transfer-encoding:")
            && !l.starts_with("content-md5:")
    });
    let chunked_in = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = match new_body {
        Some(b) => b,
        None if chunked_in => dechunk(&body),
        None => body,
    };
    let mut out = lines.join("\r\n");
    out.push_str(&format!(
        "\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut out = out.into_bytes();
    out.extend_from_slice(&body);
    out
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(i) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = String::from_utf8_lossy(&b[..i]).to_string();
        let Ok(n) = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16) else {
            return out;
        };
        if n == 0 || b.len() < i + 2 + n {
            return out;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[(i + 4 + n).min(b.len())..];
    }
}

fn error_response(status: u16) -> Vec<u8> {
    let (reason, code) = match status {
        503 => ("Slow Down", "SlowDown"),
        500 => ("Internal Server Error", "InternalError"),
        404 => ("Not Found", "NoSuchKey"),
        403 => ("Forbidden", "AccessDenied"),
        _ => ("Error", "InternalError"),
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected</Message></Error>"
    );
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl FaultyHttp {
    /// Start in front of `upstream` (`http://127.0.0.1:PORT`) with `rules`.
    pub fn start(upstream: &str, rules: Vec<Rule>) -> Self {
        let up = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let rules = Arc::new(Mutex::new(rules));
        let injected = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, inj, s) = (rules.clone(), injected.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                client.set_nonblocking(false).ok();
                let (up, r, inj) = (up.clone(), r.clone(), inj.clone());
                std::thread::spawn(move || serve(client, &up, &r, &inj));
            }
        });
        Self {
            addr,
            rules,
            injected,
            stop,
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Faults injected so far.
    pub fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }

    /// Add a rule (rules apply in the order added).
    pub fn add(&self, rule: Rule) {
        self.rules.lock().unwrap().push(rule);
    }

    /// Drop every remaining rule: from now on it only forwards.
    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }
}

impl Drop for FaultyHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn take_action(rules: &Mutex<Vec<Rule>>, method: &str, path: &str) -> Option<Action> {
    let mut rules = rules.lock().unwrap();
    let rule = rules.iter_mut().find(|r| {
        r.times > 0
            && r.method.as_deref().is_none_or(|m| m == method)
            && path.contains(&r.path_contains)
    })?;
    rule.times -= 1;
    Some(rule.action.clone())
}

fn serve(mut client: TcpStream, up: &str, rules: &Mutex<Vec<Rule>>, injected: &AtomicUsize) {
    client.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let Some(req) = read_req(&client) else {
        return;
    };
    let action = take_action(rules, &req.method, &req.path);
    if action.is_some() {
        injected.fetch_add(1, Ordering::SeqCst);
    }
    let is_head = req.method == "HEAD";
    let forward = |up: &str, req: &Req| {
        forward(up, req).map(|mut r| {
            if is_head {
                // Mark the answer so `rewrite` keeps its Content-Length.
                if let Some(i) = r.windows(2).position(|w| w == b"\r\n") {
                    r.splice(i..i, b"\r\nX-Lifeboat-Head: 1".iter().copied());
                }
            }
            r
        })
    };
    let out = match action {
        None => forward(up, &req).map(|r| rewrite(&r, None)),
        Some(Action::Status(s)) => Some(error_response(s)),
        Some(Action::ForwardThenDrop) => {
            let _ = forward(up, &req);
            None
        }
        Some(Action::ForwardThenStatus(s)) => {
            let _ = forward(up, &req);
            Some(error_response(s))
        }
        Some(Action::DropMidRequest) => {
            if let Ok(mut server) = TcpStream::connect(up) {
                let raw = raw_request(&req);
                let cut = raw.len() - req.body.len() / 2;
                let _ = server.write_all(&raw[..cut.max(1)]);
                let _ = server.shutdown(Shutdown::Both);
            }
            None
        }
        Some(Action::CorruptBody) => forward(up, &req).map(|r| {
            let (_, mut body) = split(&rewrite(&r, None));
            if !body.is_empty() {
                let i = body.len() / 2;
                body[i] ^= 0x5a;
            }
            rewrite(&r, Some(body))
        }),
        Some(Action::ReplaceBody(b)) => forward(up, &req).map(|r| rewrite(&r, Some(b))),
        Some(Action::Delay(d)) => {
            std::thread::sleep(d);
            forward(up, &req).map(|r| rewrite(&r, None))
        }
    };
    if let Some(bytes) = out {
        let _ = client.write_all(&bytes);
    }
    let _ = client.shutdown(Shutdown::Both);
}
