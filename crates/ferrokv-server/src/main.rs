//! `ferrokv-server [config-file] [--option value ...]`, as redis-server takes them.

#[global_allocator]
static ALLOC: ferrokv_server::memory::Counting = ferrokv_server::memory::Counting;

fn main() {
    ferrokv_server::memory::register_thread();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "-v" || a == "--version") {
        println!(
            "ferrokv-server v={} (Redis {} compatible)",
            env!("CARGO_PKG_VERSION"),
            ferrokv_server::cmds::REDIS_VERSION
        );
        return;
    }
    std::process::exit(ferrokv_server::run(args));
}
