#!/usr/bin/env python3
"""Helpers of bench/replicate.sh (issue 18), independent of kfadmin's code: they read the
chain through its documented format (docs/archive-format.md "Point-in-time chain").

  pitrlib.py walpeak DB OUT            sample the size of DB-wal every 10 ms until OUT.stop
                                        exists, then write the peak (bytes) to OUT
  pitrlib.py chain REPO DB              lag and volume of the one chain in REPO/pitr, against
                                        the writer's audit_log in DB (its `at`, in ms, is taken
                                        inside each transaction); prints key=value lines
"""
import glob
import gzip
import io
import json
import os
import sqlite3
import struct
import sys
import tarfile
import tempfile
import time

MAGIC = b"KFSEG\x00\x00\x01"


def walpeak(db, out):
    peak = 0
    wal = db + "-wal"
    stop = out + ".stop"
    while not os.path.exists(stop):
        try:
            peak = max(peak, os.stat(wal).st_size)
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    with open(out, "w") as f:
        f.write(str(peak))


def base_last_seq(chain_dir):
    """meta.last_seq of the chain's base archive (the writer's seq the chain's txn 0 is)."""
    info = json.load(open(os.path.join(chain_dir, "chain.json")))
    path = os.path.join(chain_dir, "base", info["base"])
    with tarfile.open(path, "r:gz") as t:
        for m in t:
            if m.name == "data/keyfount.db":
                with tempfile.TemporaryDirectory() as d:
                    p = os.path.join(d, "keyfount.db")
                    with open(p, "wb") as f:
                        f.write(t.extractfile(m).read())
                    c = sqlite3.connect(p)
                    (v,) = c.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
                    c.close()
                    return int(v), info
    raise SystemExit(f"no data/keyfount.db in {path}")


def segments(chain_dir):
    """(header, ctime_ns, size, pages_in_records, records) of every segment, in order."""
    out = []
    for p in sorted(glob.glob(os.path.join(chain_dir, "seg", "*", "*.kfseg"))):
        st = os.stat(p)
        with open(p, "rb") as f:
            if f.read(8) != MAGIC:
                raise SystemExit(f"{p}: not a segment")
            (h,) = struct.unpack("<I", f.read(4))
            head = json.loads(f.read(h))
            ps = head["page_size"]
            pages = 0
            for _ in range(head["commits"]):
                rec = f.read(48)
                (_t, _size, k) = struct.unpack("<QII", rec[:16])
                pages += k
                f.seek(k * (4 + ps), io.SEEK_CUR)
        out.append((head, st.st_ctime_ns, st.st_size, pages))
    return out


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    i = min(len(xs) - 1, max(0, int(round(q / 100.0 * (len(xs) - 1)))))
    return xs[i]


def chain(repo, db):
    dirs = [d for d in glob.glob(os.path.join(repo, "pitr", "*")) if os.path.isfile(os.path.join(d, "chain.json"))]
    if len(dirs) != 1:
        raise SystemExit(f"expected one chain in {repo}/pitr, found {len(dirs)}")
    s0, info = base_last_seq(dirs[0])
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    at = dict(c.execute("SELECT seq, at FROM audit_log WHERE seq > ?", (s0,)))
    c.close()
    segs = segments(dirs[0])
    lags = []
    shipped = 0
    wal_bytes = 0
    repairs = 0
    for head, ctime_ns, size, pages in segs:
        shipped += size
        if head["kind"] != "wal":
            repairs += 1
            continue
        # Every commit's frames were in the WAL: a frame header (24 bytes) and the page.
        wal_bytes += pages * (head["page_size"] + 24)
        durable_ms = ctime_ns / 1e6
        for txn in range(head["txn_first"], head["txn_last"] + 1):
            t = at.get(s0 + txn)
            if t is not None:
                lags.append(durable_ms - t)
    commits = sum(h["commits"] for h, _, _, _ in segs if h["kind"] == "wal")
    print(f"segments={len(segs)}")
    print(f"repairs={repairs}")
    print(f"commits={commits}")
    print(f"matched={len(lags)}")
    print(f"lag_p50_ms={pct(lags, 50):.0f}")
    print(f"lag_p99_ms={pct(lags, 99):.0f}")
    print(f"lag_max_ms={max(lags) if lags else float('nan'):.0f}")
    # A commit durable before it was made would mean the txn/seq mapping is wrong.
    print(f"lag_min_ms={min(lags) if lags else float('nan'):.0f}")
    print(f"shipped_bytes={shipped}")
    print(f"wal_bytes={wal_bytes}")


def main():
    cmd, *args = sys.argv[1:]
    {"walpeak": walpeak, "chain": chain}[cmd](*args)


if __name__ == "__main__":
    main()
