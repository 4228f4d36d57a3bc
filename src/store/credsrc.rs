//! The AWS CLI's other credential sources, each resolved into temporary keys, and again before
//! those expire (a long upload outlives an hour's credentials; see [`Live`]):
//! `credential_process` (which also covers SSO, through `aws configure export-credentials`),
//! web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN`, as on EKS: STS
//! AssumeRoleWithWebIdentity) and container credentials (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`
//! as on ECS, `AWS_CONTAINER_CREDENTIALS_FULL_URI` with `AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]`).
//! A profile that needs what kfadmin does not do (`role_arn` with a `source_profile`, SSO) is an
//! error naming it and the `credential_process` way around it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::awsconfig::Creds;
use crate::error::{Error, Result};

/// Where temporary credentials come from, to fetch them again before they expire.
#[derive(Clone)]
pub enum Source {
    /// `credential_process = COMMAND` of a profile.
    Process { profile: String, command: String },
    /// STS AssumeRoleWithWebIdentity with the token in `file`.
    WebIdentity { file: String, role: String, session: String, region: String },
    /// The container credentials endpoint.
    Container { relative: Option<String>, full: Option<String> },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Process { .. } => "credential_process",
            Source::WebIdentity { .. } => "web identity",
            Source::Container { .. } => "container credentials",
        })
    }
}

impl Source {
    /// Fresh credentials, registered for masking, that know where they came from.
    pub fn fetch(&self) -> Result<Creds> {
        let mut c = match self {
            Source::Process { profile, command } => process(profile, command),
            Source::WebIdentity { file, role, session, region } => web_identity(file, role, session, region),
            Source::Container { relative, full } => container(relative.as_deref(), full.as_deref()),
        }?;
        c.register();
        c.source = Some(self.clone());
        Ok(c)
    }
}

/// How long before they expire temporary credentials are fetched again: five minutes, or half
/// their lifetime when that is shorter (so a request signed now is not refused mid-way, and
/// credentials that live only minutes are not fetched for every request).
const REFRESH_BEFORE: Duration = Duration::from_secs(300);

/// The credentials in use, fetched again from their source before they expire.
#[derive(Debug)]
pub struct Live {
    current: Mutex<(Creds, Option<SystemTime>)>,
}

impl Live {
    pub fn new(c: Creds) -> Arc<Live> {
        let due = refresh_at(&c, SystemTime::now());
        Arc::new(Live { current: Mutex::new((c, due)) })
    }

    /// Credentials good for a while yet: the ones held, or fresh ones once these are due. A
    /// failure to refresh is an error only once the held ones have expired.
    pub fn get(&self) -> Result<Creds> {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let now = SystemTime::now();
        let (Some(due), Some(source)) = (cur.1, cur.0.source.clone()) else { return Ok(cur.0.clone()) };
        if now < due {
            return Ok(cur.0.clone());
        }
        match source.fetch() {
            Ok(fresh) => {
                let due = refresh_at(&fresh, now);
                *cur = (fresh, due);
                Ok(cur.0.clone())
            }
            Err(e) if cur.0.expires.is_some_and(|x| now < x) => {
                // Still valid: try again in a while rather than on every request.
                cur.1 = Some(now + Duration::from_secs(10));
                let _ = e;
                Ok(cur.0.clone())
            }
            Err(e) => Err(e),
        }
    }
}

/// When credentials fetched at `now` are due to be fetched again (None: never).
/// (Never sooner than a second from now: a source that hands out credentials already expired,
/// or a clock far off, is not run for every request.)
fn refresh_at(c: &Creds, now: SystemTime) -> Option<SystemTime> {
    let expires = c.expires?;
    let life = expires.duration_since(now).unwrap_or(Duration::ZERO);
    Some((expires - REFRESH_BEFORE.min(life / 2)).max(now + MIN_REFRESH))
}

/// The least time between two fetches of credentials.
const MIN_REFRESH: Duration = Duration::from_secs(1);

/// Credentials for object_store's requests, from [`Live`].
#[derive(Debug)]
pub struct Provider(pub Arc<Live>);

