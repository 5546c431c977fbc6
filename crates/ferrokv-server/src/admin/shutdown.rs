//! The shutdown sequence, as Redis 7.0's `prepareForShutdown`, `isReadyToShutdown`,
//! `finishShutdown` and `abortShutdown` (server.c).
//!
//! SHUTDOWN (and SIGTERM/SIGINT, with the flags `shutdown-on-sigterm`/`-sigint` give)
//! first *prepares*: unless NOW is given, `shutdown-timeout` is 0 or every replica has
//! already acknowledged the whole stream, the node sends its replicas `REPLCONF GETACK
//! *`, holds client writes (as a manual failover's pause does) and waits; the SHUTDOWN
//! client stays blocked. Shard 0's cron then *finishes* as soon as every replica's
//! acknowledged offset equals `master_repl_offset`, or when the timeout has passed
//! (logging the replicas still lagging): it saves when it should (save points and not
//! NOSAVE, or SAVE) and sets the node's exit flag. A failed save without FORCE
//! *cancels*: the pause is lifted and the blocked SHUTDOWN clients get Redis's error.
//! SHUTDOWN ABORT cancels a shutdown that is waiting, or a signal not acted on yet.
//!
//! A signal is only noted by the main thread (`signal`); shard 0's cron acts on it, as
//! Redis's serverCron acts on `shutdown_asap`, so every shutdown runs the same steps on
//! the same thread. A second SIGINT while one is pending exits at once (Redis's "You
//! insist...").
//!
//! Lock order: the shutdown state is never held while taking a keyspace lock or the
//! replication state.

use crate::dispatch::ShardCore;
use crate::msg::Msg;
use crate::node::{lock, unix_ms, Node, ShardId};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

/// SHUTDOWN's flags (Redis's SHUTDOWN_SAVE, _NOSAVE, _NOW, _FORCE).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Flags {
    pub save: bool,
    pub nosave: bool,
    pub now: bool,
    pub force: bool,
}

impl Flags {
    /// `shutdown-on-sigint`/`-sigterm`: "default" or some of save, nosave, now, force
    /// (any order, "default" adding nothing), with Redis's errors.
    pub fn parse_config(v: &str) -> Result<Flags, String> {
        let mut f = Flags::default();
        for w in v.split_whitespace() {
            match w.to_ascii_lowercase().as_str() {
                "default" => {}
                "save" => f.save = true,
                "nosave" => f.nosave = true,
                "now" => f.now = true,
                "force" => f.force = true,
                _ => return Err("argument(s) must be one of the following: default, save, nosave, now, force".into()),
            }
        }
        if f.save && f.nosave {
            return Err("shutdown options SAVE and NOSAVE can't be used simultaneously".into());
        }
        Ok(f)
    }

    /// As CONFIG GET shows the flags: in Redis's enum order, "default" for none.
    pub fn to_config(self) -> String {
        let words: Vec<&str> = [(self.save, "save"), (self.nosave, "nosave"), (self.now, "now"), (self.force, "force")]
            .into_iter()
            .filter_map(|(on, w)| on.then_some(w))
            .collect();
        if words.is_empty() {
            "default".into()
        } else {
            words.join(" ")
        }
    }
}

/// A client blocked in SHUTDOWN: where its reply would go.
struct Blocked {
    shard: ShardId,
    token: u64,
    seq: u64,
}

struct InProgress {
    flags: Flags,
    /// Waiting for replicas until this unix ms; None while finishing (saving).
    deadline: Option<u64>,
    blocked: Vec<Blocked>,
}

/// Node-wide shutdown state.
#[derive(Default)]
pub struct State {
    /// A SIGTERM or SIGINT not acted on yet (Redis's `shutdown_asap` and
    /// `last_sig_received`; 0: none).
    pub signal: AtomicI32,
    /// Some: a shutdown was initiated (Redis's `shutdown_mstime != 0`).
    st: Mutex<Option<InProgress>>,
}

/// What [`prepare`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Prepared {
    /// Finished: the node exits.
    Exit,
    /// Waiting for replicas (or another shutdown is under way): block the client.
    Waiting,
    /// Failed (a save without FORCE); the error is logged.
    Failed,
}

impl State {
    /// Milliseconds until a waiting shutdown gives up on lagging replicas (INFO's
    /// `shutdown_in_milliseconds`), when one is waiting.
    pub fn remaining_ms(&self) -> Option<i64> {
        let st = lock(&self.st);
        st.as_ref().and_then(|p| p.deadline).map(|d| d as i64 - unix_ms() as i64)
    }

