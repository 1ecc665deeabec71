//! Small HTTP helpers for tests: a recorder that answers every request with a
//! fixed status and keeps what it got (webhooks, Pushgateway), and a
//! fault-injecting TCP proxy in front of an S3 server (503s, dropped
//! connections mid-upload, held multipart completions).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the recorder received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `POST`, `PUT`, …
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The body as text.
    pub body: String,
}

/// An HTTP server on 127.0.0.1 that records requests and answers `status`.
#[derive(Debug)]
pub struct Recorder {
    addr: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
}

/// Method, path, headers (lowercase names) and body of one request.
type Request = (String, String, Vec<(String, String)>, Vec<u8>);

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end().to_string();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    Some((method, path, headers, body))
}

impl Recorder {
    /// Start a recorder answering `status` to everything.
    pub fn start(status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        stream.set_nonblocking(false).ok();
                        stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
                        if let Some((method, path, _, body)) = read_request(&mut stream) {
                            r.lock().unwrap().push(Recorded {
                                method,
                                path,
                                body: String::from_utf8_lossy(&body).to_string(),
                            });
                            let _ = write!(
                                stream,
                                "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                            );
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self {
            addr,
            requests,
            stop,
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What it received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What the proxy does to S3 multipart part uploads (`PUT …partNumber=…`)
/// that start a connection.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Answer this many of them with `503 SlowDown`.
    pub status_503: usize,
    /// Then cut this many of them off after part of the body.
    pub drop_mid_upload: usize,
}

/// How [`FaultProxy::hold_completions`] holds multipart completion requests
/// (`POST …?uploadId=…`, S3's and GCS's XML API alike).
#[derive(Debug, Clone, Copy)]
pub enum HoldCompletion {
    /// Keep the request this long, then forward it anyway: it reaches the
    /// server late, after the client may have given up on it.
    BeforeForwarding(Duration),
    /// Forward it at once (the server completes the upload), but keep the
    /// answer this long.
    Answer(Duration),
}

/// A TCP proxy to `upstream` that injects [`Faults`].
#[derive(Debug)]
pub struct FaultProxy {
    addr: std::net::SocketAddr,
    injected: Arc<AtomicUsize>,
    released: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Start in front of `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str, faults: Faults) -> Self {
        let up = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let injected = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (inj, s) = (injected.clone(), stop.clone());
        let budget = Arc::new(Mutex::new((faults.status_503, faults.drop_mid_upload)));
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                client.set_nonblocking(false).ok();
                let (up, inj, budget) = (up.clone(), inj.clone(), budget.clone());
                std::thread::spawn(move || serve(client, &up, &inj, &budget));
            }
        });
        Self {
            addr,
            injected,
            released: Arc::new(AtomicUsize::new(0)),
            stop,
        }
    }

    /// Start in front of `upstream`, passing everything through except
    /// multipart completions, which are held as `hold` says. Every request
    /// gets its own upstream connection, and every answer says
    /// `Connection: close`, so that no completion hides behind a reused
    /// connection.
    pub fn hold_completions(upstream: &str, hold: HoldCompletion) -> Self {
        let up = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let injected = Arc::new(AtomicUsize::new(0));
        let released = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (held, rel, s) = (injected.clone(), released.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                client.set_nonblocking(false).ok();
                let (up, held, rel) = (up.clone(), held.clone(), rel.clone());
                std::thread::spawn(move || serve_holding(client, &up, hold, &held, &rel));
            }
        });
        Self {
            addr,
            injected,
            released,
            stop,
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Faults injected so far (for [`hold_completions`](Self::hold_completions):
    /// completion requests that were held).
    pub fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }

    /// Held completion requests whose hold is over: forwarded, answered by
    /// the server, and the answer passed on (or dropped, if the client left).
    pub fn released(&self) -> usize {
        self.released.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(mut client: TcpStream, up: &str, injected: &AtomicUsize, budget: &Mutex<(usize, usize)>) {
    // Peek at the first request line to decide.
    let mut first = vec![0u8; 4096];
    let n = match client.peek(&mut first) {
        Ok(n) => n,
        Err(_) => return,
    };
    let head = String::from_utf8_lossy(&first[..n]).to_string();
    let is_part = head.starts_with("PUT ")
        && head
            .lines()
            .next()
            .is_some_and(|l| l.contains("partNumber="));
    if is_part {
        let mut b = budget.lock().unwrap();
        if b.0 > 0 {
            b.0 -= 1;
            drop(b);
            injected.fetch_add(1, Ordering::SeqCst);
            let _ = read_request(&mut client);
            let body = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
            let _ = write!(
                client,
                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            return;
        }
        if b.1 > 0 {
            b.1 -= 1;
            drop(b);
            injected.fetch_add(1, Ordering::SeqCst);
            // Forward the headers and some of the body, then cut both sides.
            if let Ok(mut server) = TcpStream::connect(up) {
                let mut buf = vec![0u8; 64 * 1024];
                if let Ok(n) = client.read(&mut buf) {
                    let _ = server.write_all(&buf[..n]);
                }
                let _ = server.shutdown(std::net::Shutdown::Both);
            }
            let _ = client.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
    let Ok(server) = TcpStream::connect(up) else {
        return;
    };
    let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let t = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut s2);
        let _ = s2.shutdown(std::net::Shutdown::Write);
    });
    let (mut c3, mut s3) = (client, server);
    let _ = std::io::copy(&mut s3, &mut c3);
    let _ = c3.shutdown(std::net::Shutdown::Write);
    let _ = t.join();
}

/// Read one request or response head (through the blank line) and, for a
/// request, its `Content-Length` body. Returns head and body.
fn read_message(stream: &mut TcpStream, with_body: bool) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let mut body = buf.split_off(head_end);
    if with_body {
        let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
        let len: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while body.len() < len {
            let n = stream.read(&mut chunk).ok()?;
            if n == 0 {
                return None;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Some((buf, body))
}

/// `head` with any `Connection` header replaced by `Connection: close`.
fn force_close(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in text.trim_end_matches("\r\n").split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

fn serve_holding(
    mut client: TcpStream,
    up: &str,
    hold: HoldCompletion,
    held: &AtomicUsize,
    released: &AtomicUsize,
) {
    let Some((head, body)) = read_message(&mut client, true) else {
        return;
    };
    let first_line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let is_completion = first_line.starts_with("POST ") && first_line.contains("uploadId=");
    if is_completion && let HoldCompletion::BeforeForwarding(d) = hold {
        held.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(d);
    }
    let Ok(mut server) = TcpStream::connect(up) else {
        return;
    };
    let forwarded = server
        .write_all(&force_close(&head))
        .and_then(|()| server.write_all(&body));
    let answer = forwarded
        .ok()
        .and_then(|()| read_message(&mut server, false));
    if is_completion && let HoldCompletion::Answer(d) = hold {
        // Counted only now: the server has completed the upload.
        held.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(d);
    }
    if let Some((resp_head, resp_start)) = answer {
        let _ = client.write_all(&force_close(&resp_head));
        let _ = client.write_all(&resp_start);
        let _ = std::io::copy(&mut server, &mut client);
    }
    if is_completion {
        released.fetch_add(1, Ordering::SeqCst);
    }
    let _ = client.shutdown(std::net::Shutdown::Both);
}
