//! Replica failover: the election a replica runs to replace its failed master, and the
//! votes masters give (Redis's `clusterHandleSlaveFailover`, `clusterGetSlaveRank`,
//! `clusterSendFailoverAuthIfNeeded`, `clusterFailoverReplaceYourMaster`).
//!
//! # The election, replica side
//!
//! Checked every tick, and at once when the master is flagged FAIL, when the election is
//! due, when a vote arrives or when a manual failover may start, while this node is a
//! replica whose master serves slots and is FAIL — or a manual failover is under way — and,
//! for an automatic one, `replica_no_failover` is off:
//!
//! 1. **Data age.** With `replica_validity_factor` set, a replica whose master link has been
//!    down for longer than `repl_ping_replica_period + node_timeout × factor` (not counting
//!    the first node timeout, the time it took to flag the master) holds data too old to
//!    serve and does not run (manual failovers skip the check).
//! 2. **Schedule.** The election starts at
//!    `now + D + rank × S + failed_rank × F`, plus `random(0..D)` for a rank above 0, where
//!    `D = node_timeout / 30` (1 to 500 ms), `S = max(2 × D, 200)` and `F = max(D, 200)`:
//!    - the fixed delay `D` lets the FAIL verdict reach every master before the vote
//!      request does;
//!    - the *rank* — how many other failover-capable replicas of the same master advertise
//!      a greater replication offset, or the same offset and a smaller node ID — lets the
//!      most up-to-date replica go first, alone (Redis gives equal offsets one rank and
//!      keeps them apart by a random 0–500 ms only);
//!    - the *failed-master rank* — how many other FAIL masters serving slots, with a
//!      replica able to fail over, have a smaller node ID — makes the elections for masters
//!      that failed together ask one after the other instead of splitting one epoch's votes
//!      (not in Redis 7.0);
//!    - the random part keeps apart replicas that disagree on their rank.
//!
//!    The steps are at least two ticks: a replica acts on its next input, which may be the
//!    tick 100 ms after the election is due, so a shorter step could merge two places.
//!    The schedule is made as soon as the master is flagged FAIL, announced to the sibling
//!    replicas with a PONG (so they rank against our offset), and pushed back if a better
//!    sibling offset or an earlier-placed failed master appears before the election starts.
//!    A manual failover starts at once, rank 0. With Redis's default 15 s node timeout this
//!    is Redis's schedule (500 ms, then a second per rank and 0–500 ms at random) except
//!    that rank 0 skips the random part and ties go by node ID.
//! 3. **Ask.** At the scheduled time the replica bumps `currentEpoch`, remembers it as the
//!    election's epoch and broadcasts FAILOVER_AUTH_REQUEST (with FORCEACK for a manual
//!    failover) carrying its master's slots and config epoch.
//! 4. **Count.** An ACK counts when it comes from a master serving slots whose
//!    `currentEpoch` is at least the election's epoch (a late vote from an older election
//!    does not), once per voter.
//! 5. **Win.** With `size / 2 + 1` votes, the replica takes the election's epoch as config
//!    epoch and as `lastVoteEpoch`, flags itself master, takes every slot of its old master,
//!    saves nodes.conf with fsync, emits [`Output::Promoted`] and PONGs every node. (Redis
//!    leaves `lastVoteEpoch` alone, so the fresh master may still vote in the epoch it just
//!    won and help a second candidate win it too; the simulator caught that.) `size` is the
//!    larger of the cluster size now and when the request went out (Redis takes the size
//!    now: a view that loses a master meanwhile — one turned replica, the new owner of its
//!    slots not yet known — needs fewer votes than the masters asked; chaos found a second
//!    winner of an epoch that way). The new claim wins everywhere by its greater config
//!    epoch; the old master, its other replicas and finally the old
//!    master itself when it returns follow it (see `update_slots_config_with`).
//! 6. **Give up.** An election that did not win within `max(2 × node_timeout, 2000)` ms
//!    expires; a new one is scheduled `2 ×` that long after the previous schedule.
//!
//! # The vote, master side
//!
//! A master serving slots grants a request when the request's epoch is not older than its
//! own `currentEpoch`, it has not voted in this epoch yet (`lastVoteEpoch`, saved with
//! fsync before the ACK leaves), no node it knows holds that epoch as config epoch already
//! (not in Redis: such an epoch was taken without agreement, e.g. at the end of a slot
//! migration, and a winner would tie with it), it knows the requester as a replica whose
//! master is FAIL
//! (or the request is FORCEACK), it has not voted for a replica of that master within
//! `2 × node_timeout`, and no slot the request claims is held by a greater config epoch.
//!
//! # Timing
//!
//! From a master's death to its replica's promotion, without loss:
//!
//! 1. **PFAIL** at each master a node timeout after a ping it sent went unanswered (Redis's
//!    rule, unchanged: `cron.rs`). A killed process has its connections reset by the
//!    kernel: the peers reconnect at their next tick, are refused, and count the attempt as
//!    a ping sent (`links.rs`), so PFAIL comes a node timeout after the crash, within two
//!    ticks. A silent host (power loss, partition) is pinged once its last pong is half a
//!    node timeout old, so PFAIL may come up to half a node timeout later.
//! 2. **FAIL** as soon as the last of a majority of masters flags PFAIL: a master that flags
//!    a node PFAIL checks the reports it already holds and PONGs the other masters at once,
//!    the PFAIL node in the gossip (`failure.rs`). Redis waits for the next gossip, a second
//!    or more later. The cost is one PONG per other master each time a master flags nodes
//!    PFAIL.
//! 3. **Election**: scheduled on receiving FAIL, the vote requests leave `D` later (66 ms
//!    with a 2 s node timeout), on the replica's next input; one round trip for the votes;
//!    the promotion and its PONG broadcast at once.
//!
//! Measured in the simulator (`tests/failover_timing.rs`: 3 masters and 3 replicas, node
//! timeout 2 s, 0–1 ms per message, no loss, a master killed at a random point of the ping
//! cycle, 3000 seeds per row; ms from the crash):
//!
//! | crash → promotion                   | median | p90  | worst |
//! |-------------------------------------|--------|------|-------|
//! | process killed, Redis 7.0's timing  | 3239   | 3569 | 3937  |
//! | process killed, this timing         | 2279   | 2330 | 2369  |
//! | host silent, Redis 7.0's timing     | 3888   | 4335 | 4827  |
//! | host silent, this timing            | 2924   | 3230 | 3360  |
//!
//! Crash → FAIL known to the replica went from 2358/2668/3050 to 2171/2196/2202 (killed)
//! and from 3038/3434/3890 to 2812/3123/3199 (silent); FAIL → promotion from 852/1055/1102
//! to 106/154/167. Two of five masters killed together (1000 runs): promotions at
//! 2728/3198/3544, no run needed a second election (Redis 7.0's timing: 2 runs, each 8 s
//! late); one master with two replicas (1000 runs): 2628/3170/3363, none (before: 1).
//!
//! Only when things happen changed, not what is decided: PFAIL, the failure-report quorum
//! and validity, and every voting rule are Redis's, so the guarantees below hold as before.
//! A request that outruns the FAIL verdict to some master (more than `D` of extra latency)
//! is denied there and costs a retry, as a lost vote does.
//!
//! # What this guarantees
//!
//! Each master votes at most once per epoch and a winner needs a majority of the masters
//! serving slots, so two replicas cannot both win one epoch (as far as all nodes agree on
//! the cluster size, the same caveat as Redis). A winner's config epoch is the election's,
//! greater than any epoch its voters knew, so its claim on the old master's slots beats the
//! old master's everywhere; a side holding only a minority of masters can neither flag a
//! master FAIL nor collect a majority, so it never promotes. Data written to the old
//! master and not yet replicated is lost (replication is asynchronous); the rank makes the
//! most up-to-date replica the likely winner, and a manual failover loses nothing.

