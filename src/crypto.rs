//! Encryption of archives with age: recipients (age X25519 keys, `ssh-ed25519` and `ssh-rsa`
//! public keys) or a passphrase to encrypt; identity files (age identities, unencrypted SSH
//! private keys) or the passphrase to decrypt.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use age::secrecy::SecretString;

use crate::error::{Error, Kind, Result};

/// The first bytes of every age file.
pub const MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// Whether the file at `path` is age-encrypted (by its first bytes).
pub fn is_encrypted(path: &Path) -> bool {
    let mut head = [0u8; 22];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && head == MAGIC
}

pub type Recipient = Box<dyn age::Recipient + Send + Sync>;
pub type Identity = Box<dyn age::Identity + Send + Sync>;

/// How a new archive is encrypted.
pub enum Encryption {
    None,
    /// To these recipients, plus a one-time key kept in memory to read the archive back.
    Recipients {
        recipients: Vec<Recipient>,
        described: Vec<String>,
        check_key: age::x25519::Identity,
    },
    Passphrase(SecretString),
}

impl Encryption {
    pub fn is_some(&self) -> bool {
        !matches!(self, Encryption::None)
    }

    pub fn recipients(recipients: Vec<Recipient>, described: Vec<String>) -> Encryption {
        Encryption::Recipients { recipients, described, check_key: age::x25519::Identity::generate() }
    }

    /// An age encryptor for this setting (None when not encrypting).
    pub fn encryptor(&self) -> Result<Option<age::Encryptor>> {
        match self {
            Encryption::None => Ok(None),
            Encryption::Passphrase(p) => Ok(Some(age::Encryptor::with_user_passphrase(p.clone()))),
            Encryption::Recipients { recipients, check_key, .. } => {
                let check = check_key.to_public();
                let all = recipients
                    .iter()
                    .map(|r| r.as_ref() as &dyn age::Recipient)
                    .chain(std::iter::once(&check as _));
                age::Encryptor::with_recipients(all)
                    .map(Some)
                    .map_err(|e| Error::usage(format!("cannot encrypt to these recipients: {e}")))
            }
        }
    }

    /// What can decrypt what this writes, to verify it before it gets its final name.
    pub fn check_keys(&self) -> Keys {
        match self {
            Encryption::None => Keys::default(),
            Encryption::Passphrase(p) => Keys { passphrase: Some(p.clone()), ..Keys::default() },
            Encryption::Recipients { check_key, .. } => {
                Keys { identities: vec![Box::new(check_key.clone())], ..Keys::default() }
            }
        }
    }

    /// For the report: "passphrase" or the recipients as given.
    pub fn describe(&self) -> Vec<String> {
        match self {
            Encryption::None => vec![],
            Encryption::Passphrase(_) => vec!["passphrase (scrypt)".into()],
            Encryption::Recipients { described, .. } => described.clone(),
        }
    }
}

/// A secret where a public key belongs: the easy mistake of pointing `--recipients-file` (or
/// `--encrypt-to`) at an identity. The secret itself is never repeated in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Secret {
    AgeIdentity,
    SshPrivateKey,
}

/// The base64 of "openssh-key-v1\0", how every OpenSSH private key's body starts.
const OPENSSH_BODY: &str = "b3BlbnNzaC1rZXktdjE";

fn secret_in(s: &str) -> Option<Secret> {
    let upper = s.trim_start().to_ascii_uppercase();
    if upper.starts_with("AGE-SECRET-KEY-") || upper.starts_with("AGE-PLUGIN-") {
        Some(Secret::AgeIdentity)
    } else if s.contains("PRIVATE KEY-----") || s.contains(OPENSSH_BODY) {
        Some(Secret::SshPrivateKey)
    } else {
        None
    }
}

impl Secret {
    /// "… is an age identity (a secret key), not a recipient; give its public key: …"
    fn error(self, what: &str, file: Option<&Path>) -> Error {
        let file = file.map(|f| f.display().to_string()).unwrap_or_else(|| "FILE".into());
        let msg = match self {
            Secret::AgeIdentity => format!(
                "{what} is an age identity (a secret key), not a recipient; give its public key: age-keygen -y {file}"
            ),
            Secret::SshPrivateKey => format!(
                "{what} is an SSH private key (a secret), not a recipient; give its public key: ssh-keygen -y -f {file}"
            ),
        };
        Error::usage(msg).hint(
            "a recipient is public: an age public key (age1…) or an SSH public key (ssh-ed25519 … or ssh-rsa …); \
             keep the secret key away from the backup host, or pass it only to --identity when decrypting",
        )
    }
}

