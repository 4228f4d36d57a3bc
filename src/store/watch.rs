//! The HTTP client under `object_store`, with an idle timeout instead of a total deadline: a
//! request fails when no byte moved for `KFADMIN_OFFSITE_IDLE` (default 60 s), in either
//! direction (the request body as it is sent, the response head, the response body as it
//! arrives). A transfer that keeps making progress is never cut, however long it takes on a
//! slow link; a stalled one fails within the idle time and is retried (object_store) or resumed
//! (downloads, [`super::s3::RemoteRead`]).
//!
//! Once a request body is all handed to the kernel, the socket buffers may hold much of it for
//! a long time on a slow link (a 5 MiB part: minutes below 128 kbit/s) while the server, which
//! answers only once it has all of it, says nothing. Meanwhile progress is what the kernel
//! sees: on Linux, this process's TCP send queues shrinking as the peer acknowledges data
//! (`/proc/self/net/tcp`). A grace of the body's size at 16 KiB/s covers the rest (a proxy
//! that acknowledges at once what it has yet to pass on; other systems).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody, HttpResponse,
    HttpResponseBody, HttpService,
};
use object_store::ClientOptions;

/// The most a request body hands the connection at once, so its progress is seen as it goes.
const SLICE: usize = 64 << 10;
/// Once a request body is all handed over, the socket buffers may still hold most of it: the
/// server's answer may take as long as that takes at this rate (bytes per second) on top of
/// the idle time. A stall meanwhile is the kernel's to see (`TCP_USER_TIMEOUT`).
const DRAIN_FLOOR: u64 = 16 << 10;

/// Builds the watched client (object_store's `with_http_connector`).
#[derive(Debug, Clone)]
pub struct Connector {
    pub idle: Duration,
    pub connect: Duration,
    pub allow_http: bool,
}

impl HttpConnector for Connector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        let builder = reqwest::ClientBuilder::new();
        // Data sent and not acknowledged for the idle time (30 s at least: a receiver that
        // reads slowly may hold its window shut that long): the connection is dead.
        #[cfg(target_os = "linux")]
        let builder = builder.tcp_user_timeout(self.idle.max(Duration::from_secs(30)));
        let client = builder
            .connect_timeout(self.connect)
            .https_only(!self.allow_http)
            .pool_idle_timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| object_store::Error::Generic { store: "S3", source: Box::new(e) })?;
        Ok(HttpClient::new(Watched { client, idle: self.idle }))
    }
}

#[derive(Debug)]
struct Watched {
    client: reqwest::Client,
    idle: Duration,
}

/// When a byte last moved, in milliseconds since the first request of this process, and how
/// much longer than the idle time the wait for it may be (the drain of a sent body).
#[derive(Debug, Default)]
struct Activity {
    last: AtomicU64,
    grace_ms: AtomicU64,
    /// The whole request body is handed over: progress is now the kernel's to see.
    drained: std::sync::atomic::AtomicBool,
}

fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl Activity {
    fn touch(&self) {
        self.last.store(now_ms(), Ordering::Relaxed);
    }

    /// Whether nothing moved for longer than `idle` and the grace.
    fn stalled(&self, idle: Duration) -> bool {
        let quiet = now_ms().saturating_sub(self.last.load(Ordering::Relaxed));
        quiet >= idle.as_millis() as u64 + self.grace_ms.load(Ordering::Relaxed)
    }
}

fn stalled(idle: Duration) -> HttpError {
    HttpError::new(
        HttpErrorKind::Timeout,
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no data moved for {} (KFADMIN_OFFSITE_IDLE)", humantime::format_duration(idle)),
        ),
    )
}

impl HttpService for Watched {
    fn call<'a, 'b>(
        &'a self,
        req: HttpRequest,
    ) -> Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(self.send(req))
    }
}

impl Watched {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let activity = Arc::new(Activity::default());
        activity.touch();
        let (parts, body) = req.into_parts();
        let url = parts.uri.to_string().parse().map_err(|e| HttpError::new(HttpErrorKind::Unknown, e))?;
        let mut r = reqwest::Request::new(parts.method, url);
        *r.headers_mut() = parts.headers;
        let sliced = Sliced { inner: body, pending: Bytes::new(), activity: Arc::clone(&activity), sent: 0 };
        *r.body_mut() = Some(reqwest::Body::wrap(sliced));
        let tick = (self.idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let watch = async {
            let mut queues: Option<SendQueues> = None;
            loop {
                tokio::time::sleep(tick).await;
                if activity.drained.load(Ordering::Relaxed) {
                    let now = send_queues();
                    if queues.as_ref().is_some_and(|before| acked(before, &now)) {
                        activity.touch();
                    }
                    queues = Some(now);
                }
                if activity.stalled(self.idle) {
                    return;
                }
            }
        };
        let res = tokio::select! {
            r = self.client.execute(r) => r.map_err(request_error)?,
            () = watch => return Err(stalled(self.idle)),
        };
        let res: http::Response<reqwest::Body> = res.into();
        let (parts, body) = res.into_parts();
        let body = Idle { inner: body, idle: self.idle, timer: Box::pin(tokio::time::sleep(self.idle)) };
        Ok(HttpResponse::from_parts(parts, HttpResponseBody::new(body)))
    }
}

