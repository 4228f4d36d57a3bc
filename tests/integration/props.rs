//! Property tests for the archive reader: a small valid archive (plain or age-encrypted) is
//! mutated in memory (bit flips, truncation, trailing junk and gzip members; reordered,
//! duplicated, removed, renamed and retyped tar entries, links, devices, FIFOs, `../` and
//! absolute names, lying sizes; manifest edits with matching or mismatching hashes; the
//! `.sha256` sidecar rewritten to match) and checked with the library's `reader::verify`
//! in-process, and on a sample through `kfadmin restore`.
//!
//! Invariants: verify never panics and never fails for trouble that is not there (it returns
//! a verdict); it says ok only for a byte-valid archive (an independent check below: every
//! file and the manifest still match); extraction never creates anything outside its
//! directory, nor anything but directories and regular files in it; an archive nothing was
//! done to is ok. `restore` exits 0 (and then only for a byte-valid archive) or 3, and on
//! refusal leaves its data directory, and everything around it, byte-identical.
//!
//! `PROPTEST_CASES` overrides the number of cases; failures are saved beside this file in
//! `props.regressions` (committed) and replayed first on every run.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use kfadmin::archive::manifest::{self, FileEntry, Manifest, Mode, Source, MANIFEST_NAME};
use kfadmin::archive::reader::{self, Options};
use kfadmin::archive::writer::{self, Compression};
use kfadmin::crypto::{Encryption, Keys};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use sha2::{Digest, Sha256};

use crate::util::*;

/// Cases of the in-process property (a few ms each in a debug build).
const CASES: u32 = 2000;
/// Cases run through the real binary.
const BINARY_CASES: u32 = 100;

fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(default);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        max_shrink_iters: 2000,
        ..Config::default()
    }
}

/// The valid archives every case starts from.
struct Base {
    plain: Vec<u8>,
    age: Vec<u8>,
    identity: age::x25519::Identity,
    /// The identity as a file, for `kfadmin restore --identity`.
    identity_file: PathBuf,
    /// The plain archive's tar entries, in order.
    entries: Vec<Ent>,
    manifest: Manifest,
    db: Vec<u8>,
    /// Keeps the files above alive.
    _dir: tempfile::TempDir,
}

#[derive(Clone)]
struct Ent {
    header: tar::Header,
    data: Vec<u8>,
    /// The manifest entry: its data is written from the (edited) manifest,
    manifest: bool,
    /// and then this byte of it flipped.
    manifest_flip: Option<(usize, u8)>,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(make_base)
}

/// A tiny database (about 3 KiB) in WAL mode with the schema_migrations table.
fn tiny_db(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA page_size=512; PRAGMA journal_mode=WAL;
         CREATE TABLE schema_migrations(version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT;
         INSERT INTO schema_migrations VALUES (1, 1700000000), (2, 1700000001);
         CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE blobs(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id), data BLOB);
         INSERT INTO users VALUES (1, 'ada'), (2, 'bob');
         INSERT INTO blobs VALUES (1, 1, x'00112233'), (2, 2, randomblob(100));",
    )
    .unwrap();
}