/// One recipient: `age1…`, `ssh-ed25519 …` or `ssh-rsa …`.
pub fn parse_recipient(s: &str) -> Result<Recipient> {
    let s = s.trim();
    if let Some(secret) = secret_in(s) {
        return Err(secret.error("a recipient given", None));
    }
    let bad = |why: String| {
        Error::usage(format!("{s:?} is not a recipient kfadmin can encrypt to: {why}"))
            .hint("give an age public key (age1…) or an SSH public key (ssh-ed25519 … or ssh-rsa …)")
    };
    if s.starts_with("age1") {
        s.parse::<age::x25519::Recipient>().map(|r| Box::new(r) as Recipient).map_err(|e| bad(e.to_string()))
    } else if s.starts_with("ssh-") {
        s.parse::<age::ssh::Recipient>().map(|r| Box::new(r) as Recipient).map_err(|e| bad(format!("{e:?}")))
    } else {
        Err(bad("unknown kind of key".into()))
    }
}

/// A recipients file: one recipient a line; blank lines and `#` comments ignored. A line that
/// is not a recipient is named by its number only: it may be part of a secret.
pub fn read_recipients_file(path: &Path) -> Result<Vec<(Recipient, String)>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io("cannot read the recipients file", path, e).kind(Kind::Usage))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("line {} of {}", n + 1, path.display());
        if let Some(secret) = secret_in(line) {
            return Err(secret.error(&at(), Some(path)));
        }
        let r = parse_recipient(line).map_err(|e| {
            Error::usage(format!("{} is not a recipient kfadmin can encrypt to", at()))
                .hint(e.hint.unwrap_or_default())
        })?;
        out.push((r, line.to_string()));
    }
    if out.is_empty() {
        return Err(Error::usage(format!("the recipients file {} lists no recipient", path.display())));
    }
    Ok(out)
}

/// Values that must never leave the process, whatever their shape: the AWS credentials in
/// use (from the environment or a profile). Registered by who reads them; the AWS variables
/// of the environment are registered on first use.
static SECRETS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
static ENV_SECRETS: std::sync::Once = std::sync::Once::new();

/// Shorter values are not masked: they would mask ordinary words (a real access key id has
/// 20 characters, a secret key 40, a session token hundreds; MinIO's default `minioadmin`, 10,
/// is masked).
const MIN_SECRET: usize = 8;

