//! The CLUSTER subcommands that change (or read live) bus state, with Redis 7.0's checks,
//! in its order, and its error words.
//!
//! Arguments arrive raw (as the client sent them) because several errors quote them or
//! depend on where parsing fails. Facts about the keyspace the bus cannot know travel with
//! the command (`db_empty`, `keys_in_slot`). Read-only subcommands (NODES, SLOTS, SHARDS,
//! INFO, MYID, REPLICAS) are answered from a [`ClusterView`](crate::view::ClusterView).

use crate::flags::NodeFlags;
use crate::id::NodeId;
use crate::slots::SLOTS;
use crate::state::{todo, ClusterState, FailoverMode, LogLevel, Node, Output};
use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `CLUSTER MEET <ip> <port> [<bus-port>]`
    Meet { ip: Vec<u8>, port: Vec<u8>, bus_port: Option<Vec<u8>> },
    /// `CLUSTER FORGET <node-id>`
    Forget(Vec<u8>),
    /// `CLUSTER ADDSLOTS <slot> ...`
    AddSlots(Vec<Vec<u8>>),
    /// `CLUSTER DELSLOTS <slot> ...`
    DelSlots(Vec<Vec<u8>>),
    /// `CLUSTER ADDSLOTSRANGE <start> <end> ...`
    AddSlotsRange(Vec<Vec<u8>>),
    /// `CLUSTER DELSLOTSRANGE <start> <end> ...`
    DelSlotsRange(Vec<Vec<u8>>),
    /// `CLUSTER SETSLOT <slot> IMPORTING|MIGRATING|NODE <node-id> | STABLE`: `args` are the
    /// arguments after SETSLOT; `keys_in_slot` counts this node's keys in that slot.
    SetSlot { args: Vec<Vec<u8>>, keys_in_slot: u64 },
    /// `CLUSTER REPLICATE <node-id>`
    Replicate { node: Vec<u8>, db_empty: bool },
    /// `CLUSTER BUMPEPOCH`
    BumpEpoch,
    /// `CLUSTER SET-CONFIG-EPOCH <epoch>`
    SetConfigEpoch(Vec<u8>),
    /// `CLUSTER RESET [HARD|SOFT]`
    Reset { mode: Option<Vec<u8>>, db_empty: bool },
    /// `CLUSTER FLUSHSLOTS`
    FlushSlots { db_empty: bool },
    /// `CLUSTER COUNT-FAILURE-REPORTS <node-id>`
    CountFailureReports(Vec<u8>),
    /// `CLUSTER SAVECONFIG`
    SaveConfig,
    /// `CLUSTER FAILOVER [FORCE|TAKEOVER]`: `option` is the raw third argument, if any.
    Failover { option: Option<Vec<u8>> },
    /// A whole-slot migration's step on its target, for many slots at once (ferrokv's
    /// `CLUSTER MIGRATION-SYNC <id> IMPORTING|CLAIM|STABLE ...`).
    SlotMigration { op: SlotMigrationOp, slots: Vec<u16> },
}

/// What [`Command::SlotMigration`] does to each of its slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotMigrationOp {
    /// Marks the slots importing from this node (raw id), as `SETSLOT IMPORTING`.
    Importing(Vec<u8>),
    /// Takes the slots, as `SETSLOT <slot> NODE <myself>` of an importing slot, but
    /// with one epoch bump, one config save and one PONG broadcast for all of them;
    /// answers the config epoch of the claim.
    Claim,
    /// Clears the slots' importing/migrating marks, as `SETSLOT STABLE`.
    Stable,
    /// On the source: the target (raw id) claimed the slots at this config epoch; applied
    /// as that node's UPDATE message would be, without waiting for the bus to carry it.
    Handoff { node: Vec<u8>, config_epoch: u64 },
}