fn make_base() -> Base {
    let dir =
        tempfile::Builder::new().prefix("kfadmin-props-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    let db = data.join("keyfount.db");
    tiny_db(&db);
    std::fs::write(data.join("sub/notes.txt"), b"the operator's notes\n").unwrap();
    let conn = kfadmin::sqlite::open_immutable(&db).unwrap();
    let database = kfadmin::sqlite::facts(&conn, &db).unwrap();
    drop(conn);
    let files: Vec<PathBuf> = vec![db.clone(), data.join("sub/notes.txt")];
    let entries: Vec<FileEntry> = files
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).unwrap();
            FileEntry {
                path: format!("data/{}", p.strip_prefix(&data).unwrap().display()),
                size: bytes.len() as u64,
                sha256: hex(&Sha256::digest(&bytes)),
                mode: 0o600,
                uid: 1000,
                gid: 1000,
            }
        })
        .collect();
    let m = Manifest {
        format: manifest::FORMAT.into(),
        format_version: manifest::FORMAT_VERSION,
        kfadmin_version: "0.1.0".into(),
        created: "2026-11-26T03:00:00Z".into(),
        created_unix: 1795662000,
        mode: Mode::Online,
        source: Source {
            kind: "path".into(),
            path: db.display().to_string(),
            host: "props".into(),
            container: None,
            mounts: vec![],
        },
        files: entries,
        dirs: vec![],
        database,
        import: None,
        damaged: None,
    };
    let identity = age::x25519::Identity::generate();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let write = |encryption: &Encryption, name: &str| {
        let compression = Compression { level: 1, threads: 1 };
        let w = writer::write(
            &out,
            name,
            &m,
            &files,
            compression,
            encryption,
            &kfadmin::progress::Silent,
            |_, _| Ok(()),
        )
        .unwrap();
        std::fs::read(&w.path).unwrap()
    };
    let plain = write(&Encryption::None, "props-20261126T030000Z-online.tar.gz");
    let recipient = identity.to_public();
    let encryption = Encryption::recipients(vec![Box::new(recipient.clone())], vec![recipient.to_string()]);
    let age = write(&encryption, "props-20261126T030000Z-online.tar.gz.age");
    let identity_file = dir.path().join("identity.txt");
    {
        use age::secrecy::ExposeSecret;
        std::fs::write(&identity_file, format!("{}\n", identity.to_string().expose_secret())).unwrap();
    }
    let entries = read_entries(&gunzip(&plain).unwrap());
    Base {
        plain,
        age,
        identity,
        identity_file,
        entries,
        manifest: m,
        db: std::fs::read(&db).unwrap(),
        _dir: dir,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn gunzip(gz: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(gz).read_to_end(&mut out)?;
    Ok(out)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// The entries of a tar the writer wrote (plain headers, no long names).
fn read_entries(tar: &[u8]) -> Vec<Ent> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= tar.len() {
        let block: [u8; 512] = tar[at..at + 512].try_into().unwrap();
        if block.iter().all(|&b| b == 0) {
            break;
        }
        let header = tar::Header::from_byte_slice(&block).clone();
        let size = header.entry_size().unwrap() as usize;
        let data = tar[at + 512..at + 512 + size].to_vec();
        let manifest = header.path_bytes().as_ref() == MANIFEST_NAME.as_bytes();
        out.push(Ent { header, data, manifest, manifest_flip: None });
        at += 512 + size.div_ceil(512) * 512;
    }
    out
}

// ---- mutations ----------------------------------------------------------------------------

/// Names a mutation can give an entry. `@ABS` is replaced by an absolute path in the case's
/// sandbox, beside (outside) the extraction directory.
const NAMES: &[&[u8]] = &[
    b"data/keyfount.db",
    b"data/sub/notes.txt",
    b"data/other.bin",
    b"kfadmin-manifest.json",
    b"data",
    b"data/",
    b"data/sub",
    b"data/sub/",
    b"data/keyfount.db-wal",
    b"data/keyfount.db-shm",
    b"data/keyfount.db-journal",
    b"data/../escaped",
    b"data/sub/../../escaped",
    b"../escaped",
    b"@ABS",
    b"notdata/x",
    b"data/./keyfount.db",
    b"./data/keyfount.db",
    b"data//keyfount.db",
    b"data/keyfount.db/inner",
    b"data/sub/notes.txt/inner",
    b"",
    b"data/\xff\xfe",
    b"/kfadmin-props-not-here/x",
];

#[derive(Debug, Clone)]
enum Raw {
    Flip {
        at: usize,
        bit: u8,
    },
    Truncate {
        at: usize,
    },
    Junk(Vec<u8>),
    /// Another gzip member holding these bytes, at the end,
    Member(Vec<u8>),
    /// or at the start.
    Front(Vec<u8>),
    Zeros(usize),
}

#[derive(Debug, Clone)]
enum TarMut {
    Swap(usize, usize),
    Duplicate(usize),
    Remove(usize),
    Rename(usize, usize),
    /// New type byte, and a link name from `NAMES`.
    Retype(usize, u8, usize),
    /// A new entry: name, type byte, contents.
    Insert(usize, usize, u8, Vec<u8>),
    /// The header claims this size; the data stays as it is.
    Lie(usize, u64),
    /// Flip one byte of an entry's data.
    Content(usize, usize, u8),
    /// A wrong header checksum.
    Cksum(usize),
}

#[derive(Debug, Clone)]
enum ManEdit {
    Sha(usize),
    Size(usize, u64),
    Path(usize, usize),
    /// List a file that may not be in the archive.
    Add(usize, u64),
    Drop(usize),
    Owner(usize, u32),
    PageCount(u64),
    Version(u32),
    Pad(usize),
    Garbage(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sidecar {
    None,
    Original,
    Matching,
    Garbage,
}

#[derive(Debug, Clone)]
struct Case {
    encrypted: bool,
    quick: bool,
    edits: Vec<ManEdit>,
    tar: Vec<TarMut>,
    /// Make the manifest list exactly the archive's regular `data/` files, with their true
    /// sizes and hashes (a manifest edit with matching hashes).
    fix: bool,
    raw: Vec<Raw>,
    sidecar: Sidecar,
}

impl Case {
    fn untouched(&self) -> bool {
        self.edits.is_empty() && self.tar.is_empty() && !self.fix && self.raw.is_empty()
    }
}

fn type_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => proptest::sample::select(b"0123456\x007LKxgS".to_vec()),
        1 => any::<u8>(),
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn raw() -> impl Strategy<Value = Raw> {
    prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Raw::Flip { at, bit }),
        2 => any::<usize>().prop_map(|at| Raw::Truncate { at }),
        1 => bytes(64).prop_map(Raw::Junk),
        1 => bytes(2048).prop_map(Raw::Member),
        1 => bytes(600).prop_map(Raw::Front),
        1 => (1usize..2048).prop_map(Raw::Zeros),
    ]
}

fn size() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 1u64..5000, Just(1 << 40), Just(u64::MAX / 2), Just(u64::MAX)]
}