use super::*;
use crate::wire::mflags;
use std::collections::BTreeSet;

/// Why the replica is not failing over now (logged once per reason and every 5 minutes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum CantFailover {
    #[default]
    None,
    DataAge,
    WaitingDelay,
    Expired,
    WaitingVotes,
}

/// This replica's election state (Redis's `failover_auth_*`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Election {
    /// When the current attempt starts (or started); `None` before the first.
    pub time: Option<u64>,
    pub rank: usize,
    /// Our master's place among the masters failing at the same time.
    pub failed_rank: usize,
    /// The vote request of the current attempt went out.
    pub sent: bool,
    /// The epoch of the current attempt.
    pub epoch: u64,
    /// The cluster size when the vote request of the current attempt went out.
    pub size: usize,
    /// Masters that voted for the current attempt.
    pub voters: BTreeSet<NodeId>,
    cant_reason: CantFailover,
    cant_logged_at: Option<u64>,
}

/// How long a "can't failover" reason stays quiet in the log.
const CANT_FAILOVER_RELOG_MS: u64 = 300_000;
/// The election delay's unit is `node_timeout / ELECTION_DELAY_DIVISOR`, at most
/// `MAX_ELECTION_DELAY_MS` (Redis's fixed 500 ms, reached from a 15 s node timeout).
const ELECTION_DELAY_DIVISOR: u64 = 30;
const MAX_ELECTION_DELAY_MS: u64 = 500;

