//! The ferrokv node: configuration, shards, the request path and the commands that
//! need connection or node state. See docs/architecture.md for the whole picture.

// The crate is grouped by subsystem; module paths stay flat (`crate::dispatch`, ...).
//
// Network and connections: sockets, the shard's event loop, a connection's state.
#[path = "net/busy.rs"]
pub mod busy;
#[path = "net/client_mem.rs"]
pub mod client_mem;
#[path = "net/conn.rs"]
pub mod conn;
#[path = "net/net.rs"]
pub mod net;
#[path = "net/reply_layout.rs"]
pub mod reply_layout;
#[path = "net/shard.rs"]
pub mod shard;
// Execution and routing: the sans-IO shard core, cross-shard messages, blocked clients.
#[path = "exec/balance.rs"]
pub mod balance;
#[path = "exec/blocking.rs"]
pub mod blocking;
#[path = "exec/defrag.rs"]
pub mod defrag;
#[path = "exec/dispatch.rs"]
pub mod dispatch;
#[path = "exec/inbound.rs"]
pub mod inbound;
#[path = "exec/maxmemory.rs"]
pub mod maxmemory;
#[path = "exec/msg.rs"]
pub mod msg;
#[path = "exec/pace.rs"]
pub mod pace;
// Cluster: redirects and CLUSTER commands on the request path, the bus's IO, MIGRATE.
#[path = "cluster/bus.rs"]
pub mod bus;
#[path = "cluster/cluster.rs"]
pub mod cluster;
#[path = "cluster/migrate.rs"]
pub mod migrate;
#[path = "cluster/slot_migration.rs"]
pub mod slot_migration;
#[path = "cluster/slot_stats.rs"]
pub mod slot_stats;
// Admin: connection/server/transaction commands, INFO, configuration.
#[path = "admin/cmds.rs"]
pub mod cmds;
#[path = "admin/config.rs"]
pub mod config;
#[path = "admin/debug.rs"]
pub mod debug;
#[path = "admin/info.rs"]
pub mod info;
#[path = "admin/memory_cmds.rs"]
pub mod memory_cmds;
#[path = "admin/shutdown.rs"]
pub mod shutdown;
// Persistence: dump.rdb (and, to come, the AOF).
#[path = "persist/aof.rs"]
pub mod aof;
#[path = "persist/rdb.rs"]
pub mod persist;
// Pub/sub and keyspace notifications.
#[path = "pubsub/pubsub.rs"]
pub mod pubsub;
#[path = "pubsub/tracking.rs"]
pub mod tracking;
// Replication: the master's side (PSYNC, backlog, replicas, WAIT) and the replica's.
pub mod repl;
// Node-wide state and process plumbing.
pub mod logging;
pub mod memory;
pub mod node;
pub mod process;

use node::Node;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;

/// Addresses to listen on, from `bind` (Redis's `*` and `-` prefix for optional).
fn bind_addrs(cfg: &config::Config) -> Result<Vec<(SocketAddr, bool)>, String> {
    let mut out = Vec::new();
    for b in &cfg.bind {
        let (optional, host) = match b.strip_prefix('-') {
            Some(h) => (true, h),
            None => (false, b.as_str()),
        };
        let ip: IpAddr = match host {
            "*" => IpAddr::from([0u8, 0, 0, 0]),
            "::*" => IpAddr::from([0u16; 8]),
            "localhost" => IpAddr::from([127u8, 0, 0, 1]),
            h => h.parse().map_err(|_| format!("Invalid bind address '{b}'"))?,
        };
        out.push((SocketAddr::new(ip, cfg.port), optional));
    }
    Ok(out)
}

/// A start-up failure: on stderr, and in the log (the only place a daemon's words go).
macro_rules! fail {
    ($($arg:tt)*) => {{
        let msg = format!($($arg)*);
        eprintln!("{msg}");
        tracing::error!("{msg}");
        return 1;
    }};
}

