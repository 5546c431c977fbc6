//! Bus links: creating, connecting and closing them.

use super::*;

impl ClusterState {
    pub(super) fn create_outbound_link(&mut self, n: Idx) {
        let link = LinkId::Outbound(self.next_link);
        self.next_link += 1;
        self.links.insert(
            link,
            Link { node: Some(n), ctime: self.now, connected: false, peer_ip: String::new(), local_ip: String::new() },
        );
        let node = self.node_mut(n);
        node.link = Some(link);
        let (ip, port) = (node.ip.clone(), node.cport);
        self.out.push(Output::Connect { link, ip, port });
    }

    /// Forgets a link; with `close`, asks the IO layer to close it.
    pub(crate) fn free_link(&mut self, id: LinkId, close: bool) {
        let Some(link) = self.links.remove(&id) else { return };
        if close {
            self.out.push(Output::Close(id));
        }
        if let Some(n) = link.node.and_then(|n| self.nodes[n].as_mut()) {
            if n.link == Some(id) {
                n.link = None;
            } else if n.inbound_link == Some(id) {
                n.inbound_link = None;
            }
        }
    }

    pub(super) fn on_connected(&mut self, id: LinkId) {
        if id.is_inbound() {
            return;
        }
        let Some(link) = self.links.get_mut(&id) else { return };
        link.connected = true;
        let Some(n) = link.node else { return };
        // Ping at once, so failure detection has a pending ping to measure; keep the time of
        // a ping that was already pending on the previous link.
        let old_ping_sent = self.node(n).ping_sent;
        let ty = if self.node(n).flags.intersects(NodeFlags::MEET) { MsgType::Meet } else { MsgType::Ping };
        self.send_ping(id, ty);
        let node = self.node_mut(n);
        if old_ping_sent != 0 {
            node.ping_sent = old_ping_sent;
        }
        node.flags.remove(NodeFlags::MEET);
    }

    pub(super) fn on_closed(&mut self, id: LinkId) {
        let Some(link) = self.links.get(&id) else { return };
        let (node, connected) = (link.node, link.connected);
        self.free_link(id, false);
        // A connection attempt that fails counts as a ping sent: without it a node that died
        // right after answering a ping would never be timed out (Redis does this only for
        // synchronous connect errors).
        if let (LinkId::Outbound(_), false, Some(n)) = (id, connected, node) {
            if let Some(n) = self.nodes[n].as_mut() {
                if n.ping_sent == 0 {
                    n.ping_sent = self.now;
                }
            }
        }
    }
}