impl ClusterState {
    /// How long an election may collect votes.
    fn election_timeout(&self) -> u64 {
        (self.cfg.node_timeout_ms * 2).max(2000)
    }

    /// Milliseconds the data has been stale beyond the time it took to flag the master.
    fn data_age(&self) -> u64 {
        let age = self.master_link_down_since.map_or(0, |since| self.now.saturating_sub(since));
        if age > self.cfg.node_timeout_ms {
            age - self.cfg.node_timeout_ms
        } else {
            age
        }
    }

    /// The election delay's parts (see the module documentation): the fixed delay (also the
    /// width of a later-ranked replica's random part), the step per replica rank and the
    /// step per failed-master rank.
    fn election_delays(&self) -> (u64, u64, u64) {
        let fixed = (self.cfg.node_timeout_ms / ELECTION_DELAY_DIVISOR).clamp(1, MAX_ELECTION_DELAY_MS);
        (fixed, (2 * fixed).max(2 * TICK_MS), fixed.max(2 * TICK_MS))
    }

    /// How many masters that failed with ours are placed before it: FAIL, serving slots,
    /// with a replica that may fail over, and a smaller node ID. Their replicas go first, so
    /// that elections for different masters do not ask for votes in one epoch.
    fn failed_master_rank(&self) -> usize {
        let Some(mine) = self.me().master.map(|m| self.node(m).id) else { return 0 };
        self.nodes
            .iter()
            .flatten()
            .filter(|m| m.id < mine && m.is_master() && m.failed() && m.numslots > 0)
            .filter(|m| {
                m.replicas
                    .iter()
                    .map(|&r| self.node(r))
                    .any(|r| !r.failed() && !r.flags.intersects(NodeFlags::NOFAILOVER))
            })
            .count()
    }

    /// How many failover-capable replicas of our master are placed before us: a greater
    /// offset, or the same offset and a smaller node ID (so that two replicas holding the
    /// same data do not ask for votes at the same moment).
    fn replica_rank(&self) -> usize {
        let Some(master) = self.me().master else { return 0 };
        let (mine, my_id) = (self.my_repl_offset, self.me().id);
        self.node(master)
            .replicas
            .iter()
            .filter(|&&r| r != self.myself)
            .map(|&r| self.node(r))
            .filter(|r| !r.flags.intersects(NodeFlags::NOFAILOVER))
            .filter(|r| r.repl_offset > mine || (r.repl_offset == mine && r.id < my_id))
            .count()
    }

    /// An automatic election is scheduled and its time has come: run it on this input
    /// rather than at the next tick.
    pub(super) fn election_due(&self) -> bool {
        let e = &self.election;
        let me = self.me();
        !e.sent
            && e.time.is_some_and(|t| t <= self.now)
            && me.is_slave()
            && me.master.is_some_and(|m| self.node(m).failed())
    }

