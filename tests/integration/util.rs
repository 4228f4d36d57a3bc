//! The test environment: a private directory per test, the writer process, and helpers to
//! run kfadmin and read what it printed.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The unprivileged user Keyfount's image runs as.
pub const APP_UID: u32 = 1000;

pub fn kfadmin_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kfadmin"))
}

/// The writer binary, built beside kfadmin by `cargo test --workspace`; built here when a
/// narrower `cargo test` did not.
pub fn sim_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = kfadmin_bin().with_file_name("keyfount-sim");
        if !bin.exists() {
            let release = kfadmin_bin().parent().unwrap().ends_with("release");
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["build", "-p", "keyfount-sim"]).current_dir(env!("CARGO_MANIFEST_DIR"));
            if release {
                cmd.arg("--release");
            }
            assert!(cmd.status().expect("cargo runs").success(), "building keyfount-sim failed");
        }
        bin
    })
    .clone()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// What kfadmin printed and how it exited.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        let lines: Vec<&str> = self.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "--json must print exactly one line on stdout, got:\n{}", self.stdout);
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "kfadmin failed:\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }
    pub fn code(&self, want: i32) -> &Self {
        assert_eq!(self.code, want, "wrong exit code\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}:\n{}", self.stderr);
        self
    }
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(self.stdout.contains(needle), "stdout lacks {needle:?}:\n{}", self.stdout);
        self
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Run kfadmin with no stdin (as cron and CI do).
pub fn kfadmin<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(kfadmin_bin())
        .args(args)
        .stdin(Stdio::null())
        .env_remove("KFADMIN_BACKUP_DIR")
        .output()
        .expect("kfadmin runs")
        .into()
}

/// kfadmin with its own state directory and a fault point (`KFADMIN_TEST_FAULT`, "" for none),
/// with no stdin.
pub fn kfadmin_fault(state: &Path, fault: &str, args: &[&str]) -> Run {
    kfadmin_fault_env(state, fault, &[], args)
}

/// [`kfadmin_fault`] with more environment variables (an empty value is not set).
pub fn kfadmin_fault_env(state: &Path, fault: &str, vars: &[(&str, &str)], args: &[&str]) -> Run {
    Command::new(kfadmin_bin())
        .envs(vars.iter().filter(|(_, v)| !v.is_empty()).copied())
        .args(args)
        .env("KFADMIN_STATE_DIR", state)
        .env("KFADMIN_TEST_FAULT", fault)
        .env_remove("KFADMIN_BACKUP_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into()
}

/// A private directory for one test, removed at the end.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = tempfile::Builder::new().prefix("kfadmin-test-").tempdir_in(base).unwrap();
        // Reachable by the unprivileged writer.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Env { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A data directory with a new Keyfount-like database of about `size_mb` MB.
    pub fn data_dir(&self, rel: &str, size_mb: u32) -> PathBuf {
        let dir = self.path(rel);
        let db = dir.join("keyfount.db");
        let out = Command::new(sim_bin())
            .args(["init", "--db"])
            .arg(&db)
            .args(["--size-mb", &size_mb.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
        dir
    }

    /// Hand a data directory and everything in it to uid/gid `APP_UID`, as in the image.
    pub fn give_to_app(&self, dir: &Path) {
        chown_tree(dir, APP_UID, APP_UID);
    }

    pub fn start_writer(&self, db: &Path, rate: u32, as_app: bool) -> Writer {
        // Writable by the unprivileged writer too.
        let status_dir = self.dir.path().join("status");
        if !status_dir.exists() {
            std::fs::create_dir(&status_dir).unwrap();
            std::fs::set_permissions(&status_dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        }
        let status = status_dir.join(format!(
            "writer-{}-{}.json",
            db.parent().unwrap().file_name().unwrap().to_string_lossy(),
            std::process::id() as u128 * 1000 + Instant::now().elapsed().as_nanos()
        ));
        let mut cmd = Command::new(sim_bin());
        cmd.args(["run", "--db"]).arg(db).args(["--rate", &rate.to_string(), "--status-file"]).arg(&status);
        if as_app {
            cmd.args(["--uid", &APP_UID.to_string(), "--gid", &APP_UID.to_string()]);
        }
        let mut child =
            cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        // Wait for "ready".
        let mut stdout = child.stdout.take().unwrap();
        let mut buf = [0u8; 6];
        use std::io::Read;
        stdout.read_exact(&mut buf).expect("writer says ready");
        assert_eq!(&buf, b"ready\n");
        let w = Writer { child: Some(child), status };
        w.wait_for(|s| s["last_seq"].as_i64().unwrap_or(-1) >= 0);
        w
    }
}

pub fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), uid, gid);
        }
    }
}

/// (uid, gid, mode) of every entry in `dir`, by name.
pub fn owners(dir: &Path) -> BTreeMap<String, (u32, u32, u32)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            (e.file_name().to_string_lossy().into_owned(), (m.uid(), m.gid(), m.mode() & 0o7777))
        })
        .collect()
}

