"""Moving half the slots of a 3-master cluster to a new empty master: ferrokv's
whole-slot migration (CLUSTER MIGRATION IMPORT) against `redis-cli --cluster reshard`
on redis-server. Run by benches/slot-migration.sh, which documents the method."""
import argparse
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import Conn, RespError


def crc16_table():
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return table


TABLE = crc16_table()


def key_slot(key):
    s = key.find(b"{")
    if s >= 0:
        e = key.find(b"}", s + 1)
        if e > s + 1:
            key = key[s + 1:e]
    crc = 0
    for b in key:
        crc = ((crc << 8) & 0xFFFF) ^ TABLE[((crc >> 8) ^ b) & 0xFF]
    return crc & 0x3FFF


def free_port(taken):
    low = 32768
    try:
        low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except OSError:
        pass
    import random
    while True:
        port = random.randrange(12000, low - 10000)
        if port in taken or port + 10000 in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        taken.add(port + 10000)
        return port


class Cluster:
    def __init__(self, kind, binary, work, threads):
        self.kind, self.binary, self.work = kind, binary, work
        self.procs, self.ports, self.taken = [], [], set()
        self.threads = threads

    def start_node(self):
        port = free_port(self.taken)
        d = os.path.join(self.work, "%s-%d" % (self.kind, port))
        os.makedirs(d)
        args = [self.binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", d,
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "5000", "--save", "", "--appendonly", "no",
                "--logfile", os.path.join(d, "log")]
        if self.kind == "ferrokv" and self.threads:
            args += ["--server-threads", str(self.threads)]
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        self.ports.append(port)
        deadline = time.monotonic() + 20
        while True:
            try:
                if Conn(port).call("PING") == "PONG":
                    return port
            except OSError:
                pass
            if time.monotonic() > deadline or p.poll() is not None:
                raise SystemExit("%s on %d did not start (log: %s/log)" % (self.kind, port, d))
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


def cli(*args, timeout=3600):
    r = subprocess.run(["redis-cli", *args], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise SystemExit("redis-cli %s failed:\n%s%s" % (" ".join(args), r.stdout[-3000:], r.stderr[-2000:]))
    return r.stdout


def nodes(port):
    out = {}
    for line in Conn(port).call("CLUSTER", "NODES").splitlines():
        f = line.split()
        if len(f) < 8:
            continue
        ranges = []
        for s in f[8:]:
            if s.startswith("["):
                continue
            a, _, b = s.partition("-")
            ranges.append((int(a), int(b or a)))
        out[f[0]] = (int(f[1].split("@")[0].rsplit(":", 1)[1]), set(f[2].split(",")), ranges)
    return out


def wait(what, cond, timeout=60):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for " + what)
        time.sleep(0.1)


def agreed(ports):
    views = []
    for p in ports:
        if Conn(p).fields("CLUSTER", "INFO").get("cluster_state") != "ok":
            return False
        v = nodes(p)
        if len(v) != len(ports) or any(n[1] & {"fail", "fail?", "handshake", "noaddr"} for n in v.values()):
            return False
        views.append(sorted((i, tuple(n[2])) for i, n in v.items()))
    return all(x == views[0] for x in views)


def load(ports, n, value_size):
    """SETs key:%010d with value_size-byte values, pipelined to each slot's owner."""
    owner = {}
    for port in ports:
        me = [n_ for n_ in nodes(port).values() if "myself" in n_[1]][0]
        for a, b in me[2]:
            for s in range(a, b + 1):
                owner[s] = port
    value = b"v" * value_size
    batches = {p: [] for p in ports}
    conns = {p: socket.create_connection(("127.0.0.1", p)) for p in ports}
    pending = {p: 0 for p in ports}

    def drain(p):
        sock, want = conns[p], pending[p]
        got, buf = 0, b""
        while got < want:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise SystemExit("connection closed while loading")
            buf += chunk
            got = buf.count(b"\r\n")
        if b"-" in buf:
            raise SystemExit("load error: %r" % buf[:200])
        pending[p] = 0

    for i in range(n):
        k = b"key:%010d" % i
        p = owner[key_slot(k)]
        batches[p].append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(value), value))
        if len(batches[p]) >= 1000:
            conns[p].sendall(b"".join(batches[p]))
            pending[p] += len(batches[p])
            batches[p] = []
            drain(p)
    for p in ports:
        if batches[p]:
            conns[p].sendall(b"".join(batches[p]))
            pending[p] += len(batches[p])
            drain(p)


def dbsize(ports):
    return sum(Conn(p).call("DBSIZE") for p in ports)


