//! The text of `CLUSTER NODES`, parsed, and slot sets.
//!
//! One line per node: `<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent>
//! <pong-recv> <config-epoch> <link-state> <slot>...`, where a slot is `N`, `A-B`,
//! `[N->-<id>]` (migrating to id, only on the owner's own line) or `[N-<-<id>]`
//! (importing from id).

use std::fmt::Write as _;

pub const SLOTS: usize = 16384;

/// A set of hash slots.
#[derive(Clone, PartialEq, Eq)]
pub struct SlotSet(Vec<bool>);

impl Default for SlotSet {
    fn default() -> Self {
        SlotSet(vec![false; SLOTS])
    }
}

impl std::fmt::Debug for SlotSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SlotSet({})", self.brackets())
    }
}

impl SlotSet {
    pub fn from_ranges(ranges: &[(u16, u16)]) -> SlotSet {
        let mut set = SlotSet::default();
        for &(a, b) in ranges {
            set.insert_range(a, b);
        }
        set
    }

    /// Adds `a..=b`; the caller checked `a <= b < 16384`.
    pub fn insert_range(&mut self, a: u16, b: u16) {
        for s in a..=b {
            self.0[usize::from(s)] = true;
        }
    }

    pub fn contains(&self, slot: u16) -> bool {
        self.0.get(usize::from(slot)).copied().unwrap_or(false)
    }

    pub fn insert(&mut self, slot: u16) {
        if let Some(b) = self.0.get_mut(usize::from(slot)) {
            *b = true;
        }
    }

    pub fn remove(&mut self, slot: u16) {
        if let Some(b) = self.0.get_mut(usize::from(slot)) {
            *b = false;
        }
    }

    /// The slots, in order.
    pub fn to_vec(&self) -> Vec<u16> {
        (0..SLOTS as u16).filter(|&s| self.0[usize::from(s)]).collect()
    }

    pub fn len(&self) -> usize {
        self.0.iter().filter(|&&b| b).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The slots not in the set.
    pub fn complement(&self) -> SlotSet {
        SlotSet(self.0.iter().map(|b| !b).collect())
    }

    pub fn union_with(&mut self, other: &SlotSet) {
        for (mine, theirs) in self.0.iter_mut().zip(&other.0) {
            *mine |= *theirs;
        }
    }

    /// Maximal runs of consecutive slots, in order.
    pub fn ranges(&self) -> Vec<(u16, u16)> {
        let mut out = Vec::new();
        let mut start: Option<usize> = None;
        for i in 0..=SLOTS {
            let has = i < SLOTS && self.0[i];
            match (has, start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    out.push((s as u16, (i - 1) as u16));
                    start = None;
                }
                _ => {}
            }
        }
        out
    }

    /// redis-cli's slot list: `[0-5460],[5462]`.
    pub fn brackets(&self) -> String {
        let mut out = String::new();
        for (i, (a, b)) in self.ranges().into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if a == b {
                let _ = write!(out, "[{a}]");
            } else {
                let _ = write!(out, "[{a}-{b}]");
            }
        }
        out
    }

    /// The slot list as CLUSTER NODES writes it: `0-5460 5462`.
    pub fn plain(&self) -> String {
        let parts: Vec<String> =
            self.ranges().into_iter().map(|(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") }).collect();
        parts.join(" ")
    }
}

/// One line of CLUSTER NODES.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLine {
    pub id: String,
    pub host: String,
    pub port: u16,
    pub bus_port: u16,
    pub flags: Vec<String>,
    /// The master's id for a replica; `None` for `-`.
    pub master: Option<String>,
    pub config_epoch: u64,
    pub connected: bool,
    pub slots: SlotSet,
    /// `(slot, destination id)` for `[slot->-id]`.
    pub migrating: Vec<(u16, String)>,
    /// `(slot, source id)` for `[slot-<-id]`.
    pub importing: Vec<(u16, String)>,
}

impl NodeLine {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    pub fn is_myself(&self) -> bool {
        self.has_flag("myself")
    }

    pub fn is_replica(&self) -> bool {
        self.has_flag("slave") || self.has_flag("replica")
    }

    /// The flags but `myself`, comma-separated, as redis-cli shows them.
    pub fn shown_flags(&self) -> String {
        self.flags.iter().filter(|f| f.as_str() != "myself").cloned().collect::<Vec<_>>().join(",")
    }
}

fn parse_slot(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(s) if usize::from(s) < SLOTS => Ok(s),
        _ => Err(format!("bad slot '{text}'")),
    }
}