/// Mask every later occurrence of `value` in output ([`redact`]).
pub fn register_secret(value: &str) {
    let value = value.trim();
    if value.len() < MIN_SECRET {
        return;
    }
    let mut all = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    if !all.iter().any(|s| s == value) {
        all.push(value.to_string());
        // Longest first, so a secret that contains another is masked whole.
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

fn registered() -> Vec<String> {
    ENV_SECRETS.call_once(|| {
        for var in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ACCESS_KEY_ID"] {
            if let Ok(v) = std::env::var(var) {
                register_secret(&v);
            }
        }
    });
    SECRETS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// An AWS access key id (`AKIA…`, `ASIA…`: 4 letters and 16 more upper-case letters or
/// digits) at the start of `text`.
fn access_key_id_at(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 20
        && (b.starts_with(b"AKIA") || b.starts_with(b"ASIA"))
        && b[4..20].iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && b.get(20).is_none_or(|c| !c.is_ascii_alphanumeric())
}

/// [`redact`]'s first pass: registered values and access key ids.
fn redact_credentials(text: &str) -> std::borrow::Cow<'_, str> {
    let mut out = std::borrow::Cow::Borrowed(text);
    for s in registered() {
        if out.contains(s.as_str()) {
            out = std::borrow::Cow::Owned(out.replace(s.as_str(), "[redacted]"));
        }
    }
    if !out.contains("AKIA") && !out.contains("ASIA") {
        return out;
    }
    match mask_each(&out, |rest, i| {
        let boundary = i == 0 || !out.as_bytes()[i - 1].is_ascii_alphanumeric();
        (boundary && access_key_id_at(rest)).then_some((20, "[redacted access key id]"))
    }) {
        Some(masked) => std::borrow::Cow::Owned(masked),
        None => out,
    }
}

/// `text` with every match of `at` replaced, scanning left to right: `at(rest, i)` is given
/// the text from byte `i` on and returns the length of a secret starting there and its mask.
/// None when nothing matched.
fn mask_each(text: &str, at: impl Fn(&str, usize) -> Option<(usize, &'static str)>) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let (mut i, mut changed) = (0, false);
    while i < text.len() {
        if let Some((len, mask)) = at(&text[i..], i) {
            out.push_str(mask);
            i += len;
            changed = true;
        } else {
            let c = text[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    changed.then_some(out)
}

/// Secrets masked in text that leaves the process (error messages, JSON reports, pings,
/// metrics), a last line of defence: the AWS credentials in use and anything shaped like an
/// access key id, age identities (`AGE-SECRET-KEY-1…`, `AGE-PLUGIN-…`), PEM and OpenSSH
/// private key blocks, and OpenSSH private key bodies.
pub fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    match redact_credentials(text) {
        std::borrow::Cow::Borrowed(t) => redact_keys(t),
        std::borrow::Cow::Owned(t) => std::borrow::Cow::Owned(redact_keys(&t).into_owned()),
    }
}

fn redact_keys(text: &str) -> std::borrow::Cow<'_, str> {
    let upper = text.to_ascii_uppercase(); // ASCII case mapping keeps every byte offset
    let suspicious = upper.contains("AGE-SECRET-KEY-")
        || upper.contains("AGE-PLUGIN-")
        || text.contains("PRIVATE KEY-----")
        || text.contains(OPENSSH_BODY);
    if !suspicious {
        return std::borrow::Cow::Borrowed(text);
    }
    match mask_each(text, |rest, i| secret_at(rest, &upper[i..])) {
        Some(masked) => std::borrow::Cow::Owned(masked),
        None => std::borrow::Cow::Borrowed(text),
    }
}

/// A secret starting at the beginning of `text` (`upper` is its ASCII upper case): its
/// length and what replaces it.
fn secret_at(text: &str, upper: &str) -> Option<(usize, &'static str)> {
    let run = |from: usize, ok: fn(u8) -> bool| {
        from + text.as_bytes()[from..].iter().take_while(|&&b| ok(b)).count()
    };
    let bech32 = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
    for (prefix, mask) in
        [("AGE-SECRET-KEY-", "AGE-SECRET-KEY-[redacted]"), ("AGE-PLUGIN-", "AGE-PLUGIN-[redacted]")]
    {
        if upper.starts_with(prefix) {
            let end = run(prefix.len(), bech32);
            // A real key has dozens of characters; "AGE-SECRET-KEY-1…" in a hint is not one.
            return (end - prefix.len() >= 16).then_some((end, mask));
        }
    }
    if text.starts_with(OPENSSH_BODY) {
        let end = run(0, |b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
        return Some((end, "[redacted private key]"));
    }
    if let Some(label) = text.strip_prefix("-----BEGIN ") {
        let label_end = label.find("-----")? + 11;
        if !label[..label_end - 11].contains("PRIVATE KEY") {
            return None;
        }
        let end = match text[label_end..].find("-----END ") {
            Some(e) => {
                let e = label_end + e + 9;
                text[e..].find("-----").map(|f| e + f + 5).unwrap_or(text.len())
            }
            None => text.len(),
        };
        return Some((end, "[redacted private key]"));
    }
    None
}

/// [`redact`] on every string in a JSON value.
pub fn redact_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => {
            if let std::borrow::Cow::Owned(r) = redact(s) {
                *s = r;
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact_json),
        serde_json::Value::Object(o) => o.values_mut().for_each(redact_json),
        _ => {}
    }
}

/// What kfadmin may decrypt with.
#[derive(Default)]
pub struct Keys {
    pub identities: Vec<Identity>,
    pub passphrase: Option<SecretString>,
    /// The identity files they came from, for messages.
    pub files: Vec<PathBuf>,
    /// The public keys of the age X25519 identities, to encrypt to the same people.
    pub own_recipients: Vec<String>,
}

impl Keys {
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty() && self.passphrase.is_none()
    }

    /// Identities from age identity files (`AGE-SECRET-KEY-1…` lines) or unencrypted SSH
    /// private keys.
    pub fn from_files(paths: &[PathBuf]) -> Result<Keys> {
        let mut keys = Keys::default();
        for p in paths {
            let data = std::fs::read(p)
                .map_err(|e| Error::io("cannot read the identity file", p, e).kind(Kind::Usage))?;
            let text = String::from_utf8_lossy(&data);
            if text.contains("AGE-SECRET-KEY-") {
                for line in text.lines().map(str::trim).filter(|l| l.starts_with("AGE-SECRET-KEY-")) {
                    if let Ok(id) = line.parse::<age::x25519::Identity>() {
                        keys.own_recipients.push(id.to_public().to_string());
                    }
                }
                let ids = age::IdentityFile::from_buffer(BufReader::new(&data[..]))
                    .and_then(|f| f.into_identities().map_err(std::io::Error::other))
                    .map_err(|e| {
                        Error::usage(format!("{} is not a valid age identity file: {e}", p.display()))
                    })?;
                keys.identities.extend(ids);
            } else if text.contains("PRIVATE KEY-----") {
                let id =
                    age::ssh::Identity::from_buffer(BufReader::new(&data[..]), Some(p.display().to_string()))
                        .map_err(|e| {
                            Error::usage(format!(
                                "{} is not an SSH private key kfadmin can read: {e}",
                                p.display()
                            ))
                        })?;
                match id {
                    age::ssh::Identity::Unencrypted(_) => keys.identities.push(Box::new(id)),
                    age::ssh::Identity::Encrypted(_) => {
                        return Err(Error::usage(format!("the SSH key {} is protected by a passphrase", p.display())).hint(
                            "use an unencrypted copy kept as safe as the key itself, or an age identity file (age-keygen)",
                        ))
                    }
                    age::ssh::Identity::Unsupported(k) => {
                        return Err(Error::usage(format!("the SSH key {} is of a kind age does not support: {k:?}", p.display())))
                    }
                }
            } else {
                return Err(Error::usage(format!(
                    "{} is neither an age identity file nor an SSH private key",
                    p.display()
                ))
                .hint("pass the file age-keygen wrote (AGE-SECRET-KEY-1…), or an SSH private key"));
            }
            keys.files.push(p.clone());
        }
        Ok(keys)
    }

    fn all(&self) -> Vec<Box<dyn age::Identity + '_>> {
        let mut v: Vec<Box<dyn age::Identity + '_>> =
            self.identities.iter().map(|i| Box::new(IdRef(i.as_ref())) as Box<dyn age::Identity>).collect();
        if let Some(p) = &self.passphrase {
            v.push(Box::new(age::scrypt::Identity::new(p.clone())));
        }
        v
    }

    /// Open the age stream in `input` (its header must come first).
    pub fn decrypt<R: BufRead>(
        &self,
        input: R,
    ) -> std::result::Result<age::stream::StreamReader<R>, DecryptFailure> {
        let d = age::Decryptor::new_buffered(input)
            .map_err(|e| DecryptFailure::damage(format!("not a valid age file: {e}")))?;
        if self.is_empty() {
            return Err(DecryptFailure::key(if d.is_scrypt() {
                "encrypted with a passphrase: set KFADMIN_PASSPHRASE or --passphrase-file, or run on a terminal to be asked for it"
                    .into()
            } else {
                "encrypted: pass --identity FILE (or set KFADMIN_IDENTITY_FILE) with a key it was encrypted to".into()
            }));
        }
        let scrypt = d.is_scrypt();
        let all = self.all();
        d.decrypt(all.iter().map(|b| b.as_ref() as &dyn age::Identity)).map_err(|e| match e {
            age::DecryptError::NoMatchingKeys if scrypt => {
                DecryptFailure::key("it is encrypted with a passphrase; give the passphrase, not an identity".into())
            }
            // The header parses and no stanza opens with the keys given: a key question, not
            // damage (the sidecar's checksum says whether the bytes are as written).
            age::DecryptError::NoMatchingKeys => DecryptFailure::key(format!(
                "none of the identities given{} can decrypt it: it was encrypted to other keys; pass --identity FILE with one of its recipients' keys",
                if self.files.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({})",
                        self.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
                    )
                }
            )),
            age::DecryptError::DecryptionFailed | age::DecryptError::KeyDecryptionFailed if scrypt => {
                DecryptFailure::key("the passphrase is wrong".into())
            }
            other => DecryptFailure::damage(format!("cannot decrypt it: {other}")),
        })
    }
}