fn tar_mut() -> impl Strategy<Value = TarMut> {
    let i = || 0usize..8;
    let n = || 0..NAMES.len();
    prop_oneof![
        (i(), i()).prop_map(|(a, b)| TarMut::Swap(a, b)),
        i().prop_map(TarMut::Duplicate),
        i().prop_map(TarMut::Remove),
        (i(), n()).prop_map(|(a, b)| TarMut::Rename(a, b)),
        (i(), type_byte(), n()).prop_map(|(a, t, l)| TarMut::Retype(a, t, l)),
        (i(), n(), type_byte(), bytes(64)).prop_map(|(a, b, t, d)| TarMut::Insert(a, b, t, d)),
        (i(), size()).prop_map(|(a, s)| TarMut::Lie(a, s)),
        (i(), any::<usize>(), 1u8..=255).prop_map(|(a, o, x)| TarMut::Content(a, o, x)),
        i().prop_map(TarMut::Cksum),
    ]
}

fn man_edit() -> impl Strategy<Value = ManEdit> {
    let i = || 0usize..4;
    prop_oneof![
        i().prop_map(ManEdit::Sha),
        (i(), size()).prop_map(|(a, s)| ManEdit::Size(a, s)),
        (i(), 0..NAMES.len()).prop_map(|(a, b)| ManEdit::Path(a, b)),
        (0..NAMES.len(), size()).prop_map(|(a, s)| ManEdit::Add(a, s)),
        i().prop_map(ManEdit::Drop),
        (i(), any::<u32>()).prop_map(|(a, o)| ManEdit::Owner(a, o)),
        any::<u64>().prop_map(ManEdit::PageCount),
        (0u32..3).prop_map(ManEdit::Version),
        prop_oneof![Just(16usize), Just((1 << 20) + 4096)].prop_map(ManEdit::Pad),
        bytes(64).prop_map(ManEdit::Garbage),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let sidecar = prop_oneof![
        3 => Just(Sidecar::None),
        3 => Just(Sidecar::Matching),
        1 => Just(Sidecar::Original),
        1 => Just(Sidecar::Garbage),
    ];
    (
        any::<bool>(),
        prop::bool::weighted(0.25),
        proptest::collection::vec(man_edit(), 0..3),
        proptest::collection::vec(tar_mut(), 0..4),
        prop::bool::weighted(0.4),
        proptest::collection::vec(raw(), 0..2),
        sidecar,
    )
        .prop_map(|(encrypted, quick, edits, tar, fix, raw, sidecar)| Case {
            encrypted,
            quick,
            edits,
            tar,
            fix,
            raw,
            sidecar,
        })
}

fn name(i: usize, sandbox: &Path) -> Vec<u8> {
    match NAMES[i % NAMES.len()] {
        b"@ABS" => sandbox.join("abs-escaped").to_string_lossy().as_bytes().to_vec(),
        n => n.to_vec(),
    }
}

fn set_name(h: &mut tar::Header, name: &[u8]) {
    let old = h.as_old_mut();
    old.name = [0; 100];
    let n = name.len().min(100);
    old.name[..n].copy_from_slice(&name[..n]);
}

fn set_link(h: &mut tar::Header, name: &[u8]) {
    let old = h.as_old_mut();
    old.linkname = [0; 100];
    let n = name.len().min(100);
    old.linkname[..n].copy_from_slice(&name[..n]);
}

/// The manifest as JSON, or bytes that replace it.
enum Body {
    Json(serde_json::Value),
    Raw(Vec<u8>),
}

fn edit_manifest(m: &mut Body, e: &ManEdit, sandbox: &Path) {
    let Body::Json(v) = m else { return };
    let files = v["files"].as_array_mut().unwrap();
    let pick = |i: usize, len: usize| (len > 0).then(|| i % len);
    match e {
        ManEdit::Sha(i) => {
            if let Some(i) = pick(*i, files.len()) {
                files[i]["sha256"] = hex(&Sha256::digest(b"something else")).into();
            }
        }
        ManEdit::Size(i, s) => {
            if let Some(i) = pick(*i, files.len()) {
                files[i]["size"] = (*s).into();
            }
        }
        ManEdit::Path(i, n) => {
            if let Some(i) = pick(*i, files.len()) {
                files[i]["path"] = String::from_utf8_lossy(&name(*n, sandbox)).into_owned().into();
            }
        }
        ManEdit::Add(n, s) => files.push(serde_json::json!({
            "path": String::from_utf8_lossy(&name(*n, sandbox)),
            "size": s, "sha256": hex(&Sha256::digest(b"")), "mode": 384, "uid": 0, "gid": 0
        })),
        ManEdit::Drop(i) => {
            if let Some(i) = pick(*i, files.len()) {
                files.remove(i);
            }
        }
        ManEdit::Owner(i, o) => {
            if let Some(i) = pick(*i, files.len()) {
                files[i]["uid"] = (*o).into();
                files[i]["mode"] = (*o & 0o7777).into();
            }
        }
        ManEdit::PageCount(p) => v["database"]["page_count"] = (*p).into(),
        ManEdit::Version(n) => v["format_version"] = (*n).into(),
        ManEdit::Pad(n) => {
            let mut text = serde_json::to_vec_pretty(v).unwrap();
            text.extend(std::iter::repeat_n(b' ', *n));
            *m = Body::Raw(text);
        }
        ManEdit::Garbage(g) => *m = Body::Raw(g.clone()),
    }
}

fn mutate_tar(entries: &mut Vec<Ent>, t: &TarMut, sandbox: &Path) {
    let len = entries.len();
    let at = |i: usize| i % len.max(1);
    match t {
        TarMut::Swap(a, b) if len > 1 => entries.swap(at(*a), at(*b)),
        TarMut::Duplicate(a) if len > 0 => {
            let e = entries[at(*a)].clone();
            entries.insert(at(*a), e);
        }
        TarMut::Remove(a) if len > 0 => {
            entries.remove(at(*a));
        }
        TarMut::Rename(a, n) if len > 0 => set_name(&mut entries[at(*a)].header, &name(*n, sandbox)),
        TarMut::Retype(a, t, l) if len > 0 => {
            let h = &mut entries[at(*a)].header;
            h.set_entry_type(tar::EntryType::new(*t));
            set_link(h, &name(*l, sandbox));
        }
        TarMut::Insert(a, n, t, d) => {
            let mut header = tar::Header::new_gnu();
            set_name(&mut header, &name(*n, sandbox));
            header.set_entry_type(tar::EntryType::new(*t));
            header.set_mode(0o600);
            let e = Ent { header, data: d.clone(), manifest: false, manifest_flip: None };
            entries.insert(at(*a).min(len), e);
        }
        TarMut::Content(a, o, x) if len > 0 => {
            let e = &mut entries[at(*a)];
            if e.manifest {
                e.manifest_flip = Some((*o, *x));
            } else if !e.data.is_empty() {
                let i = o % e.data.len();
                e.data[i] ^= x;
            }
        }
        _ => {}
    }
}

/// The clean `data/…` path of a regular entry, when it has one.
fn clean(raw: &[u8]) -> Option<String> {
    let p = Path::new(std::str::from_utf8(raw).ok()?);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            _ => return None,
        }
    }
    out.starts_with("data").then(|| out.to_string_lossy().into_owned())
}

