//! Process plumbing at start-up, as redis-server does it: `daemonize`, `supervised`,
//! `set-proc-title`/`proc-title-template`, `oom-score-adj`, `disable-thp`, the logo.
//!
//! Everything here runs on the main thread; `daemonize` before any other thread exists
//! (a fork copies only the calling thread).

use crate::config::Config;
use std::sync::Mutex;

/// Redis's `daemonize()`: one fork (the parent exits 0 at once), `setsid`, standard
/// input and outputs to /dev/null. Must be called while the process has one thread.
pub fn daemonize() -> Result<(), String> {
    // SAFETY: called before any other thread is started (see `crate::run`); the child
    // continues as the only thread, the parent exits without running destructors.
    unsafe {
        match libc::fork() {
            -1 => return Err(format!("fork failed: {}", std::io::Error::last_os_error())),
            0 => {}
            _ => libc::_exit(0),
        }
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR, 0);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            libc::dup2(null, 2);
            if null > 2 {
                libc::close(null);
            }
        }
    }
    Ok(())
}

/// How the process is supervised, resolved from `supervised` and the environment as
/// Redis's `redisIsSupervised` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Supervisor {
    None,
    Systemd,
    Upstart,
}

pub fn supervisor(cfg: &Config) -> Supervisor {
    let systemd = std::env::var_os("NOTIFY_SOCKET").is_some();
    let upstart = std::env::var_os("UPSTART_JOB").is_some();
    match cfg.supervised.as_str() {
        "systemd" if systemd => Supervisor::Systemd,
        "systemd" => {
            tracing::warn!("systemd supervision requested or auto-detected, but NOTIFY_SOCKET not found!");
            Supervisor::None
        }
        "upstart" if upstart => Supervisor::Upstart,
        "upstart" => {
            tracing::warn!("upstart supervision requested, but UPSTART_JOB not found!");
            Supervisor::None
        }
        "auto" if systemd => Supervisor::Systemd,
        "auto" if upstart => Supervisor::Upstart,
        _ => Supervisor::None,
    }
}

/// Tells the supervisor the server is ready: systemd's `READY=1` (with a STATUS line
/// first, as Redis sends), or upstart's SIGSTOP.
pub fn notify_ready(sup: Supervisor, replica: bool) {
    match sup {
        Supervisor::None => {}
        Supervisor::Systemd => {
            tracing::info!("Supervised by systemd. Please make sure you set appropriate values for TimeoutStartSec and TimeoutStopSec in your service unit.");
            let status = if replica {
                "STATUS=Ready to accept connections in read-only mode. Waiting for MASTER <-> REPLICA sync\n"
            } else {
                "STATUS=Ready to accept connections\n"
            };
            systemd_notify(status);
            systemd_notify("READY=1\n");
        }
        Supervisor::Upstart => {
            tracing::info!("Supervised by upstart, will stop to signal readiness.");
            // SAFETY: raising a signal on ourselves; upstart resumes us with SIGCONT.
            unsafe { libc::raise(libc::SIGSTOP) };
            std::env::remove_var("UPSTART_JOB");
        }
    }
}

/// One datagram to `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket).
pub fn systemd_notify(msg: &str) {
    use std::os::unix::net::UnixDatagram;
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let Ok(sock) = UnixDatagram::unbound() else { return };
    let path = path.to_string_lossy().to_string();
    let sent = match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .and_then(|a| sock.send_to_addr(msg.as_bytes(), &a))
        }
        None => sock.send_to(msg.as_bytes(), &path),
    };
    if let Err(e) = sent {
        tracing::warn!("Can't send notification to systemd: {e}");
    }
}

