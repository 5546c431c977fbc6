"""The measuring side's shared parts for the scripts in benches/: a small RESP client
and readers of a process's memory in /proc. The scripts put this directory on
PYTHONPATH for the helper they write into their work directory."""
import os
import socket


class RespError(str):
    pass


class Conn:
    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self.read()

    def read(self):
        line = self.file.readline()
        if not line:
            raise ConnectionError("connection closed")
        kind, rest = line[:1], line[1:].rstrip(b"\r\n")
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.file.read(n + 2)[:-2].decode(errors="replace")
        if kind == b"*":
            return [self.read() for _ in range(max(int(rest), 0))]
        raise ValueError("unexpected reply %r" % line)

    def info(self, section):
        reply = self.call("INFO", section)
        if isinstance(reply, RespError) or reply is None:
            raise SystemExit("INFO %s failed: %s" % (section, reply))
        return dict(l.split(":", 1) for l in reply.splitlines() if ":" in l and not l.startswith("#"))

    def fields(self, *cmd):
        reply = self.call(*cmd)
        if not isinstance(reply, str) or isinstance(reply, RespError):
            raise RuntimeError("%s: %r" % (" ".join(cmd), reply))
        return dict(l.split(":", 1) for l in reply.splitlines() if ":" in l and not l.startswith("#"))


def status_kb(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:  # the fork child exited between listing and reading
        pass
    return 0


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(c) for c in f.read().split()]
    except OSError:  # no CONFIG_PROC_CHILDREN: scan for processes whose parent is pid
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open("/proc/%s/stat" % entry) as f:
                        stat = f.read()
                except OSError:
                    continue
                if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                    found.append(int(entry))
        return found