/// Make the manifest list exactly the regular `data/` files of the archive, truthfully.
fn fix_manifest(m: &mut Body, entries: &[Ent]) {
    let Body::Json(v) = m else { return };
    let mut files = Vec::new();
    let regular =
        |e: &&Ent| matches!(e.header.entry_type(), tar::EntryType::Regular | tar::EntryType::Continuous);
    for e in entries.iter().filter(|e| !e.manifest).filter(regular) {
        let Some(path) = clean(&e.header.path_bytes()) else { continue };
        files.push(serde_json::json!({
            "path": path, "size": e.data.len(), "sha256": hex(&Sha256::digest(&e.data)),
            "mode": 384, "uid": 1000, "gid": 1000
        }));
    }
    v["files"] = files.into();
}

/// The case's archive bytes and sidecar text.
fn build(case: &Case, sandbox: &Path) -> (Vec<u8>, Option<String>) {
    let b = base();
    let original = if case.encrypted { &b.age } else { &b.plain };
    let mut bytes = if case.edits.is_empty() && case.tar.is_empty() && !case.fix {
        original.clone()
    } else {
        let mut m = Body::Json(serde_json::to_value(&b.manifest).unwrap());
        for e in &case.edits {
            edit_manifest(&mut m, e, sandbox);
        }
        let mut entries = b.entries.clone();
        for t in &case.tar {
            mutate_tar(&mut entries, t, sandbox);
        }
        if case.fix {
            fix_manifest(&mut m, &entries);
        }
        let gz = gzip(&tar_bytes(&entries, &m, &case.tar));
        if case.encrypted {
            encrypt(&gz, &b.identity)
        } else {
            gz
        }
    };
    for r in &case.raw {
        apply_raw(&mut bytes, r);
    }
    let sidecar = match case.sidecar {
        Sidecar::None => None,
        Sidecar::Original => Some(format!("{}  x.tar.gz\n", hex(&Sha256::digest(original)))),
        Sidecar::Matching => Some(format!("{}  x.tar.gz\n", hex(&Sha256::digest(&bytes)))),
        Sidecar::Garbage => Some("not a checksum\n".into()),
    };
    (bytes, sidecar)
}

