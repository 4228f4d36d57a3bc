//! The AWS CLI's other credential sources, each resolved once per run into temporary keys:
//! `credential_process` (which also covers SSO, through `aws configure export-credentials`),
//! web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN`, as on EKS: STS
//! AssumeRoleWithWebIdentity) and container credentials (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`
//! as on ECS, `AWS_CONTAINER_CREDENTIALS_FULL_URI` with `AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]`).
//! A profile that needs what kfadmin does not do (`role_arn` with a `source_profile`, SSO) is an
//! error naming it and the `credential_process` way around it.

use std::time::Duration;

use super::awsconfig::Creds;
use crate::error::{Error, Result};

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
        }),
        _ => Err(bad(source, "no AccessKeyId and SecretAccessKey in what it returned")),
    }
}

/// `credential_process = COMMAND` of `profile`: run through the shell, its stdout the JSON.
pub fn process(profile: &str, command: &str) -> Result<Creds> {
    let source = format!("the credential_process of profile {profile}");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| bad(&source, e))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap_or("").chars().take(300).collect::<String>();
        return Err(bad(&source, format!("it exited with {}: {first}", out.status))
            .hint("run it by hand; for SSO, `aws sso login --profile NAME` first"));
    }
    from_json(&source, &String::from_utf8_lossy(&out.stdout))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().timeout_global(Some(TIMEOUT)).http_status_as_error(false).build().into()
}

/// AssumeRoleWithWebIdentity at the STS endpoint (`AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, or
/// AWS's for `region`), with the token in `token_file`.
pub fn web_identity(token_file: &str, role_arn: &str, session: &str, region: &str) -> Result<Creds> {
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
            Ok(Creds { key_id, secret, token: tag("SessionToken"), from: source })
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
pub fn container(relative: Option<&str>, full: Option<&str>) -> Result<Creds> {
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
