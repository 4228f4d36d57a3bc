//! A listing of the objects directly under a prefix that survives any key others put there.
//! object_store refuses a whole listing when one key is not a path it can represent (`p//x`,
//! `p/./y`, a `.` or `..` segment): one stray object would hide every archive. This is S3's
//! ListObjectsV2 (delimiter `/`, `encoding-type=url`, every page), signed with SigV4 from the
//! static credentials; every key comes back as S3 holds it, and the caller skips what is not
//! kfadmin's. (Without static credentials, an instance role, the caller uses object_store's.)

use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::awsconfig::{Creds, Settings};

/// An object directly under the prefix: its key after `prefix/`, size, ETag, modification time.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    pub bytes: u64,
    pub etag: Option<String>,
}

/// Everything directly under `prefix` in `bucket` (no `/` in the rest of the key), every page;
/// an error is the status and body of the failed page.
pub async fn list(
    client: &reqwest::Client,
    settings: &Settings,
    creds: &Creds,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<Listed>, String> {
    let base = match &settings.endpoint {
        Some(e) => e.trim_end_matches('/').to_string(),
        None => format!("https://s3.{}.amazonaws.com", settings.region),
    };
    let dir = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut query = vec![
            ("delimiter".to_string(), "/".to_string()),
            ("encoding-type".to_string(), "url".to_string()),
            ("list-type".to_string(), "2".to_string()),
            ("prefix".to_string(), dir.clone()),
        ];
        if let Some(t) = &token {
            query.push(("continuation-token".to_string(), t.clone()));
        }
        query.sort();
        let qs: String =
            query.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&");
        let path = format!("/{}", enc(bucket));
        let url = format!("{base}{path}?{qs}");
        let host = host_of(&base);
        let headers = sign(settings, creds, &host, &path, &qs, SystemTime::now());
        let mut req = client.get(&url);
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let res = req.send().await.map_err(|e| e.without_url().to_string())?;
        let status = res.status();
        let body = res.text().await.map_err(|e| e.without_url().to_string())?;
        if !status.is_success() {
            return Err(format!("status {}: {}", status.as_u16(), body));
        }
        for c in sections(&body, "Contents") {
            let Some(key) = tag(c, "Key").map(|k| pct_decode(&unescape(&k))) else { continue };
            let Some(name) = key.strip_prefix(&dir) else { continue };
            if name.is_empty() || name.contains('/') {
                continue;
            }
            out.push(Listed {
                name: name.to_string(),
                bytes: tag(c, "Size").and_then(|s| s.parse().ok()).unwrap_or(0),
                etag: tag(c, "ETag").map(|e| unescape(&e)),
            });
        }
        token = match tag(&body, "IsTruncated").as_deref() {
            Some("true") => tag(&body, "NextContinuationToken").map(|t| unescape(&t)),
            _ => None,
        };
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// The client for listings: the same connect and idle bounds as the rest.
pub fn client(
    connect: Duration,
    idle: Duration,
    allow_http: bool,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::ClientBuilder::new().connect_timeout(connect).read_timeout(idle).https_only(!allow_http).build()
}

fn host_of(base: &str) -> String {
    let rest = base.split_once("://").map(|(_, r)| r).unwrap_or(base);
    rest.split('/').next().unwrap_or("").to_string()
}

/// SigV4 headers for a GET of `path?qs` at `host` (an empty body).
fn sign(
    settings: &Settings,
    creds: &Creds,
    host: &str,
    path: &str,
    qs: &str,
    now: SystemTime,
) -> Vec<(String, String)> {
    let stamp: String = humantime::format_rfc3339_seconds(now)
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    let day = &stamp[..8];
    let payload = hex(&Sha256::digest(b""));
    let mut headers = vec![
        ("host".to_string(), host.to_string()),
        ("x-amz-content-sha256".to_string(), payload.clone()),
        ("x-amz-date".to_string(), stamp.clone()),
    ];
    if let Some(t) = &creds.token {
        headers.push(("x-amz-security-token".to_string(), t.clone()));
    }
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{}\n", v.trim())).collect();
    let canonical = format!("GET\n{path}\n{qs}\n{canonical_headers}\n{signed}\n{payload}");
    let scope = format!("{day}/{}/s3/aws4_request", settings.region);
    let to_sign =
        format!("AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}", hex(&Sha256::digest(canonical.as_bytes())));
    let mut key = hmac(format!("AWS4{}", creds.secret).as_bytes(), day.as_bytes());
    for part in [settings.region.as_str(), "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex(&hmac(&key, to_sign.as_bytes()));
    headers.push((
        "authorization".to_string(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            creds.key_id
        ),
    ));
    headers.retain(|(k, _)| k != "host");
    headers
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(msg).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// RFC 3986 encoding as SigV4 wants it: everything but `A-Za-z0-9-_.~` as `%XX`.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hexval = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hexval), b.get(i + 2).copied().and_then(hexval)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The bodies of every `<tag>…</tag>` in `xml`.
fn sections<'a>(xml: &'a str, t: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{t}>"), format!("</{t}>"));
    xml.split(open.as_str()).skip(1).filter_map(|s| s.split(close.as_str()).next()).collect()
}

fn tag(xml: &str, t: &str) -> Option<String> {
    sections(xml, t).first().map(|s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigv4_matches_the_aws_example() {
        // The HMAC-SHA256 test vector of RFC 4231 (case 2).
        assert_eq!(
            hex(&hmac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(enc("a b/~%"), "a%20b%2F~%25");
        assert_eq!(pct_decode("a%09b%C3%A9"), "a\tb\u{e9}");
    }
}
