//! `cluster reshard` and `cluster rebalance`: plan slot moves (see [`super::plan`]),
//! show them, and carry them out one slot at a time (see [`super::mover`]).
//!
//! Both refuse to start on a cluster that fails its check (open slots, uncovered
//! slots, nodes that disagree), as redis-cli does. `--dry-run` stops after the plan;
//! `--json` prints one JSON object on stdout (the human output goes to stderr):
//! `{"command", "dry_run", "interrupted", "slots_moved", "keys_moved", "moves":
//! [{"slot", "from", "from_addr", "to", "to_addr"}]}`.

use std::io::{self, BufRead};

use super::importer;
use super::mover::{Interrupt, MoveOptions, Outcome, Progress};
use super::plan::{self, Holder, Rebalance};
use super::{confirm, human_to_stderr, json_str, Cluster};
use crate::conn::{Endpoint, Handshake};
use ferrokv_resp::Value;

/// Options every slot-moving command takes.
#[derive(Clone, Debug)]
pub struct MoveArgs {
    pub timeout_ms: u64,
    pub pipeline: usize,
    pub replace: bool,
    pub yes: bool,
    pub dry_run: bool,
    pub json: bool,
    /// Move keys with MIGRATE even when every master could do whole-slot migration.
    pub legacy: bool,
}

impl MoveArgs {
    fn options(&self) -> MoveOptions {
        MoveOptions { timeout_ms: self.timeout_ms, pipeline: self.pipeline, replace: self.replace, cold: false }
    }
}

/// One planned move: `slot` from member `from` to member `to`.
#[derive(Clone, Copy, Debug)]
struct Move {
    slot: u16,
    from: usize,
    to: usize,
}

/// What was done, for the summary.
struct Done {
    slots: usize,
    keys: u64,
    interrupted: bool,
}

impl Cluster {
    fn holder(&self, i: usize) -> Holder {
        let me = self.members[i].me();
        Holder { id: me.id.clone(), slots: me.slots.to_vec() }
    }

    /// Each master's slots' load, aligned with [`Cluster::holder`]'s slots: the
    /// `cpu-usec` CLUSTER SLOT-STATS reports (Redis 8.2 / Valkey 8 / ferrokv).
    fn slot_loads(&mut self, masters: &[usize]) -> Result<Vec<Vec<u64>>, String> {
        let mut out = Vec::with_capacity(masters.len());
        for &i in masters {
            let reply = self.members[i].ok(&["CLUSTER", "SLOT-STATS", "SLOTSRANGE", "0", "16383"]).map_err(|e| {
                format!("{e}\n*** --by load needs CLUSTER SLOT-STATS (ferrokv, Redis 8.2+, Valkey 8+) on every master")
            })?;
            let mut by_slot = vec![0u64; crate::cluster::nodes::SLOTS];
            let Value::Array(entries) = reply else {
                return Err(format!("[ERR] Node {}: unexpected CLUSTER SLOT-STATS reply", self.members[i].endpoint));
            };
            for e in entries {
                let Value::Array(pair) = e else { continue };
                let (Some(Value::Int(slot)), Some(stats)) = (pair.first(), pair.get(1)) else { continue };
                let fields: Vec<(&Value, &Value)> = match stats {
                    Value::Map(m) => m.iter().map(|(k, v)| (k, v)).collect(),
                    Value::Array(a) => a.chunks(2).filter(|c| c.len() == 2).map(|c| (&c[0], &c[1])).collect(),
                    _ => continue,
                };
                for (k, v) in fields {
                    let is_cpu = matches!(k, Value::Bulk(b) if b.as_slice() == b"cpu-usec")
                        || matches!(k, Value::Simple(s) if s == "cpu-usec");
                    if let (true, Value::Int(n), Some(at)) = (is_cpu, v, by_slot.get_mut(*slot as usize)) {
                        *at = (*n).max(0) as u64;
                    }
                }
            }
            out.push(self.holder(i).slots.iter().map(|&s| by_slot[s as usize]).collect());
        }
        Ok(out)
    }

    /// The master whose id is (or starts with) `name`.
    fn master_named(&self, name: &str) -> Option<usize> {
        let masters: Vec<usize> = self.masters().collect();
        plan::find_by_prefix(masters.iter().map(|&i| self.members[i].me().id.as_str()), name).map(|k| masters[k])
    }

