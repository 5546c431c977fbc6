//! Manual failover (`CLUSTER FAILOVER`), Redis's `clusterHandleManualFailover` and the
//! MFSTART exchange.
//!
//! The default form loses no write:
//!
//! 1. The replica (told `CLUSTER FAILOVER`) sets a deadline of [`MF_TIMEOUT_MS`] and sends
//!    MFSTART to its master.
//! 2. The master pauses client writes ([`Output::PauseWrites`], for twice the timeout at
//!    most), sets the same deadline, and pings the replica at once and on every tick with
//!    the PAUSED message flag and its — now final — replication offset.
//! 3. The replica takes the first offset flagged PAUSED from its master and waits until its
//!    own processed offset (fed by [`ClusterState::set_repl_offset`]) reaches it.
//! 4. It then runs the ordinary election at once (rank 0, no data-age check) with the
//!    FORCEACK flag, so that masters vote although its master is not failing.
//! 5. On winning it claims the slots; the old master learns of the greater epoch, turns into
//!    a replica of the winner and resumes writes ([`Output::ResumeWrites`]): clients that
//!    were held get redirected to the new master.
//!
//! A failover not done by the deadline is abandoned on both sides (writes resume). FORCE
//! skips steps 1–3 (for a master that is down or unreachable); TAKEOVER skips the election
//! too: the replica takes a new config epoch without agreement (always, where Redis keeps
//! its own epoch when that is already the greatest: a replica's own epoch is a leftover
//! that may tie with a master's) and claims the slots, which is safe only when no other
//! node may be promoting for the same slots at the same time.

use super::*;
use crate::wire::mflags;

/// How long a manual failover may take (Redis's `CLUSTER_MF_TIMEOUT`).
pub const MF_TIMEOUT_MS: u64 = 5000;
/// The master pauses writes for this many times the timeout at most.
const MF_PAUSE_MULT: u64 = 2;

/// Manual failover state, on the replica and on the master (Redis's `mf_*`).
#[derive(Clone, Debug, Default)]
pub(crate) struct ManualFailover {
    /// Deadline (local ms); 0 when no manual failover is under way.
    pub end: u64,
    /// Replica: the master's offset was reached, the election may run.
    pub can_start: bool,
    /// Master: the replica that asked (writes are paused while this is set).
    pub replica: Option<Idx>,
    /// Replica: the offset the paused master announced.
    pub master_offset: Option<u64>,
}

/// How `CLUSTER FAILOVER` was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FailoverMode {
    Default,
    Force,
    Takeover,
}

impl ClusterState {
    /// Ends any manual failover; a master resumes writes.
    pub(crate) fn reset_manual_failover(&mut self) {
        if self.mf.replica.is_some() {
            self.out.push(Output::ResumeWrites);
        }
        self.mf = ManualFailover::default();
    }

    pub(super) fn manual_failover_check_timeout(&mut self) {
        if self.mf.end != 0 && self.mf.end < self.now {
            self.log(LogLevel::Warning, "Manual failover timed out.".into());
            self.reset_manual_failover();
        }
    }

    /// Replica: lets the election start once our offset reached the paused master's.
    pub(super) fn handle_manual_failover(&mut self) {
        self.todo &= !todo::HANDLE_MANUAL_FAILOVER;
        if self.mf.end == 0 || self.mf.can_start {
            return;
        }
        let Some(target) = self.mf.master_offset else { return };
        // Redis waits for equality; the master is paused, so reaching it is the same.
        if self.my_repl_offset >= target {
            self.mf.can_start = true;
            self.log(LogLevel::Warning, "All master replication stream processed, manual failover can start.".into());
            self.todo |= todo::HANDLE_FAILOVER;
        }
    }

    /// Replica: a message from our master flagged PAUSED carries the offset to reach.
    pub(super) fn note_paused_master_offset(&mut self, sender: Idx, hdr: &Header) {
        if self.mf.end != 0
            && self.me().is_slave()
            && self.me().master == Some(sender)
            && hdr.mflags & mflags::PAUSED != 0
            && self.mf.master_offset.is_none()
        {
            self.mf.master_offset = Some(hdr.repl_offset);
            self.todo |= todo::HANDLE_MANUAL_FAILOVER;
            self.log(
                LogLevel::Warning,
                format!("Received replication offset for paused master manual failover: {}", hdr.repl_offset),
            );
        }
    }

    /// Master: one of our replicas asks for a manual failover.
    pub(super) fn on_mfstart(&mut self, sender: Idx, link: LinkId) {
        if self.node(sender).master != Some(self.myself) || !self.me().is_master() {
            return;
        }
        if self.migration_holds_writes {
            let id = self.node(sender).id;
            self.log(
                LogLevel::Warning,
                format!(
                    "Manual failover requested by replica {id} refused: a slot migration holds this master's writes."
                ),
            );
            return;
        }
        self.reset_manual_failover();
        let now = self.now;
        self.mf.end = now + MF_TIMEOUT_MS;
        self.mf.replica = Some(sender);
        self.out.push(Output::PauseWrites { until_ms: now + MF_TIMEOUT_MS * MF_PAUSE_MULT });
        let id = self.node(sender).id;
        self.log(LogLevel::Warning, format!("Manual failover requested by replica {id}."));
        // The offset the replica waits for, at once.
        self.send_ping(link, MsgType::Ping);
    }

    /// `CLUSTER FAILOVER [FORCE|TAKEOVER]` once its preconditions hold.
    pub(crate) fn start_manual_failover(&mut self, mode: FailoverMode) {
        self.reset_manual_failover();
        self.mf.end = self.now + MF_TIMEOUT_MS;
        match mode {
            FailoverMode::Takeover => {
                self.log(LogLevel::Warning, "Taking over the master (user request).".into());
                // Redis bumps only when our epoch is not already the greatest; but a
                // replica's own epoch is a leftover from its master days, which may tie with
                // a master's, so a takeover always takes a new one and its claim wins.
                self.take_new_config_epoch();
                self.replace_my_master();
            }
            FailoverMode::Force => {
                self.log(LogLevel::Warning, "Forced failover user request accepted.".into());
                self.mf.can_start = true;
                self.todo |= todo::HANDLE_FAILOVER;
            }
            FailoverMode::Default => {
                self.log(LogLevel::Warning, "Manual failover user request accepted.".into());
                if let Some(link) = self.me().master.and_then(|m| self.node(m).link) {
                    let header = self.build_header();
                    self.send(link, Arc::new(Message { header, body: Body::MfStart }));
                }
            }
        }
    }
}
