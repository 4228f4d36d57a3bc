//! kfadmin on a real terminal (tmux): progress bars while a backup runs, the restore prompt
//! answered with keys; and off a terminal (a pipe): no bars, no control characters.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::*;

/// A tmux session running one shell command on a real terminal (also used by lock.rs).
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn start(cmd: &str) -> Tmux {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let socket = format!(
            "kfadmin-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let st = Command::new("tmux")
            .args(["-L", &socket, "new-session", "-d", "-x", "150", "-y", "40", "sh", "-c", cmd])
            .env_remove("NO_COLOR")
            .status()
            .expect("tmux is installed (scripts/test.sh installs it)");
        assert!(st.success());
        // Keep the pane after the command ends, so its last screen can be read.
        Command::new("tmux")
            .args(["-L", &socket, "set-option", "-g", "remain-on-exit", "on"])
            .status()
            .unwrap();
        Tmux { socket }
    }

    pub fn screen(&self) -> String {
        let out =
            Command::new("tmux").args(["-L", &self.socket, "capture-pane", "-p", "-J"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn wait_for(&self, what: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            assert!(Instant::now() < deadline, "the screen never showed {what:?}:\n{s}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pid of the process the shell started (the command), once it runs.
    pub fn command_pid(&self) -> u32 {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "list-panes", "-F", "#{pane_pid}"])
            .output()
            .unwrap();
        let sh: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let children = std::fs::read_to_string(format!("/proc/{sh}/task/{sh}/children")).unwrap();
        children.split_whitespace().next().expect("the shell runs a command").parse().unwrap()
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["-L", &self.socket, "send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        assert!(Command::new("tmux").args(args).status().unwrap().success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).status();
    }
}

pub fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

#[test]
fn progress_bars_on_a_terminal_and_the_restore_prompt() {
    let env = Env::new();
    let data = env.data_dir("data", 64);
    let out = env.path("backups");
    let bin = kfadmin_bin();
    let t = Tmux::start(&format!(
        "{} backup --online --db {} --out {} --compression-level 9; echo EXIT=$?",
        sh_quote(&bin),
        sh_quote(&data.join("keyfount.db")),
        sh_quote(&out)
    ));
    // While it runs: a bar with a size, a rate and an ETA.
    let mut seen_bar = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let s = t.screen();
        if let Some(line) = s.lines().find(|l| {
            (l.contains("compress") || l.contains("checksum") || l.contains("snapshot")) && l.contains('[')
        }) {
            if line.contains("MiB") && line.contains("ETA") {
                seen_bar = Some(line.to_string());
                break;
            }
        }
        if s.contains("EXIT=") {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let bar = seen_bar.expect("no progress bar was drawn while the backup ran");
    assert!(bar.contains("/s"), "the bar shows a rate: {bar}");
    let done = t.wait_for("EXIT=", Duration::from_secs(180));
    assert!(done.contains("EXIT=0") && done.contains("Backup written and verified"), "{done}");
    drop(t);
    let archive = ls(&out).into_iter().find(|n| n.ends_with(".tar.gz")).map(|n| out.join(n)).unwrap();

    // The prompt defaults to no: answering "n" changes nothing and exits 1. (Into the directory
    // the backup is of: another one would ask a second question.)
    let target = data.clone();
    let before = snapshot_tree(&target);
    let cmd = format!(
        "{} restore {} --data-dir {}; echo EXIT=$?",
        sh_quote(&bin),
        sh_quote(&archive),
        sh_quote(&target)
    );
    let t = Tmux::start(&cmd);
    let s = t.wait_for("[y/N]", Duration::from_secs(60));
    assert!(
        s.contains("Restore plan") && s.contains("replace"),
        "the plan is shown before the question:\n{s}"
    );
    t.keys(&["n", "Enter"]);
    let s = t.wait_for("EXIT=", Duration::from_secs(30));
    assert!(s.contains("EXIT=1") && s.contains("cancelled"), "{s}");
    assert_eq!(snapshot_tree(&target), before);
    drop(t);

    // Answering "y" restores.
    let t = Tmux::start(&cmd);
    t.wait_for("[y/N]", Duration::from_secs(60));
    t.keys(&["y", "Enter"]);
    let s = t.wait_for("EXIT=", Duration::from_secs(60));
    assert!(s.contains("EXIT=0") && s.contains("Restored"), "{s}");
    check_db(&target.join("keyfount.db"), 0);
}

#[test]
fn a_piped_run_prints_no_control_characters() {
    let env = Env::new();
    let data = env.data_dir("data", 16);
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} backup --online --db {} --out {} 2>&1 | cat",
            sh_quote(&kfadmin_bin()),
            sh_quote(&data.join("keyfount.db")),
            sh_quote(&env.path("b"))
        ))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Backup written and verified"), "{text}");
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "control characters in piped output: {text:?}"
    );
}

/// --passphrase on a terminal asks twice (and refuses two different answers); verify asks once.
#[test]
fn the_passphrase_is_asked_on_the_terminal() {
    let env = Env::new();
    let data = env.data_dir("data", 2);
    let out = env.path("b");
    let bin = kfadmin_bin();
    let backup = format!(
        "env -u KFADMIN_PASSPHRASE {} backup --online --passphrase --db {} --out {}; echo EXIT=$?",
        sh_quote(&bin),
        sh_quote(&data.join("keyfount.db")),
        sh_quote(&out)
    );
    let t = Tmux::start(&backup);
    t.wait_for("Passphrase for the archive", Duration::from_secs(30));
    t.keys(&["open sesame", "Enter"]);
    t.wait_for("Repeat the passphrase", Duration::from_secs(10));
    t.keys(&["open sesame", "Enter"]);
    let s = t.wait_for("EXIT=", Duration::from_secs(60));
    assert!(s.contains("EXIT=0") && s.contains(".tar.gz.age"), "{s}");
    assert!(!s.contains("open sesame"), "the passphrase was echoed:\n{s}");
    drop(t);
    let archive = ls(&out).into_iter().find(|n| n.ends_with(".age")).map(|n| out.join(n)).unwrap();

    let verify =
        format!("env -u KFADMIN_PASSPHRASE {} verify {}; echo EXIT=$?", sh_quote(&bin), sh_quote(&archive));
    let t = Tmux::start(&verify);
    t.wait_for("Passphrase for the archive", Duration::from_secs(30));
    t.keys(&["open sesame", "Enter"]);
    let s = t.wait_for("EXIT=", Duration::from_secs(60));
    assert!(s.contains("EXIT=0") && s.contains("ok    decrypt"), "{s}");
}

/// `--no-progress` on a terminal turns off the bars only: the restore plan (and every note
/// and warning) still shows above the prompt.
#[test]
fn no_progress_on_a_terminal_still_shows_the_plan_above_the_prompt() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let archive = backup(&data.join("keyfount.db"), &env.path("b"))["archive"].as_str().unwrap().to_string();
    let target = env.data_dir("target", 1);
    let before = snapshot_tree(&target);
    let t = Tmux::start(&format!(
        "{} restore {} --data-dir {} --no-progress; echo EXIT=$?",
        sh_quote(&kfadmin_bin()),
        sh_quote(Path::new(&archive)),
        sh_quote(&target)
    ));
    let s = t.wait_for("[y/N]", Duration::from_secs(60));
    let plan = s.find("Restore plan").unwrap_or_else(|| panic!("no plan above the prompt:\n{s}"));
    assert!(plan < s.find("[y/N]").unwrap(), "{s}");
    assert!(s.contains("Verifying") && s.contains("replace"), "{s}");
    t.keys(&["n", "Enter"]);
    t.wait_for("EXIT=1", Duration::from_secs(30));
    assert_eq!(snapshot_tree(&target), before);
}

