#!/usr/bin/env python3
"""Turns bench/run.sh's raw JSON lines into one table of medians.

    report.py RAW.jsonl [--md OUT.md] [--header TEXT]   the table (stdout, and markdown to OUT.md)
    report.py RAW.jsonl --smoke                          checks a smoke run: every run ok and counted right

Each line of RAW is {"bench": ID, "round": R, "exit": RC, "result": HARNESS_JSON or null}.
"""
import json
import statistics
import sys

LIBS = ["mqttc", "mosquitto", "paho"]
PEERS = ["mosquitto", "paho"]


def load(path):
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise SystemExit(f"report.py: {path}:{n}: not JSON: {e}")
    return rows


def smoke(rows):
    bad = []
    seen = set()
    for r in rows:
        res = r.get("result")
        where = f"{r.get('bench')} {r.get('lib', '?')}"
        if res is None or r.get("exit") != 0 or not res.get("ok"):
            bad.append(f"{where}: failed: exit {r.get('exit')}, {res and res.get('error')}")
            continue
        where = f"{r['bench']} {res['lib']}"
        seen.add((r["bench"], res["lib"]))
        p, v = res.get("params", {}), res.get("results", {})
        if res["mode"] in ("throughput", "latency"):
            if v["unique"] != p["count"] or v["lost"] != 0:
                bad.append(f"{where}: {v['unique']} of {p['count']} received, {v['lost']} lost")
            if p["qos"] in (0, 2) and v["duplicated"] != 0:
                bad.append(f"{where}: {v['duplicated']} duplicates at QoS {p['qos']}")
        elif res["mode"] == "idle":
            if v["connected"] != p["clients"]:
                bad.append(f"{where}: {v['connected']} of {p['clients']} connected")
    benches = {r["bench"] for r in rows}
    for b in benches:
        for lib in LIBS:
            if (b, lib) not in seen:
                bad.append(f"{b} {lib}: no good run")
    for b in bad:
        print("smoke: " + b, file=sys.stderr)
    print(f"smoke: {len(rows)} runs, {len(benches)} measurements x {len(LIBS)} libraries: "
          + ("FAILED" if bad else "all counts right"))
    return 1 if bad else 0


def collect(rows):
    """{(bench, lib): {"values": {key: [..]}, "errors": [..]}}"""
    out = {}
    for r in rows:
        res = r.get("result") or {}
        lib = res.get("lib") or r.get("lib") or "?"
        d = out.setdefault((r["bench"], lib), {"values": {}, "errors": []})
        if r.get("exit") != 0 or not res.get("ok"):
            d["errors"].append(res.get("error") or r.get("error") or f"exit {r.get('exit')}")
            continue
        for k, v in res.get("results", {}).items():
            if isinstance(v, (int, float)):
                d["values"].setdefault(k, []).append(float(v))
    return out


def fmt(x, kind):
    if kind == "rate":
        return f"{x / 1000:.1f}k"
    if kind == "int":
        return f"{x:,.0f}"
    if kind == "f2":
        return f"{x:.2f}"
    return f"{x:.1f}"


def cell(data, bench, lib, key, kind):
    d = data.get((bench, lib))
    if d is None:
        return "–", None
    vals = d["values"].get(key)
    if not vals and d["values"] and not d["errors"]:
        return "n/a", None  # measured, but this quantity does not apply
    if not vals:
        err = d["errors"][0] if d["errors"] else "no result"
        return f"FAIL: {err}", None
    med = statistics.median(vals)
    s = fmt(med, kind)
    if len(vals) > 1:
        s += f" [{fmt(min(vals), kind)}–{fmt(max(vals), kind)}]"
    if d["errors"]:
        s += f" ({len(d['errors'])} failed)"
    return s, med


