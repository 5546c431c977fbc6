"""Direct-to-core routing (`core-ports`, issue 13): CPU per request of a cluster
client at two shards against one shard, with the client's shape held equal. Run by
benches/cores.sh, which documents the method."""
import argparse
import shutil
import sys
import tempfile

from benchlib import Conn
from cluster_load import HOT_TAG, Load, Servers, cpu_per_m, gen_cpu_per_m, med, one_node_cluster, print_rows
from slot_migration import agreed, wait

# (label, kind, nodes, shard threads per node, server cores (a list: per node), core-ports)
CONFIGS = [
    ("redis-server, 2 nodes on core 0", "redis", 2, None, "0", False),
    ("ferrokv, 2 nodes x 1 shard on core 0", "ferrokv", 2, 1, "0", False),
    ("ferrokv, 2 nodes x 1 shard on cores 0 and 1", "ferrokv", 2, 1, ["0", "1"], False),
    ("ferrokv, 1 node x 2 shards, core-ports", "ferrokv", 1, 2, "0,1", True),
    ("ferrokv, 1 node x 2 shards, no core-ports", "ferrokv", 1, 2, "0,1", False),
    ("ferrokv, 1 node x 1 shard", "ferrokv", 1, 1, "0", False),
]


def start(servers, kind, nodes, threads, cores, core_ports):
    """The configuration's server processes, owning every slot between them."""
    per_node = cores if isinstance(cores, list) else [cores] * nodes
    procs = [servers.start(kind, threads=threads, cores=c, core_ports=core_ports) for c in per_node]
    ports = [p for _, p in procs]
    if nodes == 1:
        one_node_cluster(ports[0])
    else:
        half = 16384 // nodes
        for i, p in enumerate(ports):
            last = 16383 if i == nodes - 1 else (i + 1) * half - 1
            assert Conn(p).call("CLUSTER", "ADDSLOTSRANGE", i * half, last) == "OK"
        for p in ports[1:]:
            assert Conn(p).call("CLUSTER", "MEET", "127.0.0.1", ports[0]) == "OK"
        wait("the nodes to agree", lambda: agreed(ports))
    return [pid for pid, _ in procs], ports


# (label, shard threads, server cores, shard-hop)
HOP_CONFIGS = [
    ("ferrokv 1 shard", 1, "0", "forward"),
    ("ferrokv 2 shards, shard-hop forward", 2, "0,1", "forward"),
    ("ferrokv 2 shards, shard-hop lock", 2, "0,1", "lock"),
]


def scenario_hop(a, servers, load):
    """A standalone client on two shards: forwarding vs running under the owning
    shard's lock, keys uniform and all under one hash tag (every client on one shard's
    keys: the contended case)."""
    res = {}
    dists = [("uniform", ["--keys", a.keys]), ("one hash tag", HOT_TAG)]
    for rnd in range(a.rounds):
        for label, threads, cores, hop in (HOP_CONFIGS if rnd % 2 == 0 else HOP_CONFIGS[::-1]):
            pid, port = servers.start("ferrokv", threads=threads, cores=cores, cluster=False)
            assert Conn(port).call("CONFIG", "SET", "shard-hop", hop) == "OK"
            for dist, keys in dists:
                n = keys[keys.index("--keys") + 1]
                load.run(port, "--distribution", "sequential", "--ratio", "1:0", "-n", n, "-c", 50, "-P", 16,
                         "--no-cluster", *keys)
                for pl in (1, 16):
                    r = load.measure([pid], port, "--no-cluster", "--duration", a.seconds, "-c", a.clients,
                                     "-P", pl, "--ratio", "1:1", *keys)
                    res.setdefault((label, dist, pl), []).append(r)
                    print("hop round %d %s %s P%d: %.0f rps, %.2f CPU s/1M, load %s" %
                          (rnd + 1, label, dist, pl, r["rps"], cpu_per_m(r), r["load"]), file=sys.stderr)
            servers.stop()
    rows = []
    for pl in (1, 16):
        for dist, _ in dists:
            one = med(res[(HOP_CONFIGS[0][0], dist, pl)], cpu_per_m)
            for label, *_ in HOP_CONFIGS:
                rs = res[(label, dist, pl)]
                c = med(rs, cpu_per_m)
                rows.append(["P%d" % pl, dist, label, "%.0f" % med(rs, lambda r: r["rps"]),
                             "%.3f" % med(rs, lambda r: r["latency_ms"]["p99"]), "%.2f" % c, "%.2fx" % (c / one),
                             ", ".join(r["load"].split()[0] for r in rs)])
    print_rows("Standalone client (ferrokv-load --no-cluster) on core 1, -c %d, 1:1 SET:GET, %d keys uniform or "
               "100000 keys under one hash tag, %g s per run, medians of %d rounds" %
               (a.clients, a.keys, a.seconds, a.rounds),
               ["pipeline", "keys", "server", "rps", "p99 ms", "server CPU s/1M", "vs 1 shard",
                "load avg (1 min) per run"], rows)


