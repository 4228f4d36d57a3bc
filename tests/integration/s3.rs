//! A real S3 server for the offsite tests: `moto_server` (PyPI `moto[server]`; scripts/test.sh
//! installs it) on 127.0.0.1, on a free port. One shared server per test process (a bucket
//! per test keeps tests apart), and servers of their own for tests that kill theirs or turn
//! its authentication on; each dies with the test process (PR_SET_PDEATHSIG) or when dropped.
//! A small HTTP client (std::net) reads what the server holds, and a proxy in front of it
//! fails part uploads on demand (moto has no fault injection).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::util::*;

/// The credentials every test hands kfadmin: shaped like real ones, and grepped for in every
/// output (none may show them).
pub const KEY_ID: &str = "AKIAKFADMINTESTKEY01";
pub const SECRET: &str = "kfAdminTestSecret/0123456789+abcdefghijkl";
pub const TOKEN: &str = "FwoGZXIvYXdzEKfadminTestSessionToken0123456789abcdef";

pub struct Moto {
    pub port: u16,
    child: Mutex<Option<Child>>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Moto {
    /// A server of this test's own.
    pub fn start() -> Moto {
        Moto::on(free_port())
    }

    pub fn on(port: u16) -> Moto {
        let mut cmd = Command::new("moto_server");
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl in the child before exec; it dies with the test process.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("moto_server runs (scripts/test.sh installs moto[server] with pip)");
        let m = Moto { port, child: Mutex::new(Some(child)) };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http(port, "GET", "/moto-api/", &[]).map(|r| r.0) != Some(200) {
            assert!(Instant::now() < deadline, "moto_server did not answer on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        m
    }

    /// The shared server of this test process. Started by a thread that lives as long as the
    /// process: PR_SET_PDEATHSIG fires when the thread that spawned the server ends.
    pub fn shared() -> &'static Moto {
        static M: OnceLock<Moto> = OnceLock::new();
        M.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let m = Moto::start();
                let port = m.port;
                let child = m.child.lock().unwrap().take();
                let _ = tx.send((port, child));
                loop {
                    std::thread::park();
                }
            });
            let (port, child) = rx.recv().expect("the moto thread starts a server");
            Moto { port, child: Mutex::new(child) }
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn kill(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A new bucket with a name no other test uses.
    pub fn bucket(&self, tag: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("kf-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        let (status, body) = http(self.port, "PUT", &format!("/{name}"), &[]).expect("moto answers");
        assert_eq!(status, 200, "creating bucket {name}: {body}");
        name
    }

    /// The keys in `bucket` under `prefix`.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (status, body) =
            http(self.port, "GET", &format!("/{bucket}?list-type=2&prefix={prefix}"), &[]).unwrap();
        assert_eq!(status, 200, "{body}");
        tags(&body, "Key")
    }

    /// The multipart uploads pending in `bucket` (S3's ListMultipartUploads).
    pub fn pending_uploads(&self, bucket: &str) -> Vec<String> {
        let (status, body) = http(self.port, "GET", &format!("/{bucket}?uploads"), &[]).unwrap();
        assert_eq!(status, 200, "{body}");
        tags(&body, "UploadId")
    }

    /// Upload the file `from` to `key`, through the AWS CLI.
    pub fn put(&self, bucket: &str, key: &str, from: &std::path::Path) {
        let out = Command::new("aws")
            .args(["s3", "cp", from.to_str().unwrap(), &format!("s3://{bucket}/{key}")])
            .args(["--endpoint-url", &self.endpoint()])
            .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "anything")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .output()
            .expect("the AWS CLI (scripts/test.sh installs awscli with pip)");
        assert!(out.status.success(), "aws s3 cp: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Remove `key`, through the AWS CLI (moto refuses an unsigned DELETE).
    pub fn rm(&self, bucket: &str, key: &str) {
        let out = Command::new("aws")
            .args(["s3", "rm", &format!("s3://{bucket}/{key}"), "--endpoint-url", &self.endpoint()])
            .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "anything")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .output()
            .expect("the AWS CLI (scripts/test.sh installs awscli with pip)");
        assert!(out.status.success(), "aws s3 rm: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// An object's body, through the AWS CLI (moto refuses an unsigned GET of an object).
    pub fn get(&self, bucket: &str, key: &str) -> Option<String> {
        let out = Command::new("aws")
            .args(["s3", "cp", &format!("s3://{bucket}/{key}"), "-", "--endpoint-url", &self.endpoint()])
            .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "anything")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .output()
            .expect("the AWS CLI (scripts/test.sh installs awscli with pip)");
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The text of every `<tag>…</tag>` in an XML body.
pub fn tags(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open).skip(1).filter_map(|s| s.split(&close).next().map(str::to_string)).collect()
}

/// One HTTP/1.1 request to 127.0.0.1:`port` (unsigned: moto takes it while its authentication
/// is off). None when nothing answers.
pub fn http(port: u16, method: &str, path: &str, body: &[u8]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// What the proxy does with the part uploads (`PUT …?partNumber=N…`) it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parts {
    /// Pass them on.
    Pass,
    /// Answer parts numbered `n` and above with 500 InternalError (S3's transient error).
    FailFrom(u32),
    /// On part `n`, kill the server behind the proxy and drop the connection.
    KillServerAt(u32),
}

/// A loopback proxy in front of a moto server.
pub struct Proxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    pub parts_seen: Arc<AtomicU32>,
}

impl Proxy {
    pub fn start(moto: Arc<Moto>, mode: Parts) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let parts_seen = Arc::new(AtomicU32::new(0));
        let (stop2, seen) = (Arc::clone(&stop), Arc::clone(&parts_seen));
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            // Bounded: the proxy stops with its test, or after 10 minutes at most.
            let deadline = Instant::now() + Duration::from_secs(600);
            while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (moto, seen) = (Arc::clone(&moto), Arc::clone(&seen));
                        std::thread::spawn(move || serve(client, &moto, mode, &seen));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy { port, stop, parts_seen }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Read one request (head and Content-Length body).
fn read_request(c: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    let head_end = loop {
        let n = c.read(&mut byte).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = c.read(&mut byte).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&byte[..n]);
    }
    Some((head, body))
}

/// One connection, one request (`Connection: close` both ways), passed to moto on a new
/// connection, or for a part upload done as `mode` says.
fn serve(mut client: TcpStream, moto: &Moto, mode: Parts, seen: &AtomicU32) {
    if let Some((head, body)) = read_request(&mut client) {
        let first = head.lines().next().unwrap_or("").to_string();
        let part = first
            .split("partNumber=")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|_| first.starts_with("PUT "));
        if let Some(n) = part {
            seen.fetch_add(1, Ordering::SeqCst);
            match mode {
                Parts::FailFrom(k) if n >= k => {
                    let body = "<Error><Code>InternalError</Code><Message>injected by the test proxy</Message></Error>";
                    let resp = format!(
                        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = client.write_all(resp.as_bytes());
                    return;
                }
                Parts::KillServerAt(k) if n >= k => {
                    moto.kill();
                    return;
                }
                _ => {}
            }
        }
        let head: String = head
            .lines()
            .filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with("connection:"))
            .map(|l| format!("{l}\r\n"))
            .collect::<String>()
            + "Connection: close\r\n\r\n";
        let Ok(mut up) = TcpStream::connect(("127.0.0.1", moto.port)) else { return };
        if up.write_all(head.as_bytes()).and_then(|()| up.write_all(&body)).is_err() {
            return;
        }
        let mut resp = Vec::new();
        if up.read_to_end(&mut resp).is_err() {
            return;
        }
        // The client must not send another request on this connection.
        if let Some(i) = resp.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&resp[..i]).to_ascii_lowercase();
            if !head.contains("\r\nconnection:") {
                resp.splice(i..i, b"\r\nConnection: close".iter().copied());
            }
        }
        let _ = client.write_all(&resp);
    }
}