class Load:
    """A client writing and reading back counters in every slot while slots move; it
    follows MOVED/ASK as a cluster client does and records each request's latency."""

    def __init__(self, ports, keys=2000):
        self.keys = [b"load:%d" % i for i in range(keys)]
        self.slot_port = {}
        for port in ports:
            me = [n_ for n_ in nodes(port).values() if "myself" in n_[1]][0]
            for a, b in me[2]:
                for s in range(a, b + 1):
                    self.slot_port[s] = port
        self.conns, self.lat, self.errors, self.redirects = {}, [], 0, 0
        self.done, self.ops = threading.Event(), 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def conn(self, port):
        if port not in self.conns:
            self.conns[port] = Conn(port)
        return self.conns[port]

    def call(self, key, *args):
        port = self.slot_port[key_slot(key)]
        asking = False
        for _ in range(50):
            c = self.conn(port)
            if asking:
                c.call("ASKING")
            r = c.call(*args)
            if isinstance(r, RespError):
                word = r.split(" ", 1)[0]
                if word in ("MOVED", "ASK"):
                    self.redirects += 1
                    port = int(r.split()[2].rsplit(":", 1)[1])
                    if word == "MOVED":
                        self.slot_port[key_slot(key)] = port
                    asking = word == "ASK"
                    continue
                if word == "TRYAGAIN":
                    time.sleep(0.001)
                    continue
                self.errors += 1
            return r
        self.errors += 1

    def run(self):
        expect = {}
        i = 0
        while not self.done.is_set():
            k = self.keys[i % len(self.keys)]
            i += 1
            t = time.perf_counter()
            r = self.call(k, "INCR", k)
            self.lat.append(time.perf_counter() - t)
            expect[k] = expect.get(k, 0) + 1
            if r != expect[k]:
                self.errors += 1
            self.ops += 1
        self.expect = expect


