//! Logging through `tracing`, with Redis's level names: debug, verbose, notice,
//! warning, nothing. `loglevel` can change at run time (CONFIG SET).

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

/// Logs to `logfile` (stdout when empty).
pub fn init(level: &str, logfile: &str) -> Result<(), String> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;
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
    let sub = tracing_subscriber::registry().with(layer);
    tracing::subscriber::set_global_default(sub).map_err(|e| e.to_string())
}