/// kfadmin with the test's credentials, endpoint and state directory, and `extra` on top;
/// every output is checked for the credentials.
pub fn kf_s3(env: &Env, endpoint: &str, extra: &[(&str, &str)], args: &[&str]) -> Run {
    let r: Run = kf_s3_cmd(env, endpoint, extra, args).output().expect("kfadmin runs").into();
    assert_no_credentials(&r, &[KEY_ID, SECRET, TOKEN]);
    r
}

/// The command `kf_s3` runs (for a test that signals it midway).
pub fn kf_s3_cmd(env: &Env, endpoint: &str, extra: &[(&str, &str)], args: &[&str]) -> Command {
    let state = env.path("state");
    let mut cmd = Command::new(kfadmin_bin());
    cmd.args(args)
        .stdin(Stdio::null())
        .env_remove("KFADMIN_BACKUP_DIR")
        .env("KFADMIN_STATE_DIR", &state)
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_SESSION_TOKEN", TOKEN)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("KFADMIN_OFFSITE_RETRY", "3s")
        .env("HOME", env.path("home"));
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd
}

/// None of `secrets` (nor a part of one long enough to matter) is in what kfadmin printed.
pub fn assert_no_credentials(r: &Run, secrets: &[&str]) {
    for s in secrets {
        for out in [&r.stdout, &r.stderr] {
            assert!(!out.contains(s), "a credential is in kfadmin's output:\n{out}");
            assert!(!out.contains(&s[s.len() - 12..]), "part of a credential is in kfadmin's output:\n{out}");
        }
    }
}
