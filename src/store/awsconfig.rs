//! Credentials, region and endpoint exactly where the AWS CLI finds them: the environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` /
//! `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`), then the profile
//! (`AWS_PROFILE`, else `default`) in the shared credentials file (`~/.aws/credentials`,
//! `AWS_SHARED_CREDENTIALS_FILE`) and config file (`~/.aws/config`, `AWS_CONFIG_FILE`).
//!
//! Every secret found is registered with [`crate::crypto::register_secret`], so no message,
//! report or ping can carry it; nothing here ever formats one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Kind, Result};

/// Static credentials and where they came from (for messages: the variable or the file).
#[derive(Clone)]
pub struct Creds {
    pub key_id: String,
    pub secret: String,
    pub token: Option<String>,
    pub from: String,
    /// When temporary credentials expire (None: they do not, or their source did not say).
    pub expires: Option<std::time::SystemTime>,
    /// Where fresh ones come from when these expire (None: static keys).
    pub source: Option<super::credsrc::Source>,
}

impl Creds {
    /// Mask every part of these credentials in whatever kfadmin prints from now on.
    pub fn register(&self) {
        crate::crypto::register_secret(&self.secret);
        crate::crypto::register_secret(&self.key_id);
        if let Some(t) = &self.token {
            crate::crypto::register_secret(t);
        }
    }
}

impl std::fmt::Debug for Creds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Creds(from {})", self.from)
    }
}

/// What a connection to S3 needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub region: String,
    /// `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL` or the profile's `endpoint_url`.
    pub endpoint: Option<String>,
    pub creds: Option<Creds>,
    /// Plain `http://` allowed: a loopback endpoint, or `AWS_ALLOW_HTTP=true`.
    pub allow_http: bool,
    /// The profile used (for messages).
    pub profile: String,
}

/// One INI file's sections: `[name]` → key → value.
type Ini = HashMap<String, HashMap<String, String>>;

fn parse_ini(text: &str) -> Ini {
    let mut out: Ini = HashMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
            out.entry(section.clone()).or_default();
        } else if let Some((k, v)) = line.split_once('=') {
            out.entry(section.clone())
                .or_default()
                .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

fn home_file(var: &str, rel: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => std::env::var_os("HOME").map(|h| Path::new(&h).join(rel)),
    }
}

/// A file that does not exist is an empty one; an unreadable one is an error naming it.
fn read_ini(path: Option<PathBuf>) -> Result<(Ini, Option<PathBuf>)> {
    let Some(path) = path else { return Ok((Ini::new(), None)) };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((parse_ini(&text), Some(path))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Ini::new(), None)),
        Err(e) => Err(Error::io("cannot read the AWS file", &path, e).kind(Kind::Usage)),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// Resolve the settings from the environment and the shared files.
pub fn resolve() -> Result<Settings> {
    let profile =
        env("AWS_PROFILE").or_else(|| env("AWS_DEFAULT_PROFILE")).unwrap_or_else(|| "default".into());
    let (credentials, cred_file) = read_ini(home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"))?;
    let (config, config_file) = read_ini(home_file("AWS_CONFIG_FILE", ".aws/config"))?;
    let in_creds = credentials.get(&profile);
    let config_section =
        if profile == "default" { "default".to_string() } else { format!("profile {profile}") };
    let in_config = config.get(&config_section).or_else(|| config.get(&profile));
    let from_profile =
        |key: &str| in_creds.and_then(|s| s.get(key)).or_else(|| in_config.and_then(|s| s.get(key))).cloned();
    let region = env("AWS_REGION")
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .or_else(|| in_config.and_then(|s| s.get("region")).cloned())
        .unwrap_or_else(|| "us-east-1".into());
    let creds = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(key_id), Some(secret)) => {
            Some(Creds {
                key_id,
                secret,
                token: env("AWS_SESSION_TOKEN"),
                from: "AWS_ACCESS_KEY_ID".into(),
                expires: None,
                source: None,
            })
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(Error::usage("only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set")
                .hint("set both (and AWS_SESSION_TOKEN for temporary credentials), or neither to use AWS_PROFILE"))
        }
        (None, None) => match (from_profile("aws_access_key_id"), from_profile("aws_secret_access_key")) {
            (Some(key_id), Some(secret)) => {
                let file = if in_creds.is_some_and(|s| s.contains_key("aws_access_key_id")) {
                    cred_file.as_ref()
                } else {
                    config_file.as_ref()
                };
                Some(Creds {
                    key_id,
                    secret,
                    token: from_profile("aws_session_token"),
                    from: format!(
                        "profile {profile} in {}",
                        file.map(|f| f.display().to_string()).unwrap_or_else(|| "~/.aws".into())
                    ),
                    expires: None,
                    source: None,
                })
            }
            _ if profile != "default" && in_creds.is_none() && in_config.is_none() => {
                return Err(Error::usage(format!("AWS_PROFILE names profile {profile:?}, which is in neither ~/.aws/credentials nor ~/.aws/config"))
                    .hint("check AWS_PROFILE, or run `aws configure --profile NAME`"))
            }
            _ => other_sources(&profile, &from_profile, &region)?,
        },
    };
    if let Some(c) = &creds {
        c.register();
    }
    let endpoint = env("AWS_ENDPOINT_URL_S3")
        .or_else(|| env("AWS_ENDPOINT_URL"))
        .or_else(|| in_config.and_then(|s| s.get("endpoint_url")).cloned())
        .map(|e| e.trim_end_matches('/').to_string());
    let allow_http = match &endpoint {
        Some(e) if e.starts_with("http://") => {
            is_loopback(e) || env("AWS_ALLOW_HTTP").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        }
        _ => false,
    };
    if let Some(e) = &endpoint {
        check_endpoint(e, allow_http)?;
    }
    Ok(Settings { region, endpoint, creds, allow_http, profile })
}

