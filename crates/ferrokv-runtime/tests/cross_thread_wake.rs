//! Two threads, each with its own ring: the sender wakes the sleeping receiver through
//! its ring with MSG_RING, and the receiver gets the batch long before its idle timeout
//! (30 s) would have woken it.

use ferrokv_runtime::token::{self, KIND_WAKE};
use ferrokv_runtime::{LocalRuntime, Mailbox};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROUNDS: u64 = 3;

#[test]
fn msg_ring_wakes_a_sleeping_receiver() {
    let mailbox = Arc::new(Mailbox::<u64>::new(1));
    let (ready_tx, ready_rx) = mpsc::channel();
    let mb = mailbox.clone();
    let receiver = std::thread::spawn(move || {
        let mut rt = LocalRuntime::new().unwrap();
        rt.set_idle_timeout(Duration::from_secs(30));
        let inbox = rt.inbox(mb);
        ready_tx.send(()).unwrap();
        rt.block_on(async move {
            let mut rounds = Vec::new();
            for _ in 0..ROUNDS {
                let mut batch = Vec::new();
                inbox.recv(&mut batch).await;
                rounds.push((batch, Instant::now()));
            }
            rounds
        })
        .unwrap()
    });
    ready_rx.recv().unwrap();

    let sender = std::thread::spawn(move || {
        let mut rt = LocalRuntime::new().unwrap();
        let mut sent = Vec::new();
        for round in 0..ROUNDS {
            // Send only once the receiver is asleep in its ring, so only the wake-up can end its wait.
            let start = Instant::now();
            while !mailbox.is_sleeping() {
                assert!(start.elapsed() < Duration::from_secs(10), "receiver never went to sleep");
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut batch = vec![round * 10, round * 10 + 1, round * 10 + 2];
            let at = Instant::now();
            let fd = mailbox.send(0, &mut batch).expect("a sleeping receiver must be woken");
            let ops = rt.ops().clone();
            // The wake-up is queued; block_on submits it before returning.
            rt.block_on(async move { ops.wake_ring(fd, token::encode(KIND_WAKE, 0)) }).unwrap();
            sent.push(at);
        }
        sent
    });

    let sent = sender.join().unwrap();
    let received = receiver.join().unwrap();
    for (round, ((batch, got_at), sent_at)) in received.into_iter().zip(sent).enumerate() {
        let r = round as u64;
        assert_eq!(batch, vec![r * 10, r * 10 + 1, r * 10 + 2]);
        let latency = got_at.saturating_duration_since(sent_at);
        assert!(latency < Duration::from_secs(5), "round {round}: woken after {latency:?}, not by the MSG_RING");
    }
}