/// Name → sha256 of every regular file in `dir`, recursively: "nothing changed" checks.
pub fn snapshot_tree(dir: &Path) -> BTreeMap<String, String> {
    use sha2::{Digest, Sha256};
    let mut out = BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let m = p.symlink_metadata().unwrap();
            if m.is_dir() {
                out.insert(format!("{rel}/"), String::new());
                walk(base, &p, out);
            } else if m.is_file() {
                let data = std::fs::read(&p).unwrap();
                out.insert(rel, format!("{:x}", Sha256::digest(&data)));
            } else {
                out.insert(rel, "special".into());
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// A running keyfount-sim writer; killed when dropped.
pub struct Writer {
    child: Option<Child>,
    pub status: PathBuf,
}

impl Writer {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn status(&self) -> Value {
        for _ in 0..50 {
            if let Ok(text) = std::fs::read_to_string(&self.status) {
                if let Ok(v) = serde_json::from_str::<Value>(&text) {
                    return v;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("writer status {} unreadable", self.status.display());
    }

    pub fn last_seq(&self) -> i64 {
        self.status()["last_seq"].as_i64().unwrap()
    }

    pub fn commits(&self) -> i64 {
        self.status()["commits"].as_i64().unwrap()
    }

    pub fn wait_for(&self, f: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.status.exists() && f(&self.status()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("writer never reached the expected state: {}", self.status());
    }

    /// SIGTERM, wait, and require a clean exit with no failed transaction.
    pub fn stop(mut self) -> Value {
        let child = self.child.take().unwrap();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let out = child.wait_with_output().unwrap();
        let status = self.status();
        assert!(
            out.status.success(),
            "the writer saw errors ({}): {}\n{}",
            out.status,
            status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(status["errors"], 0, "writer errors: {status}");
        status
    }

    /// SIGKILL: committed transactions stay in the -wal only.
    pub fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `keyfount-sim check`: integrity and the writer's invariants, on any copy.
pub fn check_db(db: &Path, min_seq: i64) -> Value {
    let out = Command::new(sim_bin())
        .args(["check", "--db"])
        .arg(db)
        .args(["--min-seq", &min_seq.to_string()])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("check printed no JSON: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success() && v["ok"] == true, "check failed on {}: {v}", db.display());
    v
}

/// Take an online backup of `db` into `out`; returns the JSON report.
pub fn backup(db: &Path, out: &Path) -> Value {
    let r = kfadmin([
        "backup".as_ref(),
        "--online".as_ref(),
        "--db".as_ref(),
        db.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--json".as_ref(),
    ]);
    r.ok();
    r.json()
}

/// Files in a directory, sorted.
pub fn ls(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => vec![],
    };
    v.sort();
    v
}

/// A small tmpfs mounted at `dir` (root only), unmounted when dropped.
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str, read_only: bool) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let opts = if read_only { format!("size={size},ro") } else { format!("size={size},mode=0700") };
        let st = Command::new("mount").args(["-t", "tmpfs", "-o", &opts, "tmpfs"]).arg(dir).status().unwrap();
        assert!(st.success(), "mounting a tmpfs at {} failed (tests run as root in CI)", dir.display());
        Tmpfs { dir: dir.to_path_buf() }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// What a crafted tar entry is.
pub enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(&'static str),
    HardLink(&'static str),
    CharDevice,
    Fifo,
    /// A regular file whose header declares this many bytes, followed by none.
    Lying(u64),
}

/// A plain tar built header by header, so names the tar crate would refuse can be written.
pub fn craft_tar(entries: Vec<(Vec<u8>, Kind)>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(&name);
        h.set_mode(0o600);
        h.set_mtime(1_700_000_000);
        let (kind_type, data, size): (tar::EntryType, Vec<u8>, Option<u64>) = match kind {
            Kind::File(d) => (tar::EntryType::Regular, d, None),
            Kind::Dir => (tar::EntryType::Directory, vec![], None),
            Kind::Symlink(t) | Kind::HardLink(t) => {
                h.as_old_mut().linkname[..t.len()].copy_from_slice(t.as_bytes());
                let k = if matches!(kind, Kind::Symlink(_)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                };
                (k, vec![], None)
            }
            Kind::CharDevice => {
                h.set_device_major(1).unwrap();
                h.set_device_minor(3).unwrap();
                (tar::EntryType::Char, vec![], None)
            }
            Kind::Fifo => (tar::EntryType::Fifo, vec![], None),
            Kind::Lying(n) => (tar::EntryType::Regular, vec![], Some(n)),
        };
        h.set_entry_type(kind_type);
        h.set_size(size.unwrap_or(data.len() as u64));
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// gzip, as `tar czf` writes it.
pub fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// A crafted tar.gz; see [`craft_tar`].
pub fn craft(entries: Vec<(Vec<u8>, Kind)>) -> Vec<u8> {
    gzip_bytes(&craft_tar(entries))
}

pub fn file(name: &str, data: &[u8]) -> (Vec<u8>, Kind) {
    (name.as_bytes().to_vec(), Kind::File(data.to_vec()))
}

/// kfadmin started with the test's state directory and `extra` variables, no stdin, stdout and
/// stderr piped.
pub fn spawn_kf(env: &Env, extra: &[(&str, &OsStr)], args: &[&str]) -> std::process::Child {
    Command::new(kfadmin_bin())
        .args(args)
        .env("KFADMIN_STATE_DIR", env.path("state"))
        .envs(extra.iter().copied())
        .env_remove("KFADMIN_BACKUP_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A kfadmin run that stops at the named `KFADMIN_TEST_PAUSE_AT` points (comma-separated; see
/// `kfadmin::fault::pause`) until the test lets it go. Dropped unfinished (a failed assertion),
/// it is let go at every point and waited for: it cleans up.
pub struct Paused {
    child: Option<std::process::Child>,
    dir: PathBuf,
    points: Vec<String>,
}

impl Paused {
    pub fn spawn(env: &Env, points: &str, args: &[&str]) -> Paused {
        Paused::spawn_with(env, &kfadmin_bin(), points, args, &[])
    }

    /// [`Paused::spawn`] of a copy of kfadmin (another name, another path).
    pub fn spawn_bin(env: &Env, bin: &Path, points: &str, args: &[&str]) -> Paused {
        Paused::spawn_with(env, bin, points, args, &[])
    }

    /// [`Paused::spawn`] of `bin` with more environment variables.
    pub fn spawn_with(env: &Env, bin: &Path, points: &str, args: &[&str], vars: &[(&str, &str)]) -> Paused {
        let dir = (0..).map(|n| env.path(&format!("pause-{n}"))).find(|d| !d.exists()).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new(bin)
            .envs(vars.iter().copied())
            .args(args)
            .env("KFADMIN_STATE_DIR", env.path("state"))
            .env("KFADMIN_TEST_PAUSE_AT", points)
            .env("KFADMIN_TEST_PAUSE_DIR", &dir)
            .env_remove("KFADMIN_BACKUP_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Paused { child: Some(child), dir, points: points.split(',').map(str::to_string).collect() }
    }

    fn child(&mut self) -> &mut std::process::Child {
        self.child.as_mut().expect("the run is not finished")
    }

    /// kfadmin's process id.
    pub fn pid(&mut self) -> u32 {
        self.child().id()
    }

    /// Wait until kfadmin stops at `point` (true) or exits first (false: it failed earlier, or
    /// it is a build without the hook).
    pub fn reached(&mut self, point: &str) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        loop {
            if self.dir.join(format!("{point}.reached")).exists() {
                return true;
            }
            if self.child().try_wait().unwrap().is_some() {
                return false;
            }
            assert!(std::time::Instant::now() < deadline, "kfadmin never reached {point}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// kfadmin has not exited.
    pub fn running(&mut self) -> bool {
        self.child().try_wait().unwrap().is_none()
    }

    /// [`Paused::reached`], or fail the test with what kfadmin said.
    pub fn expect(&mut self, point: &str) {
        if !self.reached(point) {
            let r: Run = self.child.take().unwrap().wait_with_output().unwrap().into();
            panic!("kfadmin (a debug build) stops at {point}: {}", r.stderr);
        }
    }

    pub fn go(&self, point: &str) {
        std::fs::write(self.dir.join(format!("{point}.go")), b"").unwrap();
    }

    /// Wait for the run to end (let it go first where it is held).
    pub fn finish(mut self) -> Run {
        self.child.take().unwrap().wait_with_output().unwrap().into()
    }

    pub fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            for p in &self.points {
                let _ = std::fs::write(self.dir.join(format!("{p}.go")), b"");
            }
            let _ = child.wait();
        }
    }
}

/// The guardian processes (`kfadmin __guardian PID …`) watching over kfadmin run `pid`.
pub fn guardians_of(pid: u32) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else { return vec![] };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            args.len() > 2 && args[1] == b"__guardian" && args[2] == pid.to_string().as_bytes()
        })
        .collect()
}

/// `cmd` run under GNU time, which measures the peak RSS of kfadmin alone: a child reaped
/// with `wait4` by this test process reports at least this process's own RSS at the spawn
/// (Linux carries the spawning mm's high-water mark into the child's `ru_maxrss` at exec),
/// and this process holds whatever the tests running beside it allocated. Returns the command
/// to spawn (stdio still to set) and the file GNU time writes the peak (KiB) into.
pub fn under_time(cmd: &Command, dir: &Path) -> (Command, PathBuf) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = dir.join(format!("peak-rss-{n}.kib"));
    let mut t = Command::new("/usr/bin/time");
    t.arg("-o").arg(&out).arg("-f").arg("%M").arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => t.env(k, v),
            None => t.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        t.current_dir(d);
    }
    (t, out)
}

/// The peak RSS (KiB) that [`under_time`]'s file holds.
pub fn peak_kib(file: &Path) -> u64 {
    let s = std::fs::read_to_string(file).unwrap();
    s.lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or_else(|| panic!("GNU time wrote {s:?}"))
}
