//! Who is in the cluster and in which role: `cluster add-node`, `cluster del-node`,
//! `cluster failover`, as redis-cli's `--cluster add-node/del-node` and a manual
//! `CLUSTER FAILOVER` do them.
//!
//! - `add-node NEW EXISTING [--replica [--master-id ID]]`: the new node must be an
//!   empty cluster node; it is sent CLUSTER MEET with the existing node's address,
//!   and, for a replica, CLUSTER REPLICATE once it knows its master (the master with
//!   the fewest replicas unless `--master-id` names one). Unlike redis-cli this waits
//!   until the new node and the existing one know each other, so that a `check` run
//!   right after sees the node.
//! - `del-node HOST:PORT ID`: refused while the node serves slots; its replicas are
//!   given to the master with the fewest replicas, every other node is sent CLUSTER
//!   FORGET, and the node itself (when reachable) CLUSTER RESET SOFT.
//! - `failover HOST:PORT [--force|--takeover]`: CLUSTER FAILOVER to that replica, then
//!   wait until it says it is a master and its old master (when reachable) says it
//!   replicates it.

use std::time::Duration;

use super::{connect, not_empty, plan, resolve_ip, wait_until, Cluster, Member, JOIN_TIMEOUT};
use crate::conn::{Endpoint, Handshake};

impl Cluster {
    /// The master with the fewest replicas, `except` one; the first such in load order.
    fn least_replicated_master(&self, except: Option<usize>) -> Option<usize> {
        self.masters().filter(|&i| Some(i) != except).min_by_key(|&i| self.replicas_of(&self.members[i].me().id))
    }
}

/// Whether `m` sees `id` as a full member (not in handshake, with an address).
fn knows(m: &mut Member, id: &str) -> Result<bool, String> {
    m.reload()?;
    Ok(m.view.iter().any(|n| n.id == id && !n.has_flag("handshake") && !n.has_flag("noaddr")))
}

/// `cluster add-node NEW EXISTING [--replica] [--master-id ID]`.
pub fn add_node(
    new: &Endpoint,
    existing: &Endpoint,
    replica: bool,
    master_id: Option<&str>,
    handshake: &Handshake,
) -> Result<(), String> {
    say!(">>> Adding node {new} to cluster {existing}");
    let mut cluster = Cluster::load(existing, handshake)?;
    cluster.check();
    let master = if replica || master_id.is_some() {
        let at = match master_id {
            Some(id) => {
                let masters: Vec<usize> = cluster.masters().collect();
                let k = plan::find_by_prefix(masters.iter().map(|&i| cluster.members[i].me().id.as_str()), id)
                    .ok_or_else(|| format!("[ERR] No such master ID {id}"))?;
                masters[k]
            }
            None => {
                let at = cluster.least_replicated_master(None).ok_or("[ERR] The cluster has no master")?;
                say!(">>> Automatically selected master {}", cluster.members[at].endpoint);
                at
            }
        };
        Some((cluster.members[at].me().id.clone(), cluster.members[at].endpoint.clone()))
    } else {
        None
    };
    let mut node = connect(new, handshake)?;
    if let Some(why) = not_empty(&mut node)? {
        return Err(why);
    }
    let new_id = node.me().id.clone();
    let first = &mut cluster.members[0];
    let (ip, port, bus) = (resolve_ip(&first.endpoint)?, first.endpoint.port, first.me().bus_port);
    let first_id = first.me().id.clone();
    say!(">>> Send CLUSTER MEET to node {new} to make it join the cluster.");
    let (port_s, bus_s) = (port.to_string(), bus.to_string());
    let mut meet = vec!["CLUSTER", "MEET", ip.as_str(), port_s.as_str()];
    if u32::from(bus) != u32::from(port) + 10000 {
        meet.push(&bus_s);
    }
    node.ok(&meet)?;
    wait_until(JOIN_TIMEOUT, "the new node to join", || {
        if !knows(&mut node, &first_id)? {
            return Ok(Some(format!("{new} does not know {} yet", cluster.members[0].endpoint)));
        }
        if let Some((id, at)) = &master {
            if !knows(&mut node, id)? {
                return Ok(Some(format!("{new} does not know its master {at} yet")));
            }
        }
        if !knows(&mut cluster.members[0], &new_id)? {
            return Ok(Some(format!("{} does not know {new} yet", cluster.members[0].endpoint)));
        }
        Ok(None)
    })?;
    if let Some((id, at)) = &master {
        say!(">>> Configure node as replica of {at}.");
        node.ok(&["CLUSTER", "REPLICATE", id])?;
    }
    say!("[OK] New node added correctly.");
    Ok(())
}