fn tar_bytes(entries: &[Ent], m: &Body, muts: &[TarMut]) -> Vec<u8> {
    let manifest = match m {
        Body::Json(v) => serde_json::to_vec_pretty(v).unwrap(),
        Body::Raw(r) => r.clone(),
    };
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let mut h = e.header.clone();
        let mut data = if e.manifest { manifest.clone() } else { e.data.clone() };
        if let Some((o, x)) = e.manifest_flip {
            if !data.is_empty() {
                let k = o % data.len();
                data[k] ^= x;
            }
        }
        h.set_size(data.len() as u64);
        for t in muts {
            if let TarMut::Lie(a, s) = t {
                if a % entries.len() == i {
                    h.set_size(*s);
                }
            }
        }
        h.set_cksum();
        if muts.iter().any(|t| matches!(t, TarMut::Cksum(a) if a % entries.len() == i)) {
            h.as_old_mut().cksum[0] ^= 0x01;
        }
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn encrypt(data: &[u8], identity: &age::x25519::Identity) -> Vec<u8> {
    let r = identity.to_public();
    let enc = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).unwrap();
    let mut out = Vec::new();
    let mut w = enc.wrap_output(&mut out).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap();
    out
}

fn apply_raw(bytes: &mut Vec<u8>, r: &Raw) {
    match r {
        Raw::Flip { at, bit } if !bytes.is_empty() => {
            let i = at % bytes.len();
            bytes[i] ^= 1 << bit;
        }
        Raw::Truncate { at } => bytes.truncate(at % (bytes.len() + 1)),
        Raw::Junk(j) => bytes.extend_from_slice(j),
        Raw::Member(m) => bytes.extend_from_slice(&gzip(m)),
        Raw::Front(m) => {
            let mut front = gzip(m);
            front.append(bytes);
            *bytes = front;
        }
        Raw::Zeros(n) => bytes.extend(std::iter::repeat_n(0u8, *n)),
        _ => {}
    }
}