impl object_store::CredentialProvider for Provider {
    type Credential = object_store::aws::AwsCredential;

    fn get_credential<'a, 'b>(
        &'a self,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = object_store::Result<Arc<Self::Credential>>> + Send + 'b>,
    >
    where
        'a: 'b,
        Self: 'b,
    {
        let live = Arc::clone(&self.0);
        Box::pin(async move {
            let got = tokio::task::spawn_blocking(move || live.get()).await;
            match got {
                Ok(Ok(c)) => Ok(Arc::new(object_store::aws::AwsCredential {
                    key_id: c.key_id,
                    secret_key: c.secret,
                    token: c.token,
                })),
                Ok(Err(e)) => Err(object_store::Error::Unauthenticated {
                    path: String::new(),
                    source: e.chain().into(),
                }),
                Err(e) => Err(object_store::Error::Generic { store: "S3", source: Box::new(e) }),
            }
        })
    }
}

/// An AWS time (`2026-12-04T22:15:00Z`, fractions of a second and `+00:00` allowed).
fn expiration(text: &str) -> Option<SystemTime> {
    let t = text.trim();
    let t = t.strip_suffix("+00:00").map(|r| format!("{r}Z")).unwrap_or_else(|| t.to_string());
    humantime::parse_rfc3339_weak(&t).ok()
}

const TIMEOUT: Duration = Duration::from_secs(30);

fn bad(source: &str, why: impl std::fmt::Display) -> Error {
    Error::usage(format!("cannot get S3 credentials from {source}: {why}"))
}

fn field(v: &serde_json::Value, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| v.get(*n).and_then(|x| x.as_str()).map(str::to_string))
}

/// Temporary keys from a JSON document as the AWS CLI's sources give them.
fn from_json(source: &str, text: &str) -> Result<Creds> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(source, format!("not JSON ({e})")))?;
    match (field(&v, &["AccessKeyId"]), field(&v, &["SecretAccessKey"])) {
        (Some(key_id), Some(secret)) => Ok(Creds {
            key_id,
            secret,
            token: field(&v, &["SessionToken", "Token"]),
            from: source.to_string(),
            expires: field(&v, &["Expiration"]).and_then(|e| expiration(&e)),
            source: None,
        }),
        _ => Err(bad(source, "no AccessKeyId and SecretAccessKey in what it returned")),
    }
}

/// `credential_process = COMMAND` of `profile`: run through the shell, its stdout the JSON.
fn process(profile: &str, command: &str) -> Result<Creds> {
    let source = format!("the credential_process of profile {profile}");
    let out = run_bounded(command, super::s3::idle_timeout()?).map_err(|e| bad(&source, e))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap_or("").chars().take(300).collect::<String>();
        return Err(bad(&source, format!("it exited with {}: {first}", out.status))
            .hint("run it by hand; for SSO, `aws sso login --profile NAME` first"));
    }
    from_json(&source, &String::from_utf8_lossy(&out.stdout))
}

/// Run `command` through the shell (its own process group), its output captured; one that has
/// not finished within `limit` (an SSO login waiting for a browser, a hung helper) is killed
/// with everything it started, and is an error.
fn run_bounded(command: &str, limit: Duration) -> std::io::Result<std::process::Output> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.by_ref().take(1 << 20).read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped")));
    let err = drain(Box::new(child.stderr.take().expect("piped")));
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if std::time::Instant::now() >= deadline {
            // The process group this function started (the script and what it ran).
            if let Some(pgid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
            }
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "it gave no credentials in {} (KFADMIN_OFFSITE_IDLE)",
                    humantime::format_duration(limit)
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok(std::process::Output { status, stdout, stderr })
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().timeout_global(Some(TIMEOUT)).http_status_as_error(false).build().into()
}

