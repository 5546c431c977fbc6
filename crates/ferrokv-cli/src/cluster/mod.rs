//! Cluster administration against any Redis Cluster nodes: `create`, `check`, `info`
//! here; `reshard` and `rebalance` in [`reshard`] (plans in [`plan`], slot moves in
//! [`mover`]); `add-node`, `del-node`, `failover` in [`membership`]; `fix`, `import`
//! in [`repair`].
//!
//! Output follows redis-cli's `--cluster` commands (`>>>` steps, `M:`/`S:` node
//! blocks, `[OK]`/`[ERR]`/`[WARNING]` lines) on stdout; when something is wrong the
//! command also prints a one-line reason on stderr and the process exits non-zero.
//!
//! `check` loads the cluster from one node: its CLUSTER NODES names the others, and
//! each node is asked for its own view. The nodes agree when every view gives every
//! node the same slots; every slot must be owned (each node's claim on its own line
//! counts); no slot may be migrating or importing.

/// Human output: stdout, or stderr when stdout carries `--json`.
macro_rules! say {
    ($($arg:tt)*) => {
        if $crate::cluster::human_on_stderr() { eprintln!($($arg)*) } else { println!($($arg)*) }
    };
}

/// Human output without a newline (prompts, dots).
macro_rules! say_part {
    ($($arg:tt)*) => {{
        if $crate::cluster::human_on_stderr() {
            eprint!($($arg)*);
        } else {
            print!($($arg)*);
            let _ = std::io::Write::flush(&mut std::io::stdout());
        }
    }};
}

pub mod importer;
pub mod membership;
pub mod mover;
pub mod nodes;
pub mod plan;
pub mod repair;
pub mod reshard;

static HUMAN_ON_STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sends the human output to stderr (for `--json`, whose summary owns stdout).
pub fn human_to_stderr() {
    HUMAN_ON_STDERR.store(true, std::sync::atomic::Ordering::Relaxed);
}

pub fn human_on_stderr() -> bool {
    HUMAN_ON_STDERR.load(std::sync::atomic::Ordering::Relaxed)
}

use std::collections::BTreeSet;
use std::io::{self, BufRead, Write};
use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use ferrokv_resp::Value;

use crate::conn::{describe, Conn, Endpoint, Handshake, Timeouts};
use nodes::{parse_nodes, slot_signature, NodeLine, SlotSet, SLOTS};

/// How long `create` waits for the nodes to meet, and then for the cluster to be up.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

const TIMEOUTS: Timeouts = Timeouts { connect: Some(Duration::from_secs(5)), io: Some(Duration::from_secs(10)) };

/// A node of the cluster, with its own view of the cluster.
struct Member {
    endpoint: Endpoint,
    conn: Conn,
    view: Vec<NodeLine>,
}

impl Member {
    /// The node's line about itself; `connect` made sure there is one.
    fn me(&self) -> &NodeLine {
        self.view.iter().find(|n| n.is_myself()).unwrap_or(&self.view[0])
    }

    fn me_mut(&mut self) -> &mut NodeLine {
        let i = self.view.iter().position(NodeLine::is_myself).unwrap_or(0);
        &mut self.view[i]
    }

    fn call(&mut self, args: &[&str]) -> Result<Value, String> {
        self.conn
            .call(args)
            .map_err(|e| format!("[ERR] Node {}: {} (sending {})", self.endpoint, describe(&e), args[0]))
    }

    /// A command whose reply must not be an error.
    fn ok(&mut self, args: &[&str]) -> Result<Value, String> {
        match self.call(args)? {
            Value::Error(e) => {
                Err(format!("[ERR] Node {} replied with error to {}: {e}", self.endpoint, args.join(" ")))
            }
            v => Ok(v),
        }
    }

    /// A command whose reply is text (CLUSTER NODES, CLUSTER INFO, INFO).
    fn text(&mut self, args: &[&str]) -> Result<String, String> {
        match self.ok(args)? {
            Value::Bulk(b) | Value::Verbatim { text: b, .. } => Ok(String::from_utf8_lossy(&b).into_owned()),
            Value::Simple(s) => Ok(s),
            other => Err(format!("[ERR] Node {}: unexpected reply to {}: {other:?}", self.endpoint, args.join(" "))),
        }
    }

