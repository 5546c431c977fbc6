//! MSG_RING round trips between two pinned threads, each with its own ring and
//! [`LocalRuntime`]: the main thread sends numbers to an echo thread's mailbox, the echo
//! thread sends them back. A receiver that finds its mailbox empty sleeps in its ring and
//! is woken by the sender's `IORING_OP_MSG_RING`, so with one message in flight every hop
//! pays a full wake-up; with 256 in flight a wake-up is shared by a whole batch.
//!
//! One criterion iteration is one message's round trip: the 1-in-flight figure is the
//! round-trip latency, the 256-in-flight figure the cost per message under batching.
//!
//! `cargo bench -p ferrokv-runtime --bench msg_ring`

use criterion::{Criterion, Throughput};
use ferrokv_runtime::token::{self, KIND_WAKE};
use ferrokv_runtime::{cores, Inbox, LocalRuntime, Mailbox, Ops};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STOP: u64 = u64::MAX;

/// Sends `batch` to `to`, waking its ring if it sleeps.
fn send(ops: &Ops, to: &Mailbox<u64>, batch: &mut Vec<u64>) {
    if let Some(fd) = to.send(0, batch) {
        ops.wake_ring(fd, token::encode(KIND_WAKE, 0));
    }
}

/// Echoes everything that arrives in `inbox` back to `to` until STOP arrives.
async fn echo(ops: Ops, inbox: Inbox<u64>, to: Arc<Mailbox<u64>>) {
    let mut msgs = Vec::new();
    loop {
        inbox.recv(&mut msgs).await;
        let stop = msgs.contains(&STOP);
        msgs.retain(|&m| m != STOP);
        send(&ops, &to, &mut msgs);
        if stop {
            return;
        }
    }
}

/// Makes `total` round trips with at most `window` messages in flight.
async fn round_trips(ops: &Ops, inbox: &Inbox<u64>, to: &Mailbox<u64>, total: u64, window: u64) -> Duration {
    let start = Instant::now();
    let (mut sent, mut back) = (0u64, 0u64);
    let mut batch = Vec::with_capacity(window as usize);
    let mut got = Vec::with_capacity(window as usize);
    while back < total {
        let room = (window - (sent - back)).min(total - sent);
        if room > 0 {
            batch.extend(sent..sent + room);
            sent += room;
            send(ops, to, &mut batch);
        }
        got.clear();
        back += inbox.recv(&mut got).await as u64;
    }
    start.elapsed()
}

fn main() {
    let cpus = cores::allowed_cpus();
    let (main_cpu, echo_cpu) = (cpus[0], *cpus.get(1).unwrap_or(&cpus[0]));
    if main_cpu == echo_cpu {
        eprintln!("only one CPU allowed: both threads share CPU {main_cpu}, figures are not cross-CPU");
    }
    cores::pin_current_thread(main_cpu).expect("pin main thread");

    let to_echo = Arc::new(Mailbox::<u64>::new(1));
    let to_main = Arc::new(Mailbox::<u64>::new(1));
    let mut rt = LocalRuntime::new().expect("io_uring");
    let inbox = rt.inbox(to_main.clone());

    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (te, tm) = (to_echo.clone(), to_main.clone());
    let echo_thread = std::thread::spawn(move || {
        cores::pin_current_thread(echo_cpu).expect("pin echo thread");
        let mut rt = LocalRuntime::new().expect("io_uring");
        let inbox = rt.inbox(te);
        ready_tx.send(()).expect("main thread gone");
        let ops = rt.ops().clone();
        rt.block_on(echo(ops, inbox, tm)).expect("echo ring failed");
    });
    ready_rx.recv().expect("echo thread failed to start");

    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let mut group = c.benchmark_group("msg_ring_round_trip");
    group.throughput(Throughput::Elements(1));
    for window in [1u64, 256] {
        group.bench_function(format!("{window}_in_flight"), |b| {
            b.iter_custom(|iters| {
                let ops = rt.ops().clone();
                rt.block_on(round_trips(&ops, &inbox, &to_echo, iters, window)).expect("ring failed")
            })
        });
    }
    group.finish();

    let ops = rt.ops().clone();
    rt.block_on(async { send(&ops, &to_echo, &mut vec![STOP]) }).expect("ring failed");
    echo_thread.join().expect("echo thread panicked");
    c.final_summary();
}
