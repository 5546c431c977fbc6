//! The FORGET ban list.

use super::*;

impl ClusterState {
    pub(crate) fn blacklist_add(&mut self, id: NodeId) {
        self.blacklist_cleanup();
        self.blacklist.insert(id, self.now + FORGET_BAN_MS);
    }

    pub(super) fn blacklist_cleanup(&mut self) {
        let now = self.now;
        self.blacklist.retain(|_, until| *until >= now);
    }

    pub(super) fn blacklisted(&mut self, id: &NodeId) -> bool {
        self.blacklist_cleanup();
        self.blacklist.contains_key(id)
    }
}
