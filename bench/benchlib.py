#!/usr/bin/env python3
"""Helpers for bench/online.sh (python3 stdlib only).

Subcommands:
  get FILE KEY[.KEY...]          print one field of a JSON file
  status FILE                    print "commits elapsed_ms" from a keyfount-sim status file
  sample STATUS OUT              append "unix_time commits elapsed_ms" to OUT every 20 ms
                                 until SIGTERM (reads the writer's status file)
  window OUT T0 T1               "commits elapsed_ms rate" between the last samples taken at
                                 or before unix times T0 and T1
  phases OUT T0 REPORT           writer commits/s during each phase of a kfadmin backup that
                                 started at unix time T0 (phase lengths from its --json report)
  median X [X...]                print the median
  report RESULTS                 print the Markdown results table from key=value lines;
                                 exit 1 if any criterion fails
"""

import json
import os
import signal
import statistics
import sys
import time


def load_status(path):
    try:
        with open(path) as f:
            d = json.load(f)
        return int(d["commits"]), int(d["elapsed_ms"])
    except (OSError, ValueError, KeyError):
        return None


def cmd_get(path, key):
    with open(path) as f:
        v = json.load(f)
    for k in key.split("."):
        v = v[k]
    print(v)


def cmd_status(path):
    s = load_status(path)
    if s is None:
        sys.exit(f"benchlib: cannot read status file {path}")
    print(*s)


def cmd_sample(status, out):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    with open(out, "a", buffering=1) as f:
        while not stop:
            s = load_status(status)
            if s is not None:
                f.write(f"{time.time():.6f} {s[0]} {s[1]}\n")
            time.sleep(0.02)


def samples(out):
    rows = []
    with open(out) as f:
        for line in f:
            p = line.split()
            if len(p) == 3:
                rows.append((float(p[0]), int(p[1]), int(p[2])))
    return rows


def at(rows, t):
    """The last sample taken at or before t (the first one if none)."""
    best = rows[0]
    for r in rows:
        if r[0] <= t:
            best = r
        else:
            break
    return best


def window(rows, t0, t1):
    a, b = at(rows, t0), at(rows, t1)
    dc, dms = b[1] - a[1], b[2] - a[2]
    rate = dc * 1000.0 / dms if dms > 0 else 0.0
    return dc, dms, rate


def cmd_window(out, t0, t1):
    dc, dms, rate = window(samples(out), float(t0), float(t1))
    print(dc, dms, f"{rate:.1f}")


def cmd_phases(out, t0, report):
    rows = samples(out)
    with open(report) as f:
        timings = json.load(f)["timings"]
    t = float(t0)
    parts = []
    for name in ("snapshot", "check", "archive", "verify"):
        ms = timings[f"{name}_ms"]
        _, dms, rate = window(rows, t, t + ms / 1000.0)
        parts.append(f"{name} {ms} ms: {rate:.0f}/s" if dms > 0 else f"{name} {ms} ms: -")
        t += ms / 1000.0
    print("; ".join(parts))


def cmd_median(*xs):
    print(statistics.median(float(x) for x in xs))


def fmt_s(ms):
    return f"{float(ms) / 1000:.2f} s"


def fmt_mb(b):
    return f"{int(b) / 1e6:.1f} MB"


