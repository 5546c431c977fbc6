//! `cluster fix` and `cluster import`, as redis-cli's `--cluster fix` and `--cluster
//! import` do them in the common cases.
//!
//! `fix` first closes open slots, then covers unassigned ones. For an open slot it
//! finds the owner (the one master that claims it or, when none or several do, the
//! master with the most keys in it, given the slot with ADDSLOTS; the other claimants
//! are set importing from it), then:
//! 1. one node migrating and one importing: finish the move (`reshard` of one slot);
//! 2. none migrating, some importing (or holding keys without owning the slot): carry
//!    their keys to the owner, close the slot on them, and point every master at the
//!    owner;
//! 3. one migrating, several importing without keys: finish the move to the importing
//!    node the migrating one names, close the others (or close all if none is named);
//! 4. one migrating, none importing, and the migrating node owns the slot or has no
//!    key of it: close it (a reshard interrupted before keys moved).
//!
//! Anything else is reported and left alone. An unassigned slot goes to the one master
//! that holds keys of it, to the one with the most keys (the others' keys carried to
//! it) when several do, or to the masters in turn when none does.
//!
//! `import HOST:PORT --from SRC`: SCANs a standalone node and MIGRATEs its keys, in
//! batches, each to the master of its slot (COPY keeps them on the source, REPLACE
//! overwrites keys the cluster has).

use std::collections::BTreeSet;

use ferrokv_resp::Value;

use super::mover::{MoveOptions, Progress};
use super::reshard::MoveArgs;
use super::{confirm, info_field, Cluster};
use crate::conn::{describe, Conn, Endpoint, Handshake};

/// Redis's hash slot of a key: CRC16/XMODEM of the key or of its non-empty `{tag}`.
pub fn key_slot(key: &[u8]) -> u16 {
    let mut k = key;
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                k = &key[open + 1..open + 1 + len];
            }
        }
    }
    let mut crc: u16 = 0;
    for &b in k {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc % 16384
}

impl Cluster {
    fn names(&self, list: &[usize]) -> String {
        list.iter().map(|&i| self.members[i].endpoint.to_string()).collect::<Vec<_>>().join(",")
    }

    /// The master with the most keys in `slot` (the first master when none has any).
    fn most_keys(&mut self, slot: u16, among: &[usize]) -> Result<Option<usize>, String> {
        let mut best: Option<(usize, i64)> = None;
        for &i in among {
            let n = self.count_keys(i, slot)?;
            if best.is_none_or(|(_, b)| n > b) {
                best = Some((i, n));
            }
        }
        Ok(best.map(|(i, _)| i))
    }

    /// ADDSLOTS, then BUMPEPOCH so that the claim wins over stale ones.
    fn claim(&mut self, at: usize, slot: u16) -> Result<(), String> {
        let s = slot.to_string();
        self.members[at].ok(&["CLUSTER", "ADDSLOTS", &s])?;
        let _ = self.members[at].call(&["CLUSTER", "BUMPEPOCH"]);
        self.members[at].me_mut().slots.insert(slot);
        Ok(())
    }

    fn fix_open_slot(&mut self, slot: u16, opts: &MoveOptions) -> Result<(), String> {
        say!(">>> Fixing open slot {slot}");
        let masters: Vec<usize> = self.masters().collect();
        let mut owners = Vec::new();
        for &i in &masters {
            if self.members[i].me().slots.contains(slot) {
                owners.push(i);
            } else if self.count_keys(i, slot)? > 0 {
                say!("*** Found keys about slot {slot} in non-owner node {}!", self.members[i].endpoint);
                owners.push(i);
            }
        }
        let mut owner = if owners.len() == 1 { Some(owners[0]) } else { None };
        let (mut migrating, mut importing) = (Vec::new(), Vec::new());
        for &i in &masters {
            let me = self.members[i].me();
            if me.migrating.iter().any(|(s, _)| *s == slot) {
                migrating.push(i);
            } else if me.importing.iter().any(|(s, _)| *s == slot) {
                importing.push(i);
            } else if Some(i) != owner && self.count_keys(i, slot)? > 0 {
                say!("*** Found keys about slot {slot} in node {}!", self.members[i].endpoint);
                importing.push(i);
            }
        }
        if !migrating.is_empty() {
            say!("Set as migrating in: {}", self.names(&migrating));
        }
        if !importing.is_empty() {
            say!("Set as importing in: {}", self.names(&importing));
        }
        let owner = match owner.take() {
            Some(o) => o,
            None => {
                say!(">>> No single clear owner for the slot, selecting an owner by # of keys...");
                let o = self.most_keys(slot, &masters)?.ok_or("[ERR] Can't select a slot owner. Impossible to fix.")?;
                say!("*** Configuring {} as the slot owner", self.members[o].endpoint);
                self.setslot(o, slot, "STABLE", None)?;
                if !self.members[o].me().slots.contains(slot) {
                    self.claim(o, slot)?;
                }
                migrating.retain(|&i| i != o);
                importing.retain(|&i| i != o);
                o
            }
        };
        let owner_id = self.members[owner].me().id.clone();
        if owners.len() > 1 {
            for &n in owners.iter().filter(|&&n| n != owner) {
                if self.members[n].me().slots.contains(slot) {
                    self.members[n].ok(&["CLUSTER", "DELSLOTS", &slot.to_string()])?;
                    self.members[n].me_mut().slots.remove(slot);
                }
                self.setslot(n, slot, "NODE", Some(&owner_id))?;
                self.setslot(n, slot, "IMPORTING", Some(&owner_id))?;
                importing.retain(|&i| i != n);
                importing.push(n);
                migrating.retain(|&i| i != n);
            }
        }
        let mut progress = Progress::new(1, "fix");
        let result = self.fix_cases(slot, owner, &migrating, &importing, opts, &mut progress);
        progress.finish();
        result
    }