/// `cluster del-node HOST:PORT NODE_ID`.
pub fn del_node(entry: &Endpoint, name: &str, handshake: &Handshake) -> Result<(), String> {
    say!(">>> Removing node {name} from cluster {entry}");
    let mut cluster = Cluster::load(entry, handshake)?;
    // The node may be unreachable: then it is known only from the entry's view.
    let view = cluster.members[0].view.clone();
    let k = plan::find_by_prefix(view.iter().map(|n| n.id.as_str()), name)
        .ok_or_else(|| format!("[ERR] No such node ID {name}"))?;
    let gone = view[k].clone();
    if !gone.slots.is_empty() {
        return Err(format!("[ERR] Node {}:{} is not empty! Reshard data away and try again.", gone.host, gone.port));
    }
    let at = cluster.members.iter().position(|m| m.me().id == gone.id);
    say!(">>> Sending CLUSTER FORGET messages to the cluster...");
    for j in 0..cluster.members.len() {
        if Some(j) == at {
            continue;
        }
        let me = cluster.members[j].me();
        if me.is_replica() && me.master.as_deref() == Some(gone.id.as_str()) {
            let to = cluster.least_replicated_master(at).ok_or("[ERR] No master left to replicate")?;
            let to_id = cluster.members[to].me().id.clone();
            say!(">>> {} as replica of {}", cluster.members[j].endpoint, cluster.members[to].endpoint);
            cluster.members[j].ok(&["CLUSTER", "REPLICATE", &to_id])?;
        }
        cluster.members[j].ok(&["CLUSTER", "FORGET", &gone.id])?;
    }
    if let Some(at) = at {
        say!(">>> Sending CLUSTER RESET SOFT to the deleted node.");
        cluster.members[at].ok(&["CLUSTER", "RESET", "SOFT"])?;
    }
    Ok(())
}

/// How long a failover request is given before it is sent again.
const RETRY: Duration = Duration::from_secs(6);

/// How `failover` asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailoverMode {
    /// With the master's agreement (it stops writes until the replica caught up).
    Default,
    /// Without the master (it may be down), still with the other masters' votes.
    Force,
    /// Without any vote: the replica bumps the epoch on its own.
    Takeover,
}

/// `cluster failover HOST:PORT [--force|--takeover]`.
pub fn failover(entry: &Endpoint, mode: FailoverMode, timeout: Duration, handshake: &Handshake) -> Result<(), String> {
    let mut node = connect(entry, handshake)?;
    let me = node.me().clone();
    let Some(master_id) = me.master.clone().filter(|_| me.is_replica()) else {
        return Err(format!("[ERR] Node {entry} is not a replica: failover is asked of a replica."));
    };
    let old = node.view.iter().find(|n| n.id == master_id).map(|n| Endpoint::new(n.host.clone(), n.port));
    let shown = old.as_ref().map(Endpoint::to_string).unwrap_or_else(|| master_id.clone());
    let mut args = vec!["CLUSTER", "FAILOVER"];
    match mode {
        FailoverMode::Default => {}
        FailoverMode::Force => args.push("FORCE"),
        FailoverMode::Takeover => args.push("TAKEOVER"),
    }
    say!(">>> Sending {} to {entry}, replica of {shown}", args.join(" "));
    node.ok(&args)?;
    // A manual failover that does not complete in 5 s is abandoned by the replica (a
    // link to the master still syncing, an election that lost its votes): ask again.
    let mut asked = std::time::Instant::now();
    wait_until(timeout, "the replica to become a master", || {
        node.reload()?;
        if !node.me().is_replica() {
            return Ok(None);
        }
        if asked.elapsed() >= RETRY {
            node.ok(&args)?;
            asked = std::time::Instant::now();
        }
        Ok(Some(format!("{entry} is still a replica")))
    })?;
    say!("[OK] {entry} is now a master.");
    let Some(old) = old else { return Ok(()) };
    match connect(&old, handshake) {
        Ok(mut m) => {
            wait_until(timeout, "the old master to become a replica", || {
                m.reload()?;
                let me = m.me();
                Ok((!(me.is_replica() && me.master.as_deref() == Some(me_id(&node))))
                    .then(|| format!("{old} does not replicate {entry} yet")))
            })?;
            say!("[OK] {old} is now a replica of {entry}.");
        }
        Err(e) => say!("[WARNING] The old master {old} cannot be reached: {e}"),
    }
    Ok(())
}

fn me_id(m: &Member) -> &str {
    &m.me().id
}