/// The restore question takes `y` or `yes` and Enter, never a single key, and never a key typed
/// before it appeared; Ctrl-C at it exits 130 with the cursor visible.
#[test]
fn the_restore_question_needs_yes_and_enter_and_ignores_type_ahead() {
    let env = Env::new();
    let data = env.data_dir("data", 8);
    let archive = backup(&data.join("keyfount.db"), &env.path("b"))["archive"].as_str().unwrap().to_string();
    let target = data.clone();
    let before = snapshot_tree(&target);
    let cmd = format!(
        "{} restore {} --data-dir {}; echo EXIT=$?",
        sh_quote(&kfadmin_bin()),
        sh_quote(Path::new(&archive)),
        sh_quote(&target)
    );
    let t = Tmux::start(&cmd);
    // Typed while the archive is verified, before the question: thrown away.
    t.keys(&["y", "Enter"]);
    t.wait_for("[y/N]", Duration::from_secs(60));
    // A single key is no answer.
    t.keys(&["y"]);
    std::thread::sleep(Duration::from_millis(300));
    let s = t.screen();
    assert!(!s.contains("EXIT="), "answered without Enter, or by a key typed before the question:\n{s}");
    assert_eq!(snapshot_tree(&target), before);
    t.keys(&["Enter"]);
    let s = t.wait_for("EXIT=", Duration::from_secs(60));
    assert!(s.contains("EXIT=0") && s.contains("Restored"), "{s}");
    drop(t);

    // The shell outlives the Ctrl-C (it only reports the exit code).
    let t = Tmux::start(&format!("trap : INT; {cmd}; sleep 60"));
    t.wait_for("[y/N]", Duration::from_secs(60));
    let restored = snapshot_tree(&target);
    t.keys(&["C-c"]);
    let s = t.wait_for("EXIT=", Duration::from_secs(30));
    assert!(s.contains("EXIT=130"), "{s}");
    let cursor =
        Command::new("tmux").args(["-L", &t.socket, "display", "-p", "#{cursor_flag}"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&cursor.stdout).trim(), "1", "the cursor is visible");
    assert_eq!(snapshot_tree(&target), restored);
}

