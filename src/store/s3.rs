//! An S3-compatible bucket (AWS S3, Backblaze B2, Cloudflare R2, MinIO, Garage, …) through
//! `object_store`, behind a blocking interface: list, head, get (streamed into a file or a
//! reader), put (a streaming multipart upload from a file: bounded memory, parts uploaded
//! concurrently, aborted on any failure or interrupt), delete.
//!
//! Transient errors are retried with backoff by `object_store`, bounded in all by
//! `KFADMIN_OFFSITE_RETRY` (default 2 min). No request has a total deadline: one fails when no
//! byte moved for `KFADMIN_OFFSITE_IDLE` (default 60 s, [`super::watch`]), and a download cut
//! off midway resumes where it stopped (a Range request for the same ETag), so a transfer that
//! keeps making progress never fails, however slow the link. Ctrl-C and SIGTERM stop any call
//! within a tenth of a second. No credential is ever formatted into a message.

use std::future::Future;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path as Key;
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutPayload, RetryConfig,
};

use super::awsconfig::{self, Settings};
use super::S3Url;
use crate::error::{Error, Kind, Result};
use crate::progress::Stage;

/// Multipart part size: S3's minimum; memory is `PART × (CONCURRENCY + 1)`.
pub const PART: usize = 5 << 20;
/// Parts in flight at once: six keep a whole backup with `--to` under 64 MiB (docs/benchmarks.md).
pub const CONCURRENCY: usize = 6;
/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Resumes of a download in a row without a byte between them before it counts as failed.
const RESUMES: u32 = 5;
/// How long an abort or a clean-up may take once an upload failed (or Ctrl-C was pressed).
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);

/// An object directly under the location's prefix.
#[derive(Debug, Clone)]
pub struct Object {
    pub name: String,
    pub bytes: u64,
    /// The ETag and modification time: what changes when the object is replaced.
    pub version: String,
    pub etag: Option<String>,
}

/// What [`Remote::delete_own`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// Nothing is at the key.
    Gone,
    /// Another object than this run's is at the key: left alone.
    NotOurs,
    /// Refused or unanswered: the object is still there. Why.
    Failed(String),
}

/// A connection to one bucket and prefix.
pub struct Remote {
    pub url: S3Url,
    store: Arc<AmazonS3>,
    /// For listings (see [`super::listing`]).
    lister: reqwest::Client,
    retry: Duration,
    rt: tokio::runtime::Runtime,
    settings: Settings,
    /// Temporary credentials, fetched again before they expire (None: static keys or none).
    live: Option<Arc<super::credsrc::Live>>,
}

/// A duration from the environment variable `var` (e.g. `30s`), else `default`; `what` says
/// what it bounds (for the hint of a value that is not a duration).
fn env_duration(var: &str, default: Duration, what: &str) -> Result<Duration> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => match humantime::parse_duration(v.trim()) {
            Ok(d) if !d.is_zero() => Ok(d),
            Ok(_) => {
                Err(Error::usage(format!("{var}={v:?} is zero")).hint(format!("e.g. {var}=2m ({what})")))
            }
            Err(e) => Err(Error::usage(format!("{var}={v:?} is not a duration: {e}"))
                .hint(format!("e.g. {var}=2m ({what})"))),
        },
        _ => Ok(default),
    }
}

/// The retry bound of every call: `KFADMIN_OFFSITE_RETRY` (e.g. 30s), default 2 minutes.
pub fn retry_timeout() -> Result<Duration> {
    env_duration(
        "KFADMIN_OFFSITE_RETRY",
        Duration::from_secs(120),
        "how long transient S3 errors are retried",
    )
}

/// How long no byte may move before a request counts as stalled: `KFADMIN_OFFSITE_IDLE`,
/// default 60 s.
pub fn idle_timeout() -> Result<Duration> {
    env_duration(
        "KFADMIN_OFFSITE_IDLE",
        Duration::from_secs(60),
        "how long a transfer may make no progress before it is retried",
    )
}