    /// A shutdown was asked for: initiated, or a signal waits for the cron.
    pub fn requested(&self) -> bool {
        self.signal.load(Ordering::Acquire) != 0 || lock(&self.st).is_some()
    }
}

/// Every replica has acknowledged the whole stream (Redis's isReadyToShutdown).
fn replicas_in_sync(node: &Node) -> bool {
    let st = lock(&node.repl.st);
    st.replicas.iter().filter(|r| crate::repl::master::is_replica(r)).all(|r| r.ack == st.offset)
}

/// Starts a shutdown with `flags` (SHUTDOWN, or the cron for a signal). On `Waiting`
/// the caller blocks its client with [`block`].
pub fn prepare(core: &mut ShardCore, mut flags: Flags) -> Prepared {
    let node = core.node;
    {
        let mut st = lock(&node.shutdown_state.st);
        if st.is_some() {
            return Prepared::Waiting;
        }
        // A replica loading a full sync must not overwrite dump.rdb with half of it.
        if node.repl.loading.load(Ordering::Acquire) {
            flags.save = false;
            flags.nosave = true;
        }
        *st = Some(InProgress { flags, deadline: None, blocked: Vec::new() });
    }
    tracing::warn!("User requested shutdown...");
    let timeout = node.config().shutdown_timeout;
    if !flags.now && timeout != 0 {
        // Writes acknowledged before now go into the stream first, so "in sync" covers them.
        crate::repl::flush_all(node);
        if !replicas_in_sync(node) {
            {
                let mut st = lock(&node.repl.st);
                if !node.repl.writes_paused(unix_ms()) {
                    st.append(crate::repl::master::GETACK);
                }
            }
            node.repl.more.notify_all();
            node.repl.hold_writes_for_shutdown(true);
            if let Some(p) = lock(&node.shutdown_state.st).as_mut() {
                p.deadline = Some(unix_ms() + timeout * 1000);
            }
            tracing::info!("Waiting for replicas before shutting down.");
            return Prepared::Waiting;
        }
    }
    finish_or_cancel(core, flags)
}

/// SHUTDOWN NOSAVE from a client of the thread whose script is busy (served from the
/// Lua hook, see `crate::busy`): the node exits now, without the script's unfinished
/// effects and without waiting for replicas (the cron that would wait may be on this
/// very thread), as Redis exits from `processEventsWhileBlocked`. The process does not
/// wait for the script's thread (`crate::run`). False when a shutdown is already
/// under way (the client waits for it).
pub fn while_busy(node: &Node, flags: Flags) -> bool {
    {
        let mut st = lock(&node.shutdown_state.st);
        if st.is_some() {
            return false;
        }
        *st = Some(InProgress { flags, deadline: None, blocked: Vec::new() });
    }
    tracing::warn!("User requested shutdown...");
    if !finish(node, flags) {
        // NOSAVE saves nothing; should the finish fail anyway, do not stay half down.
        tracing::warn!("Errors trying to shut down the server. Exiting anyway.");
    }
    node.request_shutdown();
    true
}

/// Whether the shutdown under way is a SHUTDOWN NOSAVE (the process then exits
/// without waiting for a thread whose script is busy).
pub fn nosave(node: &Node) -> bool {
    lock(&node.shutdown_state.st).as_ref().is_some_and(|p| p.flags.nosave)
}

/// Blocks a SHUTDOWN client until the shutdown ends (the process exits) or is
/// cancelled (it gets an error). False when no shutdown is under way any more.
pub fn block(node: &Node, shard: ShardId, token: u64, seq: u64) -> bool {
    match lock(&node.shutdown_state.st).as_mut() {
        Some(p) => {
            p.blocked.push(Blocked { shard, token, seq });
            true
        }
        None => false,
    }
}

/// SHUTDOWN ABORT: cancels a waiting shutdown or a pending signal. False when there is
/// none (a shutdown already saving cannot be aborted either).
pub fn abort(core: &mut ShardCore) -> bool {
    let node = core.node;
    let waiting = lock(&node.shutdown_state.st).as_ref().map(|p| p.deadline.is_some());
    match waiting {
        Some(true) => cancel(core),
        Some(false) => return false,
        None => {
            if node.shutdown_state.signal.swap(0, Ordering::AcqRel) == 0 {
                return false;
            }
        }
    }
    tracing::info!("Shutdown manually aborted.");
    true
}