/// Expands `proc-title-template` as Redis's `expandProcTitleTemplate`: `{title}`,
/// `{listen-addr}`, `{server-mode}`, `{port}`, `{tls-port}`, `{unixsocket}`,
/// `{config-file}`; `{{` and `}}` are literal braces; the result is trimmed of spaces.
/// An unknown variable or an unbalanced brace is an error.
pub fn expand_title(template: &str, cfg: &Config) -> Result<String, String> {
    const BAD: &str = "template format is invalid or contains unknown variables";
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let c = rest.as_bytes()[i];
        rest = &rest[i + 1..];
        if rest.as_bytes().first() == Some(&c) {
            out.push(c as char);
            rest = &rest[1..];
            continue;
        }
        if c == b'}' {
            return Err(BAD.into());
        }
        let end = rest.find('}').ok_or(BAD)?;
        let var = &rest[..end];
        rest = &rest[end + 1..];
        match var {
            "title" => out.push_str(&title_name()),
            "listen-addr" => {
                if cfg.port != 0 {
                    out.push_str(&format!("{}:{}", cfg.bind.first().map_or("*", |b| b.as_str()), cfg.port));
                } else {
                    out.push_str(&format!("unixsocket:{}", cfg.unixsocket));
                }
            }
            "server-mode" => out.push_str(if cfg.cluster_enabled { "[cluster]" } else { "" }),
            "port" => out.push_str(&cfg.port.to_string()),
            "tls-port" => out.push('0'),
            "unixsocket" => out.push_str(&cfg.unixsocket),
            "config-file" => out.push_str(&cfg.config_file),
            _ => return Err(BAD.into()),
        }
    }
    out.push_str(rest);
    Ok(out.trim_matches(' ').to_string())
}

/// The process's name as executed (argv[0]), taken once at start-up: the title
/// overwrites the memory argv lives in.
static ARGV0: Mutex<String> = Mutex::new(String::new());

pub fn remember_argv0(argv0: &str) {
    *ARGV0.lock().unwrap_or_else(|p| p.into_inner()) = argv0.to_string();
}

fn title_name() -> String {
    ARGV0.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Sets the title `ps` shows (`/proc/self/cmdline`) when `set-proc-title yes`, by
/// writing it over the process's argument strings, as Redis's setproctitle does. The
/// title is cut to the room the original arguments took.
pub fn set_title(cfg: &Config) {
    if !cfg.set_proc_title {
        return;
    }
    let title = match expand_title(&cfg.proc_title_template, cfg) {
        Ok(t) => t,
        Err(e) => return tracing::warn!("proc-title-template: {e}"),
    };
    let Some((start, end)) = arg_area() else { return };
    if end <= start + 1 {
        return;
    }
    let room = end - start;
    let bytes = title.as_bytes();
    let n = bytes.len().min(room - 1);
    // SAFETY: [start, end) is this process's argument area as the kernel reports it
    // (/proc/self/stat arg_start/arg_end), mapped writable on the main stack. Nothing
    // reads argv after `main` took its copy (std::env::args is read only there). The last
    // byte is left non-zero so the kernel reads the title up to its first NUL (its
    // setproctitle rule) instead of the whole area.
    unsafe {
        let p = start as *mut u8;
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, n);
        std::ptr::write_bytes(p.add(n), 0, room - n);
        if n + 1 < room {
            *p.add(room - 1) = b' ';
        }
    }
}

/// `arg_start` and `arg_end` of /proc/self/stat (fields 48 and 49).
fn arg_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3.
    Some((fields.get(45)?.parse().ok()?, fields.get(46)?.parse().ok()?))
}

/// The oom_score_adj the process had before ferrokv changed it (Redis's
/// `oom_score_adj_base`); `None` while ferrokv has not changed it.
static OOM_BASE: Mutex<Option<i64>> = Mutex::new(None);

/// Redis's `setOOMScoreAdj`: with `oom-score-adj yes|relative` the score is the base plus
/// the value for this role (`oom-score-adj-values`: master, replica, background child),
/// with `absolute` the value itself, clamped to -1000..1000; back to the base with `no`.
pub fn set_oom_score_adj(cfg: &Config, replica: bool) -> Result<(), String> {
    let mut base = OOM_BASE.lock().unwrap_or_else(|p| p.into_inner());
    let path = "/proc/self/oom_score_adj";
    let val = if cfg.oom_score_adj != "no" {
        if base.is_none() {
            let cur = std::fs::read_to_string(path).map_err(|e| format!("Unable to read oom_score_adj: {e}"))?;
            *base = Some(cur.trim().parse().unwrap_or(0));
        }
        let values: Vec<i64> = cfg.oom_score_adj_values.split_whitespace().filter_map(|v| v.parse().ok()).collect();
        let mut v = values.get(replica as usize).copied().unwrap_or(0);
        if cfg.oom_score_adj != "absolute" {
            v += base.unwrap_or(0);
        }
        v.clamp(-1000, 1000)
    } else if let Some(b) = base.take() {
        b
    } else {
        return Ok(());
    };
    std::fs::write(path, format!("{val}\n")).map_err(|e| {
        let msg = format!("Unable to write oom_score_adj: {e}");
        tracing::warn!("{msg}");
        msg
    })
}