    fn reload(&mut self) -> Result<(), String> {
        let text = self.text(&["CLUSTER", "NODES"])?;
        let view =
            parse_nodes(&text).map_err(|e| format!("[ERR] Node {}: bad CLUSTER NODES reply: {e}", self.endpoint))?;
        if !view.iter().any(NodeLine::is_myself) {
            return Err(format!("[ERR] Node {}: CLUSTER NODES has no line flagged myself", self.endpoint));
        }
        self.view = view;
        Ok(())
    }

    fn dbsize(&mut self) -> Result<i64, String> {
        match self.ok(&["DBSIZE"])? {
            Value::Int(n) => Ok(n),
            other => Err(format!("[ERR] Node {}: unexpected reply to DBSIZE: {other:?}", self.endpoint)),
        }
    }

    fn cluster_info(&mut self) -> Result<String, String> {
        self.text(&["CLUSTER", "INFO"])
    }
}

/// `text` as a JSON string literal.
fn json_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A `field:value` of an INFO-style text.
fn info_field<'a>(text: &'a str, field: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(field).and_then(|rest| rest.strip_prefix(':'))).map(str::trim)
}

/// Connects to a node, checks that it runs in cluster mode, and loads its view.
fn connect(endpoint: &Endpoint, handshake: &Handshake) -> Result<Member, String> {
    let conn = match Conn::open(endpoint, handshake, TIMEOUTS) {
        Ok((conn, None)) => conn,
        Ok((_, Some(complaint))) => return Err(format!("[ERR] Node {endpoint}: {complaint}")),
        Err(e) => return Err(format!("[ERR] {e}")),
    };
    let mut member = Member { endpoint: endpoint.clone(), conn, view: Vec::new() };
    let enabled = match member.call(&["INFO", "cluster"])? {
        Value::Bulk(b) | Value::Verbatim { text: b, .. } => {
            info_field(&String::from_utf8_lossy(&b), "cluster_enabled").map(|v| v == "1")
        }
        _ => None,
    };
    // A server without INFO cluster: CLUSTER INFO succeeding is the test.
    let enabled = match enabled {
        Some(e) => e,
        None => !matches!(member.call(&["CLUSTER", "INFO"])?, Value::Error(_)),
    };
    if !enabled {
        return Err(format!("[ERR] Node {endpoint} is not configured as a cluster node."));
    }
    member.reload()?;
    Ok(member)
}

fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    Endpoint::parse(text).ok_or_else(|| format!("Invalid address format: {text}"))
}

/// `HOST:PORT` or `HOST PORT`, as redis-cli accepts them.
pub fn node_argument(args: &[String]) -> Result<Endpoint, String> {
    match args {
        [one] => parse_endpoint(one),
        [host, port] => parse_endpoint(&format!("{host}:{port}")),
        _ => Err("[ERR] Wrong number of arguments: expected HOST:PORT".to_string()),
    }
}

/// Everything `check` and `info` need: the members and the problems met loading them.
struct Cluster {
    members: Vec<Member>,
    problems: Vec<String>,
    /// For MIGRATE's AUTH and for connections opened later.
    handshake: Handshake,
}