/// Why an encrypted archive could not be opened: the keys (none given, none that matches, a
/// wrong passphrase: the operator passes the right one, exit 2), or the file (exit 3).
#[derive(Debug, Clone)]
pub struct DecryptFailure {
    pub why: String,
    /// The keys are the problem, not the archive.
    pub key: bool,
}

impl DecryptFailure {
    fn key(why: String) -> Self {
        DecryptFailure { why, key: true }
    }
    fn damage(why: String) -> Self {
        DecryptFailure { why, key: false }
    }
}

/// A borrowed identity, so the same keys can decrypt several archives.
struct IdRef<'a>(&'a (dyn age::Identity + Send + Sync));

impl age::Identity for IdRef<'_> {
    fn unwrap_stanza(
        &self,
        stanza: &age_core::format::Stanza,
    ) -> Option<std::result::Result<age_core::format::FileKey, age::DecryptError>> {
        self.0.unwrap_stanza(stanza)
    }
    fn unwrap_stanzas(
        &self,
        stanzas: &[age_core::format::Stanza],
    ) -> Option<std::result::Result<age_core::format::FileKey, age::DecryptError>> {
        self.0.unwrap_stanzas(stanzas)
    }
}

/// `--passphrase-file` (set once by `main`): where the passphrase is, for a configuration file
/// that must never hold the secret itself.
static PASSPHRASE_FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Sets `--passphrase-file` for this run; with `KFADMIN_PASSPHRASE` set too it is a usage error
/// (which one is meant?).
pub fn set_passphrase_file(path: &Path) -> Result<()> {
    if std::env::var_os("KFADMIN_PASSPHRASE").is_some() {
        return Err(Error::usage("both KFADMIN_PASSPHRASE and --passphrase-file give a passphrase").hint(
            "give one: unset KFADMIN_PASSPHRASE, or drop --passphrase-file (KFADMIN_PASSPHRASE_FILE)",
        ));
    }
    let _ = PASSPHRASE_FILE.set(path.to_path_buf());
    Ok(())
}