    /// Loads and checks; the check's problems stop a command that moves slots.
    fn load_sane(entry: &Endpoint, handshake: &Handshake, what: &str) -> Result<Cluster, String> {
        let cluster = Cluster::load(entry, handshake)?;
        if cluster.check() > 0 {
            return Err(format!("*** Please fix your cluster problems before {what}"));
        }
        Ok(cluster)
    }

    /// Carries out `moves`: as whole-slot migration tasks when every master is ferrokv
    /// (unless `--legacy`), else slot by slot with MIGRATE, one progress bar for all;
    /// stops between slots on Ctrl-C.
    fn run_moves(&mut self, moves: &[Move], args: &MoveArgs, label: &str, quiet: bool) -> Result<Done, String> {
        let interrupt = Interrupt::install();
        if !args.legacy && self.whole_slot_capable() {
            let mut transfers: Vec<importer::Transfer> = Vec::new();
            for m in moves {
                match transfers.iter_mut().find(|t| t.from == m.from && t.to == m.to) {
                    Some(t) => t.slots.push(m.slot),
                    None => transfers.push(importer::Transfer { from: m.from, to: m.to, slots: vec![m.slot] }),
                }
            }
            let done = self.run_imports(transfers, label, &interrupt)?;
            return Ok(Done { slots: done.slots, keys: done.keys, interrupted: done.interrupted });
        }
        let opts = args.options();
        let mut progress = Progress::new(moves.len(), label);
        let mut done = Done { slots: 0, keys: 0, interrupted: false };
        for m in moves {
            if interrupt.raised() {
                done.interrupted = true;
                break;
            }
            let (a, b) = (self.members[m.from].endpoint.clone(), self.members[m.to].endpoint.clone());
            let outcome = self.move_slot(m.from, m.to, m.slot, &opts, Some(&interrupt), &mut progress);
            match outcome {
                Err(e) => {
                    progress.finish();
                    return Err(format!("Moving slot {} from {a} to {b}: {e}", m.slot));
                }
                Ok(Outcome::RolledBack) => {
                    progress.say(&format!("Slot {} left on {a}: interrupted before any key moved", m.slot));
                    done.interrupted = true;
                    break;
                }
                Ok(Outcome::Moved { keys, batches }) => {
                    if quiet {
                        progress.say_part("#");
                    } else {
                        progress.say(&format!(
                            "Moving slot {} from {a} to {b}: {}",
                            m.slot,
                            ".".repeat(batches as usize)
                        ));
                    }
                    done.slots += 1;
                    done.keys += keys;
                    progress.slot_done();
                }
            }
        }
        progress.finish();
        if quiet && done.slots > 0 {
            say!();
        }
        Ok(done)
    }

    fn summary(&self, command: &str, moves: &[Move], dry_run: bool, done: Option<&Done>) -> String {
        let items: Vec<String> = moves
            .iter()
            .map(|m| {
                format!(
                    "{{\"slot\":{},\"from\":{},\"from_addr\":{},\"to\":{},\"to_addr\":{}}}",
                    m.slot,
                    json_str(&self.members[m.from].me().id),
                    json_str(&self.members[m.from].endpoint.to_string()),
                    json_str(&self.members[m.to].me().id),
                    json_str(&self.members[m.to].endpoint.to_string())
                )
            })
            .collect();
        let (slots, keys, interrupted) = done.map(|d| (d.slots, d.keys, d.interrupted)).unwrap_or((0, 0, false));
        format!(
            "{{\"command\":{},\"dry_run\":{dry_run},\"interrupted\":{interrupted},\"slots_planned\":{},\
             \"slots_moved\":{slots},\"keys_moved\":{keys},\"moves\":[{}]}}",
            json_str(command),
            moves.len(),
            items.join(",")
        )
    }
}

impl Progress {
    fn say_part(&self, text: &str) {
        let _ = self;
        say_part!("{text}");
    }
}

/// Asks until the answer parses; end of input is an error.
fn ask<T>(question: &str, mut parse: impl FnMut(&str) -> Result<T, String>) -> Result<T, String> {
    loop {
        say_part!("{question}");
        let mut line = String::new();
        match io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => return Err(format!("No answer to: {}", question.trim())),
            Ok(_) => match parse(line.trim()) {
                Ok(v) => return Ok(v),
                Err(why) => say!("{why}"),
            },
        }
    }
}