def cmd_report(path):
    r = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                r[k] = v
    rows = []
    failed = []

    def row(name, ours, theirs, ratio, limit, ok):
        res = "PASS" if ok else "FAIL"
        if not ok:
            failed.append(name)
        rows.append(f"| {name} | {ours} | {theirs} | {ratio} | {limit} | **{res}** |")

    def f(k):
        return float(r[k])

    # 1. Idle snapshot vs VACUUM INTO.
    ratio = f("snap_ms_med") / f("vacuum_ms_med")
    row("1. Idle snapshot vs `VACUUM INTO` (median of 3)",
        f"{fmt_s(r['snap_ms_med'])} (`timings.snapshot_ms`: {r['snap_ms_runs']} ms)",
        f"{fmt_s(r['vacuum_ms_med'])} ({r['vacuum_ms_runs']} ms)",
        f"{ratio:.2f}×", "≤ 1.20×", ratio <= 1.2)

    # 2. Under a writer.
    ok = r["kf500_rc"] == "0" and r["kf500_check"] == "ok"
    row("2a. kfadmin finishes under a 500 commits/s writer",
        f"finished in {fmt_s(r['kf500_ms'])}, {r['kf500_steps']} steps, "
        f"{r['kf500_restarts']} restarts, exit {r['kf500_rc']}, archive check: {r['kf500_check']}",
        "—", "—", "exits 0, archive consistent", ok)
    timed_out = r["sq500_rc"] == "124"
    theirs = (f"timed out after 60 s (exit 124); writer meanwhile {r['sq500_rate']}/s"
              if timed_out else
              f"finished in {float(r['sq500_s']):.2f} s (exit {r['sq500_rc']}); writer meanwhile {r['sq500_rate']}/s")
    row("2b. `sqlite3 .backup` under the same 500 commits/s writer",
        "—", theirs, "—", "does not finish in 60 s", timed_out)
    ratio = f("max_ratio")
    row("2c. Writer at max rate: commits/s during kfadmin's backup vs without (median of 3)",
        f"{f('max_during'):.0f}/s during ({fmt_s(r['max_win_ms'])} window)",
        f"{f('max_base'):.0f}/s without (before {f('max_pre'):.0f}, after {f('max_post'):.0f})",
        f"{ratio:.2f} (runs {r['max_ratio_runs']})", "≥ 0.80", ratio >= 0.8)
    ratio = f("kf500_rate") / 500.0
    row("2d. Writer limited to 500/s: achieved during kfadmin's backup",
        f"{f('kf500_rate'):.0f}/s", "500/s target", f"{ratio:.2f}", "≥ 0.80", ratio >= 0.8)

    # 3. Whole backup vs naive pipeline.
    ratio = f("kf_wall_med") / f("naive_med")
    row("3a. Whole online backup vs `VACUUM INTO` + `tar czf` (wall, median of 3)",
        f"{fmt_s(r['kf_wall_med'])} ({r['kf_wall_runs']} ms)",
        f"{fmt_s(r['naive_med'])} ({r['naive_runs']} ms)",
        f"{ratio:.2f}×", "≤ 0.60×", ratio <= 0.6)
    ratio = f("kf_bytes") / f("tar_bytes")
    row("3b. Archive size vs `tar czf`",
        fmt_mb(r["kf_bytes"]), fmt_mb(r["tar_bytes"]), f"{ratio:.3f}×", "≤ 1.05×", ratio <= 1.05)

    # 4. Peak memory on 1 GiB.
    mib = f("rss_kb") / 1024.0
    row("4. Peak RSS, 1 GiB database (`/usr/bin/time -f %M`)",
        f"{mib:.1f} MiB (backup took {float(r['big_s']):.2f} s, exit {r['big_rc']})",
        f"database {int(r['big_db_bytes']) / 2**20:.0f} MiB", f"{mib / 64:.2f}",
        "≤ 64 MiB", mib <= 64 and r["big_rc"] == "0")

    # 5. Text-heavy database.
    ratio = f("text_kf_bytes") / f("text_gzip6_bytes")
    row("5a. Text-heavy database: archive size vs `gzip -6` of the database",
        fmt_mb(r["text_kf_bytes"]), fmt_mb(r["text_gzip6_bytes"]), f"{ratio:.3f}×", "≤ 1.02×",
        ratio <= 1.02)
    ratio = f("text_kf_wall_med") / f("text_naive_med")
    row("5b. Text-heavy database: whole online backup vs `VACUUM INTO` + `tar czf` (wall, median of 3)",
        f"{fmt_s(r['text_kf_wall_med'])} ({r['text_kf_wall_runs']} ms)",
        f"{fmt_s(r['text_naive_med'])} ({r['text_naive_runs']} ms)",
        f"{ratio:.2f}×", "≤ 0.50×", ratio <= 0.5)

    print("| Criterion | kfadmin | Alternative / reference | Ratio | Limit | Result |")
    print("|---|---|---|---|---|---|")
    for line in rows:
        print(line)
    print()
    print("Details:")
    print()
    print(f"- kfadmin idle phases (median of 3): snapshot {r['snap_ms_med']} ms, check "
          f"{r['check_ms_med']} ms, archive {r['archive_ms_med']} ms, verify {r['verify_ms_med']} ms; "
          f"naive pipeline: `VACUUM INTO` {r['vacuum_ms_med']} ms + `tar czf` {r['tar_ms_med']} ms")
    print(f"- text-heavy database, kfadmin phases (median of 3): snapshot {r['text_snap_ms_med']} ms, "
          f"check {r['text_check_ms_med']} ms, archive {r['text_archive_ms_med']} ms, verify "
          f"{r['text_verify_ms_med']} ms; naive pipeline: `VACUUM INTO` {r['text_vacuum_ms_med']} ms + "
          f"`tar czf` {r['text_tar_ms_med']} ms ({fmt_mb(r['text_tar_bytes'])})")
    for i in (1, 2, 3):
        print(f"- writer at max rate, backup {i}: {r[f'max_run{i}']}")
    print(f"- -wal size right after the first max-rate backup: {fmt_mb(r['max_wal_bytes'])}")
    print(f"- load average at the end: {r['load_end']} (other processes compete with the writer for the CPU)")
    print(f"- databases: {fmt_mb(r['db_bytes'])} (criteria 1–3), {fmt_mb(r['big_db_bytes'])} (criterion 4), "
          f"{fmt_mb(r['text_db_bytes'])} text-heavy (criterion 5)")
    print()
    if failed:
        print(f"FAILED: {len(failed)} of {len(rows)} criteria: " + "; ".join(failed))
        return 1
    print(f"All {len(rows)} criteria pass.")
    return 0


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    fn = {
        "get": cmd_get,
        "status": cmd_status,
        "sample": cmd_sample,
        "window": cmd_window,
        "phases": cmd_phases,
        "median": cmd_median,
        "report": cmd_report,
    }.get(cmd)
    if fn is None:
        sys.exit(__doc__)
    rc = fn(*args)
    sys.exit(rc or 0)


if __name__ == "__main__":
    main()
