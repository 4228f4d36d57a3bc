//! Every key docs/json-reports.md lists for a command's report is in that command's real
//! `--json` output, every time: a key that does not apply is `null` (or `[]`), never absent.
//! The keys are read from the document itself, so the two cannot drift apart.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::*;

/// The top-level keys of each command's report, as docs/json-reports.md lists them: the first
/// column of its table, or the top-level keys of its `{…}` outline.
fn documented_keys() -> BTreeMap<String, Vec<String>> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/json-reports.md")).unwrap();
    let mut out = BTreeMap::new();
    let mut sections = doc.split("\n## ").skip(1);
    for section in sections.by_ref() {
        let (title, body) = section.split_once('\n').unwrap();
        let Some(cmd) = title.strip_prefix('`').and_then(|t| t.strip_suffix('`')) else { continue };
        let mut keys = Vec::new();
        if body.contains("| field | meaning |") {
            for row in body.lines().filter(|l| l.starts_with("| `")) {
                let first = row.split('|').nth(1).unwrap();
                keys.extend(first.split(',').map(|k| k.trim().trim_matches('`').to_string()));
            }
        } else {
            let start = body.find("`{").expect("an outline of the report") + 1;
            keys = top_level_keys(&body[start..]);
        }
        assert!(!keys.is_empty(), "no keys for {cmd}");
        out.insert(cmd.to_string(), keys);
    }
    out
}

/// The keys at depth 1 of the `{…}` that `s` starts with.
fn top_level_keys(s: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in s.chars() {
        match c {
            '{' | '[' => {
                depth += 1;
                if depth == 1 {
                    continue;
                }
            }
            '}' | ']' => {
                depth -= 1;
                if depth == 0 {
                    keys.push(std::mem::take(&mut current));
                    break;
                }
            }
            ',' if depth == 1 => {
                keys.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        if depth == 1 {
            current.push(c);
        }
    }
    keys.iter()
        .map(|k| k.split(':').next().unwrap().trim().trim_end_matches('?').to_string())
        .filter(|k| !k.is_empty())
        .collect()
}

fn run_json(env: &Env, args: &[&str]) -> Value {
    let out = Command::new(kfadmin_bin())
        .args(args)
        .env("KFADMIN_STATE_DIR", env.path("state"))
        .env_remove("KFADMIN_BACKUP_DIR")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("{args:?}: not one JSON object ({e}): {stdout}\n{}", String::from_utf8_lossy(&out.stderr))
    })
}

fn missing(keys: &[String], report: &Value) -> Vec<String> {
    keys.iter().filter(|k| report.get(k.as_str()).is_none()).cloned().collect()
}

#[test]
fn the_doc_lists_the_keys_of_every_report() {
    let keys = documented_keys();
    for cmd in ["backup", "import", "verify", "restore", "list", "prune", "status", "drill"] {
        assert!(keys.contains_key(cmd), "docs/json-reports.md has no section for {cmd}: {keys:?}");
    }
    assert_eq!(keys["verify"], ["ok", "quick", "archives", "warnings", "chains"]);
    assert!(keys["backup"].contains(&"offsite".to_string()), "{:?}", keys["backup"]);
    assert!(keys["status"].contains(&"guardian".to_string()), "{:?}", keys["status"]);
}

/// One run of each command that needs no container (drill has its own tests against the
/// engine), on the paths where fields used to be left out: an online backup (no downtime, no
/// stop, no offsite), a refused import (no archive), a restore dry run, a status with no
/// drill and no guardian.
#[test]
fn every_documented_key_is_in_every_report() {
    let keys = documented_keys();
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let db = data.join("keyfount.db");
    let repo = env.path("repo");
    let (dbs, repos) = (db.to_str().unwrap(), repo.to_str().unwrap());
    let mut reports: Vec<(&str, &str, Value)> = Vec::new();

    let backup = run_json(&env, &["backup", "--online", "--db", dbs, "-r", repos, "--json"]);
    assert_eq!(backup["ok"], true, "{backup}");
    let archive = backup["archive"].as_str().unwrap().to_string();
    reports.push(("backup", "online", backup));

    // A tarball of a file that is not a database: refused (exit 3), nothing written.
    let junk = env.path("junk");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("keyfount.db"), vec![b'x'; 8192]).unwrap();
    let tarball = env.path("junk.tar.gz");
    assert!(Command::new("tar")
        .arg("czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&junk)
        .arg("keyfount.db")
        .status()
        .unwrap()
        .success());
    let refused = run_json(&env, &["import", tarball.to_str().unwrap(), "-r", repos, "--json"]);
    assert_eq!(refused["ok"], false, "{refused}");
    assert!(refused["archive"].is_null() && refused["database"].is_null(), "{refused}");
    reports.push(("import", "refused", refused));

    reports.push(("verify", "one archive", run_json(&env, &["verify", &archive, "--json"])));
    let target = env.path("restored");
    std::fs::create_dir_all(&target).unwrap();
    let restore =
        run_json(&env, &["restore", &archive, "--data-dir", target.to_str().unwrap(), "--dry-run", "--json"]);
    reports.push(("restore", "dry run", restore));
    reports.push(("list", "", run_json(&env, &["list", "-r", repos, "--json"])));
    reports.push((
        "prune",
        "dry run",
        run_json(&env, &["prune", "-r", repos, "--keep-last", "1", "--dry-run", "--json"]),
    ));
    let status = run_json(&env, &["status", "--db", dbs, "-r", repos, "--json"]);
    assert!(status["drill"].is_null() && status["guardian"] == serde_json::json!([]), "{status}");
    assert!(status["offsite"] == serde_json::json!([]) && status["container"].is_null(), "{status}");
    reports.push(("status", "", status));

    let mut problems = Vec::new();
    for (cmd, case, report) in &reports {
        let gone = missing(&keys[*cmd], report);
        if !gone.is_empty() {
            problems.push(format!("{cmd} ({case}) lacks {gone:?}: {report}"));
        }
    }
    assert!(problems.is_empty(), "documented keys absent:\n{}", problems.join("\n"));
}
