"""Issue 13's benchmarks, driven by ferrokv-load (benches/loadgen): a 3-node cluster,
one node with one and two shards against redis-server, and zipf-skewed keys on two
shards. Run by benches/cluster-load.sh, which documents the method."""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import Conn
from slot_migration import agreed, cli, free_port, key_slot, wait

CLK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    """utime + stime of a process or thread (/proc/.../stat), in seconds."""
    try:
        with open("/proc/%s/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def shard_threads(pid):
    """{thread name: tid} of ferrokv's shard threads (`shard-N`)."""
    out = {}
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                name = f.read().strip()
            if name.startswith("shard-"):
                out[name] = "%d/task/%s" % (pid, tid)
    except OSError:
        pass
    return out


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Servers:
    """Server processes of one measurement; stopped together."""

    def __init__(self, work, binaries):
        self.work, self.binaries = work, binaries
        self.procs, self.taken = [], set()

    def core_ports_supported(self):
        """Whether this ferrokv-server has per-shard client ports (`core-ports`)."""
        pid, port = self.start("ferrokv", threads=1, cluster=False)
        try:
            return Conn(port).call("CONFIG", "GET", "core-ports") not in ([], None)
        finally:
            self.stop()

    def balance_supported(self):
        """Whether this ferrokv-server has the hot-slot balancer (`shard-balance`)."""
        pid, port = self.start("ferrokv", threads=1, cluster=False)
        try:
            return Conn(port).call("CONFIG", "GET", "shard-balance") not in ([], None)
        finally:
            self.stop()

    def free_run(self, n):
        """The first of n consecutive free ports."""
        while True:
            base = free_port(self.taken)
            extra = set(range(base + 1, base + n))
            if extra & self.taken:
                continue
            ok = True
            for p in extra:
                with socket.socket() as sock:
                    try:
                        sock.bind(("127.0.0.1", p))
                    except OSError:
                        ok = False
            if ok:
                self.taken |= extra
                return base

    def start(self, kind, threads=None, cores=None, cluster=True, core_ports=False, extra=()):
        port = free_port(self.taken)
        d = os.path.join(self.work, "%s-%d" % (kind, port))
        os.makedirs(d)
        args = [self.binaries[kind], "--bind", "127.0.0.1", "--port", str(port), "--dir", d,
                "--save", "", "--appendonly", "no", "--logfile", os.path.join(d, "log")]
        if cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--cluster-node-timeout", "5000"]
        if kind == "ferrokv" and threads:
            args += ["--server-threads", str(threads)]
        if core_ports:
            args += ["--core-ports", str(self.free_run(threads))]
        args += list(extra)
        if cores is not None:
            args = ["taskset", "-c", cores] + args
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        deadline = time.monotonic() + 20
        while True:
            try:
                if Conn(port).call("PING") == "PONG":
                    return p.pid, port
            except OSError:
                pass
            if time.monotonic() > deadline or p.poll() is not None:
                raise SystemExit("%s on %d did not start (log: %s/log)" % (kind, port, d))
            time.sleep(0.05)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


def one_node_cluster(port):
    """Every slot on the node at `port`, cluster state ok."""
    r = Conn(port).call("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    if r != "OK":
        raise SystemExit("CLUSTER ADDSLOTSRANGE: %r" % r)
    wait("cluster_state:ok", lambda: Conn(port).fields("CLUSTER", "INFO").get("cluster_state") == "ok")


class Load:
    def __init__(self, binary, cores):
        self.binary, self.cores = binary, cores

    def run(self, port, *args):
        cmd = [self.binary, "--port", str(port), "--json", "--timeout", "30"] + [str(a) for a in args]
        if self.cores is not None:
            cmd = ["taskset", "-c", self.cores] + cmd
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            raise SystemExit("ferrokv-load %s failed:\n%s%s" % (" ".join(map(str, args)), r.stdout, r.stderr))
        rep = json.loads(r.stdout)
        if rep["errors"]:
            print("WARNING: %d errors: %s" % (rep["errors"], rep["first_errors"]), file=sys.stderr)
        return rep

    def fill(self, port, keys, value_size, *extra):
        self.run(port, "--distribution", "sequential", "--ratio", "1:0", "--keys", keys, "-n", keys,
                 "-c", 50, "-P", 16, "-d", value_size, *extra)

    def measure(self, pids, port, *args):
        """Runs the generator; adds the servers' CPU seconds (and per shard thread) and
        the load average before the run."""
        la = loadavg()
        threads = {}
        for pid in pids:
            threads.update(shard_threads(pid))
        before = sum(cpu_s(p) for p in pids)
        tbefore = {n: cpu_s(t) for n, t in threads.items()}
        rep = self.run(port, *args)
        rep["server_cpu"] = sum(cpu_s(p) for p in pids) - before
        rep["shard_cpu"] = {n: cpu_s(t) - tbefore[n] for n, t in sorted(threads.items())}
        rep["load"] = la
        return rep


def med(reps, f):
    return statistics.median(f(r) for r in reps)


def cpu_per_m(r):
    return r["server_cpu"] / r["requests"] * 1e6


def gen_cpu_per_m(r):
    return r["client_cpu_s"] / r["requests"] * 1e6


def print_rows(title, header, rows):
    print()
    print(title)
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    sys.stdout.flush()


def scenario_cluster3(a, servers, load):
    """3 masters of one kind, unpinned; 1:1 SET:GET uniform, P1 and P16."""
    res = {}
    for rnd in range(a.rounds):
        for kind in (["ferrokv", "redis"] if rnd % 2 == 0 else ["redis", "ferrokv"]):
            # Several shards per ferrokv node: each gets a port (core-ports), so the
            # generator, routing by CLUSTER SLOTS, reaches the owning core of each slot.
            per_core = kind == "ferrokv" and (a.node_threads or 1) > 1 and servers.core_ports_supported()
            nodes = [servers.start(kind, threads=a.node_threads, core_ports=per_core) for _ in range(3)]
            ports = [p for _, p in nodes]
            cli("--cluster", "create", *("127.0.0.1:%d" % p for p in ports), "--cluster-yes")
            wait("the 3 masters to agree", lambda: agreed(ports))
            load.fill(ports[0], a.keys, a.value_size)
            for pl in (1, 16):
                r = load.measure([pid for pid, _ in nodes], ports[0], "--duration", a.seconds, "-c", a.clients,
                                 "-P", pl, "--keys", a.keys, "-d", a.value_size, "--ratio", "1:1")
                res.setdefault((kind, pl), []).append(r)
                print("cluster3 round %d %s P%d: %.0f rps p99 %.3f ms, %.2f CPU s/1M, load %s" %
                      (rnd + 1, kind, pl, r["rps"], r["latency_ms"]["p99"], cpu_per_m(r), r["load"]), file=sys.stderr)
            servers.stop()
    rows = []
    for pl in (1, 16):
        f, rd = res[("ferrokv", pl)], res[("redis", pl)]
        frps, rrps = med(f, lambda r: r["rps"]), med(rd, lambda r: r["rps"])
        fc, rc = med(f, cpu_per_m), med(rd, cpu_per_m)
        rows.append(["P%d" % pl, "%.0f" % frps, "%.0f" % rrps, "%.2fx" % (frps / rrps),
                     "%.3f" % med(f, lambda r: r["latency_ms"]["p50"]), "%.3f" % med(rd, lambda r: r["latency_ms"]["p50"]),
                     "%.3f" % med(f, lambda r: r["latency_ms"]["p99"]), "%.3f" % med(rd, lambda r: r["latency_ms"]["p99"]),
                     "%.2f" % fc, "%.2f" % rc, "%.2fx" % (fc / rc),
                     "%.2f / %.2f" % (med(f, gen_cpu_per_m), med(rd, gen_cpu_per_m)),
                     ", ".join(r["load"].split()[0] for r in f + rd)])
    print_rows("3 masters on 127.0.0.1 (ferrokv --server-threads %d), nothing pinned; ferrokv-load -c %d, 1:1 SET:GET, "
               "%d keys, %d B values, %g s per run, medians of %d rounds" %
               (a.node_threads, a.clients, a.keys, a.value_size, a.seconds, a.rounds),
               ["pipeline", "ferrokv rps", "redis rps", "rps ratio", "ferrokv p50 ms", "redis p50 ms",
                "ferrokv p99 ms", "redis p99 ms", "ferrokv CPU s/1M", "redis CPU s/1M", "CPU ratio",
                "ferrokv-load CPU s/1M (vs ferrokv / redis)", "load avg (1 min) per run"],
               rows)


SHARD_CONFIGS = [
    # (label, kind, server threads, server cores, client modes)
    ("redis-server", "redis", None, "0", ["cluster"]),
    ("ferrokv 1 shard", "ferrokv", 1, "0", ["cluster"]),
    ("ferrokv 2 shards", "ferrokv", 2, "0,1", ["cluster", "standalone"]),
]


def scenario_shards(a, servers, load):
    """One node owning every slot; 1 shard, 2 shards, redis; cluster client (and a
    standalone one on two shards); CPU per request."""
    res = {}
    core_ports = servers.core_ports_supported()
    print("core-ports %s" % ("supported: two shards get a port each" if core_ports else "not supported by this build"),
          file=sys.stderr)
    for rnd in range(a.rounds):
        configs = SHARD_CONFIGS if rnd % 2 == 0 else SHARD_CONFIGS[::-1]
        for label, kind, threads, cores, modes in configs:
            pid, port = servers.start(kind, threads=threads, cores=cores, core_ports=core_ports and threads == 2)
            one_node_cluster(port)
            load.fill(port, a.keys, a.value_size)
            for pl in (1, 16):
                for mode in modes:
                    extra = ["--cluster"] if mode == "cluster" else ["--no-cluster"]
                    r = load.measure([pid], port, "--duration", a.seconds, "-c", a.clients, "-P", pl,
                                     "--keys", a.keys, "-d", a.value_size, "--ratio", "1:1", *extra)
                    res.setdefault((label, mode, pl), []).append(r)
                    print("shards round %d %s %s P%d: %.0f rps, %.2f CPU s/1M, endpoints %d, load %s" %
                          (rnd + 1, label, mode, pl, r["rps"], cpu_per_m(r), len(r["endpoints"]), r["load"]),
                          file=sys.stderr)
            servers.stop()
    rows = []
    for pl in (1, 16):
        base_redis = med(res[("redis-server", "cluster", pl)], cpu_per_m)
        base_one = med(res[("ferrokv 1 shard", "cluster", pl)], cpu_per_m)
        for label, _, _, _, modes in SHARD_CONFIGS:
            for mode in modes:
                rs = res[(label, mode, pl)]
                c = med(rs, cpu_per_m)
                rows.append(["P%d" % pl, label, "%s (%d endpoint%s)" % (mode, len(rs[0]["endpoints"]),
                                                                       "s" if len(rs[0]["endpoints"]) > 1 else ""),
                             "%.0f" % med(rs, lambda r: r["rps"]), "%.3f" % med(rs, lambda r: r["latency_ms"]["p99"]),
                             "%.2f" % c, "%.2fx" % (c / base_one), "%.2fx" % (c / base_redis),
                             "%.2f" % med(rs, gen_cpu_per_m),
                             ", ".join(r["load"].split()[0] for r in rs)])
    print_rows("One node owning all 16384 slots (cluster-enabled), server on core 0 (two shards: cores 0-1%s), "
               "ferrokv-load on core 1, -c %d, 1:1 SET:GET uniform over %d keys, %d B values, %g s per run, "
               "medians of %d rounds" % (", with core-ports" if core_ports else ", no core-ports",
                                         a.clients, a.keys, a.value_size, a.seconds, a.rounds),
               ["pipeline", "server", "client", "rps", "p99 ms", "server CPU s/1M", "vs 1 shard", "vs redis",
                "ferrokv-load CPU s/1M", "load avg (1 min) per run"], rows)


def zipf_shard_shares(keys, s, prefix=b"key:"):
    """Expected share of requests per half of the slot space (ferrokv's two shards own
    slots 0-8191 and 8192-16383) under zipf(s) over `keys` keys."""
    total, low = 0.0, 0.0
    for k in range(keys):
        w = (k + 1) ** -s
        total += w
        if key_slot(prefix + b"%012d" % k) < 8192:
            low += w
    return low / total, 1 - low / total


# Key sets of the skew scenario: (label, generator arguments). The hot tag puts 100,000
# keys under one hash tag: one slot, so one shard executes every command.
HOT_TAG = ["--hash-tags", "1", "--key-prefix", "hot:", "--keys", 100_000]


def skew_dists(a):
    return [("uniform", ["--keys", a.zipf_keys]),
            ("zipf", ["--keys", a.zipf_keys, "--distribution", "zipf", "--zipf-s", a.zipf_s]),
            ("one hash tag", HOT_TAG)]


def skew_points(a):
    """Load points of the skew scenario: closed loop at P1 and P16, and open loop at P1
    (a fixed rate, so that faster connections cannot take a larger share)."""
    points = [("P1", ["-P", 1]), ("P16", ["-P", 16])]
    if a.paced_rate:
        points.append(("P1 at %d/s" % a.paced_rate, ["-P", 1, "--rate", a.paced_rate]))
    return points


def scenario_zipf(a, servers, load):
    """Two shards, cluster client, 1M keys: uniform against zipf(s), and one hot hash
    tag; redis alongside."""
    # ferrokv with and without the hot-slot balancer (`shard-balance`, when the build has
    # it). Every point is run twice: first unmeasured for --warm-up seconds (the balancer
    # measures a second, then moves slots; the servers' caches warm alike), then measured.
    configs = [("redis-server", "redis", None, "0", ()), ("ferrokv 2 shards", "ferrokv", 2, "0,1", ())]
    if servers.balance_supported():
        configs[1] = ("ferrokv 2 shards, balancer off", "ferrokv", 2, "0,1", ("--shard-balance", "no"))
        configs.append(("ferrokv 2 shards, balancer on", "ferrokv", 2, "0,1", ("--shard-balance", "yes")))
    res = {}
    core_ports = servers.core_ports_supported()
    for rnd in range(a.rounds):
        for label, kind, threads, cores, extra in (configs if rnd % 2 == 0 else configs[::-1]):
            pid, port = servers.start(kind, threads=threads, cores=cores, core_ports=core_ports and threads == 2,
                                      extra=extra)
            one_node_cluster(port)
            load.fill(port, a.zipf_keys, a.value_size)
            load.fill(port, HOT_TAG[-1], a.value_size, *HOT_TAG[:-2])
            for pl, point_args in skew_points(a):
                for dist, dist_args in skew_dists(a):
                    run = ["-c", a.clients, *point_args, "-d", a.value_size, "--ratio", "1:1", "--cluster", *dist_args]
                    if a.warm_up > 0:
                        load.measure([pid], port, "--duration", a.warm_up, *run)
                    r = load.measure([pid], port, "--duration", a.seconds, *run)
                    if kind == "ferrokv":
                        r["slots"] = shard_slots(port)
                    res.setdefault((label, dist, pl), []).append(r)
                    print("zipf round %d %s %s %s: %.0f rps, %.2f CPU s/1M, shards %s, slots %s, load %s" %
                          (rnd + 1, label, dist, pl, r["rps"], cpu_per_m(r),
                           {k: round(v, 2) for k, v in r["shard_cpu"].items()}, r.get("slots"), r["load"]),
                          file=sys.stderr)
            servers.stop()
    lo, hi = zipf_shard_shares(a.zipf_keys, a.zipf_s)
    rows = []
    for pl, _ in skew_points(a):
        redis_u = med(res[("redis-server", "uniform", pl)], lambda r: r["rps"])
        for label, _, _, _, _ in configs:
            for dist, _ in skew_dists(a):
                rs = res[(label, dist, pl)]
                rps = med(rs, lambda r: r["rps"])
                shards = ""
                if rs[0]["shard_cpu"]:
                    shares = [statistics.median(r["shard_cpu"][n] / max(sum(r["shard_cpu"].values()), 1e-9) for r in rs)
                              for n in sorted(rs[0]["shard_cpu"])]
                    shards = " / ".join("%.0f%%" % (100 * x) for x in shares)
                slots = " / ".join(str(x) for x in rs[-1]["slots"]) if rs[-1].get("slots") else ""
                rows.append([pl, label, dist, "%.0f" % rps, "%.2fx" % (rps / redis_u),
                             "%.3f" % med(rs, lambda r: r["latency_ms"]["p99"]), "%.2f" % med(rs, cpu_per_m), shards,
                             slots,
                             "%.2f" % med(rs, gen_cpu_per_m),
                             ", ".join(r["load"].split()[0] for r in rs)])
    print_rows("One node, all slots, %d keys filled (%d B values); server on core 0 (two shards: 0-1%s), ferrokv-load on "
               "core 1 as a cluster client, -c %d, 1:1 SET:GET, zipf s=%g vs uniform, and 100000 keys under one hash tag, "
               "closed loop and paced, "
               "%g s per run, medians of %d rounds. "
               "Expected request share of the two slot halves under zipf: %.1f%% / %.1f%%" %
               (a.zipf_keys, a.value_size, ", with core-ports" if core_ports else ", no core-ports", a.clients, a.zipf_s,
                a.seconds, a.rounds, 100 * lo, 100 * hi),
               ["pipeline", "server", "keys", "rps", "vs redis uniform", "p99 ms", "server CPU s/1M",
                "shard CPU split", "slots per shard (last round)", "ferrokv-load CPU s/1M",
                "load avg (1 min) per run"], rows)


def shard_slots(port):
    """Slots each shard owns (INFO shards' `slots`, when the build reports it)."""
    info = Conn(port).call("INFO", "shards")
    if isinstance(info, bytes):
        info = info.decode()
    out = []
    for line in info.splitlines():
        if line.startswith("shard") and "slots=" in line:
            out.append(int(line.split("slots=")[1].split(",")[0]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ferrokv", required=True)
    ap.add_argument("--redis", default="redis-server")
    ap.add_argument("--load", required=True)
    ap.add_argument("--scenario", action="append", choices=["cluster3", "shards", "zipf"])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--zipf-keys", type=int, default=1_000_000)
    ap.add_argument("--zipf-s", type=float, default=1.1)
    ap.add_argument("--paced-rate", type=int, default=10000)
    ap.add_argument("--warm-up", type=float, default=3)
    ap.add_argument("--value-size", type=int, default=3)
    ap.add_argument("--node-threads", type=int, default=1)
    a = ap.parse_args()
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs 2 cores")
    work = tempfile.mkdtemp(prefix="ferrokv-clusterload.")
    servers = Servers(work, {"ferrokv": a.ferrokv, "redis": a.redis})
    try:
        for sc in a.scenario or ["cluster3", "shards", "zipf"]:
            if sc == "cluster3":
                scenario_cluster3(a, servers, Load(a.load, None))
            else:
                fn = scenario_shards if sc == "shards" else scenario_zipf
                fn(a, servers, Load(a.load, "1"))
    finally:
        servers.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
