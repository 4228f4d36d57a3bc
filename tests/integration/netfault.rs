//! A throttling, fault-injecting HTTP proxy in front of a moto server (plain std threads), for
//! what a real network and a bucket others can write to do: a bandwidth limit each way, a
//! response that stalls or is cut after N bytes of its body, a request body that stalls, a
//! status forced on matching requests (403 on deletes: a write-only key), an endpoint that
//! accepts and never answers. One request per connection (`Connection: close` both ways).
//! Rules match the request line (method, and a substring of the path) and fire a set number of
//! times; every request line seen is logged for the test to read.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a rule does to a matching request.
#[derive(Debug, Clone)]
pub enum Act {
    /// Pass on the first N bytes of the response body, then send nothing more (the connection
    /// stays open until the client gives up, or 30 s).
    StallAfter(u64),
    /// Pass on the first N bytes of the response body, then close the connection.
    CutAfter(u64),
    /// Read the first N bytes of the request body, then read nothing more (an upload stalls).
    StallUpload(u64),
    /// Answer with this status and S3 error code, without asking the server.
    Status(u16, &'static str),
    /// Accept the request and never answer (30 s at most).
    Hang,
}

#[derive(Debug)]
struct Rule {
    method: String,
    path_has: String,
    act: Act,
    left: u32,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Bytes per second each way per connection; 0: no limit.
    rate: AtomicU64,
    rules: Mutex<Vec<Rule>>,
    log: Mutex<Vec<String>>,
    /// Response body bytes passed to clients.
    sent: AtomicU64,
}

pub struct Net {
    pub port: u16,
    shared: Arc<Shared>,
    /// The listening socket (open while the proxy runs): its receive buffer is what the
    /// connections it accepts start with.
    listener: std::os::fd::RawFd,
}

/// Below this rate (bytes per second) the link is slow: see [`Net::rate`].
const SLOW: u64 = 64 << 10;

impl Net {
    /// A proxy to the server on 127.0.0.1:`upstream`.
    pub fn start(upstream: u16) -> Net {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        listener.set_nonblocking(true).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
        std::thread::spawn(move || {
            // Bounded: the proxy stops with its test, or after 10 minutes at most.
            let deadline = Instant::now() + Duration::from_secs(600);
            while !s.stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((client, _)) => {
                        let s = Arc::clone(&s);
                        std::thread::spawn(move || serve(client, upstream, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Net { port, shared, listener: fd }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Limit each connection to `bytes_per_s` each way (0: no limit). A slow link (under
    /// 64 KiB/s) is modelled as one: connections accepted from now on get a small receive
    /// buffer, read in small pieces, so the client's kernel sees its data acknowledged only as
    /// the link carries it (not all at once, as a proxy that buffers everything would).
    pub fn rate(&self, bytes_per_s: u64) -> &Net {
        self.shared.rate.store(bytes_per_s, Ordering::SeqCst);
        if bytes_per_s > 0 && bytes_per_s < SLOW {
            let size: libc::c_int = 4096;
            // SAFETY: the listener is open while the proxy runs; a c_int option of its size.
            let rc = unsafe {
                libc::setsockopt(
                    self.listener,
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "setsockopt SO_RCVBUF");
        }
        self
    }

    /// Do `act` to the next `times` requests whose method is `method` ("" for any) and whose
    /// request line after the method (`/bucket/key?query HTTP/1.1`) contains `path_has`.
    pub fn rule(&self, method: &str, path_has: &str, act: Act, times: u32) -> &Net {
        self.shared.rules.lock().unwrap().push(Rule {
            method: method.to_string(),
            path_has: path_has.to_string(),
            act,
            left: times,
        });
        self
    }

    pub fn clear(&self) {
        self.shared.rules.lock().unwrap().clear();
        self.shared.rate.store(0, Ordering::SeqCst);
    }

    /// The request lines seen so far (`GET /bucket/key?… HTTP/1.1`).
    pub fn requests(&self) -> Vec<String> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Response body bytes passed on so far.
    pub fn bytes_sent(&self) -> u64 {
        self.shared.sent.load(Ordering::SeqCst)
    }

    /// How many requests seen so far had `method` and a path containing `path_has`.
    pub fn count(&self, method: &str, path_has: &str) -> usize {
        self.requests()
            .iter()
            .filter(|l| l.starts_with(&format!("{method} ")) && l.contains(path_has))
            .count()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

/// Sleep as long as `n` bytes take at the proxy's rate.
fn pace(shared: &Shared, n: usize) {
    let rate = shared.rate.load(Ordering::SeqCst);
    if rate > 0 {
        std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
    }
}

/// Wait up to 30 s, or until the proxy stops.
fn hold(shared: &Shared) {
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first rule matching `line`, used once.
fn take_rule(shared: &Shared, line: &str) -> Option<Act> {
    let mut rules = shared.rules.lock().unwrap();
    let (method, rest) = line.split_once(' ')?;
    let r = rules
        .iter_mut()
        .find(|r| r.left > 0 && (r.method.is_empty() || r.method == method) && rest.contains(&r.path_has))?;
    r.left -= 1;
    Some(r.act.clone())
}

/// The head of a request or response: up to and including the blank line, and what was read
/// past it.
fn read_head(c: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = c.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i + 4]).into_owned();
            return Some((head, buf[i + 4..].to_vec()));
        }
    }
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

/// The head with `Connection: close` in place of any Connection header.
fn closing(head: &str) -> String {
    head.lines()
        .filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with("connection:"))
        .map(|l| format!("{l}\r\n"))
        .collect::<String>()
        + "Connection: close\r\n\r\n"
}

fn serve(mut client: TcpStream, upstream: u16, shared: &Shared) {
    let Some((head, mut body)) = read_head(&mut client) else { return };
    let line = head.lines().next().unwrap_or("").to_string();
    // The access key id a signed request names (what credentials kfadmin used).
    let cred = head
        .split("Credential=")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .map(|k| format!(" [cred {k}]"))
        .unwrap_or_default();
    shared.log.lock().unwrap().push(format!("{line}{cred}"));
    let act = take_rule(shared, &line);
    let len = content_length(&head);
    // The request body, at the link's pace; a stalled upload stops reading. A slow link (under
    // 64 KiB/s) is modelled as one: the proxy's receive buffer is small and read in small
    // pieces, so the client's kernel sees its data acknowledged only as the link carries it
    // (a proxy that takes in everything at once acknowledges what it has not sent on).
    let rate = shared.rate.load(Ordering::SeqCst);
    let piece = if rate > 0 && rate < SLOW { (rate as usize / 8).max(256) } else { 16 << 10 };
    let mut chunk = vec![0u8; piece];
    while body.len() < len {
        if let Some(Act::StallUpload(n)) = act {
            if body.len() as u64 >= n {
                hold(shared);
                return;
            }
        }
        let want = chunk.len().min(len - body.len());
        let Ok(n) = client.read(&mut chunk[..want]) else { return };
        if n == 0 {
            return;
        }
        pace(shared, n);
        body.extend_from_slice(&chunk[..n]);
    }
    match act {
        Some(Act::Status(code, what)) => {
            let mut text =
                format!("<Error><Code>{what}</Code><Message>injected by the test proxy</Message></Error>");
            if line.starts_with("HEAD ") {
                text.clear();
            }
            let resp = format!(
                "HTTP/1.1 {code} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
            let _ = client.write_all(resp.as_bytes());
            return;
        }
        Some(Act::Hang) => {
            hold(shared);
            return;
        }
        _ => {}
    }
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else { return };
    if up.write_all(closing(&head).as_bytes()).and_then(|()| up.write_all(&body)).is_err() {
        return;
    }
    let mut resp = Vec::new();
    if up.read_to_end(&mut resp).is_err() {
        return;
    }
    let Some(i) = resp.windows(4).position(|w| w == b"\r\n\r\n") else { return };
    let rhead = closing(&String::from_utf8_lossy(&resp[..i + 4]));
    if client.write_all(rhead.as_bytes()).is_err() {
        return;
    }
    let rbody = &resp[i + 4..];
    let limit = match act {
        Some(Act::StallAfter(n)) | Some(Act::CutAfter(n)) => (n as usize).min(rbody.len()),
        _ => rbody.len(),
    };
    for piece in rbody[..limit].chunks(16 << 10) {
        pace(shared, piece.len());
        if client.write_all(piece).is_err() {
            return;
        }
        shared.sent.fetch_add(piece.len() as u64, Ordering::SeqCst);
    }
    if let Some(Act::StallAfter(_)) = act {
        hold(shared);
    }
}