def scenario_direct(a, servers, load):
    """A cluster client on two shards with core-ports against one shard, the client's
    shape (endpoints) and the cores held equal in the reference rows."""
    res = {}
    for rnd in range(a.rounds):
        for label, kind, nodes, threads, cores, core_ports in (CONFIGS if rnd % 2 == 0 else CONFIGS[::-1]):
            pids, ports = start(servers, kind, nodes, threads, cores, core_ports)
            load.fill(ports[0], a.keys, 3, "--cluster")
            for pl in (1, 16):
                r = load.measure(pids, ports[0], "--cluster", "--duration", a.seconds, "-c", a.clients,
                                 "-P", pl, "--keys", a.keys, "--ratio", "1:1")
                if kind == "ferrokv":
                    info = Conn(ports[0]).call("INFO", "shards")
                    r["forwarded"] = sum(int(f.split("=")[1]) for f in str(info).replace("\r\n", ",").split(",")
                                         if f.startswith("forwarded="))
                res.setdefault((label, pl), []).append(r)
                print("round %d %s P%d: %.0f rps, %.2f CPU s/1M, endpoints %d, forwarded so far %s, load %s" %
                      (rnd + 1, label, pl, r["rps"], cpu_per_m(r), len(r["endpoints"]), r.get("forwarded", "-"),
                       r["load"]), file=sys.stderr)
            servers.stop()
    rows = []
    for pl in (1, 16):
        same_shape = med(res[(CONFIGS[1][0], pl)], cpu_per_m)
        one = med(res[(CONFIGS[-1][0], pl)], cpu_per_m)
        for label, *_ in CONFIGS:
            rs = res[(label, pl)]
            c = med(rs, cpu_per_m)
            rows.append(["P%d" % pl, label, str(len(rs[0]["endpoints"])), "%.0f" % med(rs, lambda r: r["rps"]),
                         "%.2f" % c, "%.2fx" % (c / same_shape), "%.2fx" % (c / one),
                         "%.2f" % med(rs, gen_cpu_per_m), ", ".join(r["load"].split()[0] for r in rs)])
    print_rows("Cluster client (ferrokv-load --cluster) on core 1, -c %d, 1:1 SET:GET uniform over %d keys, "
               "%g s per run, medians of %d rounds" % (a.clients, a.keys, a.seconds, a.rounds),
               ["pipeline", "servers", "endpoints", "rps", "server CPU s/1M", "vs 2 x 1 shard", "vs 1 x 1 shard",
                "ferrokv-load CPU s/1M", "load avg (1 min) per run"], rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ferrokv", required=True)
    ap.add_argument("--redis", default="redis-server")
    ap.add_argument("--load", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--scenario", action="append", choices=["direct", "hop"])
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ferrokv-cores.")
    servers = Servers(work, {"ferrokv": a.ferrokv, "redis": a.redis})
    load = Load(a.load, "1")
    try:
        for sc in a.scenario or ["direct", "hop"]:
            (scenario_direct if sc == "direct" else scenario_hop)(a, servers, load)
    finally:
        servers.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
