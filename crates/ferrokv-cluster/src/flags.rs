//! Node flags, with Redis's bit values and names (`CLUSTER NODES`, nodes.conf).

use std::fmt;

/// The flags a node carries in the cluster table and in gossip.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NodeFlags(pub u16);

impl NodeFlags {
    pub const MASTER: NodeFlags = NodeFlags(1);
    pub const SLAVE: NodeFlags = NodeFlags(2);
    /// Possibly failing: no pong within node-timeout (shown as `fail?`).
    pub const PFAIL: NodeFlags = NodeFlags(4);
    /// Failing, by agreement of a majority of masters.
    pub const FAIL: NodeFlags = NodeFlags(8);
    pub const MYSELF: NodeFlags = NodeFlags(16);
    /// No PONG with the node's real ID received yet.
    pub const HANDSHAKE: NodeFlags = NodeFlags(32);
    pub const NOADDR: NodeFlags = NodeFlags(64);
    /// Send MEET rather than PING on the next connection.
    pub const MEET: NodeFlags = NodeFlags(128);
    /// A master that replicas may migrate to.
    pub const MIGRATE_TO: NodeFlags = NodeFlags(256);
    pub const NOFAILOVER: NodeFlags = NodeFlags(512);

    pub const NONE: NodeFlags = NodeFlags(0);

    /// The flags printed by `CLUSTER NODES`, in its order.
    const NAMED: [(NodeFlags, &'static str); 8] = [
        (Self::MYSELF, "myself"),
        (Self::MASTER, "master"),
        (Self::SLAVE, "slave"),
        (Self::PFAIL, "fail?"),
        (Self::FAIL, "fail"),
        (Self::HANDSHAKE, "handshake"),
        (Self::NOADDR, "noaddr"),
        (Self::NOFAILOVER, "nofailover"),
    ];

    pub fn contains(self, other: NodeFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn intersects(self, other: NodeFlags) -> bool {
        self.0 & other.0 != 0
    }

    pub fn insert(&mut self, other: NodeFlags) {
        self.0 |= other.0;
    }

    pub fn remove(&mut self, other: NodeFlags) {
        self.0 &= !other.0;
    }

    pub fn set(&mut self, other: NodeFlags, on: bool) {
        if on {
            self.insert(other)
        } else {
            self.remove(other)
        }
    }

    /// The comma-separated list Redis prints, `noflags` when none applies.
    pub fn names(self) -> String {
        let mut s = String::new();
        for (flag, name) in Self::NAMED {
            if self.intersects(flag) {
                if !s.is_empty() {
                    s.push(',');
                }
                s.push_str(name);
            }
        }
        if s.is_empty() {
            s.push_str("noflags");
        }
        s
    }

    /// Parses one name of a nodes.conf flag list (case-insensitive, as Redis loads them).
    pub fn from_name(name: &str) -> Option<NodeFlags> {
        if name.eq_ignore_ascii_case("noflags") {
            return Some(NodeFlags::NONE);
        }
        Self::NAMED.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)).map(|(f, _)| *f)
    }
}

impl std::ops::BitOr for NodeFlags {
    type Output = NodeFlags;
    fn bitor(self, rhs: NodeFlags) -> NodeFlags {
        NodeFlags(self.0 | rhs.0)
    }
}

impl fmt::Debug for NodeFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeFlags({})", self.names())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_redis_order_and_noflags() {
        assert_eq!((NodeFlags::MASTER | NodeFlags::MYSELF).names(), "myself,master");
        assert_eq!((NodeFlags::SLAVE | NodeFlags::PFAIL | NodeFlags::NOFAILOVER).names(), "slave,fail?,nofailover");
        assert_eq!(NodeFlags::NONE.names(), "noflags");
        // MEET and MIGRATE_TO are internal and never printed.
        assert_eq!((NodeFlags::MEET | NodeFlags::MIGRATE_TO).names(), "noflags");
        assert_eq!(NodeFlags::from_name("FAIL?"), Some(NodeFlags::PFAIL));
        assert_eq!(NodeFlags::from_name("meet"), None);
    }
}