/// A reqwest error as object_store classifies it: timeouts and broken connections are
/// retried, the rest is not.
fn request_error(e: reqwest::Error) -> HttpError {
    let kind = if e.is_timeout() {
        HttpErrorKind::Timeout
    } else if e.is_connect() {
        HttpErrorKind::Connect
    } else if e.is_decode() {
        HttpErrorKind::Decode
    } else {
        HttpErrorKind::Request
    };
    HttpError::new(kind, e.without_url())
}

/// The request body in slices of at most [`SLICE`] bytes, each one progress.
struct Sliced {
    inner: HttpRequestBody,
    pending: Bytes,
    activity: Arc<Activity>,
    /// Bytes handed over so far.
    sent: u64,
}

impl Body for Sliced {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(SLICE);
                let out = self.pending.split_to(n);
                self.sent += n as u64;
                self.activity.touch();
                if self.is_end_stream() {
                    let grace = self.sent * 1000 / DRAIN_FLOOR;
                    self.activity.grace_ms.store(grace, Ordering::Relaxed);
                    self.activity.drained.store(true, Ordering::Relaxed);
                }
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => self.pending = data,
                    Err(other) => return Poll::Ready(Some(Ok(other))),
                },
                other => return other,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut h = self.inner.size_hint();
        let extra = self.pending.len() as u64;
        match h.exact() {
            Some(n) => SizeHint::with_exact(n + extra),
            None => {
                h.set_lower(h.lower() + extra);
                h
            }
        }
    }
}

/// Bytes not yet acknowledged by the peer, per TCP socket of this process (by inode).
type SendQueues = std::collections::HashMap<u64, u64>;

/// Whether any socket's send queue shrank between two samples: the peer acknowledged data.
fn acked(before: &SendQueues, now: &SendQueues) -> bool {
    now.iter().any(|(ino, &q)| before.get(ino).is_some_and(|&b| q < b))
}

/// This process's TCP send queues (Linux: `/proc/self/net/tcp{,6}`, the sockets among
/// `/proc/self/fd`); empty elsewhere, or when they cannot be read.
fn send_queues() -> SendQueues {
    let mut out = SendQueues::new();
    if !cfg!(target_os = "linux") {
        return out;
    }
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else { return out };
    let ours: std::collections::HashSet<u64> = fds
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|t| t.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok())
        .collect();
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        out.extend(parse_tcp_table(&text).filter(|(ino, _)| ours.contains(ino)));
    }
    out
}

/// `(inode, tx_queue)` of each line of a `/proc/net/tcp` table.
fn parse_tcp_table(text: &str) -> impl Iterator<Item = (u64, u64)> + '_ {
    text.lines().skip(1).filter_map(|line| {
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
        let cols: Vec<&str> = line.split_whitespace().collect();
        let tx = u64::from_str_radix(cols.get(4)?.split(':').next()?, 16).ok()?;
        let ino = cols.get(9)?.parse().ok()?;
        Some((ino, tx))
    })
}

/// The response body, failing when no data arrived for `idle`.
struct Idle {
    inner: reqwest::Body,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Body for Idle {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let deadline = tokio::time::Instant::now() + self.idle;
                self.timer.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                Poll::Ready(Some(Err(HttpError::new(HttpErrorKind::Interrupted, e))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(stalled(self.idle)))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_queues_from_the_kernels_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 0100007F:D2F0 01 0000A000:00000000 01:00000014 00000000     0        0 4242 1 0000000000000000 20 4 30 10 -1\n";
        assert_eq!(parse_tcp_table(table).collect::<Vec<_>>(), [(4242, 0xA000)]);
        let before = SendQueues::from([(1, 100), (2, 50)]);
        assert!(acked(&before, &SendQueues::from([(1, 90), (2, 50)])));
        assert!(!acked(&before, &SendQueues::from([(1, 100), (2, 60), (3, 0)])));
        // A socket of this process, with nothing to send, is seen (Linux).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        if cfg!(target_os = "linux") {
            assert!(!send_queues().is_empty());
        }
    }
}