# (label, bench id, result key, number format, which is better)
ROWS = [
    ("throughput QoS 0, 64 B (msg/s)", "tp_q0_64", "msgs_per_s", "rate", "higher"),
    ("throughput QoS 1, 64 B (msg/s)", "tp_q1_64", "msgs_per_s", "rate", "higher"),
    ("throughput QoS 2, 64 B (msg/s)", "tp_q2_64", "msgs_per_s", "rate", "higher"),
    ("throughput QoS 0, 4 KiB (msg/s)", "tp_q0_4096", "msgs_per_s", "rate", "higher"),
    ("throughput QoS 1, 4 KiB (msg/s)", "tp_q1_4096", "msgs_per_s", "rate", "higher"),
    ("throughput QoS 2, 4 KiB (msg/s)", "tp_q2_4096", "msgs_per_s", "rate", "higher"),
    ("latency QoS 0 p50 (µs)", "lat_q0", "p50_us", "f1", "lower"),
    ("latency QoS 0 p99 (µs)", "lat_q0", "p99_us", "f1", "lower"),
    ("latency QoS 1 p50 (µs)", "lat_q1", "p50_us", "f1", "lower"),
    ("latency QoS 1 p99 (µs)", "lat_q1", "p99_us", "f1", "lower"),
    ("CPU µs/msg, throughput QoS 0, 64 B", "tp_q0_64", "cpu_us_per_msg", "f2", "lower"),
    ("CPU µs/msg, throughput QoS 1, 64 B", "tp_q1_64", "cpu_us_per_msg", "f2", "lower"),
    ("CPU µs/msg, throughput QoS 2, 64 B", "tp_q2_64", "cpu_us_per_msg", "f2", "lower"),
    ("CPU µs/msg, latency QoS 1", "lat_q1", "cpu_us_per_msg", "f2", "lower"),
    ("instructions/msg QoS 0, 64 B (callgrind)", "callgrind_q0", "ir_per_msg", "int", "lower"),
    ("instructions/msg QoS 1, 64 B (callgrind)", "callgrind_q1", "ir_per_msg", "int", "lower"),
    ("syscalls/msg QoS 0, 64 B (strace)", "strace_q0", "syscalls_per_msg", "f2", "lower"),
    ("syscalls/msg QoS 1, 64 B (strace)", "strace_q1", "syscalls_per_msg", "f2", "lower"),
    ("syscalls/msg latency ping-pong QoS 0 (strace)", "strace_lat_q0", "syscalls_per_msg", "f2", "lower"),
    ("syscalls/msg latency ping-pong QoS 1 (strace)", "strace_lat_q1", "syscalls_per_msg", "f2", "lower"),
    ("heap per client, 1000 clients, right after connecting (B)", "idle_1000", "heap_per_client_connected", "int", "lower"),
    ("heap per idle client, 1000 clients, after 3 s idle (B)", "idle_1000", "heap_per_client", "int", "lower"),
    ("RSS per idle client, 1000 clients, after 3 s idle (B)", "idle_1000", "rss_per_client", "int", "lower"),
    ("fds per client", "idle_1000", "fds_per_client", "f2", "lower"),
    ("10,000 idle clients: RSS per connection, after 3 s idle (B)", "c10k", "rss_per_client", "int", "lower"),
    ("10,000 idle clients: heap per connection (B)", "c10k", "heap_per_client", "int", "lower"),
    ("(fd limit − 100) / 3 idle clients: RSS per connection, after 3 s idle (B)", "cmax", "rss_per_client", "int", "lower"),
    ("(fd limit − 100) / 3 idle clients: heap per connection (B)", "cmax", "heap_per_client", "int", "lower"),
    ("(fd limit − 100) / 3 idle clients: seconds to connect all", "cmax", "connect_s", "f2", "lower"),
    (".text of the library, -Os / distro (B)", "size", "text", "int", "lower"),
    (".text of mqttc's protocol core (B)", "size", "core_text", "int", "lower"),
    (".text of mqttc's drivers (B)", "size", "drivers_text", "int", "lower"),
]


def table(data):
    head = ["measurement", "mqttc", "mosquitto", "paho", "mqttc/mosquitto", "mqttc/paho", "better"]
    lines = []
    for label, bench, key, kind, better in ROWS:
        if not any((bench, lib) in data for lib in LIBS):
            continue
        cells, meds = [], {}
        for lib in LIBS:
            s, m = cell(data, bench, lib, key, kind)
            cells.append(s)
            meds[lib] = m
        ratios = []
        for p in PEERS:
            a, b = meds["mqttc"], meds[p]
            ratios.append(f"{a / b:.2f}" if a is not None and b not in (None, 0) else "–")
        lines.append([label] + cells + ratios + [better])
    return head, lines


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    rows = load(argv[1])
    if "--smoke" in argv:
        return smoke(rows)
    md = argv[argv.index("--md") + 1] if "--md" in argv else None
    header = argv[argv.index("--header") + 1] if "--header" in argv else ""
    head, lines = table(collect(rows))
    widths = [max(len(str(r[i])) for r in [head] + lines) for i in range(len(head))]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for r in lines:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    if md:
        with open(md, "w") as f:
            if header:
                f.write(header.rstrip() + "\n\n")
            f.write("| " + " | ".join(head) + " |\n")
            f.write("|" + "|".join(["---"] * len(head)) + "|\n")
            for r in lines:
                f.write("| " + " | ".join(str(c).replace("|", "/") for c in r) + " |\n")
            f.write("\nCells: median [min–max] over the rounds; ratio = median of mqttc / median "
                    "of the peer.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