impl Cluster {
    /// Loads the cluster that `entry` belongs to.
    fn load(entry: &Endpoint, handshake: &Handshake) -> Result<Cluster, String> {
        let first = connect(entry, handshake)?;
        let mut problems = Vec::new();
        let others: Vec<NodeLine> = first.view.iter().filter(|n| !n.is_myself()).cloned().collect();
        let mut members = vec![first];
        for other in others {
            let bad: Vec<&str> = ["fail", "noaddr", "handshake"].into_iter().filter(|f| other.has_flag(f)).collect();
            let endpoint = Endpoint::new(other.host.clone(), other.port);
            if !bad.is_empty() || other.host.is_empty() {
                let why =
                    if bad.is_empty() { "has no address".to_string() } else { format!("is flagged {}", bad.join(",")) };
                problems.push(format!("[ERR] Node {endpoint} ({}) {why}.", other.id));
                continue;
            }
            match connect(&endpoint, handshake) {
                Ok(m) if m.me().id == other.id => members.push(m),
                Ok(m) => problems.push(format!(
                    "[ERR] Node {endpoint} is {} but {entry} knows it as {}.",
                    m.me().id,
                    other.id
                )),
                Err(e) => problems.push(format!("[ERR] Unable to load info for node {endpoint}: {e}")),
            }
        }
        Ok(Cluster { members, problems, handshake: handshake.clone() })
    }

    fn masters(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.members.len()).filter(|&i| !self.members[i].me().is_replica())
    }

    fn replicas_of(&self, id: &str) -> usize {
        self.members.iter().filter(|m| m.me().is_replica() && m.me().master.as_deref() == Some(id)).count()
    }

    /// redis-cli's `clusterManagerShowClusterInfo`; keys are each master's DBSIZE.
    fn show_info(&mut self) -> Result<(), String> {
        let mut keys = 0;
        let mut masters = 0;
        for i in self.masters().collect::<Vec<_>>() {
            let dbsize = self.members[i].dbsize()?;
            let me = self.members[i].me();
            let short: String = me.id.chars().take(8).collect();
            say!(
                "{} ({short}...) -> {dbsize} keys | {} slots | {} slaves.",
                self.members[i].endpoint,
                me.slots.len(),
                self.replicas_of(&me.id)
            );
            keys += dbsize;
            masters += 1;
        }
        say!("[OK] {keys} keys in {masters} masters.");
        say!("{:.2} keys per slot on average.", keys as f64 / SLOTS as f64);
        Ok(())
    }

    fn show_nodes(&self) {
        for m in &self.members {
            let me = m.me();
            let role = if me.is_replica() { "S" } else { "M" };
            say!("{role}: {} {}", me.id, m.endpoint);
            say!("   slots:{} ({} slots) {}", me.slots.brackets(), me.slots.len(), me.shown_flags());
            if let (true, Some(master)) = (me.is_replica(), &me.master) {
                say!("   replicates {master}");
            } else {
                let n = self.replicas_of(&me.id);
                if n > 0 {
                    say!("   {n} additional replica(s)");
                }
            }
        }
    }

    /// redis-cli's `clusterManagerCheckCluster`; the number of problems found (those met
    /// while loading included).
    fn check(&self) -> usize {
        let mut problems = self.problems.len();
        for p in &self.problems {
            say!("{p}");
        }
        say!(">>> Performing Cluster Check (using node {})", self.members[0].endpoint);
        self.show_nodes();
        let first = slot_signature(&self.members[0].view);
        match self.members.iter().find(|m| slot_signature(&m.view) != first) {
            None => say!("[OK] All nodes agree about slots configuration."),
            Some(m) => {
                say!(
                    "[ERR] Nodes don't agree about configuration! ({} and {} differ)",
                    self.members[0].endpoint,
                    m.endpoint
                );
                problems += 1;
            }
        }
        say!(">>> Check for open slots...");
        let mut open = BTreeSet::new();
        for m in &self.members {
            let me = m.me();
            for (what, list) in [("migrating", &me.migrating), ("importing", &me.importing)] {
                if list.is_empty() {
                    continue;
                }
                let slots: Vec<String> = list.iter().map(|(s, _)| s.to_string()).collect();
                say!("[WARNING] Node {} has slots in {what} state {}.", m.endpoint, slots.join(","));
                open.extend(list.iter().map(|(s, _)| *s));
            }
        }
        if !open.is_empty() {
            let slots: Vec<String> = open.iter().map(u16::to_string).collect();
            say!("[WARNING] The following slots are open: {}.", slots.join(","));
            problems += 1;
        }
        say!(">>> Check slots coverage...");
        let mut covered = SlotSet::default();
        for m in &self.members {
            covered.union_with(&m.me().slots);
        }
        if covered.len() == SLOTS {
            say!("[OK] All {SLOTS} slots covered.");
        } else {
            say!("[ERR] Not all {SLOTS} slots are covered by nodes (missing: {}).", covered.complement().plain());
            problems += 1;
        }
        problems
    }
}