    fn fix_cases(
        &mut self,
        slot: u16,
        owner: usize,
        migrating: &[usize],
        importing: &[usize],
        opts: &MoveOptions,
        progress: &mut Progress,
    ) -> Result<(), String> {
        let owner_id = self.members[owner].me().id.clone();
        match (migrating, importing) {
            ([src], [dst]) => {
                let (a, b) = (self.members[*src].endpoint.clone(), self.members[*dst].endpoint.clone());
                say!(">>> Case 1: Moving slot {slot} from {a} to {b}");
                self.move_slot(*src, *dst, slot, opts, None, progress)?;
            }
            ([], importing) if !importing.is_empty() => {
                say!(">>> Case 2: Moving all the {slot} slot keys to its owner {}", self.members[owner].endpoint);
                let cold = MoveOptions { cold: true, ..*opts };
                for &n in importing.iter().filter(|&&n| n != owner) {
                    self.move_slot(n, owner, slot, &cold, None, progress)?;
                    self.members[n].me_mut().slots.remove(slot);
                    self.members[owner].me_mut().slots.insert(slot);
                    say!(">>> Setting {slot} as STABLE in {}", self.members[n].endpoint);
                    self.setslot(n, slot, "STABLE", None)?;
                }
                for n in self.masters().filter(|&n| n != owner).collect::<Vec<_>>() {
                    self.setslot(n, slot, "NODE", Some(&owner_id))?;
                }
            }
            ([src], importing) if importing.len() > 1 => {
                let target = self.members[*src].me().migrating.iter().find(|(s, _)| *s == slot).map(|(_, t)| t.clone());
                for &n in importing {
                    if self.count_keys(n, slot)? > 0 {
                        return Err(self.unhandled(slot, owner, migrating, importing));
                    }
                }
                let dst = importing.iter().copied().find(|&n| Some(&self.members[n].me().id) == target.as_ref());
                match dst {
                    Some(dst) => {
                        say!(
                            ">>> Case 3: Moving slot {slot} from {} to {} and closing it on all the other importing \
                             nodes.",
                            self.members[*src].endpoint,
                            self.members[dst].endpoint
                        );
                        self.move_slot(*src, dst, slot, opts, None, progress)?;
                        for &n in importing.iter().filter(|&&n| n != dst) {
                            self.setslot(n, slot, "STABLE", None)?;
                        }
                    }
                    None => {
                        say!(">>> Case 3: Closing slot {slot} on both migrating and importing nodes.");
                        self.setslot(*src, slot, "STABLE", None)?;
                        for &n in importing {
                            self.setslot(n, slot, "STABLE", None)?;
                        }
                    }
                }
            }
            ([n], []) if *n == owner || self.count_keys(*n, slot)? == 0 => {
                say!(">>> Case 4: Closing slot {slot} on {}", self.members[*n].endpoint);
                self.setslot(*n, slot, "STABLE", None)?;
            }
            _ => return Err(self.unhandled(slot, owner, migrating, importing)),
        }
        Ok(())
    }

    fn unhandled(&self, slot: u16, owner: usize, migrating: &[usize], importing: &[usize]) -> String {
        format!(
            "[ERR] Sorry, ferrokv-cli can't fix this slot yet. Slot {slot} is set as migrating in {}, as importing in \
             {}, owner is {}",
            self.names(migrating),
            self.names(importing),
            self.members[owner].endpoint
        )
    }

