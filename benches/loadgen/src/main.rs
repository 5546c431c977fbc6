//! `ferrokv-load`: the command line of the load generator (see the library's docs and
//! benches/README.md).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use ferrokv_load::{run, Config, DistKind, Mode, Report};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Dist {
    Uniform,
    Zipf,
    Sequential,
}

/// Pipelined SET/GET load against a Redis Cluster (routed by CLUSTER SLOTS, following
/// MOVED and ASK) or a standalone server; prints throughput and latency percentiles.
#[derive(Parser, Debug)]
#[command(name = "ferrokv-load", version)]
struct Args {
    /// Server (for a cluster: any node) host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server (for a cluster: any node) port.
    #[arg(short, long, default_value_t = 6379)]
    port: u16,
    /// Clients (each one connection per endpoint it uses).
    #[arg(short, long, default_value_t = 50)]
    clients: usize,
    /// Threads the clients are spread over.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Requests in flight per connection (a cluster client has one connection per
    /// endpoint).
    #[arg(short = 'P', long, default_value_t = 1)]
    pipeline: usize,
    /// -P bounds the requests in flight of each client over all its connections
    /// instead of each connection's.
    #[arg(long)]
    client_window: bool,
    /// Total requests [default: 100000 when no --duration].
    #[arg(short = 'n', long)]
    requests: Option<u64>,
    /// Run for this many seconds (with -n too: whichever ends first).
    #[arg(long)]
    duration: Option<f64>,
    /// Key space: key numbers 0..KEYS.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// How key numbers are drawn: uniform, zipf (rank k+1 for key k, exponent
    /// --zipf-s), sequential (each key in turn: -n KEYS --ratio 1:0 fills the space).
    #[arg(long, value_enum, default_value = "uniform")]
    distribution: Dist,
    /// Exponent s of the zipf distribution: P(key k) ∝ 1/(k+1)^s.
    #[arg(long, default_value_t = 1.1)]
    zipf_s: f64,
    /// Group keys under N hash tags (key k in group k % N: `key:{g}:k`); 0: none.
    #[arg(long, default_value_t = 0)]
    hash_tags: u64,
    /// Key name prefix.
    #[arg(long, default_value = "key:")]
    key_prefix: String,
    /// SET value size in bytes.
    #[arg(short = 'd', long, default_value_t = 3)]
    value_size: usize,
    /// SET:GET ratio, e.g. 1:0 (SET only), 0:1 (GET only), 1:10.
    #[arg(long, default_value = "1:1", value_parser = parse_ratio)]
    ratio: (u32, u32),
    /// Require cluster mode (CLUSTER SLOTS must work). Default: cluster when the
    /// server answers CLUSTER SLOTS, else standalone.
    #[arg(long, conflicts_with = "no_cluster")]
    cluster: bool,
    /// Standalone client: everything to --host:--port, MOVED/ASK count as errors.
    #[arg(long)]
    no_cluster: bool,
    /// Cluster client that starts with every slot on the seed node and learns the map
    /// from MOVED replies only.
    #[arg(long, conflicts_with = "no_cluster")]
    learn_slots: bool,
    /// Open loop: send this many requests per second in total, each timed from when it
    /// was due (clients still keep at most -P in flight). Default: closed loop, each
    /// client sends as soon as a reply frees its window.
    #[arg(long)]
    rate: Option<f64>,
    /// Seed of the key and operation draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds without any reply (requests in flight) after which the run stops and
    /// counts what is in flight as errors.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_ratio(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = s.split_once(':').ok_or("expected SETS:GETS, e.g. 1:10")?;
    let parse = |x: &str| x.trim().parse::<u32>().map_err(|e| format!("{x:?}: {e}"));
    let r = (parse(a)?, parse(b)?);
    if r == (0, 0) || r.0.checked_add(r.1).is_none() {
        return Err("the ratio must not be 0:0 or overflow".into());
    }
    Ok(r)
}

fn seconds(s: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|_| format!("--{what} must be a non-negative number of seconds"))
}

fn main() -> ExitCode {
    let a = Args::parse();
    let result = (|| -> Result<(Config, Report), String> {
        let cfg = Config {
            host: a.host.clone(),
            port: a.port,
            clients: a.clients,
            threads: a.threads,
            pipeline: a.pipeline,
            requests: a.requests.or(if a.duration.is_none() { Some(100_000) } else { None }),
            duration: a.duration.map(|d| seconds(d, "duration")).transpose()?,
            keys: a.keys,
            dist: match a.distribution {
                Dist::Uniform => DistKind::Uniform,
                Dist::Zipf => DistKind::Zipf(a.zipf_s),
                Dist::Sequential => DistKind::Sequential,
            },
            hash_tags: a.hash_tags,
            key_prefix: a.key_prefix.clone(),
            value_size: a.value_size,
            ratio: a.ratio,
            mode: if a.no_cluster {
                Mode::Standalone
            } else if a.cluster || a.learn_slots {
                Mode::Cluster
            } else {
                Mode::Auto
            },
            learn_slots: a.learn_slots,
            seed: a.seed,
            timeout: seconds(a.timeout, "timeout")?,
            rate: a.rate,
            client_window: a.client_window,
        };
        let report = run(&cfg)?;
        Ok((cfg, report))
    })();
    let (cfg, r) = match result {
        Ok(x) => x,
        Err(e) => {
            eprintln!("ferrokv-load: {e}");
            return ExitCode::FAILURE;
        }
    };
    for e in &r.stats.first_errors {
        eprintln!("ferrokv-load: error reply: {e}");
    }
    if a.json {
        println!("{}", json(&cfg, &r));
    } else {
        print!("{}", text(&cfg, &r));
    }
    ExitCode::SUCCESS
}