/// `cluster info HOST:PORT`.
pub fn info(entry: &Endpoint, handshake: &Handshake) -> Result<(), String> {
    let mut cluster = Cluster::load(entry, handshake)?;
    for p in &cluster.problems {
        say!("{p}");
    }
    cluster.show_info()?;
    match cluster.problems.len() {
        0 => Ok(()),
        n => Err(format!("cluster info: {n} node(s) could not be loaded")),
    }
}

/// `cluster check HOST:PORT`.
pub fn check(entry: &Endpoint, handshake: &Handshake) -> Result<(), String> {
    let mut cluster = Cluster::load(entry, handshake)?;
    cluster.show_info()?;
    match cluster.check() {
        0 => Ok(()),
        n => Err(format!("cluster check: {n} problem(s) found")),
    }
}

/// Options of `cluster create`.
pub struct CreateOptions {
    pub replicas: usize,
    /// Skip the confirmation question.
    pub yes: bool,
}

/// Asks on stdout, reads the answer from stdin; no answer (end of input) is no.
fn confirm(question: &str) -> bool {
    say_part!("{question} (type 'yes' to accept): ");
    let _ = io::stdout().flush();
    let mut answer = String::new();
    match io::stdin().lock().read_line(&mut answer) {
        Ok(0) | Err(_) => {
            say!();
            false
        }
        Ok(_) => answer.trim() == "yes",
    }
}

/// Polls `done` until it returns `Ok(None)` or the time is up; `Ok(Some(why))` means not
/// yet, and `why` goes into the timeout error. Prints a dot a second, as redis-cli does.
fn wait_until(
    timeout: Duration,
    what: &str,
    mut done: impl FnMut() -> Result<Option<String>, String>,
) -> Result<(), String> {
    let start = Instant::now();
    let mut dots = 0;
    loop {
        let why = match done()? {
            None => {
                if dots > 0 {
                    say!();
                }
                return Ok(());
            }
            Some(why) => why,
        };
        if start.elapsed() >= timeout {
            if dots > 0 {
                say!();
            }
            return Err(format!("[ERR] Timed out after {} s waiting for {what}: {why}", timeout.as_secs()));
        }
        if start.elapsed().as_secs() > dots {
            dots += 1;
            say_part!(".");
            let _ = io::stdout().flush();
        }
        std::thread::sleep(POLL);
    }
}

/// The IP address `CLUSTER MEET` needs (it takes no host names).
fn resolve_ip(endpoint: &Endpoint) -> Result<String, String> {
    let addrs: Vec<_> = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .map_err(|e| format!("Invalid IP address or hostname specified: {} ({})", endpoint.host, describe(&e)))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .map(|a| a.ip().to_string())
        .ok_or_else(|| format!("Invalid IP address or hostname specified: {}", endpoint.host))
}

/// Why `m` is not empty enough to join a new cluster, if it is not.
fn not_empty(m: &mut Member) -> Result<Option<String>, String> {
    let keys = m.dbsize()?;
    let info = m.cluster_info()?;
    let known = info_field(&info, "cluster_known_nodes").unwrap_or("?");
    let assigned = info_field(&info, "cluster_slots_assigned").unwrap_or("0");
    let why = if keys != 0 {
        format!("holds {keys} key(s)")
    } else if known != "1" {
        format!("already knows {known} nodes")
    } else if assigned != "0" {
        format!("already has {assigned} slots assigned")
    } else {
        return Ok(None);
    };
    Ok(Some(format!(
        "[ERR] Node {} is not empty ({why}). Either the node already knows other nodes (check with CLUSTER NODES) \
         or contains some key in database 0.",
        m.endpoint
    )))
}