/// Without static keys: what the profile names (a role or SSO: an error saying how to get
/// around it; a `credential_process`; a web identity), then web identity and container
/// credentials from the environment; None: the instance role (object_store asks for it).
fn other_sources(
    profile: &str,
    from_profile: &dyn Fn(&str) -> Option<String>,
    region: &str,
) -> Result<Option<Creds>> {
    use super::credsrc;
    let session = env("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| "kfadmin".into());
    if let (Some(file), Some(role)) = (from_profile("web_identity_token_file"), from_profile("role_arn")) {
        let region = region.to_string();
        return credsrc::Source::WebIdentity { file, role, session, region }.fetch().map(Some);
    }
    if from_profile("role_arn").is_some() {
        return Err(credsrc::unsupported(profile, "role_arn (an assumed role)"));
    }
    if from_profile("sso_session").is_some() || from_profile("sso_start_url").is_some() {
        return Err(credsrc::unsupported(profile, "SSO (sso_session)"));
    }
    if let Some(command) = from_profile("credential_process") {
        return credsrc::Source::Process { profile: profile.to_string(), command }.fetch().map(Some);
    }
    if let (Some(file), Some(role)) = (env("AWS_WEB_IDENTITY_TOKEN_FILE"), env("AWS_ROLE_ARN")) {
        let region = region.to_string();
        return credsrc::Source::WebIdentity { file, role, session, region }.fetch().map(Some);
    }
    let (relative, full) =
        (env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"), env("AWS_CONTAINER_CREDENTIALS_FULL_URI"));
    if relative.is_some() || full.is_some() {
        return credsrc::Source::Container { relative, full }.fetch().map(Some);
    }
    Ok(None)
}

/// The host of an `http(s)://host[:port][/…]` endpoint.
pub fn endpoint_host(e: &str) -> &str {
    let rest = e.split_once("://").map(|(_, r)| r).unwrap_or(e);
    let authority = rest.split('/').next().unwrap_or("");
    let authority = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    authority.split(':').next().unwrap_or("")
}

/// An endpoint on this machine (`localhost`, 127.0.0.0/8, `::1`).
pub fn is_loopback(endpoint: &str) -> bool {
    let host = endpoint_host(endpoint);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn check_endpoint(e: &str, allow_http: bool) -> Result<()> {
    if e.contains('@') {
        return Err(Error::usage("the S3 endpoint URL carries credentials (user@host); kfadmin does not take them there")
            .hint("put the credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile), and the bare URL in AWS_ENDPOINT_URL"));
    }
    if e.starts_with("https://") {
        return Ok(());
    }
    if e.starts_with("http://") {
        if allow_http {
            return Ok(());
        }
        return Err(Error::usage(format!(
            "the S3 endpoint {} is plain http:// and not on this machine: archives and credentials would cross the network unencrypted",
            endpoint_host(e)
        ))
        .hint("use an https:// endpoint, or set AWS_ALLOW_HTTP=true if the network in between is trusted"));
    }
    Err(Error::usage(format!("the S3 endpoint {e:?} is not an http:// or https:// URL"))
        .hint("set AWS_ENDPOINT_URL to e.g. https://s3.example.com or http://127.0.0.1:9000"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_and_hosts() {
        let ini = parse_ini("[default]\naws_access_key_id = A\n# c\n[profile x]\nRegion=eu-west-1\n");
        assert_eq!(ini["default"]["aws_access_key_id"], "A");
        assert_eq!(ini["profile x"]["region"], "eu-west-1");
        assert_eq!(endpoint_host("http://127.0.0.1:9000/x"), "127.0.0.1");
        assert_eq!(endpoint_host("https://[::1]:9000"), "::1");
        assert!(
            is_loopback("http://localhost:1")
                && is_loopback("http://127.9.0.1")
                && is_loopback("http://[::1]:5")
        );
        assert!(!is_loopback("http://10.0.0.1:9000") && !is_loopback("http://s3.example.com"));
        assert!(check_endpoint("http://s3.example.com", false).is_err());
        assert!(check_endpoint("http://s3.example.com", true).is_ok());
        assert!(check_endpoint("https://u:p@s3.example.com", false).is_err());
        assert!(check_endpoint("ftp://x", true).is_err());
    }
}