/// A plan that warns about the archive asks a second, explicit question: "no" there changes
/// nothing.
#[test]
fn a_warned_restore_asks_a_second_question() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let archive = backup(&data.join("keyfount.db"), &env.path("b"))["archive"].as_str().unwrap().to_string();
    let target = env.data_dir("target", 4);
    let before = snapshot_tree(&target);
    let t = Tmux::start(&format!(
        "{} restore {} --data-dir {}; echo EXIT=$?",
        sh_quote(&kfadmin_bin()),
        sh_quote(Path::new(&archive)),
        sh_quote(&target)
    ));
    let s = t.wait_for("[y/N]", Duration::from_secs(60));
    assert!(s.contains("WARNING") && s.contains("shrink by more than half"), "{s}");
    assert!(s.contains("the backup is of"), "a backup of another path: {s}");
    t.keys(&["yes", "Enter"]);
    t.wait_for("Restore it anyway?", Duration::from_secs(30));
    t.keys(&["n", "Enter"]);
    let s = t.wait_for("EXIT=", Duration::from_secs(30));
    assert!(s.contains("EXIT=1") && s.contains("cancelled"), "{s}");
    assert_eq!(snapshot_tree(&target), before);
}

/// A bar at 0 B/s shows no ETA (indicatif's `{eta}` said `ETA 0s`, which reads as "done");
/// Ctrl-C leaves the bar's line once, then the error, and no second copy of the bar.
#[test]
fn a_stalled_bar_shows_no_eta_and_ctrl_c_leaves_one_bar_line() {
    let env = Env::new();
    let data = env.data_dir("data", 8);
    let out = env.path("backups");
    let pause = env.path("pause");
    std::fs::create_dir_all(&pause).unwrap();
    let t = Tmux::start(&format!(
        // The shell traps SIGINT so that it lives on to print kfadmin's exit code.
        "trap true INT; KFADMIN_STATE_DIR={} KFADMIN_TEST_PAUSE_AT=archive-started KFADMIN_TEST_PAUSE_DIR={} {} backup --online --db {} --out {}; echo EXIT=$?",
        sh_quote(&env.path("state")),
        sh_quote(&pause),
        sh_quote(&kfadmin_bin()),
        sh_quote(&data.join("keyfount.db")),
        sh_quote(&out)
    ));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pause.join("archive-started.reached").exists() {
        assert!(Instant::now() < deadline, "the backup never reached its archive stage:\n{}", t.screen());
        std::thread::sleep(Duration::from_millis(20));
    }
    // The compress bar is drawn at 0 B, 0 B/s: several redraws, never an ETA.
    let mut bar = String::new();
    for _ in 0..15 {
        std::thread::sleep(Duration::from_millis(100));
        let s = t.screen();
        if let Some(line) = s.lines().find(|l| l.contains("compress") && l.contains('[')) {
            bar = line.to_string();
            assert!(!line.contains("ETA"), "an ETA at 0 B/s: {line}\n{s}");
        }
    }
    assert!(
        bar.contains("0 B/s") || bar.contains("0B/s"),
        "the stalled bar was drawn: {bar:?}\n{}",
        t.screen()
    );
    // Ctrl-C, then let it go on: it stops at its next write, exit 130.
    t.keys(&["C-c"]);
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(pause.join("archive-started.go"), b"").unwrap();
    let s = t.wait_for("EXIT=", Duration::from_secs(60));
    assert!(s.contains("EXIT=130"), "{s}");
    let bars = s.lines().filter(|l| l.contains("compress") && l.contains('[')).count();
    assert!(bars <= 1, "the compress bar is drawn {bars} times after Ctrl-C:\n{s}");
    // (The pane is read with lines joined: the error may follow the bar's full-width line.)
    assert_eq!(s.matches("error: interrupted").count(), 1, "{s}");
    // The terminal's setting is back: Ctrl-C echoes as ^C again.
    drop(t);
    assert!(ls(&out).iter().all(|n| !n.ends_with(".tar.gz")), "no archive: {:?}", ls(&out));
}