/// Gives a master its slot range: CLUSTER ADDSLOTSRANGE, or ADDSLOTS where the server
/// predates 7.0.
fn add_slots(m: &mut Member, first: u16, last: u16) -> Result<(), String> {
    let (a, b) = (first.to_string(), last.to_string());
    match m.call(&["CLUSTER", "ADDSLOTSRANGE", &a, &b])? {
        Value::Error(e) if e.to_ascii_lowercase().contains("unknown subcommand") => {
            let slots: Vec<String> = (first..=last).map(|s| s.to_string()).collect();
            let mut args = vec!["CLUSTER", "ADDSLOTS"];
            args.extend(slots.iter().map(String::as_str));
            m.ok(&args).map(|_| ())
        }
        Value::Error(e) => Err(format!("[ERR] Node {} replied with error to CLUSTER ADDSLOTSRANGE: {e}", m.endpoint)),
        _ => Ok(()),
    }
}

/// `cluster create HOST:PORT... [--replicas N] [--yes]`.
pub fn create(addresses: &[String], options: &CreateOptions, handshake: &Handshake) -> Result<(), String> {
    let endpoints = addresses.iter().map(|a| parse_endpoint(a)).collect::<Result<Vec<_>, _>>()?;
    let mut members = Vec::with_capacity(endpoints.len());
    for endpoint in &endpoints {
        if endpoints.iter().filter(|e| *e == endpoint).count() > 1 {
            return Err(format!("[ERR] Node {endpoint} is listed more than once."));
        }
        let mut m = connect(endpoint, handshake)?;
        if let Some(why) = not_empty(&mut m)? {
            return Err(why);
        }
        if let Some(twin) = members.iter().find(|o: &&Member| o.me().id == m.me().id) {
            return Err(format!("[ERR] Nodes {} and {} are the same node ({}).", twin.endpoint, m.endpoint, m.me().id));
        }
        members.push(m);
    }
    let hosts: Vec<String> = endpoints.iter().map(|e| e.host.clone()).collect();
    let layout = plan::plan(&hosts, options.replicas)?;

    say!(">>> Performing hash slots allocation on {} nodes...", members.len());
    for (i, (_, first, last)) in layout.masters.iter().enumerate() {
        say!("Master[{i}] -> Slots {first} - {last}");
    }
    for (k, (replica, master)) in layout.replicas.iter().enumerate() {
        if layout.extra_from == Some(k) {
            say!("Adding extra replicas...");
        }
        say!("Adding replica {} to {}", endpoints[*replica], endpoints[*master]);
    }
    let ids: Vec<String> = members.iter().map(|m| m.me().id.clone()).collect();
    for (i, endpoint) in endpoints.iter().enumerate() {
        if let Some((_, master)) = layout.replicas.iter().find(|(r, _)| *r == i) {
            say!("S: {} {endpoint}", ids[i]);
            say!("   replicates {}", ids[*master]);
        } else if let Some((_, first, last)) = layout.masters.iter().find(|(m, _, _)| *m == i) {
            let slots = SlotSet::from_ranges(&[(*first, *last)]);
            say!("M: {} {endpoint}", ids[i]);
            say!("   slots:{} ({} slots) master", slots.brackets(), slots.len());
        }
    }
    if !options.yes && !confirm("Can I set the above configuration?") {
        return Err("cluster create: configuration not accepted (answer 'yes', or pass --yes)".to_string());
    }

    for &(m, first, last) in &layout.masters {
        add_slots(&mut members[m], first, last)?;
    }
    say!(">>> Nodes configuration updated");
    say!(">>> Assign a different config epoch to each node");
    for (i, m) in members.iter_mut().enumerate() {
        // A failure here is not fatal: nodes resolve epoch collisions by themselves.
        if let Value::Error(e) = m.call(&["CLUSTER", "SET-CONFIG-EPOCH", &(i + 1).to_string()])? {
            say!("[WARNING] Node {}: CLUSTER SET-CONFIG-EPOCH {}: {e}", m.endpoint, i + 1);
        }
    }
    say!(">>> Sending CLUSTER MEET messages to join the cluster");
    let first_ip = resolve_ip(&endpoints[0])?;
    let first_port = endpoints[0].port.to_string();
    let first_bus = members[0].me().bus_port;
    let bus = first_bus.to_string();
    for m in members.iter_mut().skip(1) {
        let mut args = vec!["CLUSTER", "MEET", first_ip.as_str(), first_port.as_str()];
        if u32::from(first_bus) != u32::from(endpoints[0].port) + 10000 {
            args.push(&bus);
        }
        m.ok(&args)?;
    }

    // Joined: every node knows exactly the planned nodes (no handshakes left) and gives
    // the masters the planned slots.
    let expected_ids: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    let mut expected_view: Vec<NodeLine> = Vec::new();
    for &(m, first, last) in &layout.masters {
        let mut line = members[m].me().clone();
        line.slots = SlotSet::from_ranges(&[(first, last)]);
        expected_view.push(line);
    }
    let expected_slots = slot_signature(&expected_view);
    say!("Waiting for the cluster to join");
    wait_until(JOIN_TIMEOUT, "the nodes to join", || {
        for m in members.iter_mut() {
            m.reload()?;
            let known: BTreeSet<&str> = m
                .view
                .iter()
                .filter(|n| !n.has_flag("handshake") && !n.has_flag("noaddr"))
                .map(|n| n.id.as_str())
                .collect();
            if known != expected_ids {
                return Ok(Some(format!("{} knows {} of {} nodes", m.endpoint, known.len(), expected_ids.len())));
            }
            if slot_signature(&m.view) != expected_slots {
                return Ok(Some(format!("{} does not see every master's slots yet", m.endpoint)));
            }
        }
        Ok(None)
    })?;

    if !layout.replicas.is_empty() {
        say!(">>> Configuring replicas");
    }
    for &(r, master) in &layout.replicas {
        let master_id = ids[master].clone();
        members[r].ok(&["CLUSTER", "REPLICATE", &master_id])?;
    }
    // Up: every node says cluster_state:ok and every replica says it follows its master.
    // (How soon the other nodes learn of a new replica is up to gossip, seconds later:
    // not waited for, as redis-cli does not, and `check` reads roles from each node.)
    say!(">>> Waiting for cluster_state:ok on every node");
    wait_until(READY_TIMEOUT, "cluster_state:ok", || {
        for m in members.iter_mut() {
            let info = m.cluster_info()?;
            let state = info_field(&info, "cluster_state").unwrap_or("?").to_string();
            if state != "ok" {
                return Ok(Some(format!("{} reports cluster_state:{state}", m.endpoint)));
            }
        }
        for &(r, master) in &layout.replicas {
            members[r].reload()?;
            let me = members[r].me();
            if !(me.is_replica() && me.master.as_deref() == Some(ids[master].as_str())) {
                return Ok(Some(format!("{} is not a replica of {} yet", endpoints[r], endpoints[master])));
            }
        }
        Ok(None)
    })?;
    drop(members);

    match Cluster::load(&endpoints[0], handshake)?.check() {
        0 => Ok(()),
        n => Err(format!("cluster create: the new cluster failed its check with {n} problem(s)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_fields_are_found_by_exact_name() {
        let text = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_known_nodes:6\r\n";
        assert_eq!(info_field(text, "cluster_state"), Some("ok"));
        assert_eq!(info_field(text, "cluster_known_nodes"), Some("6"));
        assert_eq!(info_field(text, "cluster_slots"), None);
        assert_eq!(info_field(text, "missing"), None);
    }

    #[test]
    fn node_arguments_take_either_form() {
        assert_eq!(node_argument(&["h:7000".into()]), Ok(Endpoint::new("h", 7000)));
        assert_eq!(node_argument(&["h".into(), "7000".into()]), Ok(Endpoint::new("h", 7000)));
        assert!(node_argument(&["h".into()]).is_err());
        assert!(node_argument(&[]).is_err());
    }
}