/// Parses one line; the error names what is wrong.
pub fn parse_line(line: &str) -> Result<NodeLine, String> {
    let fields: Vec<&str> = line.split(' ').filter(|f| !f.is_empty()).collect();
    if fields.len() < 8 {
        return Err(format!("expected at least 8 fields in '{line}'"));
    }
    let id = fields[0].to_string();
    // `ip:port@cport[,hostname]`; pre-4.0 nodes had no `@cport`.
    let addr = fields[1].split(',').next().unwrap_or_default();
    let (hostport, bus) = match addr.split_once('@') {
        Some((hp, bus)) => (hp, Some(bus)),
        None => (addr, None),
    };
    let (host, port) = hostport.rsplit_once(':').ok_or_else(|| format!("bad address '{}'", fields[1]))?;
    let port: u16 = port.parse().map_err(|_| format!("bad port in '{}'", fields[1]))?;
    let bus_port: u16 = match bus {
        Some(b) => b.parse().map_err(|_| format!("bad bus port in '{}'", fields[1]))?,
        None => port.wrapping_add(10000),
    };
    let flags = fields[2].split(',').filter(|f| !f.is_empty()).map(str::to_string).collect();
    let master = match fields[3] {
        "-" => None,
        m => Some(m.to_string()),
    };
    let config_epoch = fields[6].parse().map_err(|_| format!("bad config epoch '{}'", fields[6]))?;
    let connected = fields[7] == "connected";
    let mut slots = SlotSet::default();
    let mut migrating = Vec::new();
    let mut importing = Vec::new();
    for token in &fields[8..] {
        if let Some(inner) = token.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            if let Some((slot, to)) = inner.split_once("->-") {
                migrating.push((parse_slot(slot)?, to.to_string()));
            } else if let Some((slot, from)) = inner.split_once("-<-") {
                importing.push((parse_slot(slot)?, from.to_string()));
            } else {
                return Err(format!("bad open slot '{token}'"));
            }
        } else if let Some((a, b)) = token.split_once('-') {
            let (a, b) = (parse_slot(a)?, parse_slot(b)?);
            if a > b {
                return Err(format!("bad slot range '{token}'"));
            }
            slots.insert_range(a, b);
        } else {
            let s = parse_slot(token)?;
            slots.insert_range(s, s);
        }
    }
    Ok(NodeLine {
        id,
        host: host.to_string(),
        port,
        bus_port,
        flags,
        master,
        config_epoch,
        connected,
        slots,
        migrating,
        importing,
    })
}

/// Parses the whole reply (blank lines skipped).
pub fn parse_nodes(text: &str) -> Result<Vec<NodeLine>, String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(parse_line).collect()
}

/// What a node believes about slot ownership, comparable between nodes: for each node
/// that claims slots, its id and slot ranges, ordered by id (redis-cli's "config
/// signature", built from parsed ranges so that formatting differences do not count).
pub fn slot_signature(view: &[NodeLine]) -> String {
    let mut parts: Vec<String> =
        view.iter().filter(|n| !n.slots.is_empty()).map(|n| format!("{}:{}", n.id, n.slots.plain())).collect();
    parts.sort();
    parts.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like redis-server 7.0's output for 3 masters and a replica, slot 7 migrating.
    const VIEW: &str = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003,node-3 master - 0 1426238318243 3 connected 10923-16383
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 [7->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]
";

    #[test]
    fn a_redis_view_parses() {
        let view = parse_nodes(VIEW).expect("parse");
        assert_eq!(view.len(), 4);
        let replica = &view[0];
        assert!(replica.is_replica() && !replica.is_myself());
        assert_eq!(replica.master.as_deref(), Some("e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca"));
        assert_eq!((replica.host.as_str(), replica.port, replica.bus_port), ("127.0.0.1", 30004, 31004));
        assert_eq!(view[2].host, "127.0.0.1");
        assert_eq!(view[2].slots.len(), 16384 - 10923);
        let me = &view[3];
        assert!(me.is_myself());
        assert_eq!(me.shown_flags(), "master");
        assert_eq!(me.config_epoch, 1);
        assert_eq!(me.slots.len(), 5461);
        assert_eq!(me.slots.ranges(), vec![(0, 5460)]);
        assert_eq!(me.migrating, vec![(7, "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1".to_string())]);
        assert!(me.importing.is_empty());
    }

    #[test]
    fn bad_lines_are_errors_not_panics() {
        for bad in [
            "id 127.0.0.1:1@2 master - 0 0",
            "id nocolon@2 master - 0 0 1 connected",
            "id h:99999@2 master - 0 0 1 connected",
            "id h:1@2 master - 0 0 x connected",
            "id h:1@2 master - 0 0 1 connected 16384",
            "id h:1@2 master - 0 0 1 connected 9-3",
            "id h:1@2 master - 0 0 1 connected [5]",
            "id h:1@2 master - 0 0 1 connected [x->-y]",
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slot_sets_print_like_redis_cli() {
        let set = SlotSet::from_ranges(&[(0, 5460), (5462, 5462), (16383, 16383)]);
        assert_eq!(set.brackets(), "[0-5460],[5462],[16383]");
        assert_eq!(set.plain(), "0-5460 5462 16383");
        assert_eq!(set.len(), 5463);
        assert_eq!(SlotSet::default().brackets(), "");
        assert_eq!(set.complement().plain(), "5461 5463-16382");
    }

    #[test]
    fn signatures_ignore_order_and_formatting_but_not_ownership() {
        let a = parse_nodes("b h:2@3 master - 0 0 1 connected 10-20\na h:1@2 myself,master - 0 0 1 connected 0-9\n")
            .expect("a");
        let b =
            parse_nodes("a h:1@2 master - 0 0 1 connected 0-4 5-9\nb h:2@3 myself,master - 0 0 1 connected 10-20\n")
                .expect("b");
        let c = parse_nodes("a h:1@2 master - 0 0 1 connected 0-9\nb h:2@3 myself,master - 0 0 1 connected 11-20\n")
            .expect("c");
        assert_eq!(slot_signature(&a), "a:0-9|b:10-20");
        assert_eq!(slot_signature(&a), slot_signature(&b));
        assert_ne!(slot_signature(&a), slot_signature(&c));
    }
}
