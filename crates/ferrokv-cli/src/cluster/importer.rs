//! Whole-slot migration for `reshard` and `rebalance` when every master is ferrokv:
//! the planned moves become `CLUSTER MIGRATION IMPORT <ranges>` tasks on their targets
//! (Redis 8.4's command; see the server's `cluster/slot_migration.rs`), one task per
//! (source, target) pair, polled with `CLUSTER MIGRATION STATUS ID <id>` for the
//! progress bar.
//!
//! A source serves one export at a time, so tasks run in waves in which no source
//! appears twice; the tasks of one wave run at once. Ctrl-C cancels the running tasks
//! (`CLUSTER MIGRATION CANCEL ID`): a task that had not claimed its slots rolls back
//! (the source keeps them, the target drops what it had copied), one that had claimed
//! completes. Either way no slot is left open.
//!
//! A task whose attempt fails tries again by itself a second later (STATUS `failed`,
//! then `retries` counting up, as in Redis 8.4); after [`RETRIES`] failed attempts
//! the tool cancels it and reports the last error.

use std::time::{Duration, Instant};

use ferrokv_resp::Value;

use super::mover::{Interrupt, Progress};
use super::Cluster;

/// One task to start: slots from member `from` to member `to`.
pub struct Transfer {
    pub from: usize,
    pub to: usize,
    pub slots: Vec<u16>,
}

/// What the tasks did.
pub struct Imported {
    pub slots: usize,
    pub keys: u64,
    pub interrupted: bool,
    /// Per task: (from, to, slots, keys, write pause in ms).
    pub tasks: Vec<(usize, usize, usize, u64, u64)>,
}

/// `[a, b, c, ...]` sorted slots as `start end` range pairs.
pub fn ranges(slots: &[u16]) -> Vec<(u16, u16)> {
    let mut sorted = slots.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for s in sorted {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == s => *end = s,
            _ => out.push((s, s)),
        }
    }
    out
}

/// Groups transfers into waves where no source appears twice (a target may import
/// from several sources at once).
pub fn waves(transfers: Vec<Transfer>) -> Vec<Vec<Transfer>> {
    let mut waves: Vec<Vec<Transfer>> = Vec::new();
    for t in transfers {
        match waves.iter_mut().find(|w| w.iter().all(|x| x.from != t.from)) {
            Some(w) => w.push(t),
            None => waves.push(vec![t]),
        }
    }
    waves
}

/// Failed attempts of one task the tool waits through before it cancels the task.
const RETRIES: u64 = 3;

/// A task's STATUS fields.
struct Status {
    state: String,
    last_error: String,
    retries: u64,
    keys: u64,
    bytes: u64,
    write_pause_ms: u64,
}

fn text(v: &Value) -> String {
    match v {
        Value::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Simple(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        _ => String::new(),
    }
}

fn parse_status(reply: Value) -> Option<Status> {
    let task = match reply {
        Value::Array(mut tasks) if !tasks.is_empty() => tasks.swap_remove(0),
        _ => return None,
    };
    let fields: Vec<(String, String)> = match task {
        Value::Array(items) => {
            items.chunks(2).map(|kv| (text(&kv[0]), kv.get(1).map(text).unwrap_or_default())).collect()
        }
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (text(k), text(v))).collect(),
        _ => return None,
    };
    let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    // ferrokv's `progress`: "<done>/<total> slots, <keys> keys, <bytes> bytes".
    let progress = get("progress");
    let part = |i: usize| -> u64 {
        progress.split(", ").nth(i).and_then(|w| w.split(' ').next()).and_then(|w| w.parse().ok()).unwrap_or(0)
    };
    let (keys, bytes) = (part(1), part(2));
    Some(Status {
        state: get("state"),
        last_error: get("last_error"),
        retries: get("retries").parse().unwrap_or(0),
        keys,
        bytes,
        write_pause_ms: get("write_pause_ms").parse().unwrap_or(0),
    })
}

