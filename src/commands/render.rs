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

/// `Skipped N objects that are not kfadmin's …` as a line of text, or nothing.
pub(crate) fn skipped_line(dir: &std::path::Path, skipped: &crate::store::Skipped) -> String {
    let remote = crate::store::is_remote_path(dir);
    skipped.line(remote).map(|l| format!("S{}\n", &l[1..])).unwrap_or_default()
}