/// Options of `cluster reshard`.
pub struct ReshardOptions {
    pub from: Option<String>,
    pub to: Option<String>,
    pub slots: Option<usize>,
    pub moving: MoveArgs,
}

/// `cluster reshard HOST:PORT ...`.
pub fn reshard(entry: &Endpoint, o: &ReshardOptions, handshake: &Handshake) -> Result<(), String> {
    if o.moving.json {
        human_to_stderr();
    }
    let mut cluster = Cluster::load_sane(entry, handshake, "resharding")?;
    let count = match o.slots {
        Some(n) if (1..=16384).contains(&n) => n,
        Some(n) => return Err(format!("*** Invalid number of slots: {n} (from 1 to 16384)")),
        None => ask("How many slots do you want to move (from 1 to 16384)? ", |a| match a.parse::<usize>() {
            Ok(n) if (1..=16384).contains(&n) => Ok(n),
            _ => Err("*** Please enter a number from 1 to 16384".into()),
        })?,
    };
    let target_of = |name: &str| {
        cluster
            .master_named(name)
            .ok_or_else(|| format!("*** The specified node ({name}) is not known or not a master, please retry."))
    };
    let target = match &o.to {
        Some(name) => target_of(name)?,
        None => ask("What is the receiving node ID? ", target_of)?,
    };
    let from = match &o.from {
        Some(list) => list.clone(),
        None => {
            say!("Please enter all the source node IDs.");
            say!("  Type 'all' to use all the nodes as source nodes for the hash slots.");
            say!("  Type 'done' once you entered all the source nodes IDs.");
            let mut ids = Vec::new();
            loop {
                let id = ask(&format!("Source node #{}: ", ids.len() + 1), |a| Ok::<_, String>(a.to_string()))?;
                match id.as_str() {
                    "done" => break,
                    "all" => {
                        ids = vec!["all".to_string()];
                        break;
                    }
                    _ => ids.push(id),
                }
            }
            ids.join(",")
        }
    };
    let sources: Vec<usize> = if from.eq_ignore_ascii_case("all") {
        cluster.masters().filter(|&i| i != target).collect()
    } else {
        let mut out = Vec::new();
        for name in from.split([',', ' ']).filter(|n| !n.is_empty()) {
            let i = cluster
                .master_named(name)
                .ok_or_else(|| format!("*** The specified node ({name}) is not known or is not a master."))?;
            if i == target {
                return Err("*** It is not possible to use the target node as source node.".to_string());
            }
            if !out.contains(&i) {
                out.push(i);
            }
        }
        out
    };
    if sources.is_empty() {
        return Err("*** No source nodes given, operation aborted.".to_string());
    }
    let holders: Vec<Holder> = sources.iter().map(|&i| cluster.holder(i)).collect();
    let table = plan::reshard_table(&holders, count);
    let moves: Vec<Move> = table.iter().map(|&(slot, k)| Move { slot, from: sources[k], to: target }).collect();

    say!("\nReady to move {count} slots.");
    say!("  Source nodes:");
    for &i in &sources {
        let me = cluster.members[i].me();
        say!("    M: {} {}", me.id, cluster.members[i].endpoint);
        say!("       slots:{} ({} slots) master", me.slots.brackets(), me.slots.len());
    }
    say!("  Destination node:");
    let t = cluster.members[target].me();
    say!("    M: {} {}", t.id, cluster.members[target].endpoint);
    say!("       slots:{} ({} slots) master", t.slots.brackets(), t.slots.len());
    say!("  Resharding plan:");
    for m in &moves {
        say!("    Moving slot {} from {}", m.slot, cluster.members[m.from].me().id);
    }
    if o.moving.dry_run {
        say!("*** Dry run: nothing was changed.");
        if o.moving.json {
            println!("{}", cluster.summary("reshard", &moves, true, None));
        }
        return Ok(());
    }
    if !o.moving.yes && !confirm("Do you want to proceed with the proposed reshard plan (yes/no)?") {
        return Err("*** Reshard aborted.".to_string());
    }
    let done = cluster.run_moves(&moves, &o.moving, "reshard", false)?;
    finish(&cluster, "reshard", &moves, &o.moving, &done)
}