/// A passphrase is at hand without a terminal: `KFADMIN_PASSPHRASE` or `--passphrase-file`.
pub fn passphrase_given() -> bool {
    std::env::var_os("KFADMIN_PASSPHRASE").is_some() || PASSPHRASE_FILE.get().is_some()
}

/// The first line of the passphrase file, which only its owner (root or this user) may read.
fn passphrase_from_file(path: &Path) -> Result<SecretString> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::io("cannot read the passphrase file", path, e).kind(Kind::Usage))?;
    let md = f.metadata().map_err(|e| Error::io("cannot read the passphrase file", path, e))?;
    let me = rustix::process::geteuid().as_raw();
    if !md.is_file() || md.len() > 64 * 1024 {
        return Err(Error::usage(format!(
            "the passphrase file {} is not a small regular file",
            path.display()
        )));
    }
    if md.mode() & 0o077 != 0 || (md.uid() != 0 && md.uid() != me) {
        return Err(Error::usage(format!(
            "the passphrase file {} is mode {:04o}, owned by uid {}: only root or you may own it, and no one else read it",
            path.display(),
            md.mode() & 0o7777,
            md.uid()
        ))
        .hint(format!("chown root:root {0}; chmod 600 {0}", path.display())));
    }
    let mut text = String::new();
    f.read_to_string(&mut text).map_err(|e| {
        Error::usage(format!("cannot read the passphrase file {} as text", path.display())).source(e)
    })?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(Error::usage(format!(
            "the passphrase file {} is empty (its first line is the passphrase)",
            path.display()
        )));
    }
    Ok(SecretString::from(line.to_string()))
}

/// A passphrase from `KFADMIN_PASSPHRASE` or `--passphrase-file`, or asked on the terminal
/// (twice when `confirm`).
pub fn passphrase(interactive: bool, confirm: bool) -> Result<SecretString> {
    if let Some(path) = PASSPHRASE_FILE.get() {
        return passphrase_from_file(path);
    }
    if let Ok(p) = std::env::var("KFADMIN_PASSPHRASE") {
        if p.is_empty() {
            return Err(Error::usage("KFADMIN_PASSPHRASE is set but empty"));
        }
        return Ok(SecretString::from(p));
    }
    if !interactive {
        return Err(Error::usage("a passphrase is needed, but there is no terminal to ask on")
            .hint("set KFADMIN_PASSPHRASE for scripts, or use --encrypt-to / --identity with keys"));
    }
    let mut prompt = dialoguer::Password::new().with_prompt("Passphrase for the archive");
    if confirm {
        prompt = prompt.with_confirmation("Repeat the passphrase", "The two passphrases differ");
    }
    let p = prompt
        .interact_on(&dialoguer::console::Term::stderr())
        .map_err(|e| Error::failed("cannot read the passphrase").source(e))?;
    if p.is_empty() {
        return Err(Error::usage("the passphrase is empty"));
    }
    Ok(SecretString::from(p))
}