impl Command {
    /// Whether the answer waits for nodes.conf to be saved, as Redis answers a CLUSTER
    /// change after saving it. Not a migration's handoff: it stands for the claim the
    /// bus would carry anyway (a source that crashes before saving it learns it again
    /// from the target), and the write pause waits for its answer.
    pub fn reply_waits_for_save(&self) -> bool {
        !matches!(self, Command::SlotMigration { op: SlotMigrationOp::Handoff { .. }, .. })
    }
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Ok,
    /// A status line, e.g. `BUMPED 5`.
    Status(String),
    Integer(i64),
}

/// Redis's `string2ll`: an optional `-`, no leading zeros, no `+`, no spaces, in range.
pub fn parse_i64_strict(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits[0] == b'0' && (digits.len() > 1 || neg) {
        return None;
    }
    let mut v: i128 = 0;
    for d in digits {
        v = v * 10 + (d - b'0') as i128;
    }
    let v = if neg { -v } else { v };
    i64::try_from(v).ok()
}

/// A slot argument (`getSlotOrReply`): an integer in `0..16384`.
pub fn parse_slot(b: &[u8]) -> Option<u16> {
    parse_i64_strict(b).filter(|s| (0..SLOTS as i64).contains(s)).map(|s| s as u16)
}

const INVALID_SLOT: &str = "ERR Invalid or out of range slot";

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl ClusterState {
    pub(crate) fn command(&mut self, cmd: Command) -> Result<Reply, String> {
        match cmd {
            Command::Meet { ip, port, bus_port } => self.cmd_meet(&ip, &port, bus_port.as_deref()),
            Command::Forget(id) => self.cmd_forget(&id),
            Command::AddSlots(args) => self.cmd_slots(&args, false),
            Command::DelSlots(args) => self.cmd_slots(&args, true),
            Command::AddSlotsRange(args) => self.cmd_slots_range(&args, false),
            Command::DelSlotsRange(args) => self.cmd_slots_range(&args, true),
            Command::SetSlot { args, keys_in_slot } => self.cmd_setslot(&args, keys_in_slot),
            Command::SlotMigration { op, slots } => self.cmd_slot_migration(op, &slots),
            Command::Replicate { node, db_empty } => self.cmd_replicate(&node, db_empty),
            Command::BumpEpoch => {
                let bumped = self.bump_config_epoch_without_consensus();
                let word = if bumped { "BUMPED" } else { "STILL" };
                Ok(Reply::Status(format!("{word} {}", self.me().config_epoch)))
            }
            Command::SetConfigEpoch(arg) => self.cmd_set_config_epoch(&arg),
            Command::Reset { mode, db_empty } => {
                let hard = match mode.as_deref() {
                    None => false,
                    Some(m) if m.eq_ignore_ascii_case(b"hard") => true,
                    Some(m) if m.eq_ignore_ascii_case(b"soft") => false,
                    Some(_) => return Err("ERR syntax error".into()),
                };
                if self.me().is_master() && !db_empty {
                    return Err("ERR CLUSTER RESET can't be called with master nodes containing keys".into());
                }
                self.reset(hard);
                Ok(Reply::Ok)
            }
            Command::FlushSlots { db_empty } => {
                if !db_empty {
                    return Err("ERR DB must be empty to perform CLUSTER FLUSHSLOTS.".into());
                }
                let me = self.myself;
                self.del_node_slots(me);
                self.todo |= todo::UPDATE_STATE | todo::SAVE_CONFIG;
                Ok(Reply::Ok)
            }
            Command::CountFailureReports(id) => match self.lookup_bytes(&id) {
                None => Err(format!("ERR Unknown node {}", lossy(&id))),
                Some(n) => Ok(Reply::Integer(self.failure_reports_count(n) as i64)),
            },
            Command::SaveConfig => {
                self.todo |= todo::SAVE_CONFIG | todo::FSYNC_CONFIG;
                Ok(Reply::Ok)
            }
            Command::Failover { option } => self.cmd_failover(option.as_deref()),
        }
    }

    /// Checks `CLUSTER FAILOVER`'s preconditions in Redis's order and starts it.
    fn cmd_failover(&mut self, option: Option<&[u8]>) -> Result<Reply, String> {
        let mode = match option {
            None => FailoverMode::Default,
            Some(o) if o.eq_ignore_ascii_case(b"force") => FailoverMode::Force,
            Some(o) if o.eq_ignore_ascii_case(b"takeover") => FailoverMode::Takeover,
            Some(_) => return Err("ERR syntax error".into()),
        };
        let me = self.me();
        if me.is_master() {
            return Err("ERR You should send CLUSTER FAILOVER to a replica".into());
        }
        let Some(master) = me.master else {
            return Err("ERR I'm a replica but my master is unknown to me".into());
        };
        let m = self.node(master);
        if mode == FailoverMode::Default && (m.failed() || m.link.is_none()) {
            return Err("ERR Master is down or failed, please use CLUSTER FAILOVER FORCE".into());
        }
        self.start_manual_failover(mode);
        Ok(Reply::Ok)
    }

    fn cmd_meet(&mut self, ip: &[u8], port: &[u8], bus_port: Option<&[u8]>) -> Result<Reply, String> {
        let Some(p) = parse_i64_strict(port) else {
            return Err(format!("ERR Invalid TCP base port specified: {}", lossy(port)));
        };
        let cp = match bus_port {
            Some(b) => match parse_i64_strict(b) {
                Some(c) => c,
                None => return Err(format!("ERR Invalid TCP bus port specified: {}", lossy(b))),
            },
            None => p + 10000,
        };
        let invalid = || format!("ERR Invalid node address specified: {}:{}", lossy(ip), lossy(port));
        let addr: IpAddr = std::str::from_utf8(ip).ok().and_then(|s| s.parse().ok()).ok_or_else(invalid)?;
        if !(1..=65535).contains(&p) || !(1..=65535).contains(&cp) {
            return Err(invalid());
        }
        let norm = addr.to_string();
        let (p, cp) = (p as u16, cp as u16);
        let in_progress = self
            .nodes
            .iter()
            .flatten()
            .any(|n| n.in_handshake() && n.ip.eq_ignore_ascii_case(&norm) && n.port == p && n.cport == cp);
        if !in_progress {
            let id = NodeId::random(&mut self.rng);
            let mut n = Node::new(id, NodeFlags::HANDSHAKE | NodeFlags::MEET, self.now);
            n.ip = norm;
            n.port = p;
            n.cport = cp;
            self.add_node(n);
        }
        Ok(Reply::Ok)
    }

    fn cmd_forget(&mut self, raw: &[u8]) -> Result<Reply, String> {
        let Some(n) = self.lookup_bytes(raw) else {
            return Err(format!("ERR Unknown node {}", lossy(raw)));
        };
        if n == self.myself {
            return Err("ERR I tried hard but I can't forget myself...".into());
        }
        if self.me().is_slave() && self.me().master == Some(n) {
            return Err("ERR Can't forget my master!".into());
        }
        let id = self.node(n).id;
        self.blacklist_add(id);
        self.del_node(n);
        self.todo |= todo::UPDATE_STATE | todo::SAVE_CONFIG;
        Ok(Reply::Ok)
    }

    /// Checks one slot of an ADDSLOTS/DELSLOTS family command (Redis's
    /// `checkSlotAssignmentsOrReply`).
    fn check_slot(&self, slot: u16, del: bool, seen: &mut [bool]) -> Result<(), String> {
        let owner = self.slots[slot as usize];
        if del && owner.is_none() {
            return Err(format!("ERR Slot {slot} is already unassigned"));
        }
        if !del && owner.is_some() {
            return Err(format!("ERR Slot {slot} is already busy"));
        }
        if std::mem::replace(&mut seen[slot as usize], true) {
            return Err(format!("ERR Slot {slot} specified multiple times"));
        }
        Ok(())
    }

    fn apply_slots(&mut self, seen: &[bool], del: bool) {
        let me = self.myself;
        for (j, _) in seen.iter().enumerate().filter(|(_, s)| **s) {
            let slot = j as u16;
            // Now the real owner: any importing state ends.
            self.importing_from.remove(&slot);
            if del {
                self.del_slot(slot);
            } else {
                self.add_slot(me, slot);
            }
        }
        self.todo |= todo::UPDATE_STATE | todo::SAVE_CONFIG;
    }

    fn cmd_slots(&mut self, args: &[Vec<u8>], del: bool) -> Result<Reply, String> {
        let slots = args.iter().map(|a| parse_slot(a)).collect::<Option<Vec<u16>>>().ok_or(INVALID_SLOT)?;
        let mut seen = vec![false; SLOTS];
        for &s in &slots {
            self.check_slot(s, del, &mut seen)?;
        }
        self.apply_slots(&seen, del);
        Ok(Reply::Ok)
    }

    fn cmd_slots_range(&mut self, args: &[Vec<u8>], del: bool) -> Result<Reply, String> {
        if args.len() % 2 == 1 {
            let name = if del { "delslotsrange" } else { "addslotsrange" };
            return Err(format!("ERR wrong number of arguments for 'cluster|{name}' command"));
        }
        let mut seen = vec![false; SLOTS];
        for pair in args.chunks(2) {
            let start = parse_slot(&pair[0]).ok_or(INVALID_SLOT)?;
            let end = parse_slot(&pair[1]).ok_or(INVALID_SLOT)?;
            if start > end {
                return Err(format!("ERR start slot number {start} is greater than end slot number {end}"));
            }
            for s in start..=end {
                self.check_slot(s, del, &mut seen)?;
            }
        }
        self.apply_slots(&seen, del);
        Ok(Reply::Ok)
    }

    fn cmd_setslot(&mut self, args: &[Vec<u8>], keys_in_slot: u64) -> Result<Reply, String> {
        if self.me().is_slave() {
            return Err("ERR Please use SETSLOT only with masters.".into());
        }
        let slot = args.first().and_then(|a| parse_slot(a)).ok_or(INVALID_SLOT)?;
        let action = args.get(1).map(|a| a.to_ascii_lowercase()).unwrap_or_default();
        let me = self.myself;
        let owner = self.slots[slot as usize];
        let target = |st: &ClusterState, unknown: &str| -> Result<usize, String> {
            let raw = &args[2];
            let n = st.lookup_bytes(raw).ok_or_else(|| format!("ERR {unknown} {}", lossy(raw)))?;
            if st.node(n).is_slave() {
                return Err("ERR Target node is not a master".into());
            }
            Ok(n)
        };
        match (action.as_slice(), args.len()) {
            (b"migrating", 3) => {
                if owner != Some(me) {
                    return Err(format!("ERR I'm not the owner of hash slot {slot}"));
                }
                let n = target(self, "I don't know about node")?;
                self.migrating_to.insert(slot, n);
            }
            (b"importing", 3) => {
                if owner == Some(me) {
                    return Err(format!("ERR I'm already the owner of hash slot {slot}"));
                }
                let n = target(self, "I don't know about node")?;
                self.importing_from.insert(slot, n);
                self.task_importing.remove(slot);
            }
            (b"stable", 2) => {
                self.importing_from.remove(&slot);
                self.migrating_to.remove(&slot);
            }
            (b"node", 3) => {
                let n = target(self, "Unknown node")?;
                if owner == Some(me) && n != me && keys_in_slot != 0 {
                    return Err(format!(
                        "ERR Can't assign hashslot {slot} to a different node while I still hold keys for this hash slot."
                    ));
                }
                if keys_in_slot == 0 {
                    self.migrating_to.remove(&slot);
                }
                let was_mine = owner == Some(me);
                self.del_slot(slot);
                self.add_slot(n, slot);
                if was_mine && n != me && self.me().numslots == 0 && self.cfg.allow_replica_migration {
                    let id = self.node(n).id;
                    self.log(
                        LogLevel::Warning,
                        format!("Configuration change detected. Reconfiguring myself as a replica of {id}"),
                    );
                    self.set_my_master(n);
                    self.todo |= todo::SAVE_CONFIG | todo::UPDATE_STATE | todo::FSYNC_CONFIG;
                }
                if n == me && self.importing_from.contains_key(&slot) {
                    // A manual migration ends here: claim the slot under a new epoch so the
                    // change wins everywhere, and say so at once.
                    if self.bump_config_epoch_without_consensus() {
                        self.log(LogLevel::Warning, format!("configEpoch updated after importing slot {slot}"));
                    }
                    self.importing_from.remove(&slot);
                    self.broadcast_pong();
                }
            }
            _ => {
                return Err("ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP".into());
            }
        }
        self.todo |= todo::SAVE_CONFIG | todo::UPDATE_STATE;
        Ok(Reply::Ok)
    }

    fn cmd_slot_migration(&mut self, op: SlotMigrationOp, slots: &[u16]) -> Result<Reply, String> {
        if self.me().is_slave() {
            return Err("ERR Please use SETSLOT only with masters.".into());
        }
        let me = self.myself;
        match op {
            SlotMigrationOp::Handoff { node, config_epoch } => {
                let n = self.lookup_bytes(&node).ok_or_else(|| format!("ERR Unknown node {}", lossy(&node)))?;
                let mut bitmap = crate::slots::SlotBitmap::new();
                for &s in slots {
                    bitmap.insert(s);
                }
                self.apply_handoff(n, config_epoch, &bitmap);
                return Ok(Reply::Ok);
            }
            SlotMigrationOp::Importing(raw) => {
                let n =
                    self.lookup_bytes(&raw).ok_or_else(|| format!("ERR I don't know about node {}", lossy(&raw)))?;
                if self.node(n).is_slave() {
                    return Err("ERR Target node is not a master".into());
                }
                if let Some(s) = slots.iter().find(|&&s| self.slots[s as usize] == Some(me)) {
                    return Err(format!("ERR I'm already the owner of hash slot {s}"));
                }
                for &s in slots {
                    self.importing_from.insert(s, n);
                    self.task_importing.insert(s);
                }
                // The claim needs this node's config epoch to be the greatest. Taken now
                // (with its nodes.conf fsync) rather than in the claim, which runs inside
                // the source's write pause; the claim bumps again only if another node
                // took a greater one meanwhile.
                if self.bump_config_epoch_without_consensus() {
                    self.log(LogLevel::Warning, format!("configEpoch updated before importing {} slots", slots.len()));
                    self.broadcast_pong();
                }
            }
            SlotMigrationOp::Stable => {
                for &s in slots {
                    self.importing_from.remove(&s);
                    self.migrating_to.remove(&s);
                    self.task_importing.remove(s);
                }
            }
            SlotMigrationOp::Claim => {
                if let Some(s) = slots.iter().find(|&&s| !self.importing_from.contains_key(&s)) {
                    return Err(format!("ERR Slot {s} is not being imported by this node"));
                }
                // The snapshot came from the node the slots are imported from: if another
                // node serves one of them by now (its replica took over), its writes are
                // not in what was copied.
                if let Some(s) = slots.iter().find(|&&s| self.slots[s as usize] != self.importing_from.get(&s).copied())
                {
                    return Err(format!("ERR Slot {s} is no longer served by the node it is imported from"));
                }
                // A manual failover in progress here (as either side) would take an epoch
                // of its own; a claim now could collide with it.
                if self.mf.end != 0 {
                    return Err("ERR A manual failover is in progress".into());
                }
                for &s in slots {
                    self.del_slot(s);
                    self.add_slot(me, s);
                    self.importing_from.remove(&s);
                    self.task_importing.remove(s);
                }
                if self.bump_config_epoch_without_consensus() {
                    self.log(LogLevel::Warning, format!("configEpoch updated after importing {} slots", slots.len()));
                }
                self.broadcast_pong();
                // Saved before the reply but not fsynced, as Redis 7.0's `SETSLOT <slot>
                // NODE <myself>`: the fsync was most of the write pause on this machine.
                self.todo |= todo::SAVE_CONFIG | todo::UPDATE_STATE;
                return Ok(Reply::Integer(self.me().config_epoch as i64));
            }
        }
        self.todo |= todo::SAVE_CONFIG | todo::UPDATE_STATE;
        Ok(Reply::Ok)
    }

    fn cmd_replicate(&mut self, raw: &[u8], db_empty: bool) -> Result<Reply, String> {
        let Some(n) = self.lookup_bytes(raw) else {
            return Err(format!("ERR Unknown node {}", lossy(raw)));
        };
        if n == self.myself {
            return Err("ERR Can't replicate myself".into());
        }
        if self.node(n).is_slave() {
            return Err("ERR I can only replicate a master, not a replica.".into());
        }
        if self.me().is_master() && (self.me().numslots != 0 || !db_empty) {
            return Err("ERR To set a master the node must be empty and without assigned slots.".into());
        }
        self.set_my_master(n);
        self.todo |= todo::UPDATE_STATE | todo::SAVE_CONFIG;
        Ok(Reply::Ok)
    }

    fn cmd_set_config_epoch(&mut self, arg: &[u8]) -> Result<Reply, String> {
        let epoch = parse_i64_strict(arg).ok_or("ERR value is not an integer or out of range")?;
        if epoch < 0 {
            return Err(format!("ERR Invalid config epoch specified: {epoch}"));
        }
        if self.by_id.len() > 1 {
            return Err(
                "ERR The user can assign a config epoch only when the node does not know any other node.".into()
            );
        }
        if self.me().config_epoch != 0 {
            return Err("ERR Node config epoch is already non-zero".into());
        }
        let me = self.myself;
        self.node_mut(me).config_epoch = epoch as u64;
        self.log(LogLevel::Warning, format!("configEpoch set to {epoch} via CLUSTER SET-CONFIG-EPOCH"));
        self.current_epoch = self.current_epoch.max(epoch as u64);
        self.todo |= todo::UPDATE_STATE | todo::SAVE_CONFIG;
        Ok(Reply::Ok)
    }

    /// Forgets every other node and all slots; a replica becomes an empty master; HARD also
    /// takes a new ID and zeroes the epochs.
    fn reset(&mut self, hard: bool) {
        let me = self.myself;
        if self.me().is_slave() {
            self.set_node_as_master(me);
            self.out.push(Output::StopReplication { flush: true });
        }
        self.close_all_slots();
        self.reset_manual_failover();
        for j in 0..SLOTS as u16 {
            self.del_slot(j);
        }
        for i in self.node_indices() {
            if i != me {
                self.del_node(i);
            }
        }
        if hard {
            self.current_epoch = 0;
            self.last_vote_epoch = 0;
            self.node_mut(me).config_epoch = 0;
            self.log(LogLevel::Warning, "configEpoch set to 0 via CLUSTER RESET HARD".into());
            let old = self.me().id;
            let new = NodeId::random(&mut self.rng);
            self.by_id.remove(&old);
            self.node_mut(me).id = new;
            self.by_id.insert(new, me);
            self.log(LogLevel::Notice, format!("Node hard reset, now I'm {new}"));
        }
        self.todo |= todo::SAVE_CONFIG | todo::UPDATE_STATE | todo::FSYNC_CONFIG;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_integers_like_string2ll() {
        assert_eq!(parse_i64_strict(b"0"), Some(0));
        assert_eq!(parse_i64_strict(b"-12"), Some(-12));
        assert_eq!(parse_i64_strict(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64_strict(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [&b""[..], b"-", b"+1", b"01", b"-0", b" 1", b"1 ", b"9223372036854775808", b"1.0", b"abc"] {
            assert_eq!(parse_i64_strict(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_slot(b"16383"), Some(16383));
        assert_eq!(parse_slot(b"16384"), None);
        assert_eq!(parse_slot(b"-1"), None);
    }
}