/// A task started by the tool, as it polls it.
struct Running {
    to: usize,
    id: String,
    from: usize,
    slots: usize,
    ended: bool,
    keys: u64,
    bytes: u64,
    /// The error of the attempts that made the tool cancel the task.
    gave_up: Option<String>,
}

impl Cluster {
    /// Whether every master answers `CLUSTER MIGRATION STATUS` (ferrokv, or Redis 8.4+
    /// whose task protocol is not ours: only ferrokv is taken).
    pub(super) fn whole_slot_capable(&mut self) -> bool {
        let masters: Vec<usize> = self.masters().collect();
        masters.into_iter().all(|i| {
            let ferrokv = match self.members[i].call(&["INFO", "server"]) {
                Ok(Value::Bulk(b)) | Ok(Value::Verbatim { text: b, .. }) => {
                    String::from_utf8_lossy(&b).contains("ferrokv_version:")
                }
                _ => false,
            };
            ferrokv && matches!(self.members[i].call(&["CLUSTER", "MIGRATION", "STATUS", "ALL"]), Ok(Value::Array(_)))
        })
    }

    /// Runs `transfers` as whole-slot migration tasks, wave by wave.
    pub(super) fn run_imports(
        &mut self,
        transfers: Vec<Transfer>,
        label: &str,
        interrupt: &Interrupt,
    ) -> Result<Imported, String> {
        let total: usize = transfers.iter().map(|t| t.slots.len()).sum();
        let mut progress = Progress::new(total, label);
        let mut done = Imported { slots: 0, keys: 0, interrupted: false, tasks: Vec::new() };
        for wave in waves(transfers) {
            if interrupt.raised() {
                done.interrupted = true;
                break;
            }
            // Start every task of the wave.
            let mut running = Vec::new();
            for t in &wave {
                let mut args: Vec<String> = vec!["CLUSTER".into(), "MIGRATION".into(), "IMPORT".into()];
                for (a, b) in ranges(&t.slots) {
                    args.push(a.to_string());
                    args.push(b.to_string());
                }
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                let id = match self.members[t.to].ok(&refs) {
                    Ok(v) => text(&v),
                    Err(e) => {
                        progress.finish();
                        self.cancel_all(&running);
                        return Err(e);
                    }
                };
                running.push(Running {
                    to: t.to,
                    id,
                    from: t.from,
                    slots: t.slots.len(),
                    ended: false,
                    keys: 0,
                    bytes: 0,
                    gave_up: None,
                });
            }
            // Poll them until each has ended.
            let mut canceled = false;
            let mut failure = None;
            while running.iter().any(|r| !r.ended) {
                if interrupt.raised() && !canceled {
                    canceled = true;
                    done.interrupted = true;
                    progress.say("Interrupted: canceling the running migrations (claimed slots complete)");
                    self.cancel_all(&running);
                }
                for r in running.iter_mut().filter(|r| !r.ended) {
                    let (to, id) = (r.to, r.id.clone());
                    let st = self.members[to]
                        .ok(&["CLUSTER", "MIGRATION", "STATUS", "ID", &id])
                        .ok()
                        .and_then(parse_status)
                        .ok_or_else(|| format!("[ERR] Node {}: no status for task {id}", self.members[to].endpoint))?;
                    if st.keys > r.keys {
                        progress.keys(st.keys - r.keys);
                        r.keys = st.keys;
                    }
                    if st.bytes > r.bytes {
                        progress.bytes(st.bytes - r.bytes);
                        r.bytes = st.bytes;
                    }
                    let (from_ep, to_ep) = (self.members[r.from].endpoint.clone(), self.members[to].endpoint.clone());
                    if st.state == "failed" && st.retries >= RETRIES && r.gave_up.is_none() {
                        // It keeps trying by itself: stop it, and wait for the cancel.
                        progress.say(&format!(
                            "Slots from {from_ep} to {to_ep}: {} failed attempts, canceling ({})",
                            st.retries + 1,
                            st.last_error
                        ));
                        let _ = self.members[to].call(&["CLUSTER", "MIGRATION", "CANCEL", "ID", &id]);
                        r.gave_up = Some(st.last_error.clone());
                    }
                    if !matches!(st.state.as_str(), "completed" | "canceled") {
                        continue;
                    }
                    r.ended = true;
                    if st.state == "completed" {
                        for _ in 0..r.slots {
                            progress.slot_done();
                        }
                        progress.say(&format!(
                            "Moved {} slots from {from_ep} to {to_ep}: {} keys, writes paused {} ms",
                            r.slots, st.keys, st.write_pause_ms
                        ));
                        done.slots += r.slots;
                        done.keys += st.keys;
                        done.tasks.push((r.from, to, r.slots, st.keys, st.write_pause_ms));
                        let slots = wave.iter().find(|t| t.from == r.from && t.to == to).map(|t| t.slots.clone());
                        for s in slots.unwrap_or_default() {
                            self.members[r.from].me_mut().slots.remove(s);
                            self.members[to].me_mut().slots.insert(s);
                        }
                    } else {
                        let why = r.gave_up.clone().unwrap_or(st.last_error);
                        progress.say(&format!("Slots from {from_ep} to {to_ep} not moved (canceled: {why})"));
                        if r.gave_up.is_some() && failure.is_none() {
                            failure = Some(format!("[ERR] Migrating slots from {from_ep} to {to_ep}: {why}"));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Some(e) = failure {
                progress.finish();
                return Err(e);
            }
            if canceled {
                break;
            }
        }
        progress.finish();
        self.wait_for_agreement(Duration::from_secs(10));
        Ok(done)
    }

    fn cancel_all(&mut self, running: &[Running]) {
        for r in running {
            let _ = self.members[r.to].call(&["CLUSTER", "MIGRATION", "CANCEL", "ID", &r.id]);
        }
    }

    /// Waits (bounded) until every master's CLUSTER NODES shows the same slot owners,
    /// so that a `check` right after sees the move everywhere.
    fn wait_for_agreement(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let masters: Vec<usize> = self.masters().collect();
            let mut sigs = Vec::new();
            for i in masters {
                match self.members[i].text(&["CLUSTER", "NODES"]) {
                    Ok(t) => sigs.push(match super::parse_nodes(&t) {
                        Ok(v) => super::slot_signature(&v),
                        Err(_) => return,
                    }),
                    Err(_) => return,
                }
            }
            if sigs.windows(2).all(|w| w[0] == w[1]) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_collapse_runs() {
        assert_eq!(ranges(&[5, 1, 2, 3, 9, 10, 3]), vec![(1, 3), (5, 5), (9, 10)]);
        assert_eq!(ranges(&[]), vec![]);
    }

    #[test]
    fn waves_never_repeat_a_source() {
        let t = |from, to| Transfer { from, to, slots: vec![1] };
        let w = waves(vec![t(0, 3), t(1, 3), t(2, 3), t(0, 4), t(1, 4)]);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].len(), 3);
        for wave in &w {
            for (i, a) in wave.iter().enumerate() {
                for b in &wave[i + 1..] {
                    assert!(a.from != b.from);
                }
            }
        }
    }

    #[test]
    fn status_fields_are_read_from_flat_pairs() {
        let pair = |k: &str, v: &str| vec![Value::Bulk(k.into()), Value::Bulk(v.into())];
        let mut items = Vec::new();
        for (k, v) in [
            ("id", "x"),
            ("state", "completed"),
            ("last_error", ""),
            ("retries", "2"),
            ("write_pause_ms", "7"),
            ("progress", "12/40 slots, 3456 keys"),
        ] {
            items.extend(pair(k, v));
        }
        let st = parse_status(Value::Array(vec![Value::Array(items)])).expect("status");
        assert_eq!((st.state.as_str(), st.keys, st.write_pause_ms, st.retries), ("completed", 3456, 7, 2));
    }
}
