# Sourced by benches scripts that start cluster-mode servers: `free_port` prints a port
# in 20000..50000 that is free on 127.0.0.1 together with its cluster bus port (+10000;
# an ephemeral port's bus port can be past 65535).
free_port() {
    python3 - <<'PY'
import random, socket
while True:
    p = random.randint(20000, 50000)
    try:
        for q in (p, p + 10000):
            s = socket.socket()
            s.bind(("127.0.0.1", q))
            s.close()
        print(p)
        break
    except OSError:
        pass
PY
}