def cpu_secs(procs):
    """User + system CPU seconds the processes have used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in procs:
        with open("/proc/%d/stat" % p.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def move_redis(ports, new_id, slots):
    t = time.monotonic()
    cli("--cluster", "reshard", "127.0.0.1:%d" % ports[0], "--cluster-from", "all", "--cluster-to", new_id,
        "--cluster-slots", str(slots), "--cluster-yes")
    return time.monotonic() - t, []


def trims_running(ports):
    total = 0
    for p in ports:
        info = Conn(p).call("CLUSTER", "INFO")
        for line in info.splitlines():
            if line.startswith("cluster_slot_migration_active_trim_running:"):
                total += int(line.split(":")[1])
    return total


def move_ferrokv(ports, new_port, slots, one_at_a_time=False):
    """One IMPORT per source, for the first slots/3 slots of each master, run at once
    (or one after the other, each once the sources have deleted what moved before)."""
    view = nodes(new_port)
    masters = [n for i, n in view.items() if "master" in n[1] and n[0] != new_port and n[2]]
    per = slots // len(masters)
    tasks = []
    t = time.monotonic()
    c = Conn(new_port)
    for j, m in enumerate(masters):
        want = per + (slots - per * len(masters) if j == 0 else 0)
        ranges = []
        for a, b in m[2]:
            take = min(want, b - a + 1)
            if take > 0:
                ranges += [a, a + take - 1]
                want -= take
        if one_at_a_time:
            wait("the sources to finish deleting", lambda: trims_running(ports) == 0, 60)
        r = c.call("CLUSTER", "MIGRATION", "IMPORT", *ranges)
        if isinstance(r, RespError):
            raise SystemExit("IMPORT: %s" % r)
        tasks.append(r)
        if one_at_a_time:
            while c.call("CLUSTER", "MIGRATION", "STATUS", "ID", r)[0][11] not in ("completed", "failed", "canceled"):
                time.sleep(0.005)
    pauses = []
    for tid in tasks:
        while True:
            st = c.call("CLUSTER", "MIGRATION", "STATUS", "ID", tid)
            f = dict(zip(st[0][0::2], st[0][1::2]))
            if f["state"] in ("completed", "failed", "canceled"):
                break
            time.sleep(0.005)
        if f["state"] != "completed" or f["last_error"]:
            raise SystemExit("task %s: %s %s" % (tid, f["state"], f["last_error"]))
        pauses.append(int(f["write_pause_ms"]))
    return time.monotonic() - t, pauses


def one(kind, binary, args, work):
    cl = Cluster(kind, binary, work, args.threads)
    try:
        ports = [cl.start_node() for _ in range(4)]
        cli("--cluster", "create", *("127.0.0.1:%d" % p for p in ports[:3]), "--cluster-yes")
        wait("the 3 masters to agree", lambda: agreed(ports[:3]))
        cli("--cluster", "add-node", "127.0.0.1:%d" % ports[3], "127.0.0.1:%d" % ports[0])
        wait("the 4 nodes to agree", lambda: agreed(ports))
        t = time.monotonic()
        load(ports[:3], args.keys, args.value_size)
        loaded = time.monotonic() - t
        total = dbsize(ports)
        if total != args.keys:
            raise SystemExit("%s: %d keys after load, want %d" % (kind, total, args.keys))
        new_id = Conn(ports[3]).call("CLUSTER", "MYID")
        lo = Load(ports) if args.under_load else None
        if lo:
            lo.thread.start()
            time.sleep(0.5)
            # The load's rate before the move, to compare with its rate during it.
            ops0, t0 = lo.ops, time.monotonic()
            time.sleep(1.0)
            rate_before = (lo.ops - ops0) / (time.monotonic() - t0)
            ops_move, t_move = lo.ops, time.monotonic()
        # PERF_MOVE=<file>: a perf profile of the servers during the move only.
        perf = None
        if os.environ.get("PERF_MOVE"):
            pids = ",".join(str(p.pid) for p in cl.procs)
            perf = subprocess.Popen(["perf", "record", "-q", "-F", "2999", "-g", "-o", os.environ["PERF_MOVE"], "-p", pids],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        cpu0, tool0 = cpu_secs(cl.procs), children_cpu()
        if kind == "redis":
            secs, pauses = move_redis(ports, new_id, 8192)
        else:
            secs, pauses = move_ferrokv(ports, ports[3], 8192, args.one_at_a_time)
        # CPU the servers (and redis-cli, a child that has exited) used for the move:
        # a figure the other work on a shared machine changes less than the time.
        cpu = cpu_secs(cl.procs) - cpu0 + children_cpu() - tool0
        if perf:
            perf.send_signal(signal.SIGINT)
            perf.wait()
        if lo:
            rate_during = (lo.ops - ops_move) / (time.monotonic() - t_move)
            lo.done.set()
            lo.thread.join()
        wait("the 4 nodes to agree after the move", lambda: agreed(ports), 120)
        wait("the sources to drop the moved keys", lambda: dbsize(ports) == args.keys + (len(lo.keys) if lo else 0)
             or dbsize(ports) == args.keys + len(getattr(lo, "expect", {})), 60)
        mine = [n for n in nodes(ports[3]).values() if "myself" in n[1]][0]
        owned = sum(b - a + 1 for a, b in mine[2])
        moved_keys = Conn(ports[3]).call("DBSIZE")
        res = {"secs": secs, "cpu_secs": cpu, "load_secs": loaded, "slots": owned, "keys": moved_keys,
               "pauses": pauses}
        if lo:
            lat = sorted(lo.lat)
            res.update(ops=lo.ops, errors=lo.errors, redirects=lo.redirects, rate_before=rate_before,
                       rate_during=rate_during,
                       p50=lat[len(lat) // 2] * 1000, p99=lat[int(len(lat) * 0.99)] * 1000, max=lat[-1] * 1000)
        if os.environ.get("SHOW_PAUSES"):
            # The target's log of each task's write pause, by part.
            for root, _, files in os.walk(work):
                for f in files:
                    if f == "log":
                        for line in open(os.path.join(root, f), errors="replace"):
                            if "write pause" in line:
                                print(line.rstrip()[-160:], file=sys.stderr)
        return res
    finally:
        cl.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--value-size", type=int, default=16)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--under-load", action="store_true")
    ap.add_argument("--ferrokv", required=True)
    ap.add_argument("--redis", default="redis-server")
    ap.add_argument("--only", choices=["ferrokv", "redis"])
    ap.add_argument("--one-at-a-time", action="store_true",
                    help="ferrokv's tasks one after the other, each once the sources' deletions ended")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ferrokv-slotmig.")
    results = {"ferrokv": [], "redis": []}
    try:
        for run in range(args.runs):
            order = ["ferrokv", "redis"] if run % 2 == 0 else ["redis", "ferrokv"]
            for kind in order:
                if args.only and kind != args.only:
                    continue
                binary = args.ferrokv if kind == "ferrokv" else args.redis
                r = one(kind, binary, args, os.path.join(work, "%s-%d" % (kind, run)))
                results[kind].append(r)
                print("%s run %d: %s" % (kind, run + 1, r), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| server | keys moved | slots moved | move time (median) | CPU s (median) | keys/s | write pause ms (tasks) |")
    print("|---|---|---|---|---|---|---|")
    med, cpu = {}, {}
    for kind in ("redis", "ferrokv"):
        rs = results[kind]
        if not rs:
            continue
        secs = statistics.median(r["secs"] for r in rs)
        med[kind] = secs
        cpu[kind] = statistics.median(r["cpu_secs"] for r in rs)
        pauses = sorted(p for r in rs for p in r["pauses"])
        ptxt = "p50 %d, p99 %d, max %d (%d)" % (statistics.median(pauses), pauses[int(len(pauses) * 0.99)], max(pauses),
                                               len(pauses)) if pauses else "n/a (no pause)"
        print("| %s | %d | %d | %.2f s | %.2f | %.0f | %s |" % (kind, rs[0]["keys"], rs[0]["slots"], secs, cpu[kind],
                                                            rs[0]["keys"] / secs, ptxt))
    if len(med) == 2:
        print("\nferrokv is %.1fx faster, and uses %.1fx less CPU" % (med["redis"] / med["ferrokv"],
                                                                     cpu["redis"] / cpu["ferrokv"]))
    if args.under_load:
        print("\n| server | load ops | ops/s before / during the move | errors | redirects | p50 ms | p99 ms | max ms |")
        print("|---|---|---|---|---|---|---|---|")
        for kind in ("redis", "ferrokv"):
            for r in results[kind]:
                print("| %s | %d | %.0f / %.0f | %d | %d | %.2f | %.2f | %.1f |" % (
                    kind, r["ops"], r["rate_before"], r["rate_during"], r["errors"], r["redirects"], r["p50"], r["p99"],
                    r["max"]))


if __name__ == "__main__":
    main()