/// What -P bounds.
fn window(cfg: &Config) -> &'static str {
    if cfg.client_window {
        "client"
    } else {
        "connection"
    }
}

fn dist_name(cfg: &Config) -> String {
    let d = match cfg.dist {
        DistKind::Uniform => "uniform".to_string(),
        DistKind::Zipf(s) => format!("zipf s={s}"),
        DistKind::Sequential => "sequential".to_string(),
    };
    if cfg.hash_tags > 0 {
        format!("{d}, {} hash tags", cfg.hash_tags)
    } else {
        d
    }
}

fn text(cfg: &Config, r: &Report) -> String {
    let s = &r.stats;
    let mode = match cfg.rate {
        Some(rate) if r.cluster => format!("cluster, paced at {rate} requests/s"),
        Some(rate) => format!("standalone, paced at {rate} requests/s"),
        None if r.cluster => "cluster".to_string(),
        None => "standalone".to_string(),
    };
    format!(
        "ferrokv-load: {mode}, {} endpoint(s) [{}], {} clients on {} thread(s), pipeline {} per {}, SET:GET {}:{}, {} over {} keys, {} B values\n\
         requests {} in {:.3} s: {:.0} rps; errors {}\n\
         latency ms: mean {:.3} p50 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}\n\
         sets {} gets {} (misses {}); redirects: moved {} ask {} tryagain {}; connections closed {}\n\
         client CPU {:.2} s\n",
        r.endpoints.len(),
        r.endpoints.join(" "),
        cfg.clients,
        cfg.threads.clamp(1, cfg.clients),
        cfg.pipeline,
        window(cfg),
        cfg.ratio.0,
        cfg.ratio.1,
        dist_name(cfg),
        cfg.keys,
        cfg.value_size,
        s.requests,
        r.seconds,
        r.rps(),
        s.errors,
        r.latency.mean() / 1000.0,
        r.latency_ms(0.5),
        r.latency_ms(0.99),
        r.latency_ms(0.999),
        r.latency.max() as f64 / 1000.0,
        s.sets,
        s.gets,
        s.misses,
        s.moved,
        s.ask,
        s.tryagain,
        s.closed,
        r.client_cpu_seconds,
    )
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json(cfg: &Config, r: &Report) -> String {
    let s = &r.stats;
    let endpoints: Vec<String> = r.endpoints.iter().map(|e| json_str(e)).collect();
    let errors: Vec<String> = s.first_errors.iter().map(|e| json_str(e)).collect();
    format!(
        "{{\"mode\":\"{}\",\"rate\":{},\"endpoints\":[{}],\"clients\":{},\"threads\":{},\"pipeline\":{},\"window\":\"{}\",\"distribution\":{},\
         \"keys\":{},\"value_size\":{},\"ratio\":[{},{}],\"requests\":{},\"errors\":{},\"sets\":{},\"gets\":{},\
         \"misses\":{},\"moved\":{},\"ask\":{},\"tryagain\":{},\"closed\":{},\"seconds\":{:.6},\"rps\":{:.1},\
         \"latency_ms\":{{\"mean\":{:.4},\"p50\":{:.4},\"p99\":{:.4},\"p999\":{:.4},\"max\":{:.4}}},\
         \"client_cpu_s\":{:.4},\"first_errors\":[{}]}}",
        if r.cluster { "cluster" } else { "standalone" },
        cfg.rate.map_or("null".to_string(), |r| r.to_string()),
        endpoints.join(","),
        cfg.clients,
        cfg.threads.clamp(1, cfg.clients),
        cfg.pipeline,
        window(cfg),
        json_str(&dist_name(cfg)),
        cfg.keys,
        cfg.value_size,
        cfg.ratio.0,
        cfg.ratio.1,
        s.requests,
        s.errors,
        s.sets,
        s.gets,
        s.misses,
        s.moved,
        s.ask,
        s.tryagain,
        s.closed,
        r.seconds,
        r.rps(),
        r.latency.mean() / 1000.0,
        r.latency_ms(0.5),
        r.latency_ms(0.99),
        r.latency_ms(0.999),
        r.latency.max() as f64 / 1000.0,
        r.client_cpu_seconds,
        errors.join(","),
    )
}