/// Keys for decrypting `archive`: identity files, else a passphrase (from the environment or
/// the terminal) when the archive is passphrase-encrypted. Empty keys when neither is at hand:
/// the reader then reports that the contents could not be checked.
pub fn keys_for(archive: &Path, identity_files: &[PathBuf], interactive: bool) -> Result<Keys> {
    let mut keys = Keys::from_files(identity_files)?;
    let can_ask = passphrase_given() || interactive;
    if keys.is_empty() && can_ask && is_encrypted(archive) && is_scrypt(archive) {
        keys.passphrase = Some(passphrase(interactive, false)?);
    }
    Ok(keys)
}

/// The keys for the next of several archives read in one run: those of the ones before, unless
/// this one is encrypted and there are none yet (a passphrase is asked at most once).
pub fn keys_next(
    before: Option<Keys>,
    archive: &Path,
    identity_files: &[PathBuf],
    interactive: bool,
) -> Result<Keys> {
    let encrypted = is_encrypted(archive);
    match before {
        Some(k) if !(encrypted && k.is_empty()) => Ok(k),
        _ if encrypted => keys_for(archive, identity_files, interactive),
        _ => Keys::from_files(identity_files),
    }
}

fn is_scrypt(archive: &Path) -> bool {
    std::fs::File::open(archive)
        .ok()
        .and_then(|f| age::Decryptor::new_buffered(BufReader::new(f)).ok())
        .is_some_and(|d| d.is_scrypt())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGE_SK: &str = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX";

    #[test]
    fn secrets_are_masked_and_nothing_else_is() {
        let plain = "pass the file age-keygen wrote (AGE-SECRET-KEY-1…), or an SSH private key";
        assert!(matches!(redact(plain), std::borrow::Cow::Borrowed(_)));
        let text = format!("line 3: {AGE_SK:?} is bad; also {}", AGE_SK.to_lowercase());
        assert_eq!(
            redact(&text),
            "line 3: \"AGE-SECRET-KEY-[redacted]\" is bad; also AGE-SECRET-KEY-[redacted]"
        );
        let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\nAAAAbm9uZQ==\n-----END OPENSSH PRIVATE KEY-----\n";
        assert_eq!(redact(&format!("before {pem}after")), "before [redacted private key]\nafter");
        // Cut short (no END line): masked to the end.
        assert_eq!(redact("x -----BEGIN RSA PRIVATE KEY-----\nMIIEow"), "x [redacted private key]");
        assert_eq!(redact("body b3BlbnNzaC1rZXktdjEAAAAABG5v+/= end"), "body [redacted private key] end");
        // A public key block is not a secret.
        let public = "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----";
        assert_eq!(redact(public), public);
        let mut j = serde_json::json!({"error": {"message": format!("x {AGE_SK}"), "n": 1}, "a": [AGE_SK]});
        redact_json(&mut j);
        assert!(!j.to_string().contains(&AGE_SK[16..]), "{j}");
    }

    #[test]
    fn aws_credentials_are_masked() {
        register_secret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        register_secret("short");
        let text = "key AKIAIOSFODNN7EXAMPLE secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY short; XAKIAIOSFODNN7EXAMPLE";
        assert_eq!(
            redact(text),
            "key [redacted access key id] secret [redacted] short; XAKIAIOSFODNN7EXAMPLE"
        );
        assert!(matches!(redact("ASIA is a continent"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn a_secret_where_a_recipient_belongs_is_named_not_echoed() {
        let e = parse_recipient(AGE_SK).err().unwrap();
        assert!(e.message.contains("age identity (a secret key)"), "{}", e.message);
        assert!(!e.chain().contains(&AGE_SK[16..]) && !e.hint.unwrap().contains(&AGE_SK[16..]));
        let e = parse_recipient("-----BEGIN OPENSSH PRIVATE KEY-----").err().unwrap();
        assert!(e.message.contains("ssh-keygen -y -f"), "{}", e.message);
    }
}