// ---- the independent judge ----------------------------------------------------------------

/// Whether an archive is byte-valid: the sidecar (when given) matches, it decrypts and
/// decompresses, its tar holds the manifest first and then only directories and regular
/// files under `data/` (no duplicates, nothing after the end but zeros), and the manifest
/// (well-formed, safe) lists exactly those files with their sizes and hashes. Ok(()) or why not.
fn judge(bytes: &[u8], sidecar: Option<&str>) -> Result<(), String> {
    if let Some(s) = sidecar {
        let want = s.split_whitespace().next().unwrap_or("");
        if want != hex(&Sha256::digest(bytes)) {
            return Err("sidecar".into());
        }
    }
    let gz = if bytes.starts_with(kfadmin::crypto::MAGIC) {
        let d = age::Decryptor::new(bytes).map_err(|e| format!("age header: {e}"))?;
        let id = &base().identity;
        let mut r = d.decrypt(std::iter::once(id as &dyn age::Identity)).map_err(|e| format!("age: {e}"))?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(|e| format!("age stream: {e}"))?;
        out
    } else {
        bytes.to_vec()
    };
    let tar = gunzip(&gz).map_err(|e| format!("gzip: {e}"))?;
    let (m, files, dirs) = judge_tar(&tar)?;
    judge_manifest(&m, &files, &dirs)
}

type Files = BTreeMap<String, Vec<u8>>;

fn judge_tar(tar: &[u8]) -> Result<(Manifest, Files, BTreeSet<String>), String> {
    let mut ar = tar::Archive::new(std::io::Cursor::new(tar));
    let mut manifest = None;
    let mut files = Files::new();
    let mut dirs = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for e in ar.entries().map_err(|e| format!("tar: {e}"))? {
        let mut e = e.map_err(|e| format!("tar: {e}"))?;
        let raw = e.path_bytes().into_owned();
        let kind = e.header().entry_type();
        let mut data = Vec::new();
        e.read_to_end(&mut data).map_err(|e| format!("tar data: {e}"))?;
        if manifest.is_none() {
            let regular = matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous);
            if raw != MANIFEST_NAME.as_bytes() || !regular {
                return Err("the first entry is not the manifest".into());
            }
            manifest = Some(manifest::parse(&data)?);
            seen.insert(MANIFEST_NAME.to_string());
            continue;
        }
        let path = clean(&raw).ok_or_else(|| format!("unsafe name {raw:?}"))?;
        if !seen.insert(path.clone()) {
            return Err(format!("{path} twice"));
        }
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                files.insert(path, data);
            }
            tar::EntryType::Directory => {
                dirs.insert(path);
            }
            other => return Err(format!("{path} is a {other:?}")),
        }
    }
    let rest = &tar[ar.into_inner().position() as usize..];
    if rest.iter().any(|&b| b != 0) {
        return Err(format!(
            "data after the end of the tar: {} bytes at {} of {}",
            rest.len(),
            tar.len() - rest.len(),
            tar.len()
        ));
    }
    Ok((manifest.ok_or("no manifest")?, files, dirs))
}

