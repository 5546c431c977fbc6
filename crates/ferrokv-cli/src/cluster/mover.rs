//! Moving one slot from a master to another, as redis-cli's `clusterManagerMoveSlot`
//! does it, for `reshard`, `rebalance` and `fix`.
//!
//! 1. `CLUSTER SETSLOT s IMPORTING src` on the target, then `SETSLOT s MIGRATING dst`
//!    on the source (skipped by a *cold* move, which only carries keys);
//! 2. `CLUSTER GETKEYSINSLOT s P` on the source and one `MIGRATE host port "" 0 T KEYS
//!    ...` per batch of P keys until the slot is empty. A BUSYKEY answer (the target
//!    already has a key) is retried with REPLACE when `--replace` is given or when the
//!    values are equal on both sides (DUMP), as redis-cli does; otherwise it stops.
//!    MIGRATE answers no byte count: the bytes of the progress bar are what the source
//!    reports for the batch's keys (`MEMORY USAGE`, pipelined before the MIGRATE);
//! 3. `CLUSTER SETSLOT s NODE dst` on the target first (it spreads the news by gossip
//!    and must not be left without the slot if it is the only one told), then on the
//!    source (which may have become a replica on losing its last slot: that error is
//!    expected), then on every other master, so that none redirects to the old owner.
//!
//! Ctrl-C sets a flag that is read between batches: a slot whose keys began to move is
//! finished; a slot opened but not yet moving (and whose target has no key of it yet,
//! which a client sent there by ASK could have written) is closed again with `SETSLOT
//! STABLE` on both sides. Either way no slot is left open.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ferrokv_resp::Value;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Cluster;

/// How keys are carried.
#[derive(Clone, Copy, Debug)]
pub struct MoveOptions {
    /// MIGRATE's timeout, in milliseconds.
    pub timeout_ms: u64,
    /// Keys per GETKEYSINSLOT/MIGRATE batch.
    pub pipeline: usize,
    /// Overwrite keys the target already has.
    pub replace: bool,
    /// Only carry keys: no SETSLOT before or after.
    pub cold: bool,
}

/// What became of a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Moved, with this many keys and MIGRATE batches.
    Moved { keys: u64, batches: u64 },
    /// Interrupted before any key moved: closed again, still on the source.
    RolledBack,
}

/// SIGINT, as a flag read between batches.
#[derive(Clone)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Catches SIGINT from now on (a second Ctrl-C is caught too: the slot in progress
    /// still finishes).
    pub fn install() -> Interrupt {
        static ONCE: OnceLock<Interrupt> = OnceLock::new();
        ONCE.get_or_init(|| {
            let flag = Arc::new(AtomicBool::new(false));
            if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone()) {
                eprintln!("[WARNING] Ctrl-C cannot be caught ({e}): it will stop the command at once");
            }
            Interrupt(flag)
        })
        .clone()
    }

    pub fn raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A progress bar over the slots of one migration, drawn on stderr only when stderr is
/// a terminal.
pub struct Progress {
    bar: ProgressBar,
    keys: u64,
    bytes: u64,
}

impl Progress {
    pub fn new(slots: usize, label: &str) -> Progress {
        let bar = if std::io::stderr().is_terminal() {
            ProgressBar::with_draw_target(Some(slots as u64), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} slots, {msg}, {per_sec}, ETA {eta} ({elapsed})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        bar.set_message("0 keys");
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar, keys: 0, bytes: 0 }
    }

    pub fn keys(&mut self, n: u64) {
        self.keys += n;
        self.show();
    }

    /// Bytes moved (known for whole-slot migration, whose tasks count them).
    pub fn bytes(&mut self, n: u64) {
        self.bytes += n;
        self.show();
    }

    fn show(&self) {
        let msg = if self.bytes == 0 {
            format!("{} keys", self.keys)
        } else {
            format!("{} keys, {}", self.keys, indicatif::HumanBytes(self.bytes))
        };
        self.bar.set_message(msg);
    }

    pub fn slot_done(&self) {
        self.bar.inc(1);
    }