    /// Gives every unassigned slot an owner.
    fn fix_coverage(&mut self, opts: &MoveOptions, yes: bool) -> Result<(), String> {
        let masters: Vec<usize> = self.masters().collect();
        let mut covered = super::SlotSet::default();
        for &i in &masters {
            covered.union_with(&self.members[i].me().slots);
        }
        let uncovered = covered.complement().to_vec();
        if uncovered.is_empty() {
            return Ok(());
        }
        say!(">>> Fixing slots coverage...");
        say!("List of not covered slots: {}", covered.complement().plain());
        let (mut none, mut single, mut multi) = (Vec::new(), Vec::new(), Vec::new());
        for &slot in &uncovered {
            let mut holders = Vec::new();
            for &i in &masters {
                if self.count_keys(i, slot)? > 0 {
                    holders.push(i);
                }
            }
            match holders.len() {
                0 => none.push(slot),
                1 => single.push((slot, holders[0])),
                _ => multi.push((slot, holders)),
            }
        }
        if !none.is_empty() {
            say!("The following uncovered slots have no keys across the cluster:");
            say!("{}", none.iter().map(u16::to_string).collect::<Vec<_>>().join(","));
            if !yes && !confirm("Fix these slots by covering with a random node?") {
                return Err("*** Slots coverage not fixed.".to_string());
            }
            for (k, &slot) in none.iter().enumerate() {
                let at = masters[k % masters.len()];
                say!(">>> Covering slot {slot} with {}", self.members[at].endpoint);
                self.claim(at, slot)?;
            }
        }
        if !single.is_empty() {
            say!("The following uncovered slots have keys in just one node:");
            say!("{}", single.iter().map(|(s, _)| s.to_string()).collect::<Vec<_>>().join(","));
            if !yes && !confirm("Fix these slots by covering with those nodes?") {
                return Err("*** Slots coverage not fixed.".to_string());
            }
            for &(slot, at) in &single {
                say!(">>> Covering slot {slot} with {}", self.members[at].endpoint);
                self.claim(at, slot)?;
            }
        }
        if !multi.is_empty() {
            say!("The following uncovered slots have keys in multiple nodes:");
            say!("{}", multi.iter().map(|(s, _)| s.to_string()).collect::<Vec<_>>().join(","));
            if !yes && !confirm("Fix these slots by moving keys into a single node?") {
                return Err("*** Slots coverage not fixed.".to_string());
            }
            let cold = MoveOptions { cold: true, ..*opts };
            let mut progress = Progress::new(multi.len(), "fix");
            for (slot, holders) in &multi {
                let owner = self.most_keys(*slot, holders)?.unwrap_or(holders[0]);
                say!(">>> Covering slot {slot} moving keys to {}", self.members[owner].endpoint);
                self.claim(owner, *slot)?;
                let owner_id = self.members[owner].me().id.clone();
                for &n in holders.iter().filter(|&&n| n != owner) {
                    self.setslot(n, *slot, "IMPORTING", Some(&owner_id))?;
                    self.move_slot(n, owner, *slot, &cold, None, &mut progress)?;
                    self.members[n].me_mut().slots.remove(*slot);
                    self.setslot(n, *slot, "STABLE", None)?;
                }
                progress.slot_done();
            }
            progress.finish();
        }
        Ok(())
    }
}

/// `cluster fix HOST:PORT`.
pub fn fix(entry: &Endpoint, args: &MoveArgs, handshake: &Handshake) -> Result<(), String> {
    let mut cluster = Cluster::load(entry, handshake)?;
    cluster.show_info()?;
    cluster.check();
    let opts = MoveOptions { timeout_ms: args.timeout_ms, pipeline: args.pipeline, replace: args.replace, cold: false };
    let mut open = BTreeSet::new();
    for i in cluster.masters().collect::<Vec<_>>() {
        let me = cluster.members[i].me();
        open.extend(me.migrating.iter().chain(&me.importing).map(|(s, _)| *s));
    }
    for slot in open {
        cluster.fix_open_slot(slot, &opts)?;
    }
    cluster.fix_coverage(&opts, args.yes)?;
    drop(cluster);
    // The fixes travel by gossip; the final check reads every node again.
    super::wait_until(super::READY_TIMEOUT, "the nodes to agree", || {
        let c = Cluster::load(entry, handshake)?;
        let sig = super::nodes::slot_signature(&c.members[0].view);
        let open = c.members.iter().any(|m| !m.me().migrating.is_empty() || !m.me().importing.is_empty());
        Ok((open || c.members.iter().any(|m| super::nodes::slot_signature(&m.view) != sig))
            .then(|| "the nodes do not agree yet".to_string()))
    })?;
    match Cluster::load(entry, handshake)?.check() {
        0 => Ok(()),
        n => Err(format!("cluster fix: {n} problem(s) left")),
    }
}