fn finish(cluster: &Cluster, command: &str, moves: &[Move], args: &MoveArgs, done: &Done) -> Result<(), String> {
    if args.json {
        println!("{}", cluster.summary(command, moves, false, Some(done)));
    }
    if done.interrupted {
        return Err(format!(
            "*** Interrupted: {} of {} slots moved ({} keys); no slot was left open.",
            done.slots,
            moves.len(),
            done.keys
        ));
    }
    Ok(())
}

/// Options of `cluster rebalance`.
pub struct RebalanceOptions {
    /// `ID=WEIGHT`, ids abbreviated or whole.
    pub weights: Vec<String>,
    pub use_empty: bool,
    pub threshold: f32,
    pub simulate: bool,
    /// Balance the masters' load (CLUSTER SLOT-STATS cpu-usec) instead of slot counts.
    pub by_load: bool,
    pub moving: MoveArgs,
}

/// `cluster rebalance HOST:PORT ...`.
pub fn rebalance(entry: &Endpoint, o: &RebalanceOptions, handshake: &Handshake) -> Result<(), String> {
    if o.moving.json {
        human_to_stderr();
    }
    let mut cluster = Cluster::load(entry, handshake)?;
    let masters: Vec<usize> = cluster.masters().collect();
    let mut weights = vec![1.0f32; masters.len()];
    for w in &o.weights {
        let (name, value) = w.split_once('=').ok_or_else(|| format!("*** invalid input {w}"))?;
        let at = plan::find_by_prefix(masters.iter().map(|&i| cluster.members[i].me().id.as_str()), name)
            .ok_or_else(|| format!("*** No such master node {name}"))?;
        weights[at] = value.parse().map_err(|_| format!("*** invalid input {w}"))?;
    }
    if cluster.check() > 0 {
        return Err("*** Please fix your cluster problems before rebalancing".to_string());
    }
    let holders: Vec<Holder> = masters.iter().map(|&i| cluster.holder(i)).collect();
    let planned = if o.by_load {
        let load = cluster.slot_loads(&masters)?;
        plan::rebalance_by_load(&holders, &load, &weights, o.use_empty, o.threshold)?
    } else {
        plan::rebalance(&holders, &weights, o.use_empty, o.threshold)?
    };
    let (nodes, total_weight, transfers) = match planned {
        Rebalance::Balanced => {
            say!("*** No rebalancing needed! All nodes are within the {:.2}% threshold.", o.threshold);
            if o.moving.json {
                println!("{}", cluster.summary("rebalance", &[], o.moving.dry_run || o.simulate, None));
            }
            return Ok(());
        }
        Rebalance::Moves { nodes, total_weight, transfers } => (nodes, total_weight, transfers),
    };
    say!(">>> Rebalancing across {nodes} nodes. Total weight = {total_weight:.2}");
    let mut moves = Vec::new();
    for t in &transfers {
        let (from, to) = (masters[t.from], masters[t.to]);
        moves.extend(t.slots.iter().map(|&slot| Move { slot, from, to }));
    }
    if o.simulate || o.moving.dry_run {
        for t in &transfers {
            let (from, to) = (masters[t.from], masters[t.to]);
            say!(
                "Moving {} slots from {} to {}",
                t.slots.len(),
                cluster.members[from].endpoint,
                cluster.members[to].endpoint
            );
            say!("{}", "#".repeat(t.slots.len()));
        }
        if o.moving.dry_run {
            say!("*** Dry run: nothing was changed.");
        }
        if o.moving.json {
            println!("{}", cluster.summary("rebalance", &moves, true, None));
        }
        return Ok(());
    }
    let mut total = Done { slots: 0, keys: 0, interrupted: false };
    let mut first = 0;
    for t in &transfers {
        let (from, to) = (masters[t.from], masters[t.to]);
        say!(
            "Moving {} slots from {} to {}",
            t.slots.len(),
            cluster.members[from].endpoint,
            cluster.members[to].endpoint
        );
        let part = &moves[first..first + t.slots.len()];
        first += t.slots.len();
        let done = cluster.run_moves(part, &o.moving, "rebalance", true)?;
        total.slots += done.slots;
        total.keys += done.keys;
        if done.interrupted {
            total.interrupted = true;
            break;
        }
    }
    finish(&cluster, "rebalance", &moves, &o.moving, &total)
}