/// AssumeRoleWithWebIdentity at the STS endpoint (`AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, or
/// AWS's for `region`), with the token in `token_file`.
fn web_identity(token_file: &str, role_arn: &str, session: &str, region: &str) -> Result<Creds> {
    let source = format!("web identity (AWS_WEB_IDENTITY_TOKEN_FILE {token_file}, role {role_arn})");
    let token = std::fs::read_to_string(token_file).map_err(|e| bad(&source, e))?;
    let endpoint = std::env::var("AWS_ENDPOINT_URL_STS")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .ok()
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"));
    let resp = agent()
        .post(endpoint.trim_end_matches('/'))
        .send_form([
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", role_arn),
            ("RoleSessionName", session),
            ("WebIdentityToken", token.trim()),
        ])
        .map_err(|e| bad(&source, e))?;
    let status = resp.status().as_u16();
    let body = resp.into_body().read_to_string().map_err(|e| bad(&source, e))?;
    let tag = |t: &str| {
        let (open, close) = (format!("<{t}>"), format!("</{t}>"));
        body.split(open.as_str()).nth(1).and_then(|r| r.split(close.as_str()).next()).map(str::to_string)
    };
    match (status, tag("AccessKeyId"), tag("SecretAccessKey")) {
        (200, Some(key_id), Some(secret)) => {
            let expires = tag("Expiration").and_then(|e| expiration(&e));
            Ok(Creds { key_id, secret, token: tag("SessionToken"), from: source, expires, source: None })
        }
        _ => Err(bad(
            &source,
            format!("STS answered {status}: {}", tag("Message").or(tag("Code")).unwrap_or_default()),
        )
        .hint("check AWS_ROLE_ARN and that the role trusts this identity provider")),
    }
}

/// The container credentials endpoint (ECS: a relative URI on 169.254.170.2; EKS Pod Identity
/// and others: a full URI with an authorization token).
fn container(relative: Option<&str>, full: Option<&str>) -> Result<Creds> {
    let url = match (relative, full) {
        (Some(r), _) => format!("http://169.254.170.2{r}"),
        (None, Some(f)) => f.to_string(),
        (None, None) => return Err(bad("container credentials", "no URI")),
    };
    let source = "container credentials (AWS_CONTAINER_CREDENTIALS_*_URI)";
    let token = match std::env::var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        Ok(f) if !f.is_empty() => {
            Some(std::fs::read_to_string(&f).map_err(|e| bad(source, e))?.trim().to_string())
        }
        _ => std::env::var("AWS_CONTAINER_AUTHORIZATION_TOKEN").ok().filter(|t| !t.is_empty()),
    };
    let mut req = agent().get(&url);
    if let Some(t) = &token {
        req = req.header("Authorization", t);
    }
    let resp = req.call().map_err(|e| bad(source, e))?;
    let status = resp.status().as_u16();
    let body = resp.into_body().read_to_string().map_err(|e| bad(source, e))?;
    if status != 200 {
        return Err(bad(source, format!("the endpoint answered {status}")));
    }
    from_json(source, &body)
}

/// A profile kfadmin cannot resolve by itself: what it uses, and the way around it.
pub fn unsupported(profile: &str, what: &str) -> Error {
    Error::usage(format!("profile {profile} gets its credentials through {what}, which kfadmin does not do itself"))
        .hint(format!(
            "add `credential_process = aws configure export-credentials --profile {profile} --format process` to a profile of its own in ~/.aws/config and use that (AWS_PROFILE), or export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN"
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expirations_and_when_to_refresh() {
        let t = expiration("2026-12-04T22:15:00Z").unwrap();
        assert_eq!(expiration("2026-12-04T22:15:00.000+00:00"), Some(t));
        assert_eq!(expiration("soon"), None);
        let c = |expires| Creds {
            key_id: "k".into(),
            secret: "s".into(),
            token: None,
            from: "f".into(),
            expires,
            source: None,
        };
        let now = t - Duration::from_secs(3600);
        assert_eq!(refresh_at(&c(Some(t)), now), Some(t - REFRESH_BEFORE));
        // Short-lived: half their life.
        assert_eq!(refresh_at(&c(Some(t)), t - Duration::from_secs(60)), Some(t - Duration::from_secs(30)));
        assert_eq!(refresh_at(&c(None), now), None);
        // Already expired when handed out: not fetched again at once.
        assert_eq!(refresh_at(&c(Some(t)), t + Duration::from_secs(5)), Some(t + Duration::from_secs(6)));
    }
}