impl Remote {
    /// Settings from the environment and the AWS files, and a client for `url`'s bucket. No
    /// request is made.
    pub fn connect(url: &S3Url) -> Result<Remote> {
        let settings = awsconfig::resolve()?;
        // TLS by rustls with ring (reqwest is built without a provider of its own).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let retry_timeout = retry_timeout()?;
        let idle = idle_timeout()?;
        let retry = RetryConfig { retry_timeout, max_retries: 20, ..RetryConfig::default() };
        // No total deadline (a slow link is not a failure): the connector's idle timeout.
        let options = ClientOptions::new()
            .with_allow_http(settings.allow_http)
            .with_timeout_disabled()
            .with_connect_timeout(CONNECT_TIMEOUT);
        let connector =
            super::watch::Connector { idle, connect: CONNECT_TIMEOUT, allow_http: settings.allow_http };
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&url.bucket)
            .with_region(&settings.region)
            .with_retry(retry)
            .with_client_options(options)
            .with_http_connector(connector)
            // Objects are created with If-None-Match: * (never replacing another host's).
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_virtual_hosted_style_request(false)
            // The payload's integrity is TLS's (https) or the loopback's; what the store holds is
            // checked against the sidecar after the upload. Not hashing each part for the
            // signature saves a pass over every byte.
            .with_unsigned_payload(match settings.endpoint.as_deref() {
                None => true,
                Some(e) => e.starts_with("https://") || awsconfig::is_loopback(e),
            });
        if let Some(e) = &settings.endpoint {
            b = b.with_endpoint(e);
        }
        let live = settings.creds.clone().filter(|c| c.source.is_some()).map(super::credsrc::Live::new);
        match &settings.creds {
            Some(_) if live.is_some() => {
                let provider = super::credsrc::Provider(Arc::clone(live.as_ref().expect("checked")));
                b = b.with_credentials(Arc::new(provider));
            }
            Some(c) => {
                b = b.with_access_key_id(&c.key_id).with_secret_access_key(&c.secret);
                if let Some(t) = &c.token {
                    b = b.with_token(t);
                }
            }
            // An S3-compatible service has no instance roles: without keys there is nothing to
            // sign with. On AWS itself, the instance or container role (as the AWS CLI).
            None if settings.endpoint.is_some() => return Err(no_credentials(url)),
            None => {}
        }
        let store = b.build().map_err(|e| {
            Error::usage(format!("cannot set up the S3 client for {url}"))
                .source(e)
                .hint("check AWS_REGION and AWS_ENDPOINT_URL (or the profile's region and endpoint_url)")
        })?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kfadmin-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::failed("cannot start the S3 client's threads").source(e))?;
        let lister = super::listing::client(CONNECT_TIMEOUT, idle, settings.allow_http)
            .map_err(|e| Error::failed("cannot set up the S3 client").source(e))?;
        Ok(Remote {
            url: url.clone(),
            store: Arc::new(store),
            lister,
            retry: retry_timeout,
            rt,
            settings,
            live,
        })
    }

    fn key(&self, name: &str) -> Key {
        Key::from(self.url.key(name))
    }

    /// Run `f`, giving up at once on Ctrl-C/SIGTERM (exit 130).
    fn block<T>(&self, f: impl Future<Output = Result<T>>) -> Result<T> {
        self.rt.block_on(async {
            tokio::select! {
                r = f => r,
                () = interrupted() => Err(Error::interrupted()),
            }
        })
    }

    /// Every object directly under the prefix (not in "subdirectories"), whatever else others
    /// put there: a key object_store cannot represent (`p//x`, `p/./y`) does not hide the
    /// rest (static credentials: our own listing; an instance role: object_store's).
    pub fn list(&self) -> Result<Vec<Object>> {
        let Some(held) = &self.settings.creds else { return self.list_by_object_store() };
        let started = std::time::Instant::now();
        let mut wait = Duration::from_millis(100);
        loop {
            // Temporary credentials: fresh ones once these are due (a listing of many pages
            // may outlive them).
            let creds = match &self.live {
                Some(live) => live.get()?,
                None => held.clone(),
            };
            let got = self.block(async {
                Ok(super::listing::list(
                    &self.lister,
                    &self.settings,
                    &creds,
                    &self.url.bucket,
                    &self.url.prefix,
                )
                .await)
            })?;
            match got {
                Ok(listed) => {
                    return Ok(listed
                        .into_iter()
                        .map(|l| Object {
                            version: l.etag.clone().unwrap_or_default(),
                            name: l.name,
                            bytes: l.bytes,
                            etag: l.etag,
                        })
                        .collect())
                }
                // Transient (5xx, the connection): retried within the budget, as every call.
                Err(text) if !text.starts_with("status 4") && started.elapsed() + wait < self.retry => {
                    self.block(async {
                        tokio::time::sleep(wait).await;
                        Ok(())
                    })?;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(text) => {
                    let e = object_store::Error::Generic { store: "S3", source: text.into() };
                    return Err(self.error("list", None, e));
                }
            }
        }
    }

    fn list_by_object_store(&self) -> Result<Vec<Object>> {
        let prefix = (!self.url.prefix.is_empty()).then(|| Key::from(self.url.prefix.as_str()));
        let listed = self.block(async {
            self.store.list_with_delimiter(prefix.as_ref()).await.map_err(|e| self.error("list", None, e))
        })?;
        Ok(listed
            .objects
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?.to_string();
                Some(Object { name, bytes: m.size, version: version(&m), etag: m.e_tag.clone() })
            })
            .collect())
    }

    /// One cheap request that fails as every later one would on a missing bucket, refused
    /// credentials or a wrong region: a GET of a key kfadmin never writes (a HEAD has no body
    /// to tell a missing bucket from a missing key; a listing is refused by some servers'
    /// signature checks). What a backup checks before its snapshot.
    pub fn probe(&self) -> Result<()> {
        let key = self.key(".kfadmin-probe");
        self.block(async {
            match self.store.get(&key).await {
                Ok(_) => Ok(()),
                Err(e @ object_store::Error::NotFound { .. }) if !is_no_bucket(&e.to_string()) => Ok(()),
                Err(e) => Err(self.error("read", None, e)),
            }
        })
    }

    /// The object's size and version; None when there is none.
    pub fn head(&self, name: &str) -> Result<Option<Object>> {
        let key = self.key(name);
        self.block(async {
            match self.store.head(&key).await {
                Ok(m) => Ok(Some(Object {
                    name: name.to_string(),
                    bytes: m.size,
                    version: version(&m),
                    etag: m.e_tag.clone(),
                })),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.error("read", Some(name), e)),
            }
        })
    }

    /// A small object in full (a sidecar); None when there is none. At most `limit + 1` bytes
    /// are asked for (a Range request): an object larger than `limit` is an error of kind
    /// Verification naming it, whatever its size (a bogus 1 GiB sidecar costs 4 KiB).
    pub fn get_small(&self, name: &str, limit: usize) -> Result<Option<Vec<u8>>> {
        let key = self.key(name);
        let opts =
            GetOptions { range: Some(GetRange::Bounded(0..limit as u64 + 1)), ..GetOptions::default() };
        let got = self.block(async {
            match self.store.get_opts(&key, opts).await {
                Ok(r) => {
                    let size = r.meta.size;
                    r.bytes().await.map(|b| Some((b, size))).map_err(|e| self.error("read", Some(name), e))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                // An empty object has no byte 0 to start a range at.
                Err(e) if e.to_string().contains("InvalidRange") => Ok(Some((Bytes::new(), 0))),
                Err(e) => Err(self.error("read", Some(name), e)),
            }
        })?;
        match got {
            // Not what kfadmin writes: a verdict on that object (exit 3), not a failure to read.
            Some((_, size)) if size > limit as u64 => Err(Error::verification(format!(
                "{} is {size} bytes, more than a .sha256 sidecar can be",
                self.url.object(name),
            ))),
            other => Ok(other.map(|(b, _)| b.to_vec())),
        }
    }

    /// The first `limit` bytes of an object (all of a smaller one); an absent object is an error.
    pub fn get_head(&self, name: &str, limit: usize) -> Result<Vec<u8>> {
        let key = self.key(name);
        let opts = GetOptions { range: Some(GetRange::Bounded(0..limit as u64)), ..GetOptions::default() };
        self.block(async {
            match self.store.get_opts(&key, opts).await {
                Ok(r) => r.bytes().await.map(|b| b.to_vec()).map_err(|e| self.error("read", Some(name), e)),
                Err(e) if e.to_string().contains("InvalidRange") => Ok(Vec::new()),
                Err(e) => Err(self.error("read", Some(name), e)),
            }
        })
    }

    /// A reader over the object, streamed (only what is read is transferred). A body cut off
    /// midway is resumed from where it stopped (a Range request pinned to the same ETag):
    /// only [`RESUMES`] attempts in a row without a byte between them fail it.
    pub fn reader(&self, name: &str) -> Result<RemoteRead<'_>> {
        let stream = self.get_from(name, 0, None)?;
        Ok(RemoteRead {
            remote: self,
            name: name.to_string(),
            stream: stream.0,
            etag: stream.1,
            offset: 0,
            stuck: 0,
            chunk: Bytes::new(),
        })
    }

    /// The object's body from `offset` on (pinned to `etag` when given), and its ETag.
    fn get_from(
        &self,
        name: &str,
        offset: u64,
        etag: Option<String>,
    ) -> Result<(BoxStream<'static, object_store::Result<Bytes>>, Option<String>)> {
        let key = self.key(name);
        let opts = GetOptions {
            range: (offset > 0).then_some(GetRange::Offset(offset)),
            if_match: etag,
            ..GetOptions::default()
        };
        self.block(async {
            self.store
                .get_opts(&key, opts)
                .await
                .map(|r| {
                    let etag = r.meta.e_tag.clone();
                    (r.into_stream(), etag)
                })
                .map_err(|e| self.error("read", Some(name), e))
        })
    }

    /// Stream the object into `to`, counting on `stage`; returns its length.
    pub fn download(&self, name: &str, to: &mut std::fs::File, stage: &dyn Stage) -> Result<u64> {
        use std::io::Write;
        let mut r = self.reader(name)?;
        let mut n = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let got = r.read(&mut buf).map_err(|e| self.io_error("download", name, e))?;
            if got == 0 {
                return Ok(n);
            }
            to.write_all(&buf[..got]).map_err(|e| Error::failed("cannot write the download").source(e))?;
            n += got as u64;
            stage.inc(got as u64);
        }
    }

    /// Create a small object in one request, only if there is none at its key yet
    /// (`If-None-Match: *`); returns its ETag. One that is already there is an error saying so.
    pub fn create_small(&self, name: &str, data: Vec<u8>) -> Result<Option<String>> {
        let key = self.key(name);
        // Some(etag) created; None: the service has no conditional writes.
        let created = self.block(async {
            match self.store.put_opts(&key, PutPayload::from(data.clone()), PutMode::Create.into()).await {
                Ok(r) => Ok(Some(r.e_tag)),
                Err(object_store::Error::AlreadyExists { .. }) => Err(self.exists(name)),
                Err(e) if e.to_string().contains("NotImplemented") || status_in(&e.to_string(), &["501"]) => {
                    Ok(None)
                }
                Err(e) => Err(self.error("upload", Some(name), e)),
            }
        })?;
        match created {
            Some(etag) => Ok(etag),
            None => self.create_unconditionally(name, data),
        }
    }

    /// The error for an object that is already there.
    fn exists(&self, name: &str) -> Error {
        Error::failed(format!(
            "{} already exists; kfadmin never replaces an offsite object",
            self.url.object(name)
        ))
        .hint("another host writes archives of the same name there: give each host its own prefix or --name")
    }

    /// [`Remote::create_small`] on a service that cannot create conditionally: a HEAD, then a
    /// plain PUT (two hosts racing for one name are told apart by the ETag check afterwards).
    fn create_unconditionally(&self, name: &str, data: Vec<u8>) -> Result<Option<String>> {
        if self.head(name)?.is_some() {
            return Err(self.exists(name));
        }
        let key = self.key(name);
        self.block(async {
            self.store
                .put(&key, PutPayload::from(data))
                .await
                .map(|r| r.e_tag)
                .map_err(|e| self.error("upload", Some(name), e))
        })
    }

    /// Upload the file `from` to `name`: multipart, at most `CONCURRENCY` parts of `PART`
    /// bytes in flight, read as they go. The object appears at its key only when every part is
    /// in; on any failure or interrupt the upload is aborted (no parts left behind, billing).
    /// Returns the bytes sent and the object's ETag.
    pub fn upload(
        &self,
        name: &str,
        mut from: std::fs::File,
        stage: &dyn Stage,
    ) -> Result<(u64, Option<String>)> {
        let key = self.key(name);
        let mut upload = self.block(async {
            self.store.put_multipart(&key).await.map_err(|e| self.error("upload", Some(name), e))
        })?;
        let mut parts = tokio::task::JoinSet::new();
        self.rt.block_on(async {
            let pump = async {
                let mut sent = 0u64;
                loop {
                    while parts.len() >= CONCURRENCY {
                        self.joined(parts.join_next().await, name)?;
                    }
                    let mut buf = vec![0u8; PART];
                    let n = read_full(&mut from, &mut buf).map_err(|e| self.io_error("read", name, e))?;
                    if n == 0 && sent > 0 {
                        break;
                    }
                    buf.truncate(n);
                    parts.spawn(upload.put_part(PutPayload::from(Bytes::from(buf))));
                    sent += n as u64;
                    stage.inc(n as u64);
                    crate::fault::point("offsite.part")?;
                    if n < PART {
                        break;
                    }
                }
                while !parts.is_empty() {
                    self.joined(parts.join_next().await, name)?;
                }
                let done = upload.complete().await.map_err(|e| self.error("upload", Some(name), e))?;
                Ok((sent, done.e_tag))
            };
            let result = tokio::select! {
                r = pump => r,
                () = interrupted() => Err(Error::interrupted()),
            };
            if result.is_err() {
                parts.shutdown().await;
                let why = match tokio::time::timeout(CLEANUP_TIMEOUT, upload.abort()).await {
                    Ok(Ok(())) => return result,
                    Ok(Err(e)) => short(&e.to_string()),
                    Err(_) => format!("no answer in {}", humantime::format_duration(CLEANUP_TIMEOUT)),
                };
                return result.map_err(|err| {
                    let hint = format!(
                        "{}{}the unfinished multipart upload of {} could not be aborted ({why}): `aws s3api list-multipart-uploads --bucket {} --prefix {}` shows it, `aws s3api abort-multipart-upload` removes it, and an S3 lifecycle rule AbortIncompleteMultipartUpload removes such leftovers",
                        err.hint.clone().unwrap_or_default(),
                        if err.hint.is_some() { "; " } else { "" },
                        self.url.object(name),
                        self.url.bucket,
                        self.url.key(name),
                    );
                    err.hint(hint)
                });
            }
            result
        })
    }

    /// One finished part upload.
    fn joined(
        &self,
        r: Option<std::result::Result<object_store::Result<()>, tokio::task::JoinError>>,
        name: &str,
    ) -> Result<()> {
        match r {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(self.error("upload", Some(name), e)),
            Some(Err(e)) => {
                Err(Error::failed(format!("uploading a part of {} stopped", self.url.object(name))).source(e))
            }
        }
    }

    /// Delete an object (an absent one is not an error).
    pub fn delete(&self, name: &str) -> Result<()> {
        let key = self.key(name);
        self.block(async {
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(self.error("delete", Some(name), e)),
            }
        })
    }

    /// Delete `name` if it is still the object this run wrote (its ETag is `etag`), even after
    /// Ctrl-C (a clean-up is not cut short; it takes at most [`CLEANUP_TIMEOUT`]).
    pub fn delete_own(&self, name: &str, etag: Option<&str>) -> Removal {
        let key = self.key(name);
        let run = async {
            let now = match self.store.head(&key).await {
                Ok(m) => m,
                Err(object_store::Error::NotFound { .. }) => return Removal::Gone,
                Err(e) => return Removal::Failed(self.error("read", Some(name), e).chain()),
            };
            if etag.is_none() || now.e_tag.as_deref() != etag {
                return Removal::NotOurs;
            }
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Removal::Removed,
                Err(e) => Removal::Failed(self.error("delete", Some(name), e).chain()),
            }
        };
        self.rt.block_on(async {
            tokio::time::timeout(CLEANUP_TIMEOUT, run).await.unwrap_or_else(|_| {
                Removal::Failed(format!(
                    "no answer in {} while removing {}",
                    humantime::format_duration(CLEANUP_TIMEOUT),
                    self.url.object(name)
                ))
            })
        })
    }

    /// Whether `name` is in the bucket now (None: the store did not say, in [`CLEANUP_TIMEOUT`],
    /// even after Ctrl-C).
    pub fn exists_now(&self, name: &str) -> Option<bool> {
        let key = self.key(name);
        self.rt.block_on(async {
            match tokio::time::timeout(CLEANUP_TIMEOUT, self.store.head(&key)).await {
                Ok(Ok(_)) => Some(true),
                Ok(Err(object_store::Error::NotFound { .. })) => Some(false),
                _ => None,
            }
        })
    }

    /// Turn an `object_store` error into one the operator can act on: a missing bucket and
    /// refused credentials are bad input (exit 2) naming the bucket or the variable; anything
    /// else (unreachable, timeouts, 5xx after the retries) failed (exit 1).
    fn error(&self, what: &str, name: Option<&str>, e: object_store::Error) -> Error {
        let target = match name {
            Some(n) => self.url.object(n),
            None => self.url.to_string(),
        };
        let text = format!("{e}");
        let endpoint = self.settings.endpoint.as_deref().map(awsconfig::endpoint_host).unwrap_or("AWS S3");
        let creds_from = self
            .settings
            .creds
            .as_ref()
            .map(|c| c.from.clone())
            .unwrap_or_else(|| "the instance role".into());
        let (kind, hint) = if is_no_bucket(&text) {
            (
                Kind::Usage,
                format!(
                    "bucket {} does not exist at {endpoint}: create it (`aws s3 mb s3://{}`), or check the URL and AWS_ENDPOINT_URL / AWS_REGION",
                    self.url.bucket, self.url.bucket
                ),
            )
        } else if [
            "PermanentRedirect",
            "AuthorizationHeaderMalformed",
            "IllegalLocationConstraint",
            "incorrectly configured region",
        ]
        .iter()
        .any(|c| text.contains(c))
            || status_in(&text, &["301", "307", "400"])
        {
            (
                Kind::Usage,
                format!(
                    "{endpoint} refused the request as malformed or sent it elsewhere (region {}): check AWS_REGION (or the profile's region) is the bucket's region, and AWS_ENDPOINT_URL",
                    self.settings.region
                ),
            )
        } else if matches!(
            e,
            object_store::Error::Unauthenticated { .. } | object_store::Error::PermissionDenied { .. }
        ) || status_in(&text, &["403"])
            || [
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "AccessDenied",
                "ExpiredToken",
                "InvalidToken",
                "403 Forbidden",
            ]
            .iter()
            .any(|c| text.contains(c))
        {
            (
                Kind::Usage,
                format!(
                    "the credentials were refused (they come from {creds_from}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or AWS_PROFILE, and that they may {what} in bucket {}",
                    self.url.bucket
                ),
            )
        } else {
            (
                Kind::Failed,
                format!(
                    "is {endpoint} reachable from this machine? kfadmin retried for up to {} (KFADMIN_OFFSITE_RETRY); check AWS_ENDPOINT_URL, the network, then run again",
                    humantime::format_duration(retry_timeout().unwrap_or(Duration::from_secs(120)))
                ),
            )
        };
        let message = format!("cannot {what} {target}: {}", short(&text));
        Error::new(kind, message).hint(hint)
    }

    fn io_error(&self, what: &str, name: &str, e: std::io::Error) -> Error {
        match e.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
            Some(inner) => {
                Error::new(inner.kind, inner.message.clone()).hint(inner.hint.clone().unwrap_or_default())
            }
            None if e.kind() == std::io::ErrorKind::Interrupted => Error::interrupted(),
            None => Error::failed(format!("cannot {what} {}", self.url.object(name))).source(e),
        }
    }
}

