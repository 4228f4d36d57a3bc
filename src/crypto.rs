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

/// One recipient: `age1…`, `ssh-ed25519 …` or `ssh-rsa …`.
pub fn parse_recipient(s: &str) -> Result<Recipient> {
    let s = s.trim();
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

/// A recipients file: one recipient a line; blank lines and `#` comments ignored.
pub fn read_recipients_file(path: &Path) -> Result<Vec<(Recipient, String)>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io("cannot read the recipients file", path, e).kind(Kind::Usage))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let r = parse_recipient(line).map_err(|e| {
            let msg = format!("{}:{}: {}", path.display(), n + 1, e.message);
            Error { message: msg, ..e }
        })?;
        out.push((r, line.to_string()));
    }
    if out.is_empty() {
        return Err(Error::usage(format!("the recipients file {} lists no recipient", path.display())));
    }
    Ok(out)
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
    pub fn decrypt<R: BufRead>(&self, input: R) -> std::result::Result<age::stream::StreamReader<R>, String> {
        let d = age::Decryptor::new_buffered(input).map_err(|e| format!("not a valid age file: {e}"))?;
        if self.is_empty() {
            return Err(if d.is_scrypt() {
                "encrypted with a passphrase: set KFADMIN_PASSPHRASE or run on a terminal to be asked for it"
                    .into()
            } else {
                "encrypted: pass --identity FILE (or set KFADMIN_IDENTITY_FILE) with a key it was encrypted to".into()
            });
        }
        let scrypt = d.is_scrypt();
        let all = self.all();
        d.decrypt(all.iter().map(|b| b.as_ref() as &dyn age::Identity)).map_err(|e| match e {
            age::DecryptError::NoMatchingKeys if scrypt => {
                "it is encrypted with a passphrase; give the passphrase, not an identity".into()
            }
            age::DecryptError::NoMatchingKeys => format!(
                "none of the identities given{} can decrypt it: it was encrypted to other keys",
                if self.files.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({})",
                        self.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
                    )
                }
            ),
            age::DecryptError::DecryptionFailed | age::DecryptError::KeyDecryptionFailed if scrypt => {
                "the passphrase is wrong".into()
            }
            other => format!("cannot decrypt it: {other}"),
        })
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

/// A passphrase from `KFADMIN_PASSPHRASE`, or asked on the terminal (twice when `confirm`).
pub fn passphrase(interactive: bool, confirm: bool) -> Result<SecretString> {
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
    let can_ask = std::env::var_os("KFADMIN_PASSPHRASE").is_some() || interactive;
    if keys.is_empty() && can_ask && is_encrypted(archive) && is_scrypt(archive) {
        keys.passphrase = Some(passphrase(interactive, false)?);
    }
    Ok(keys)
}

fn is_scrypt(archive: &Path) -> bool {
    std::fs::File::open(archive)
        .ok()
        .and_then(|f| age::Decryptor::new_buffered(BufReader::new(f)).ok())
        .is_some_and(|d| d.is_scrypt())
}