/// Starts the node and blocks until it shuts down. Returns the process exit code.
pub fn run(args: Vec<String>) -> i32 {
    // Every problem of the configuration at once, one line each.
    let mut cfg = match config::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    if let Err(e) = logging::init(&cfg) {
        eprintln!("{e}");
        return 1;
    }
    // As Redis: a supervised server stays in the foreground whatever `daemonize` says.
    let supervisor = process::supervisor(&cfg);
    if cfg.daemonize && supervisor == process::Supervisor::None {
        if cfg.pidfile.is_empty() {
            cfg.pidfile = "/var/run/redis.pid".into();
        }
        // No other thread exists yet: the fork keeps the whole process.
        if let Err(e) = process::daemonize() {
            fail!("{e}");
        }
    }
    let inert = config::without_effect(&cfg);
    if !inert.is_empty() {
        tracing::warn!(
            "WARNING: these directives are accepted but have no effect in ferrokv yet (CONFIG GET shows their values): {}",
            inert.join(", ")
        );
    }
    if let Err(e) = std::fs::create_dir_all(&cfg.dir).and_then(|_| std::env::set_current_dir(&cfg.dir)) {
        fail!("Can't chdir to '{}': {e}", cfg.dir);
    }
    // From here on `dir` is the working directory, absolute (CONFIG GET dir answers
    // it so, as Redis's getcwd does; paths built from it must not resolve it twice).
    if let Ok(cwd) = std::env::current_dir() {
        cfg.dir = cwd.display().to_string();
    }
    process::disable_thp(&cfg);
    process::check_backlog(&cfg);
    let _ = process::set_oom_score_adj(&cfg, !cfg.replicaof.is_empty());
    let cpus = ferrokv_runtime::cores::allowed_cpus();
    let threads = if cfg.server_threads == 0 { cpus.len().max(1) } else { cfg.server_threads };
    // Rings and buffer rings are charged to RLIMIT_MEMLOCK on older kernels.
    let want = 8 * 1024 * 1024 * threads as u64;
    if let Err(e) = ferrokv_runtime::cores::raise_memlock(want) {
        tracing::warn!("cannot raise RLIMIT_MEMLOCK to {want} bytes: {e}");
    }
    let addrs = match bind_addrs(&cfg) {
        Ok(a) => a,
        Err(e) => fail!("{e}"),
    };
    // One port, one server: the shards of this process share it (SO_REUSEPORT), another
    // process may not join them, as a second redis-server on a port fails to start.
    for (addr, optional) in &addrs {
        // A server killed a moment ago may still show its listeners while the kernel
        // tears its io_uring down: only one that stays there is another server.
        let mut taken = net::listening_elsewhere(*addr);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while taken && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
            taken = net::listening_elsewhere(*addr);
        }
        if taken && !*optional {
            fail!(
                "Warning: Could not create server TCP listening socket {addr}: bind: Address already in use\nFailed listening on port {} (TCP), aborting.",
                addr.port()
            );
        }
    }
    // Every shard gets its own listening socket per address (SO_REUSEPORT).
    let backlog = cfg.tcp_backlog.min(i32::MAX as u64) as i32;
    let mut listeners: Vec<Vec<std::os::fd::OwnedFd>> = (0..threads).map(|_| Vec::new()).collect();
    for (addr, optional) in &addrs {
        for l in listeners.iter_mut() {
            match net::listen_reuseport(*addr, backlog) {
                Ok(fd) => l.push(fd),
                Err(e) if *optional => {
                    tracing::warn!("Could not create server TCP listening socket {addr}: {e}");
                    break;
                }
                Err(e) => fail!("Could not create server TCP listening socket {addr}: {e}"),
            }
        }
    }
    // `unixsocket`: one listening socket, which every shard accepts on.
    if !cfg.unixsocket.is_empty() {
        match net::listen_unix(&cfg.unixsocket, cfg.unixsocketperm, backlog) {
            Ok(fd) => {
                for l in listeners.iter_mut() {
                    match fd.try_clone() {
                        Ok(d) => l.push(d),
                        Err(e) => fail!("Failed opening Unix socket: {e}"),
                    }
                }
            }
            Err(e) => fail!("Failed opening Unix socket: {e}"),
        }
    }
    // `core-ports`: each shard also listens on a port of its own (on every `bind`
    // address), after the shared listeners (the Unix socket's included); cluster mode
    // advertises them per slot.
    let (core_ports, announced_core_ports) = match core_ports(&cfg, threads) {
        Ok(p) => p,
        Err(e) => fail!("{e}"),
    };
    let mut core_from = vec![0; threads];
    for (i, l) in listeners.iter_mut().enumerate() {
        core_from[i] = l.len();
        let Some(&port) = core_ports.get(i) else { continue };
        for (addr, optional) in &addrs {
            let addr = SocketAddr::new(addr.ip(), port);
            // No SO_REUSEPORT here, so a taken port fails the bind; a server killed a
            // moment ago may hold it while the kernel tears its io_uring down.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            let mut bound = net::listen_single(addr, backlog);
            while matches!(&bound, Err(e) if e.kind() == std::io::ErrorKind::AddrInUse)
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
                bound = net::listen_single(addr, backlog);
            }
            match bound {
                Ok(fd) => l.push(fd),
                Err(e) if *optional => tracing::warn!("Could not create the listening socket of shard {i} {addr}: {e}"),
                Err(e) => fail!("Could not create the listening socket of shard {i} (core-ports) {addr}: {e}"),
            }
        }
    }
    let cluster = match cluster_state(&cfg, threads, announced_core_ports) {
        Ok(c) => c,
        Err(e) => fail!("{e}"),
    };
    process::set_title(&cfg);
    process::show_logo(&cfg, threads);
    // Calibrated here, not on a shard's first INFO commandstats (it sleeps 20 ms).
    node::cycles_per_us();
    block_signals();
    let port = cfg.port;
    let limits = ferrokv_commands::families::keys::rdb_limits(&cfg.exec_config());
    let node = Node::new(cfg, threads, cluster);
    // Keys of slots another node serves are not ours to load (an unassigned slot's
    // keys stay: the slot may be assigned here next, as Redis claims such slots).
    let view = node.cluster.as_ref().map(|c| c.view());
    let owns = |slot: u16| view.as_ref().is_none_or(|v| v.is_mine(slot) || v.slot_owner(slot).is_none());
    if supervisor == process::Supervisor::Systemd {
        process::systemd_notify("STATUS=Loading the dataset...\n");
    }
    // Before loading, as Redis takes `used_memory_startup`.
    memory::mark_startup();
    let loaded =
        if node.config().appendonly { aof::start(node, &limits, &owns) } else { persist::load(node, &limits, &owns) };
    if let Err(e) = loaded {
        fail!("{e}");
    }
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let mut handles = Vec::new();
    for (id, ls) in listeners.into_iter().enumerate() {
        let cpu = cpus.get(id % cpus.len().max(1)).copied();
        let core_from = core_from[id];
        let tx = ready_tx.clone();
        let h = std::thread::Builder::new().name(format!("shard-{id}")).spawn(move || {
            memory::register_thread();
            if let Some(cpu) = cpu {
                if let Err(e) = ferrokv_runtime::cores::pin_current_thread(cpu) {
                    tracing::warn!("shard {id}: cannot pin to CPU {cpu}: {e}");
                }
            }
            match shard::Shard::new(node, id, ls, core_from) {
                Ok(s) => {
                    let _ = tx.send(Ok(()));
                    // A panicking shard would leave its peers waiting on its locks and
                    // mailbox forever: stop the node instead (see docs/architecture.md).
                    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.run())).is_err() {
                        tracing::error!("shard {id} panicked; aborting");
                        eprintln!("=== ferrokv BUG: shard {id} panicked; aborting ===");
                        std::process::abort();
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    node.request_shutdown();
                }
            }
        });
        match h {
            Ok(h) => handles.push(h),
            Err(e) => fail!("cannot start shard thread: {e}"),
        }
    }
    drop(ready_tx);
    for _ in 0..threads {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("{e}");
                tracing::error!("{e}");
                node.request_shutdown();
                join(node, handles);
                return 1;
            }
            Err(_) => break,
        }
    }
    // As Redis: the pid goes to `pidfile` once the server listens, and the file goes
    // away at a clean exit. (`dir` is the working directory by now: a relative path
    // resolves against it, as Redis's does after its chdir.) Written aside and renamed
    // into place, so a reader never sees the file empty.
    let pidfile = node.config().pidfile.clone();
    if !pidfile.is_empty() {
        let temp = format!("{pidfile}.{}.tmp", std::process::id());
        let written =
            std::fs::write(&temp, format!("{}\n", std::process::id())).and_then(|()| std::fs::rename(&temp, &pidfile));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            tracing::warn!("Failed to write PID file: {e}");
        }
    }
    tracing::info!(
        "ferrokv {} ready to accept connections on port {port} ({threads} shard threads)",
        env!("CARGO_PKG_VERSION")
    );
    let replicaof = node.config().replicaof.clone();
    if let Some((host, port)) = replicaof.split_once(' ') {
        if let Err(e) = repl::replica::replicaof(node, host.as_bytes(), port.as_bytes(), "config") {
            tracing::warn!("replicaof {replicaof}: {e}");
        }
    }
    process::notify_ready(supervisor, !replicaof.is_empty());
    wait_for_shutdown(node);
    if supervisor == process::Supervisor::Systemd {
        process::systemd_notify("STOPPING=1\n");
    }
    join(node, handles);
    aof::stop(node);
    if !pidfile.is_empty() {
        let _ = std::fs::remove_file(&pidfile);
    }
    let unixsocket = node.config().unixsocket.clone();
    if !unixsocket.is_empty() {
        let _ = std::fs::remove_file(&unixsocket);
    }
    tracing::info!("ferrokv is now ready to exit, bye bye...");
    0
}