/// `disable-thp yes`: when transparent huge pages are `always`, turn them off for this
/// process (PR_SET_THP_DISABLE), as Redis does; else warn as Redis warns.
pub fn disable_thp(cfg: &Config) {
    let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    if !mode.contains("[always]") {
        return;
    }
    // SAFETY: a process-wide flag with no pointers.
    if cfg.disable_thp && unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } == 0 {
        return;
    }
    tracing::warn!("WARNING You have Transparent Huge Pages (THP) support enabled in your kernel. This will create latency and memory usage issues with ferrokv. To fix this issue run the command 'echo madvise > /sys/kernel/mm/transparent_hugepage/enabled' as root, and add it to your /etc/rc.local in order to retain the setting after a reboot. Redis and ferrokv must be restarted after THP is disabled (set to 'madvise' or 'never').");
}

/// `tcp-backlog` larger than the kernel's `somaxconn` is cut by the kernel: warn as Redis.
pub fn check_backlog(cfg: &Config) {
    let Ok(s) = std::fs::read_to_string("/proc/sys/net/core/somaxconn") else { return };
    if let Ok(max) = s.trim().parse::<u64>() {
        if max < cfg.tcp_backlog {
            tracing::warn!("WARNING: The TCP backlog setting of {} cannot be enforced because /proc/sys/net/core/somaxconn is set to the lower value of {max}.", cfg.tcp_backlog);
        }
    }
}

/// The start-up banner: a logo when `always-show-logo yes` or logging to a terminal,
/// else one line, as Redis.
pub fn show_logo(cfg: &Config, threads: usize) {
    let mode = if cfg.cluster_enabled { "cluster" } else { "standalone" };
    // SAFETY: isatty on a standard descriptor.
    let tty = cfg.logfile.is_empty() && unsafe { libc::isatty(1) } == 1;
    if cfg.always_show_logo || tty {
        let v = env!("CARGO_PKG_VERSION");
        let pid = std::process::id();
        let port = cfg.port;
        tracing::info!(
            "\n\n   ┌─────────────────────────────┐\n   │  ferrokv {v:<19}│   Redis {} compatible\n   │  ░▒▓ thread per core ▓▒░    │   Running in {mode} mode\n   └─────────────────────────────┘   Port: {port}, PID: {pid}, {threads} shards\n",
            crate::cmds::REDIS_VERSION
        );
    } else {
        tracing::info!("Running mode={mode}, port={}.", cfg.port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_template() {
        remember_argv0("/usr/bin/ferrokv-server");
        let cfg = Config { port: 7000, bind: vec!["127.0.0.1".into(), "-::1".into()], ..Config::default() };
        assert_eq!(
            expand_title("{title} {listen-addr} {server-mode}", &cfg).unwrap(),
            "/usr/bin/ferrokv-server 127.0.0.1:7000"
        );
        let cluster = Config { cluster_enabled: true, ..cfg.clone() };
        assert_eq!(expand_title("{server-mode} {port}", &cluster).unwrap(), "[cluster] 7000");
        assert_eq!(expand_title("{{x}} {port}", &cfg).unwrap(), "{x} 7000");
        assert!(expand_title("{nope}", &cfg).is_err());
        assert!(expand_title("{title", &cfg).is_err());
        assert!(expand_title("title}", &cfg).is_err());
        let unix = Config { port: 0, unixsocket: "/tmp/s".into(), ..cfg };
        assert_eq!(expand_title("{listen-addr}", &unix).unwrap(), "unixsocket:/tmp/s");
    }
}