/// Whether an error's text says the bucket does not exist.
fn is_no_bucket(text: &str) -> bool {
    text.contains("NoSuchBucket") || text.contains("bucket does not exist")
}

/// Whether an error's text carries one of these HTTP statuses (`status 403`, `403 Forbidden`).
fn status_in(text: &str, codes: &[&str]) -> bool {
    codes.iter().any(|c| {
        text.match_indices(c).any(|(i, _)| {
            let before = text[..i].chars().next_back();
            let after = text[i + c.len()..].chars().next();
            before.is_some_and(|b| b == ' ' || b == ':')
                && after.is_none_or(|a| a == ' ' || a == ')' || a == ',')
        })
    })
}

/// Resolves when Ctrl-C or SIGTERM was received.
async fn interrupted() {
    while !crate::error::interrupt::requested() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn version(m: &object_store::ObjectMeta) -> String {
    format!("{} {}", m.e_tag.as_deref().unwrap_or(""), m.last_modified.timestamp_millis())
}

/// An S3 error, told briefly: the status and the `<Code>` and `<Message>` of its XML body
/// when it has one, else the message on one line, cut at 400 characters.
fn short(text: &str) -> String {
    let tag = |t: &str| {
        let open = format!("<{t}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find("</")? + start;
        Some(text[start..end].trim().to_string())
    };
    if let Some(code) = tag("Code") {
        let status = text.find("status code: ").map(|i| {
            let rest = &text[i + 13..];
            rest[..rest.find(':').unwrap_or(rest.len())].trim().to_string()
        });
        let message = tag("Message").map(|m| format!(": {m}")).unwrap_or_default();
        return match status {
            Some(st) => format!("{code}{message} ({st})"),
            None => format!("{code}{message}"),
        };
    }
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 400 {
        format!("{}…", one.chars().take(400).collect::<String>())
    } else {
        one
    }
}

/// Fill `buf` unless the file ends first; returns how much was read.
fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A blocking reader over an object's body.
pub struct RemoteRead<'a> {
    remote: &'a Remote,
    name: String,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    etag: Option<String>,
    /// Bytes of the body read so far.
    offset: u64,
    /// Resumes since the last byte arrived.
    stuck: u32,
    chunk: Bytes,
}

impl RemoteRead<'_> {
    /// The next piece of the body, resuming a cut-off transfer; None at its end.
    fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        loop {
            let next = self.remote.block(async { Ok(self.stream.next().await) })?;
            match next {
                None => return Ok(None),
                Some(Ok(b)) => {
                    self.offset += b.len() as u64;
                    if !b.is_empty() {
                        self.stuck = 0;
                    }
                    return Ok(Some(b));
                }
                Some(Err(e)) if self.stuck < RESUMES && resumable(&e) => {
                    self.stuck += 1;
                    let wait = Duration::from_millis(200 << self.stuck.min(5));
                    self.remote.block(async {
                        tokio::time::sleep(wait).await;
                        Ok(())
                    })?;
                    match self.remote.get_from(&self.name, self.offset, self.etag.clone()) {
                        Ok((s, _)) => self.stream = s,
                        Err(err) if err.kind == Kind::Interrupted => return Err(err),
                        // Counted: the next read fails again, or resumes again.
                        Err(_) => self.stream = futures_util::stream::iter([Err(e)]).boxed(),
                    }
                }
                Some(Err(e)) => return Err(self.remote.error("read", Some(&self.name), e)),
            }
        }
    }
}

/// Whether a failed body read may be resumed: the connection failed, not the request.
fn resumable(e: &object_store::Error) -> bool {
    !matches!(
        e,
        object_store::Error::NotFound { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
    )
}

impl Read for RemoteRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.next_chunk() {
                Ok(Some(b)) => self.chunk = b,
                Ok(None) => return Ok(0),
                Err(e) => return Err(std::io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// No credentials anywhere the AWS CLI would look, for a service that needs them.
fn no_credentials(url: &S3Url) -> Error {
    Error::usage(format!("no S3 credentials for {url}"))
        .hint("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a profile in ~/.aws/credentials (keys or credential_process), or web identity (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN) or container credentials (AWS_CONTAINER_CREDENTIALS_FULL_URI)")
}