/// The summary says whether the archive is encrypted, and to whom, cut to fit a line.
#[test]
fn the_backup_summary_says_to_whom_it_encrypted() {
    let env = Env::new();
    let data = env.data_dir("data", 1);
    let db = data.join("keyfount.db");
    let out = env.path("backups");
    let age1 = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    let age2 = "age1lggyhqrw2nlhcxprm67z43rta597azn8gknawjehu9d9dl0jq3yqqvfafg";
    let r = kfadmin([
        "backup",
        "--online",
        "--db",
        db.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--encrypt-to",
        age1,
        "--encrypt-to",
        age2,
    ]);
    r.ok();
    let line = r
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("encrypted to"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert_eq!(
        line, "  encrypted to 2 recipients (age1ql3z7hjy…mcac8p, age1lggyhqrw…qvfafg)",
        "{}",
        r.stdout
    );
    assert!(line.chars().count() <= 100);
    // The same in the JSON report.
    let r = kfadmin([
        "backup",
        "--online",
        "--db",
        db.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--encrypt-to",
        age1,
        "--json",
    ]);
    r.ok();
    let j = r.json();
    assert_eq!(j["encrypted"], true);
    assert_eq!(j["encrypted_to"], "1 recipient (age1ql3z7hjy…mcac8p)", "{j}");
    assert_eq!(j["recipients"][0], age1);
    // A plain archive says so.
    let r = kfadmin(["backup", "--online", "--db", db.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    r.ok().stdout_has("  not encrypted\n");
    let r = kfadmin([
        "backup",
        "--online",
        "--db",
        db.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(r.json()["encrypted_to"].is_null());
}

/// A backup started in the background of an interactive shell (`kfadmin backup … &`) draws
/// its bars and finishes: it never touches the terminal's settings from the background (that
/// would stop it with SIGTTOU), and the shell's Ctrl-C echo is as it was.
#[test]
fn a_backup_in_the_background_of_a_shell_is_not_stopped() {
    let env = Env::new();
    let data = env.data_dir("data", 2);
    let out = env.path("backups");
    let t = Tmux::start("exec bash --norc --noprofile -i");
    std::thread::sleep(Duration::from_millis(300));
    t.keys(&[
        &format!(
            "KFADMIN_STATE_DIR={} {} backup --online --db {} --out {} & wait $!; echo EXIT=$?; stty -a | grep -o -- '-*echoctl'",
            sh_quote(&env.path("state")),
            sh_quote(&kfadmin_bin()),
            sh_quote(&data.join("keyfount.db")),
            sh_quote(&out)
        ),
        "Enter",
    ]);
    // (The command line itself shows `EXIT=$?` and `echoctl`: wait for their output lines.)
    let s = t.wait_for("EXIT=0", Duration::from_secs(120));
    assert!(s.contains("Backup written and verified"), "{s}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut s = t.screen();
    while !s.lines().any(|l| l.trim_end().ends_with("echoctl") && !l.contains("grep")) {
        assert!(Instant::now() < deadline, "stty printed nothing:\n{s}");
        std::thread::sleep(Duration::from_millis(50));
        s = t.screen();
    }
    assert!(!s.lines().any(|l| l.trim_end() == "-echoctl"), "the terminal's echoctl was left off:\n{s}");
}

/// An older backup than the newest of the target (the repository holds a newer one): the plan
/// warns, and restoring it takes a second, explicit "yes" on the terminal (issue 15 item 13).
#[test]
fn an_older_backup_than_the_newest_asks_a_second_question() {
    let env = Env::new();
    let data = env.data_dir("data", 2);
    let repo = env.path("b");
    let older = backup(&data.join("keyfount.db"), &repo)["archive"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(1100));
    let w = env.start_writer(&data.join("keyfount.db"), 0, false);
    w.wait_for(|s| s["commits"].as_i64().unwrap() >= 50);
    w.stop();
    let newer = backup(&data.join("keyfount.db"), &repo)["archive"].as_str().unwrap().to_string();
    let newer_seq = check_db(&data.join("keyfount.db"), 0)["last_seq"].as_i64().unwrap();
    let cmd = format!(
        "{} restore {} --data-dir {} -r {}; echo EXIT=$?",
        sh_quote(&kfadmin_bin()),
        sh_quote(Path::new(&older)),
        sh_quote(&data),
        sh_quote(&repo)
    );
    let t = Tmux::start(&cmd);
    let s = t.wait_for("[y/N]", Duration::from_secs(60));
    let name = Path::new(&newer).file_name().unwrap().to_string_lossy().into_owned();
    assert!(s.contains("WARNING") && s.contains("a newer backup of") && s.contains(&name), "{s}");
    t.keys(&["yes", "Enter"]);
    t.wait_for("Restore it anyway?", Duration::from_secs(30));
    assert_eq!(check_db(&data.join("keyfount.db"), 0)["last_seq"].as_i64().unwrap(), newer_seq, "not yet");
    t.keys(&["yes", "Enter"]);
    let s = t.wait_for("EXIT=", Duration::from_secs(60));
    assert!(s.contains("EXIT=0") && s.contains("Restored"), "{s}");
    assert!(check_db(&data.join("keyfount.db"), 0)["last_seq"].as_i64().unwrap() < newer_seq);
}