/// Shard 0, every tick (Redis's serverCron): acts on a signal, and finishes a waiting
/// shutdown once the replicas are in sync or the time is up.
pub fn cron(core: &mut ShardCore) {
    let node = core.node;
    let state = &node.shutdown_state;
    let initiated = lock(&state.st).as_ref().map(|p| p.deadline);
    match initiated {
        None => {
            let sig = state.signal.swap(0, Ordering::AcqRel);
            if sig != 0 {
                let flags = {
                    let cfg = node.config();
                    let v = if sig == libc::SIGINT { &cfg.shutdown_on_sigint } else { &cfg.shutdown_on_sigterm };
                    Flags::parse_config(v).unwrap_or_default()
                };
                prepare(core, flags);
            }
        }
        Some(Some(deadline)) => {
            if unix_ms() >= deadline || replicas_in_sync(node) {
                let flags = {
                    let mut st = lock(&state.st);
                    match st.as_mut() {
                        Some(p) if p.deadline.is_some() => {
                            p.deadline = None;
                            p.flags
                        }
                        _ => return,
                    }
                };
                finish_or_cancel(core, flags);
            }
        }
        Some(None) => {}
    }
}

fn finish_or_cancel(core: &mut ShardCore, flags: Flags) -> Prepared {
    if finish(core.node, flags) {
        core.node.request_shutdown();
        Prepared::Exit
    } else {
        tracing::warn!("Errors trying to shut down the server. Check the logs for more information.");
        cancel(core);
        Prepared::Failed
    }
}

/// The last step (Redis's finishShutdown): reports lagging replicas, saves when it
/// should. False when the save failed without FORCE (the node stays up).
fn finish(node: &Node, flags: Flags) -> bool {
    {
        let st = lock(&node.repl.st);
        let now = unix_ms();
        let replicas: Vec<_> = st.replicas.iter().filter(|r| crate::repl::master::is_replica(r)).collect();
        let mut lagging = 0;
        for r in &replicas {
            if r.ack != st.offset {
                lagging += 1;
                let lag = if r.phase.is_online() { now.saturating_sub(r.ack_ms) / 1000 } else { 0 };
                tracing::warn!(
                    "Lagging replica {}:{} reported offset {} behind master, lag={lag}, state={}.",
                    r.ip,
                    r.port,
                    st.offset as i64 - r.ack as i64,
                    r.phase.info_name()
                );
            }
        }
        if !replicas.is_empty() {
            tracing::info!(
                "{} of {} replicas are in sync when shutting down.",
                replicas.len() - lagging,
                replicas.len()
            );
        }
    }
    let save = if flags.nosave {
        Some(false)
    } else if flags.save {
        Some(true)
    } else {
        None
    };
    if crate::persist::save_on_shutdown(node, save).is_err() {
        if flags.force {
            tracing::warn!("Error trying to save the DB. Exit anyway.");
        } else {
            tracing::warn!("Error trying to save the DB, can't exit.");
            return false;
        }
    }
    true
}

/// Ends a shutdown that will not happen (Redis's cancelShutdown): writes resume, the
/// blocked SHUTDOWN clients get an error.
fn cancel(core: &mut ShardCore) {
    let node = core.node;
    let blocked = lock(&node.shutdown_state.st).take().map(|p| p.blocked).unwrap_or_default();
    node.shutdown_state.signal.store(0, Ordering::Release);
    node.repl.hold_writes_for_shutdown(false);
    for b in blocked {
        core.send(
            b.shard,
            Msg::Reply {
                token: b.token,
                seq: b.seq,
                bytes: b"-ERR Errors trying to SHUTDOWN. Check logs.\r\n".to_vec(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_flags_parse_and_show_as_redis() {
        assert_eq!(Flags::parse_config("default").unwrap().to_config(), "default");
        assert_eq!(Flags::parse_config("now save").unwrap().to_config(), "save now");
        assert_eq!(Flags::parse_config("DEFAULT now").unwrap().to_config(), "now");
        assert_eq!(Flags::parse_config("force nosave").unwrap().to_config(), "nosave force");
        assert!(Flags::parse_config("save nosave").unwrap_err().contains("SAVE and NOSAVE"));
        assert!(Flags::parse_config("bogus").unwrap_err().contains("one of the following"));
    }
}
