//! Replica failover: the election a replica runs to replace its failed master, and the
//! votes masters give (Redis's `clusterHandleSlaveFailover`, `clusterGetSlaveRank`,
//! `clusterSendFailoverAuthIfNeeded`, `clusterFailoverReplaceYourMaster`).
//!
//! # The election, replica side
//!
//! Checked every tick (and at once when a vote arrives or a manual failover may start),
//! while this node is a replica whose master serves slots and is FAIL — or a manual
//! failover is under way — and, for an automatic one, `replica_no_failover` is off:
//!
//! 1. **Data age.** With `replica_validity_factor` set, a replica whose master link has been
//!    down for longer than `repl_ping_replica_period + node_timeout × factor` (not counting
//!    the first node timeout, the time it took to flag the master) holds data too old to
//!    serve and does not run (manual failovers skip the check).
//! 2. **Schedule.** The election starts at `now + 500 + random(0..500) + rank × 1000` ms:
//!    the fixed part lets the FAIL verdict reach every master, the random part keeps
//!    replicas of one master apart, and the *rank* — how many other failover-capable
//!    replicas of the same master advertise a greater replication offset — lets the most
//!    up-to-date replica go first. The schedule is announced to the sibling replicas with a
//!    PONG (so they rank against our offset), and pushed back if a better sibling offset
//!    arrives before the election starts. A manual failover starts at once, rank 0.
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

    /// How many failover-capable replicas of our master advertise a greater offset.
    fn replica_rank(&self) -> usize {
        let Some(master) = self.me().master else { return 0 };
        let mine = self.my_repl_offset;
        self.node(master)
            .replicas
            .iter()
            .filter(|&&r| r != self.myself)
            .map(|&r| self.node(r))
            .filter(|r| !r.flags.intersects(NodeFlags::NOFAILOVER) && r.repl_offset > mine)
            .count()
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
            let rank = self.replica_rank();
            let e = &mut self.election;
            e.voters.clear();
            e.sent = false;
            e.rank = rank;
            e.time = Some(now + 500 + self.rng.below(500) + rank as u64 * 1000);
            if self.mf.end != 0 {
                e.time = Some(now);
                e.rank = 0;
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

        // A sibling may have advertised a better offset since we scheduled: step back.
        if !self.election.sent && self.mf.end == 0 {
            let rank = self.replica_rank();
            if rank > self.election.rank {
                let added = (rank - self.election.rank) as u64 * 1000;
                self.election.time = self.election.time.map(|t| t + added);
                self.election.rank = rank;
                self.log(
                    LogLevel::Warning,
                    format!("Replica rank updated to #{rank}, added {added} milliseconds of delay."),
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
