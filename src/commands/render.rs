//! Text output the commands share: tables, times, a verification verdict.

use std::fmt::Write as _;

use crate::archive::reader::{Status, Verdict};

/// A manifest's RFC 3339 time, as the tables show it: `2026-11-26T03:00:00Z` → `2026-11-26 03:00:00`.
pub(crate) fn when(created: &str) -> String {
    created.trim_end_matches('Z').replacen('T', " ", 1)
}

pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Who can open an encrypted archive, in one line of at most `width` characters:
/// `2 recipients (age1qyq…x7yz, ssh-ed25519 AAAAC3Nz…)`, or `a passphrase (scrypt)`; each
/// recipient is cut to its start and end, and those that do not fit are counted
/// (`and 3 more`). `None` for a plain archive.
pub(crate) fn encrypted_to(recipients: &[String], width: usize) -> Option<String> {
    if recipients.is_empty() {
        return None;
    }
    if recipients.len() == 1 && recipients[0].starts_with("passphrase") {
        return Some(format!("a {}", recipients[0]));
    }
    let n = recipients.len();
    let head = format!("{n} recipient{}", plural(n));
    let cut: Vec<String> = recipients.iter().map(|r| short_key(r)).collect();
    for shown in (1..=n).rev() {
        let mut s = format!("{head} ({}", cut[..shown].join(", "));
        if shown < n {
            let _ = write!(s, ", and {} more", n - shown);
        }
        s.push(')');
        if s.chars().count() <= width || shown == 1 {
            return Some(s);
        }
    }
    None
}

/// A public key cut to what tells it apart: `age1qyqszqgp…c8x7yz`, `ssh-ed25519 AAAAC3Nz…(comment)`.
fn short_key(r: &str) -> String {
    let r = r.trim();
    let chars: Vec<char> = r.chars().collect();
    if chars.len() <= 24 {
        return r.to_string();
    }
    match r.split_once(' ') {
        // ssh-ed25519 AAAA… comment: the type, the key's first characters, the comment.
        Some((kind, rest)) => {
            let mut parts = rest.split_whitespace();
            let key: String = parts.next().unwrap_or("").chars().take(12).collect();
            let comment: Vec<&str> = parts.collect();
            let comment: String = comment.join(" ").chars().take(24).collect();
            if comment.is_empty() {
                format!("{kind} {key}…")
            } else {
                format!("{kind} {key}… {comment}")
            }
        }
        None => {
            let start: String = chars[..12].iter().collect();
            let end: String = chars[chars.len() - 6..].iter().collect();
            format!("{start}…{end}")
        }
    }
}

/// Columns padded to their widest cell (two spaces between); the last column is not padded.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let cols = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let mut s = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            if i + 1 == cols {
                line.push_str(cell);
            } else if right.contains(&i) {
                let _ = write!(line, "{cell:>w$}", w = width[i]);
            } else {
                let _ = write!(line, "{cell:<w$}", w = width[i]);
            }
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

/// A verification verdict, one line per check.
pub fn verdict(v: &Verdict, quick: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", v.archive.display());
    for c in &v.checks {
        let tag = match c.status {
            Status::Pass => "ok  ",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        let detail = if c.status == Status::Skip && c.detail.is_empty() {
            if quick && ["integrity", "foreign_keys", "facts"].contains(&c.name) {
                "not run (--quick)"
            } else {
                "not reached"
            }
        } else {
            c.detail.as_str()
        };
        let _ = writeln!(s, "  {tag}  {:<13} {detail}", c.name);
    }
    let failed: Vec<&str> = v.failed().map(|c| c.name).collect();
    let unread = v
        .checks
        .iter()
        .any(|c| c.name == "decrypt" && c.status == Status::Skip && c.detail.contains("not checked"));
    if let (false, Some(why)) = (v.ok, &v.needs_key) {
        let _ = writeln!(s, "  => NOT VERIFIED: the keys given cannot open it ({why})");
    } else if v.ok && unread {
        let _ = writeln!(
            s,
            "  => OK, the checksum only: the encrypted contents were not checked (pass --identity)"
        );
    } else if v.ok {
        let _ = writeln!(s, "  => OK");
    } else if failed.is_empty() {
        let _ = writeln!(s, "  => FAILED (not every check could run)");
    } else {
        let _ = writeln!(s, "  => FAILED: {}", failed.join(", "));
    }
    s
}

/// One point-in-time chain (`list`, `verify`): its restorable span, its gaps, or where it
/// breaks.
pub fn chain(c: &crate::ops::replicate::ChainVerdict) -> String {
    let mut s =
        format!("Chain {} (base {}): {} commit(s) in {} segment(s)", c.chain, c.base, c.commits, c.segments);
    match (&c.first, &c.last) {
        (Some(f), Some(l)) => s.push_str(&format!(", restorable from {f} to {l}")),
        _ => s.push_str(", no restorable point"),
    }
    if let Some(o) = &c.observed_until {
        s.push_str(&format!(" (followed until {o})"));
    }
    s.push('\n');
    for g in &c.gaps {
        s.push_str(&format!("  GAP     {} to {}: {}\n", g.from, g.to, g.reason));
    }
    if let Some(p) = &c.problem {
        s.push_str(&format!("  BROKEN  {p}\n"));
    }
    s
}

/// `Skipped N objects that are not kfadmin's …` as a line of text, or nothing.
pub(crate) fn skipped_line(dir: &std::path::Path, skipped: &crate::store::Skipped) -> String {
    let remote = crate::store::is_remote_path(dir);
    skipped.line(remote).map(|l| format!("S{}\n", &l[1..])).unwrap_or_default()
}

#[cfg(test)]
mod encrypted_to_tests {
    use super::encrypted_to;

    #[test]
    fn recipients_are_named_and_cut_to_fit() {
        assert_eq!(encrypted_to(&[], 80), None);
        assert_eq!(encrypted_to(&["passphrase (scrypt)".into()], 80).unwrap(), "a passphrase (scrypt)");
        let age = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".to_string();
        let ssh =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKJ3hJ7h4Ra9pSDtnQeZ2U3dvkRMQsl9uBvhPiddp2Ka ops@vault"
                .to_string();
        let one = encrypted_to(std::slice::from_ref(&age), 80).unwrap();
        assert_eq!(one, "1 recipient (age1ql3z7hjy…mcac8p)");
        let two = encrypted_to(&[age.clone(), ssh.clone()], 80).unwrap();
        assert_eq!(two, "2 recipients (age1ql3z7hjy…mcac8p, ssh-ed25519 AAAAC3NzaC1l… ops@vault)");
        // Too many for the line: the first ones, and a count of the rest.
        let many: Vec<String> = (0..6).map(|_| age.clone()).collect();
        let s = encrypted_to(&many, 80).unwrap();
        assert!(s.chars().count() <= 80, "{s}");
        assert!(s.starts_with("6 recipients (age1ql3z7hjy…mcac8p, ") && s.ends_with(" more)"), "{s}");
    }
}
