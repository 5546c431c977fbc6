//! `ferrokv-server [config-file] [--option value ...]`, as redis-server takes them.

#[global_allocator]
static ALLOC: ferrokv_server::memory::Counting = ferrokv_server::memory::Counting;

/// redis-server's usage text, with this binary's name.
const USAGE: &str = "Usage: ./ferrokv-server [/path/to/redis.conf] [options] [-]
       ./ferrokv-server - (read config from stdin)
       ./ferrokv-server -v or --version
       ./ferrokv-server -h or --help
       ./ferrokv-server --test-memory <megabytes>
       ./ferrokv-server --check-system

Examples:
       ./ferrokv-server (run the server with default conf)
       echo 'maxmemory 128mb' | ./ferrokv-server -
       ./ferrokv-server /etc/redis/6379.conf
       ./ferrokv-server --port 7777
       ./ferrokv-server --port 7777 --replicaof 127.0.0.1 8888
       ./ferrokv-server /etc/myredis.conf --loglevel verbose -
       ./ferrokv-server /etc/myredis.conf --loglevel verbose
";

fn main() {
    ferrokv_server::memory::register_thread();
    let mut all = std::env::args();
    ferrokv_server::process::remember_argv0(&all.next().unwrap_or_default());
    let args: Vec<String> = all.collect();
    match args.first().map(String::as_str) {
        // As redis-server's line, so scripts that read `v=` see the Redis version
        // ferrokv speaks; `build=` names ferrokv's own.
        Some("-v" | "--version") => {
            println!(
                "ferrokv-server v={} sha=00000000:0 malloc={} bits=64 build=ferrokv-{}",
                ferrokv_server::cmds::REDIS_VERSION,
                ferrokv_server::memory::ALLOCATOR,
                env!("CARGO_PKG_VERSION")
            );
            return;
        }
        Some("-h" | "--help") => {
            eprint!("{USAGE}");
            std::process::exit(1);
        }
        Some("--test-memory") => {
            eprintln!("ferrokv-server has no memory tester: use memtester or the test of your platform.");
            std::process::exit(1);
        }
        Some("--check-system") => {
            eprintln!("ferrokv-server --check-system is not supported.");
            std::process::exit(1);
        }
        _ => {}
    }
    std::process::exit(ferrokv_server::run(args));
}
