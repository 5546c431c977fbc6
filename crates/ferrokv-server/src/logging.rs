//! Logging through `tracing`, with Redis's level names: debug, verbose, notice,
//! warning, nothing. `loglevel` can change at run time (CONFIG SET). With
//! `syslog-enabled yes` every line also goes to syslog (`syslog-ident`,
//! `syslog-facility`), as Redis's serverLogRaw does.

use std::sync::atomic::{AtomicU8, Ordering};

static LEVEL: AtomicU8 = AtomicU8::new(2);

fn rank(name: &str) -> u8 {
    match name {
        "debug" => 0,
        "verbose" => 1,
        "notice" => 2,
        "warning" => 3,
        _ => 4,
    }
}

pub fn set_level(name: &str) {
    LEVEL.store(rank(name), Ordering::Relaxed);
}

struct RedisLevels;

impl<S: tracing::Subscriber> tracing_subscriber::layer::Filter<S> for RedisLevels {
    fn enabled(&self, meta: &tracing::Metadata<'_>, _: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        let r = match *meta.level() {
            tracing::Level::TRACE | tracing::Level::DEBUG => 0,
            tracing::Level::INFO => 2,
            tracing::Level::WARN | tracing::Level::ERROR => 3,
        };
        r >= LEVEL.load(Ordering::Relaxed)
    }
}

/// The facilities `syslog-facility` accepts, as Redis's.
pub const FACILITIES: &[&str] =
    &["user", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"];

fn facility(name: &str) -> libc::c_int {
    match name {
        "user" => libc::LOG_USER,
        "local1" => libc::LOG_LOCAL1,
        "local2" => libc::LOG_LOCAL2,
        "local3" => libc::LOG_LOCAL3,
        "local4" => libc::LOG_LOCAL4,
        "local5" => libc::LOG_LOCAL5,
        "local6" => libc::LOG_LOCAL6,
        "local7" => libc::LOG_LOCAL7,
        _ => libc::LOG_LOCAL0,
    }
}

/// One log line to syslog at the priority of its level (debug, info, notice, warning).
struct Syslog {
    priority: libc::c_int,
    line: Vec<u8>,
}

impl std::io::Write for Syslog {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Syslog {
    fn drop(&mut self) {
        while self.line.last().is_some_and(|c| *c == b'\n') {
            self.line.pop();
        }
        self.line.retain(|c| *c != 0);
        self.line.push(0);
        // SAFETY: "%s" with a NUL-terminated buffer we own.
        unsafe { libc::syslog(self.priority, c"%s".as_ptr(), self.line.as_ptr() as *const libc::c_char) };
    }
}

struct SyslogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SyslogWriter {
    type Writer = Syslog;
    fn make_writer(&'a self) -> Syslog {
        Syslog { priority: libc::LOG_NOTICE, line: Vec::new() }
    }
    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Syslog {
        let priority = match *meta.level() {
            tracing::Level::TRACE | tracing::Level::DEBUG => libc::LOG_DEBUG,
            tracing::Level::INFO => libc::LOG_NOTICE,
            tracing::Level::WARN | tracing::Level::ERROR => libc::LOG_WARNING,
        };
        Syslog { priority, line: Vec::new() }
    }
}

/// Logs to `logfile` (stdout when empty), and to syslog when `syslog-enabled yes`.
pub fn init(cfg: &crate::config::Config) -> Result<(), String> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;
    let (level, logfile) = (cfg.loglevel.as_str(), cfg.logfile.as_str());
    set_level(level);
    let fmt = tracing_subscriber::fmt::layer().with_target(false).with_ansi(false);
    let layer: Box<dyn Layer<_> + Send + Sync> = if logfile.is_empty() {
        Box::new(fmt.with_writer(std::io::stdout).with_filter(RedisLevels))
    } else {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logfile)
            .map_err(|e| format!("Can't open the log file: {e}"))?;
        Box::new(fmt.with_writer(std::sync::Mutex::new(f)).with_filter(RedisLevels))
    };
    let syslog: Option<Box<dyn Layer<_> + Send + Sync>> = cfg.syslog_enabled.then(|| {
        // openlog keeps the pointer: the ident lives as long as the process.
        let ident: &'static std::ffi::CStr = Box::leak(
            std::ffi::CString::new(cfg.syslog_ident.replace('\0', "")).unwrap_or_default().into_boxed_c_str(),
        );
        // SAFETY: a NUL-terminated string that is never freed.
        unsafe {
            libc::openlog(
                ident.as_ptr(),
                libc::LOG_PID | libc::LOG_NDELAY | libc::LOG_NOWAIT,
                facility(&cfg.syslog_facility),
            )
        };
        let l = tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(false)
            .without_time()
            .with_level(false)
            .with_writer(SyslogWriter)
            .with_filter(RedisLevels);
        Box::new(l) as Box<dyn Layer<_> + Send + Sync>
    });
    let sub = tracing_subscriber::registry().with(layer).with(syslog);
    tracing::subscriber::set_global_default(sub).map_err(|e| e.to_string())
}