/// The shards' own ports (`core-ports`) and what cluster mode announces for them
/// (`cluster-announce-core-ports`, else the same), checked against the other ports.
fn core_ports(cfg: &config::Config, threads: usize) -> Result<(Vec<u16>, Vec<u16>), String> {
    let ports = config::core_port_list(&cfg.core_ports, threads).map_err(|e| format!("core-ports: {e}"))?;
    let bus = if cfg.cluster_port != 0 { cfg.cluster_port as u16 } else { cfg.port.wrapping_add(10000) };
    for &p in &ports {
        if p == cfg.port || (cfg.cluster_enabled && p == bus) {
            return Err(format!("core-ports: port {p} is also the node's client or cluster bus port"));
        }
    }
    if cfg.cluster_announce_core_ports.is_empty() {
        return Ok((ports.clone(), ports));
    }
    let announced = config::core_port_list(&cfg.cluster_announce_core_ports, threads)
        .map_err(|e| format!("cluster-announce-core-ports: {e}"))?;
    if announced.len() != ports.len() {
        return Err("cluster-announce-core-ports needs core-ports for as many shards".into());
    }
    Ok((ports, announced))
}

/// The cluster state machine, restored from `cluster-config-file` when it exists (a
/// restarted node keeps its ID, epochs, slots and peers), else new.
fn cluster_state(
    cfg: &config::Config,
    threads: usize,
    core_ports: Vec<u16>,
) -> Result<Option<ferrokv_cluster::ClusterState>, String> {
    if !cfg.cluster_enabled {
        return Ok(None);
    }
    let announced_port = if cfg.cluster_announce_port != 0 { cfg.cluster_announce_port as u16 } else { cfg.port };
    // The seed generates this node's ID: from the kernel's random source, so that nodes
    // started in the same microsecond cannot share an ID.
    let seed = node::os_random_u64();
    let mut cc = ferrokv_cluster::ClusterConfig::new(announced_port, seed);
    cc.node_timeout_ms = cfg.cluster_node_timeout;
    cc.require_full_coverage = cfg.cluster_require_full_coverage;
    cc.allow_replica_migration = cfg.cluster_allow_replica_migration;
    cc.migration_barrier = cfg.cluster_migration_barrier as usize;
    cc.replica_no_failover = cfg.cluster_replica_no_failover;
    cc.replica_validity_factor = cfg.cluster_replica_validity_factor;
    cc.repl_ping_replica_period_ms = cfg.repl_ping_replica_period.saturating_mul(1000);
    cc.announce_ip = (!cfg.cluster_announce_ip.is_empty()).then(|| cfg.cluster_announce_ip.clone());
    cc.cores = ferrokv_cluster::CoreEndpoints::new(core_ports, |s| node::initial_shard_of_slot(s, threads));
    cc.cport = if cfg.cluster_announce_bus_port != 0 {
        cfg.cluster_announce_bus_port as u16
    } else if cfg.cluster_port != 0 {
        cfg.cluster_port as u16
    } else {
        cfg.port.wrapping_add(10000)
    };
    let now = node::unix_ms();
    match std::fs::read_to_string(&cfg.cluster_config_file) {
        Ok(text) if !text.trim().is_empty() => ferrokv_cluster::ClusterState::load(cc, &text, now)
            .map(Some)
            .map_err(|e| format!("Unrecoverable error: {e} ({})", cfg.cluster_config_file)),
        Ok(_) => Ok(Some(ferrokv_cluster::ClusterState::new(cc, now))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let st = ferrokv_cluster::ClusterState::new(cc, now);
            std::fs::write(&cfg.cluster_config_file, st.nodes_conf())
                .map_err(|e| format!("Can't write the cluster config file '{}': {e}", cfg.cluster_config_file))?;
            tracing::info!("No cluster configuration found, I'm {}", st.my_id().as_str());
            Ok(Some(st))
        }
        Err(e) => Err(format!("Can't read the cluster config file '{}': {e}", cfg.cluster_config_file)),
    }
}