    /// Drives this replica's election one step (see the module documentation).
    pub(super) fn handle_replica_failover(&mut self) {
        self.todo &= !todo::HANDLE_FAILOVER;
        let now = self.now;
        let manual = self.mf.end != 0 && self.mf.can_start;
        let timeout = self.election_timeout();
        let retry = timeout * 2;
        let me = self.me();
        let master = me.master.filter(|_| me.is_slave()).map(|m| self.node(m));
        let wanted =
            master.is_some_and(|m| m.numslots > 0 && (manual || (m.failed() && !self.cfg.replica_no_failover)));
        if !wanted {
            self.election.cant_reason = CantFailover::None;
            return;
        }

        let max_age =
            self.cfg.repl_ping_replica_period_ms + self.cfg.node_timeout_ms * self.cfg.replica_validity_factor;
        if self.cfg.replica_validity_factor != 0 && self.data_age() > max_age && !manual {
            self.log_cant_failover(CantFailover::DataAge);
            return;
        }

        let auth_age = self.election.time.map(|t| now.saturating_sub(t));
        if auth_age.is_none_or(|age| age > retry) {
            let (rank, failed_rank) = (self.replica_rank(), self.failed_master_rank());
            let (fixed, rank_step, failed_step) = self.election_delays();
            // The best-placed replica needs no random part: its siblings wait for their rank.
            let jitter = if rank == 0 { 0 } else { self.rng.below(fixed) };
            let e = &mut self.election;
            e.voters.clear();
            e.sent = false;
            e.rank = rank;
            e.failed_rank = failed_rank;
            e.time = Some(now + fixed + jitter + rank as u64 * rank_step + failed_rank as u64 * failed_step);
            if self.mf.end != 0 {
                e.time = Some(now);
                e.rank = 0;
                e.failed_rank = 0;
                self.todo |= todo::HANDLE_FAILOVER;
            }
            let delay = self.election.time.unwrap_or(now) - now;
            let (rank, offset) = (self.election.rank, self.my_repl_offset);
            self.log(
                LogLevel::Warning,
                format!("Start of election delayed for {delay} milliseconds (rank #{rank}, offset {offset})."),
            );
            // Siblings learn our offset now, so they rank themselves against it.
            self.broadcast_pong_to(PongTo::MyShardReplicas);
            return;
        }
        let auth_age = auth_age.unwrap_or(0);

        // A sibling may have advertised a better offset since we scheduled, or another
        // master placed before ours may have failed too: step back.
        if !self.election.sent && self.mf.end == 0 {
            let (_, rank_step, failed_step) = self.election_delays();
            let rank = self.replica_rank();
            if rank > self.election.rank {
                let added = (rank - self.election.rank) as u64 * rank_step;
                self.election.time = self.election.time.map(|t| t + added);
                self.election.rank = rank;
                self.log(
                    LogLevel::Warning,
                    format!("Replica rank updated to #{rank}, added {added} milliseconds of delay."),
                );
            }
            let failed_rank = self.failed_master_rank();
            if failed_rank > self.election.failed_rank {
                let added = (failed_rank - self.election.failed_rank) as u64 * failed_step;
                self.election.time = self.election.time.map(|t| t + added);
                self.election.failed_rank = failed_rank;
                self.log(
                    LogLevel::Verbose,
                    format!("Failed master rank updated to #{failed_rank}, added {added} milliseconds of delay."),
                );
            }
        }

        if self.election.time.is_some_and(|t| now < t) {
            self.log_cant_failover(CantFailover::WaitingDelay);
            return;
        }
        if auth_age > timeout {
            self.log_cant_failover(CantFailover::Expired);
            return;
        }

        if !self.election.sent {
            self.current_epoch += 1;
            self.election.epoch = self.current_epoch;
            self.election.sent = true;
            self.election.size = self.size;
            let e = self.current_epoch;
            self.log(LogLevel::Warning, format!("Starting a failover election for epoch {e}."));
            self.request_failover_auth();
            self.todo |= todo::SAVE_CONFIG | todo::UPDATE_STATE | todo::FSYNC_CONFIG;
            return;
        }

        // Not in Redis: the cluster size counted when the votes were asked for still
        // counts. A replica whose view loses a master meanwhile (one turned replica while
        // the new owner of its slots is still unknown here) would otherwise need fewer votes
        // than the masters it asked, and could win an epoch another replica won (chaos found
        // it).
        let quorum = self.size.max(self.election.size) / 2 + 1;
        if self.election.voters.len() >= quorum {
            self.log(LogLevel::Warning, "Failover election won: I'm the new master.".into());
            let epoch = self.election.epoch;
            let me = self.myself;
            if self.me().config_epoch < epoch {
                self.node_mut(me).config_epoch = epoch;
                self.log(LogLevel::Warning, format!("configEpoch set to {epoch} after successful failover"));
            }
            // The winner's own vote in this epoch is spent: as a master it must not help a
            // second candidate win the same epoch (Redis lets it, see the module docs).
            self.last_vote_epoch = self.last_vote_epoch.max(epoch);
            self.replace_my_master();
        } else {
            self.log_cant_failover(CantFailover::WaitingVotes);
        }
    }

    fn log_cant_failover(&mut self, reason: CantFailover) {
        let now = self.now;
        let e = &mut self.election;
        if reason == e.cant_reason && e.cant_logged_at.is_some_and(|t| now.saturating_sub(t) < CANT_FAILOVER_RELOG_MS) {
            return;
        }
        e.cant_reason = reason;
        // Only a replica stalled for a while is worth a line.
        let quiet = self.cfg.node_timeout_ms + 5000;
        let me = self.me();
        if let Some(m) = me.master.map(|m| self.node(m)) {
            if m.failed() && now.saturating_sub(m.fail_time) < quiet {
                return;
            }
        }
        let text = match reason {
            CantFailover::DataAge => {
                "Disconnected from master for longer than allowed. Please check the \
                 'cluster-replica-validity-factor' configuration option."
            }
            CantFailover::WaitingDelay => "Waiting the delay before I can start a new failover.",
            CantFailover::Expired => "Failover attempt expired.",
            CantFailover::WaitingVotes => "Waiting for votes, but majority still not reached.",
            CantFailover::None => "Unknown reason code.",
        };
        self.election.cant_logged_at = Some(now);
        self.log(LogLevel::Warning, format!("Currently unable to failover: {text}"));
    }