fn judge_manifest(m: &Manifest, files: &Files, dirs: &BTreeSet<String>) -> Result<(), String> {
    if m.format != manifest::FORMAT || m.format_version != manifest::FORMAT_VERSION {
        return Err("format".into());
    }
    let listed: BTreeSet<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    if listed.len() != m.files.len() {
        return Err("the manifest lists a path twice".into());
    }
    if !listed.contains("data/keyfount.db") {
        return Err("no database".into());
    }
    for f in &m.files {
        if clean(f.path.as_bytes()).as_deref() != Some(f.path.as_str()) || f.path == "data" {
            return Err(format!("manifest path {:?}", f.path));
        }
        let sidecar = ["-wal", "-journal"].iter().any(|s| f.path.ends_with(s)) && f.size > 0;
        if f.path.ends_with("-shm") || sidecar {
            return Err(format!("manifest lists {}", f.path));
        }
        // A file inside another file, or a file where a directory entry is.
        let mut parent = Path::new(&f.path).parent();
        while let Some(p) = parent {
            if listed.contains(p.to_str().unwrap()) {
                return Err(format!("{} is inside a file", f.path));
            }
            parent = p.parent();
        }
        if dirs.contains(&f.path) {
            return Err(format!("{} is a directory too", f.path));
        }
        match files.get(&f.path) {
            Some(d) if d.len() as u64 == f.size && hex(&Sha256::digest(d)) == f.sha256 => {}
            _ => return Err(format!("{} does not match", f.path)),
        }
    }
    if files.len() != m.files.len() {
        return Err("the archive holds files the manifest does not list".into());
    }
    Ok(())
}

// ---- the properties -----------------------------------------------------------------------

/// A sandbox per case: the extraction directory, and files beside it that nothing may touch.
fn sandbox() -> tempfile::TempDir {
    let dir =
        tempfile::Builder::new().prefix("kfadmin-prop-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::create_dir(dir.path().join("inside")).unwrap();
    std::fs::write(dir.path().join("outside.txt"), b"beside the extraction directory").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    dir
}

/// Every entry under `dir` is a directory or a regular file (never a link, device, FIFO).
/// With `single`, no file has a second name (a hard link).
fn only_files_and_dirs(dir: &Path, single: bool) -> Result<(), String> {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = p.symlink_metadata().unwrap();
        if m.is_dir() {
            only_files_and_dirs(&p, single)?;
        } else if !m.is_file() || (single && m.nlink() != 1) {
            return Err(format!("{} is not a plain file", p.display()));
        }
    }
    Ok(())
}

fn write_case(case: &Case, dir: &Path) -> (PathBuf, Vec<u8>, Option<String>) {
    let (bytes, sidecar) = build(case, dir);
    let archive = dir.join(if case.encrypted { "a.tar.gz.age" } else { "a.tar.gz" });
    std::fs::write(&archive, &bytes).unwrap();
    if let Some(s) = &sidecar {
        std::fs::write(format!("{}.sha256", archive.display()), s).unwrap();
    }
    (archive, bytes, sidecar)
}