/// Options of `cluster import`.
pub struct ImportOptions {
    pub from: Endpoint,
    pub copy: bool,
    pub moving: MoveArgs,
}

/// `cluster import HOST:PORT --from SRC [--copy] [--replace]`.
pub fn import(entry: &Endpoint, o: &ImportOptions, handshake: &Handshake) -> Result<(), String> {
    say!(">>> Importing data from {} to cluster {entry}", o.from);
    let cluster = Cluster::load(entry, handshake)?;
    if cluster.check() > 0 {
        return Err("*** Please fix your cluster problems before importing".to_string());
    }
    let io = |e: std::io::Error| format!("[ERR] Node {}: {}", o.from, describe(&e));
    let (mut src, complaint) = Conn::open(&o.from, &Handshake::default(), super::TIMEOUTS)?;
    if let Some(c) = complaint {
        return Err(format!("[ERR] Node {}: {c}", o.from));
    }
    if let Value::Bulk(info) = src.call(&["INFO", "cluster"]).map_err(io)? {
        if info_field(&String::from_utf8_lossy(&info), "cluster_enabled") == Some("1") {
            return Err("[ERR] The source node should not be a cluster node.".to_string());
        }
    }
    let mut owner = vec![usize::MAX; super::SLOTS];
    for i in cluster.masters().collect::<Vec<_>>() {
        for s in cluster.members[i].me().slots.to_vec() {
            owner[usize::from(s)] = i;
        }
    }
    let (timeout, mut cursor) = (o.moving.timeout_ms.to_string(), "0".to_string());
    let (mut moved, mut failed) = (0u64, 0u64);
    loop {
        let reply = src.call(&["SCAN", cursor.as_str(), "COUNT", "1000"]).map_err(io)?;
        let Value::Array(mut parts) = reply else { return Err(format!("[ERR] Node {}: bad SCAN reply", o.from)) };
        let keys = match (parts.pop(), parts.pop()) {
            (Some(Value::Array(keys)), Some(Value::Bulk(next))) => {
                cursor = String::from_utf8_lossy(&next).into_owned();
                keys
            }
            _ => return Err(format!("[ERR] Node {}: bad SCAN reply", o.from)),
        };
        let mut groups: std::collections::BTreeMap<usize, Vec<Vec<u8>>> = Default::default();
        for k in keys {
            if let Value::Bulk(k) = k {
                groups.entry(owner[usize::from(key_slot(&k))]).or_default().push(k);
            }
        }
        for (at, keys) in groups {
            let target = cluster.members.get(at).map(|m| m.endpoint.clone()).ok_or("[ERR] A slot has no owner")?;
            for batch in keys.chunks(o.moving.pipeline.max(1)) {
                let port = target.port.to_string();
                let mut args: Vec<Vec<u8>> =
                    ["MIGRATE", &target.host, &port, "", "0", &timeout].iter().map(|a| a.as_bytes().to_vec()).collect();
                if o.copy {
                    args.push(b"COPY".to_vec());
                }
                if o.moving.replace {
                    args.push(b"REPLACE".to_vec());
                }
                match (&handshake.user, &handshake.password) {
                    (Some(u), Some(p)) => {
                        args.extend([b"AUTH2".to_vec(), u.as_bytes().to_vec(), p.as_bytes().to_vec()])
                    }
                    (None, Some(p)) => args.extend([b"AUTH".to_vec(), p.as_bytes().to_vec()]),
                    _ => {}
                }
                args.push(b"KEYS".to_vec());
                args.extend(batch.iter().cloned());
                match src.call(&args).map_err(io)? {
                    Value::Error(e) => {
                        say!("Migrating {} keys to {target}: {e}", batch.len());
                        failed += batch.len() as u64;
                    }
                    _ => {
                        say!("Migrating {} keys to {target}: OK", batch.len());
                        moved += batch.len() as u64;
                    }
                }
            }
        }
        if cursor == "0" {
            break;
        }
    }
    say!("[OK] {moved} keys imported{}.", if o.copy { " (copied)" } else { "" });
    match failed {
        0 => Ok(()),
        n => Err(format!("cluster import: {n} key(s) could not be migrated")),
    }
}

#[cfg(test)]
mod tests {
    use super::key_slot;

    #[test]
    fn key_slots_match_redis() {
        // CLUSTER KEYSLOT answers of redis-server 7.0.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_eq!(key_slot(b""), 0);
        assert_eq!(key_slot(b"123456789"), 12739);
    }
}