    /// Prints a line without tearing the bar.
    pub fn say(&self, line: &str) {
        self.bar.suspend(|| say!("{line}"));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn keys_of(reply: Value) -> Vec<Vec<u8>> {
    match reply {
        Value::Array(items) | Value::Set(items) => items
            .into_iter()
            .filter_map(|v| match v {
                Value::Bulk(b) => Some(b),
                Value::Simple(s) => Some(s.into_bytes()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

impl Cluster {
    /// `CLUSTER SETSLOT slot WHAT [id]` on member `at`.
    pub(super) fn setslot(&mut self, at: usize, slot: u16, what: &str, id: Option<&str>) -> Result<(), String> {
        let s = slot.to_string();
        let mut args = vec!["CLUSTER", "SETSLOT", s.as_str(), what];
        args.extend(id);
        self.members[at].ok(&args).map(|_| ())
    }

    pub(super) fn count_keys(&mut self, at: usize, slot: u16) -> Result<i64, String> {
        let s = slot.to_string();
        match self.members[at].ok(&["CLUSTER", "COUNTKEYSINSLOT", &s])? {
            Value::Int(n) => Ok(n),
            other => {
                Err(format!("[ERR] Node {}: unexpected COUNTKEYSINSLOT reply {other:?}", self.members[at].endpoint))
            }
        }
    }

    /// One MIGRATE of `keys` from `src` to `dst`; the error reply, if any, as text.
    fn migrate(
        &mut self,
        src: usize,
        dst: usize,
        keys: &[Vec<u8>],
        replace: bool,
        opts: &MoveOptions,
    ) -> Result<Option<String>, String> {
        let target = self.members[dst].endpoint.clone();
        let port = target.port.to_string();
        let timeout = opts.timeout_ms.to_string();
        let mut args: Vec<Vec<u8>> =
            ["MIGRATE", &target.host, &port, "", "0", &timeout].iter().map(|a| a.as_bytes().to_vec()).collect();
        if replace {
            args.push(b"REPLACE".to_vec());
        }
        match (&self.handshake.user, &self.handshake.password) {
            (Some(user), Some(pw)) => {
                args.extend([b"AUTH2".to_vec(), user.as_bytes().to_vec(), pw.as_bytes().to_vec()]);
            }
            (None, Some(pw)) => args.extend([b"AUTH".to_vec(), pw.as_bytes().to_vec()]),
            _ => {}
        }
        args.push(b"KEYS".to_vec());
        args.extend(keys.iter().cloned());
        let m = &mut self.members[src];
        match m.conn.call(&args) {
            Ok(Value::Error(e)) => Ok(Some(e)),
            Ok(_) => Ok(None),
            Err(e) => Err(format!("[ERR] Node {}: {} (sending MIGRATE)", m.endpoint, crate::conn::describe(&e))),
        }
    }

    /// The memory member `at` reports for `keys` (`MEMORY USAGE`, one round trip for
    /// all): the bytes the progress bar shows on the MIGRATE path. 0 for keys it does
    /// not know or a node without the command.
    fn usage(&mut self, at: usize, keys: &[Vec<u8>]) -> Result<u64, String> {
        let m = &mut self.members[at];
        let failed = |e: std::io::Error| {
            format!("[ERR] Node {}: {} (sending MEMORY USAGE)", m.endpoint, crate::conn::describe(&e))
        };
        for k in keys {
            m.conn.send(&[b"MEMORY".as_slice(), b"USAGE", k]).map_err(failed)?;
        }
        let mut total = 0;
        for _ in keys {
            if let Value::Int(n) = m.conn.read().map_err(failed)? {
                total += n.max(0) as u64;
            }
        }
        Ok(total)
    }

    /// The keys among `keys` whose DUMP differs between `src` and `dst` (keys gone from
    /// `src` already moved and are not compared).
    fn differing(&mut self, src: usize, dst: usize, keys: &[Vec<u8>]) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for k in keys {
            let dump = |c: &mut super::Member| {
                c.conn
                    .call(&[b"DUMP".as_slice(), k.as_slice()])
                    .map_err(|e| format!("[ERR] Node {}: {} (sending DUMP)", c.endpoint, crate::conn::describe(&e)))
            };
            let a = dump(&mut self.members[src])?;
            if matches!(a, Value::Nil | Value::Null) {
                continue;
            }
            if a != dump(&mut self.members[dst])? {
                out.push(String::from_utf8_lossy(k).into_owned());
            }
        }
        Ok(out)
    }

    /// Carries every key of `slot` from `src` to `dst`; `Ok(None)` when interrupted
    /// before the first batch.
    fn migrate_keys_in_slot(
        &mut self,
        src: usize,
        dst: usize,
        slot: u16,
        opts: &MoveOptions,
        interrupt: Option<&Interrupt>,
        progress: &mut Progress,
    ) -> Result<Option<(u64, u64)>, String> {
        let (mut keys_moved, mut batches) = (0u64, 0u64);
        let (s, p) = (slot.to_string(), opts.pipeline.max(1).to_string());
        loop {
            if batches == 0 && interrupt.is_some_and(Interrupt::raised) {
                return Ok(None);
            }
            let keys = keys_of(self.members[src].ok(&["CLUSTER", "GETKEYSINSLOT", &s, &p])?);
            if keys.is_empty() {
                return Ok(Some((keys_moved, batches)));
            }
            let bytes = self.usage(src, &keys)?;
            if let Some(e) = self.migrate(src, dst, &keys, opts.replace, opts)? {
                if !e.contains("BUSYKEY") {
                    return Err(format!("[ERR] Calling MIGRATE: {e}"));
                }
                progress.say("*** Target key exists");
                if !opts.replace {
                    progress.say("*** Checking key values on both nodes...");
                    let diff = self.differing(src, dst, &keys)?;
                    if !diff.is_empty() {
                        let list: Vec<String> = diff.iter().map(|k| format!("    - {k}")).collect();
                        return Err(format!(
                            "*** Found {} key(s) in both source node and target node having different values.\n    \
                             Source node: {}\n    Target node: {}\n    Keys(s):\n{}\nPlease fix the above key(s) \
                             manually and try again or relaunch the command \nwith --replace option to force key \
                             overriding.",
                            diff.len(),
                            self.members[src].endpoint,
                            self.members[dst].endpoint,
                            list.join("\n")
                        ));
                    }
                }
                progress.say("*** Replacing target keys...");
                if let Some(e) = self.migrate(src, dst, &keys, true, opts)? {
                    return Err(format!("[ERR] Calling MIGRATE: {e}"));
                }
            }
            keys_moved += keys.len() as u64;
            batches += 1;
            progress.keys(keys.len() as u64);
            progress.bytes(bytes);
        }
    }

    /// Moves `slot` from master `src` to master `dst` (indexes into `members`), and
    /// records the move in the loaded views.
    pub(super) fn move_slot(
        &mut self,
        src: usize,
        dst: usize,
        slot: u16,
        opts: &MoveOptions,
        interrupt: Option<&Interrupt>,
        progress: &mut Progress,
    ) -> Result<Outcome, String> {
        let (src_id, dst_id) = (self.members[src].me().id.clone(), self.members[dst].me().id.clone());
        if !opts.cold {
            self.setslot(dst, slot, "IMPORTING", Some(&src_id))?;
            self.setslot(src, slot, "MIGRATING", Some(&dst_id))?;
        }
        let moved = self.migrate_keys_in_slot(src, dst, slot, opts, interrupt, progress)?;
        let (keys, batches) = match moved {
            Some(done) => done,
            // Nothing moved yet; keys written to the target by ASK oblige us to finish.
            None if !opts.cold && self.count_keys(dst, slot)? == 0 => {
                self.setslot(dst, slot, "STABLE", None)?;
                self.setslot(src, slot, "STABLE", None)?;
                return Ok(Outcome::RolledBack);
            }
            None => self.migrate_keys_in_slot(src, dst, slot, opts, None, progress)?.unwrap_or((0, 0)),
        };
        if !opts.cold {
            self.setslot(dst, slot, "NODE", Some(&dst_id))?;
            if let Err(e) = self.setslot(src, slot, "NODE", Some(&dst_id)) {
                if !e.contains("Please use SETSLOT only with masters") {
                    return Err(e);
                }
            }
            for other in self.masters().collect::<Vec<_>>() {
                if other != src && other != dst {
                    self.setslot(other, slot, "NODE", Some(&dst_id))?;
                }
            }
        }
        self.members[src].me_mut().slots.remove(slot);
        self.members[dst].me_mut().slots.insert(slot);
        Ok(Outcome::Moved { keys, batches })
    }
}