    /// Asks every node for its vote; only masters serving slots answer.
    fn request_failover_auth(&mut self) {
        let mut header = self.build_header();
        if self.mf.end != 0 {
            header.mflags |= mflags::FORCEACK;
        }
        self.broadcast(Message { header, body: Body::FailoverAuthRequest });
    }

    /// A master's answer to a vote request from `node` (see the module documentation).
    pub(super) fn send_failover_auth_if_needed(&mut self, node: Idx, hdr: &Header) {
        let me = self.me();
        if me.is_slave() || me.numslots == 0 {
            return;
        }
        let nid = self.node(node).id;
        let deny = |st: &mut ClusterState, why: String| {
            st.log(LogLevel::Warning, format!("Failover auth denied to {nid}: {why}"));
        };
        if hdr.current_epoch < self.current_epoch {
            let cur = self.current_epoch;
            return deny(self, format!("reqEpoch ({}) < curEpoch({cur})", hdr.current_epoch));
        }
        if self.last_vote_epoch == self.current_epoch {
            let cur = self.current_epoch;
            return deny(self, format!("already voted for epoch {cur}"));
        }
        // Not in Redis: an epoch some node already holds as its config epoch was taken
        // without agreement (a slot migration's end, a takeover, a collision) or won: a new
        // winner of it would tie with that node over the slots.
        if let Some(holder) = self.nodes.iter().flatten().find(|n| n.config_epoch >= hdr.current_epoch) {
            let hid = holder.id;
            return deny(self, format!("epoch {} is already the config epoch of {hid}", hdr.current_epoch));
        }
        let force = hdr.mflags & mflags::FORCEACK != 0;
        let n = self.node(node);
        let Some(master) = n.master.filter(|_| !n.is_master()) else {
            let why = if n.is_master() { "it is a master node" } else { "I don't know its master" };
            return deny(self, why.into());
        };
        if !self.node(master).failed() && !force {
            return deny(self, "its master is up".into());
        }
        // Not needed for safety, but keeps one master's replicas from taking turns.
        let voted = self.node(master).voted_time;
        let wait = self.cfg.node_timeout_ms * 2;
        let since = self.now.saturating_sub(voted);
        if voted != 0 && since < wait {
            return deny(self, format!("can't vote about this master before {} milliseconds", wait - since));
        }
        for slot in hdr.slots.iter() {
            if self.slot_unclaimed(slot) {
                continue;
            }
            let Some(owner) = self.slots[slot as usize] else { continue };
            let epoch = self.node(owner).config_epoch;
            if epoch > hdr.config_epoch {
                return deny(self, format!("slot {slot} epoch ({epoch}) > reqEpoch ({})", hdr.config_epoch));
            }
        }

        self.last_vote_epoch = self.current_epoch;
        let now = self.now;
        self.node_mut(master).voted_time = now;
        self.todo |= todo::SAVE_CONFIG | todo::FSYNC_CONFIG;
        if let Some(link) = self.node(node).link {
            let header = self.build_header();
            self.send(link, Arc::new(Message { header, body: Body::FailoverAuthAck }));
        }
        let e = self.current_epoch;
        self.log(LogLevel::Warning, format!("Failover auth granted to {nid} for epoch {e}"));
    }

    /// A vote from `voter`, whose `currentEpoch` was `voter_epoch` when it sent it.
    pub(super) fn on_failover_auth_ack(&mut self, voter: Idx, voter_epoch: u64) {
        let v = self.node(voter);
        if v.is_master() && v.numslots > 0 && self.election.sent && voter_epoch >= self.election.epoch {
            let id = v.id;
            self.election.voters.insert(id);
            self.todo |= todo::HANDLE_FAILOVER;
        }
    }

    /// The end of every failover: this replica becomes a master serving its old master's
    /// slots, and says so to everyone. The caller has set the new config epoch.
    pub(crate) fn replace_my_master(&mut self) {
        let me = self.myself;
        let Some(old) = self.me().master.filter(|_| self.me().is_slave()) else { return };
        self.set_node_as_master(me);
        let former_master = self.node(old).id;
        self.out.push(Output::Promoted { former_master });
        let slots: Vec<u16> = self.node(old).slots.iter().collect();
        for slot in slots {
            self.del_slot(slot);
            self.add_slot(me, slot);
        }
        self.update_state();
        self.todo |= todo::SAVE_CONFIG | todo::FSYNC_CONFIG;
        self.broadcast_pong_to(PongTo::All);
        self.reset_manual_failover();
    }
}