fn check_verify(case: &Case) -> Result<(), TestCaseError> {
    let sb = sandbox();
    let (archive, bytes, sidecar) = write_case(case, sb.path());
    let inside = sb.path().join("inside");
    let before = outside(sb.path());
    let keys = Keys { identities: vec![Box::new(base().identity.clone())], ..Keys::default() };
    let inside_dir = kfadmin::safedir::Dir::open(&inside).unwrap();
    let opts = Options {
        sqlite: !case.quick,
        extract_to: (!case.quick).then_some(&inside_dir),
        expected_sha256: None,
        keys: Some(&keys),
    };
    let v = reader::verify(&archive, &opts, &kfadmin::progress::Silent)
        .map_err(|e| TestCaseError::fail(format!("verify failed instead of judging: {e:#}")))?;
    let failed: Vec<String> = v.failed().map(|c| format!("{}: {}", c.name, c.detail)).collect();
    let verdict = judge(&bytes, sidecar.as_deref());
    if v.ok {
        prop_assert!(verdict.is_ok(), "verify says ok for an archive that is not: {verdict:?}");
    }
    if case.untouched() && case.sidecar != Sidecar::Garbage {
        prop_assert!(v.ok, "an archive nothing was done to fails: {failed:?}");
    }
    prop_assert_eq!(outside(sb.path()), before, "something outside the extraction directory changed");
    only_files_and_dirs(&inside, true).map_err(TestCaseError::fail)?;
    if v.ok && !case.quick {
        let m = v.manifest.as_ref().unwrap();
        for f in &m.files {
            let got = std::fs::read(inside.join(f.path.strip_prefix("data/").unwrap())).unwrap();
            prop_assert_eq!(hex(&Sha256::digest(&got)), f.sha256.clone());
        }
    }
    Ok(())
}

/// Everything in the sandbox but the extraction directory (and the archive).
fn outside(dir: &Path) -> BTreeMap<String, String> {
    snapshot_tree(dir)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("inside/") && !k.starts_with("a.tar"))
        .collect()
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn verify_says_ok_only_for_a_byte_valid_archive_and_extracts_only_inside(case in case()) {
        check_verify(&case)?;
    }
}

fn check_restore(case: &Case) -> Result<(), TestCaseError> {
    let sb = sandbox();
    let (archive, bytes, sidecar) = write_case(case, sb.path());
    let data = sb.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("keyfount.db"), &base().db).unwrap();
    std::fs::write(data.join("keep.txt"), b"the server's other file").unwrap();
    let before = snapshot_tree(sb.path());
    let r = kfadmin([
        "restore".as_ref(),
        archive.as_os_str(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--identity".as_ref(),
        base().identity_file.as_os_str(),
        "--yes".as_ref(),
        // The archive is of another path: the plan says so, and this is not what is tested.
        "--force".as_ref(),
    ]);
    let verdict = judge(&bytes, sidecar.as_deref());
    match r.code {
        0 => {
            prop_assert!(verdict.is_ok(), "restored an archive that is not valid: {verdict:?}\n{}", r.stdout);
            let beside = |t: BTreeMap<String, String>| -> BTreeMap<String, String> {
                t.into_iter().filter(|(k, _)| !k.starts_with("data/")).collect()
            };
            prop_assert_eq!(
                beside(snapshot_tree(sb.path())),
                beside(before),
                "files beside the data directory changed"
            );
            only_files_and_dirs(&data, false).map_err(TestCaseError::fail)?;
        }
        3 => {
            prop_assert!(r.stdout.contains("Nothing in"), "{}", r.stdout);
            prop_assert_eq!(snapshot_tree(sb.path()), before, "a refused restore changed files");
        }
        // A bit flipped in an age header's stanza (its type, say) leaves a header that parses
        // but that no key given opens: kfadmin cannot tell that from an archive encrypted to
        // other keys, so it asks for the key (exit 2), and changes nothing.
        2 if case.encrypted && verdict.is_err() && r.stderr.contains("none of the identities given") => {
            prop_assert_eq!(snapshot_tree(sb.path()), before, "a refused restore changed files");
        }
        code => prop_assert!(false, "exit {}\nstdout: {}\nstderr: {}", code, r.stdout, r.stderr),
    }
    if case.untouched() && case.sidecar != Sidecar::Garbage {
        prop_assert_eq!(r.code, 0, "{}", r.stderr);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(BINARY_CASES))]

    #[test]
    fn restore_of_a_mutated_archive_changes_nothing_or_restores_a_valid_one(case in case()) {
        check_restore(&case)?;
    }
}