/// Waits for the shard threads; a SHUTDOWN NOSAVE does not wait for one whose script
/// is busy (it may spin forever): the process exits under it, as redis-server exits
/// from its script hook.
fn join(node: &Node, handles: Vec<std::thread::JoinHandle<()>>) {
    for h in handles {
        while !h.is_finished() {
            if shutdown::nosave(node) && ferrokv_commands::scripting::running::busy_threads().contains(&h.thread().id())
            {
                tracing::warn!("A busy script is still running: exiting under it (SHUTDOWN NOSAVE).");
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        if h.is_finished() {
            let _ = h.join();
        }
    }
}

const SIGNALS: [libc::c_int; 2] = [libc::SIGTERM, libc::SIGINT];

/// Blocks SIGTERM/SIGINT in every thread (threads inherit the mask); the main thread
/// takes them with sigtimedwait. SIGPIPE is ignored: sends report EPIPE instead.
fn block_signals() {
    // SAFETY: plain signal mask manipulation on a local set.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn wait_for_shutdown(node: &Node) {
    // SAFETY: as above; sigtimedwait reads the set and fills no info (null).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        let ts = libc::timespec { tv_sec: 0, tv_nsec: 100_000_000 };
        while !node.shutdown.load(Ordering::SeqCst) {
            let sig = libc::sigtimedwait(&set, std::ptr::null_mut(), &ts);
            if sig > 0 {
                // A second SIGINT while one is pending: the user wants out now, without
                // saving or waiting for replicas (Redis's sigShutdownHandler).
                if sig == libc::SIGINT && node.shutdown_state.requested() {
                    tracing::warn!("You insist... exiting now.");
                    std::process::exit(1);
                }
                tracing::warn!(
                    "Received {} scheduling shutdown...",
                    if sig == libc::SIGINT { "SIGINT" } else { "SIGTERM" }
                );
                // Shard 0's cron runs the shutdown (crate::shutdown), as Redis's
                // serverCron acts on `shutdown_asap`.
                node.shutdown_state.signal.store(sig, Ordering::Release);
            }
        }
    }
}
