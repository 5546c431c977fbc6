//! An order-statistics B+tree of element ids.
//!
//! The tree keeps a sequence of `u32` ids in an order it does not know itself: the
//! caller decides positions (ranks) and answers comparisons through predicates. Every
//! element lives in a leaf; an inner node keeps, for each child, the number of elements
//! under it (so rank lookups descend by counts, as a skiplist does with its spans) and
//! the child's first id (so a monotone predicate can be searched for, as Redis searches
//! its skiplist by score and member). Everything is O(log n): finding the element at a
//! rank, the rank where a predicate stops holding, inserting and removing at a rank.
//!
//! Leaves hold up to [`LEAF_MAX`] ids and inner nodes up to [`INNER_MAX`] children;
//! a node that overflows splits in two, one that falls under a quarter of that merges
//! with a neighbour or borrows from it. All leaves are at the same depth.

/// Most ids in a leaf (256 bytes of ids).
const LEAF_MAX: usize = 64;
const LEAF_MIN: usize = LEAF_MAX / 4;
/// Most children of an inner node.
const INNER_MAX: usize = 32;
const INNER_MIN: usize = INNER_MAX / 4;
/// Fill of the nodes [`Tree::from_sorted`] builds: room to grow before splitting.
const LEAF_BUILD: usize = LEAF_MAX * 3 / 4;
const INNER_BUILD: usize = INNER_MAX * 3 / 4;

#[derive(Clone, Debug)]
pub(super) struct Tree {
    root: Node,
    len: usize,
}

#[derive(Clone, Debug)]
enum Node {
    Leaf(Vec<u32>),
    Inner(Vec<Child>),
}

#[derive(Clone, Debug)]
struct Child {
    /// The first id under this child (meaningless while `count` is 0).
    first: u32,
    /// How many ids are under this child.
    count: u32,
    node: Node,
}

impl Node {
    fn first(&self) -> u32 {
        match self {
            Node::Leaf(v) => v.first().copied().unwrap_or(0),
            Node::Inner(cs) => cs.first().map_or(0, |c| c.first),
        }
    }

    /// Entries of this node (ids of a leaf, children of an inner node).
    fn width(&self) -> usize {
        match self {
            Node::Leaf(v) => v.len(),
            Node::Inner(cs) => cs.len(),
        }
    }

    fn underfull(&self) -> bool {
        match self {
            Node::Leaf(v) => v.len() < LEAF_MIN,
            Node::Inner(cs) => cs.len() < INNER_MIN,
        }
    }

    fn child(node: Node) -> Child {
        let count = match &node {
            Node::Leaf(v) => v.len() as u32,
            Node::Inner(cs) => cs.iter().map(|c| c.count).sum(),
        };
        Child { first: node.first(), count, node }
    }
}

/// Index of the child holding rank `r` of an inner node, and the rank inside it.
/// With `at_end`, a rank equal to a child's count stays in that child (insertion
/// appends to it rather than prepending to the next one).
fn locate(cs: &[Child], mut r: usize, at_end: bool) -> (usize, usize) {
    let last = cs.len() - 1;
    for (i, c) in cs.iter().enumerate() {
        let n = c.count as usize;
        if r < n || (at_end && r == n) || i == last {
            return (i, r);
        }
        r -= n;
    }
    (last, r)
}

impl Tree {
    #[cfg(test)]
    pub fn new() -> Tree {
        Tree { root: Node::Leaf(Vec::new()), len: 0 }
    }

    /// A tree holding `ids` in this order, its nodes three quarters full.
    pub fn from_sorted(ids: Vec<u32>) -> Tree {
        let len = ids.len();
        if len <= LEAF_MAX {
            return Tree { root: Node::Leaf(ids), len };
        }
        let mut level: Vec<Node> = chunks(ids.len(), LEAF_BUILD)
            .scan(ids.as_slice(), |rest, n| {
                let (head, tail) = rest.split_at(n);
                *rest = tail;
                Some(Node::Leaf(head.to_vec()))
            })
            .collect();
        while level.len() > 1 {
            let mut nodes = level.into_iter();
            level = chunks(nodes.len(), INNER_BUILD)
                .map(|n| Node::Inner(nodes.by_ref().take(n).map(Node::child).collect()))
                .collect();
        }
        Tree { root: level.pop().unwrap_or(Node::Leaf(Vec::new())), len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The id at `rank` (`rank < len`).
    pub fn get(&self, rank: usize) -> u32 {
        debug_assert!(rank < self.len);
        let (mut node, mut r) = (&self.root, rank);
        loop {
            match node {
                Node::Leaf(v) => return v[r],
                Node::Inner(cs) => {
                    let (i, ri) = locate(cs, r, false);
                    node = &cs[i].node;
                    r = ri;
                }
            }
        }
    }

    /// How many ids, from the start, satisfy `pred`, which must hold for a prefix of
    /// the sequence and not after it.
    pub fn partition_point(&self, mut pred: impl FnMut(u32) -> bool) -> usize {
        let (mut node, mut before) = (&self.root, 0usize);
        loop {
            match node {
                Node::Leaf(v) => return before + v.partition_point(|&id| pred(id)),
                Node::Inner(cs) => {
                    let k = cs.partition_point(|c| pred(c.first));
                    if k == 0 {
                        return before;
                    }
                    before += cs[..k - 1].iter().map(|c| c.count as usize).sum::<usize>();
                    node = &cs[k - 1].node;
                }
            }
        }
    }

    /// Inserts `id` so that it ends up at `rank` (`rank <= len`).
    pub fn insert(&mut self, rank: usize, id: u32) {
        debug_assert!(rank <= self.len);
        if let Some(right) = insert(&mut self.root, rank, id) {
            let left = std::mem::replace(&mut self.root, Node::Leaf(Vec::new()));
            self.root = Node::Inner(vec![Node::child(left), right]);
        }
        self.len += 1;
    }

    /// Removes and returns the id at `rank` (`rank < len`).
    pub fn remove(&mut self, rank: usize) -> u32 {
        debug_assert!(rank < self.len);
        let id = remove(&mut self.root, rank);
        self.len -= 1;
        loop {
            match &mut self.root {
                Node::Inner(cs) if cs.len() == 1 => {
                    let only = cs.pop().map(|c| c.node).unwrap_or(Node::Leaf(Vec::new()));
                    self.root = only;
                }
                _ => break,
            }
        }
        id
    }

    /// Puts `id` in place of the id at `rank`.
    pub fn replace(&mut self, rank: usize, id: u32) {
        let (mut node, mut r) = (&mut self.root, rank);
        loop {
            match node {
                Node::Leaf(v) => {
                    v[r] = id;
                    return;
                }
                Node::Inner(cs) => {
                    let (i, ri) = locate(cs, r, false);
                    if ri == 0 {
                        cs[i].first = id;
                    }
                    node = &mut cs[i].node;
                    r = ri;
                }
            }
        }
    }

    /// Calls `f` with the ids from rank `from` on, towards the end or (`reverse`) the
    /// start, until `f` returns false or the sequence ends.
    pub fn walk(&self, from: usize, reverse: bool, f: &mut dyn FnMut(u32) -> bool) {
        if from < self.len {
            if reverse {
                walk_back(&self.root, from, f);
            } else {
                walk(&self.root, from, f);
            }
        }
    }

    /// Checks the counts, firsts and fill of every node (tests).
    #[cfg(test)]
    pub fn check(&self) {
        fn depth_and_count(node: &Node, is_root: bool) -> (usize, usize) {
            if !is_root {
                assert!(!node.underfull() || node.width() > 0, "empty node");
            }
            match node {
                Node::Leaf(v) => {
                    assert!(v.len() <= LEAF_MAX);
                    (0, v.len())
                }
                Node::Inner(cs) => {
                    assert!(cs.len() <= INNER_MAX && !cs.is_empty());
                    if !is_root {
                        assert!(cs.len() >= INNER_MIN, "inner node under minimum: {}", cs.len());
                    }
                    let mut depth = None;
                    let mut total = 0;
                    for c in cs {
                        let (d, n) = depth_and_count(&c.node, false);
                        if let Node::Leaf(v) = &c.node {
                            assert!(v.len() >= LEAF_MIN, "leaf under minimum: {}", v.len());
                        }
                        assert_eq!(c.count as usize, n, "child count");
                        assert!(n > 0);
                        assert_eq!(c.first, c.node.first(), "child first");
                        assert!(depth.is_none() || depth == Some(d), "leaves at different depths");
                        depth = Some(d);
                        total += n;
                    }
                    (depth.unwrap_or(0) + 1, total)
                }
            }
        }
        let (_, n) = depth_and_count(&self.root, true);
        assert_eq!(n, self.len);
    }
}

/// Sizes of `parts` chunks that split `n` items as evenly as possible, about `size` each.
fn chunks(n: usize, size: usize) -> impl Iterator<Item = usize> {
    let parts = n.div_ceil(size).max(1);
    (0..parts).map(move |i| n / parts + usize::from(i < n % parts))
}

/// Inserts into `node`; returns the right half when the node split.
fn insert(node: &mut Node, rank: usize, id: u32) -> Option<Child> {
    match node {
        Node::Leaf(v) => {
            v.insert(rank, id);
            if v.len() > LEAF_MAX {
                let right = v.split_off(v.len() / 2);
                v.shrink_to(LEAF_MAX);
                return Some(Node::child(Node::Leaf(right)));
            }
            None
        }
        Node::Inner(cs) => {
            let (i, r) = locate(cs, rank, true);
            let c = &mut cs[i];
            c.count += 1;
            if r == 0 {
                c.first = id;
            }
            if let Some(split) = insert(&mut c.node, r, id) {
                c.count -= split.count;
                cs.insert(i + 1, split);
                if cs.len() > INNER_MAX {
                    let right = cs.split_off(cs.len() / 2);
                    return Some(Node::child(Node::Inner(right)));
                }
            }
            None
        }
    }
}

fn remove(node: &mut Node, rank: usize) -> u32 {
    match node {
        Node::Leaf(v) => v.remove(rank),
        Node::Inner(cs) => {
            let (i, r) = locate(cs, rank, false);
            let id = remove(&mut cs[i].node, r);
            let c = &mut cs[i];
            c.count -= 1;
            if r == 0 {
                c.first = c.node.first();
            }
            if c.node.underfull() && cs.len() > 1 {
                rebalance(cs, i);
            }
            id
        }
    }
}

/// Merges the underfull child `i` with a neighbour, or evens their sizes out when
/// both together would overflow.
fn rebalance(cs: &mut Vec<Child>, i: usize) {
    let (a, b) = if i > 0 { (i - 1, i) } else { (i, i + 1) };
    let (left, right) = cs.split_at_mut(b);
    let (l, r) = (&mut left[a], &mut right[0]);
    let max = match l.node {
        Node::Leaf(_) => LEAF_MAX,
        Node::Inner(_) => INNER_MAX,
    };
    let total = l.node.width() + r.node.width();
    match (&mut l.node, &mut r.node) {
        (Node::Leaf(lv), Node::Leaf(rv)) => {
            if total <= max {
                lv.append(rv);
            } else {
                let keep = total / 2;
                if lv.len() > keep {
                    let moved = lv.split_off(keep);
                    rv.splice(0..0, moved);
                } else {
                    let take = keep - lv.len();
                    lv.extend(rv.drain(..take));
                }
            }
        }
        (Node::Inner(lc), Node::Inner(rc)) => {
            if total <= max {
                lc.append(rc);
            } else {
                let keep = total / 2;
                if lc.len() > keep {
                    let moved = lc.split_off(keep);
                    rc.splice(0..0, moved);
                } else {
                    let take = keep - lc.len();
                    lc.extend(rc.drain(..take));
                }
            }
        }
        _ => unreachable!("siblings are at the same depth"),
    }
    let (ln, rn) = (std::mem::replace(&mut l.node, Node::Leaf(Vec::new())), r.node.width());
    *l = Node::child(ln);
    if rn == 0 {
        cs.remove(b);
    } else {
        let rnode = std::mem::replace(&mut cs[b].node, Node::Leaf(Vec::new()));
        cs[b] = Node::child(rnode);
    }
}

fn walk(node: &Node, from: usize, f: &mut dyn FnMut(u32) -> bool) -> bool {
    match node {
        Node::Leaf(v) => v[from..].iter().all(|&id| f(id)),
        Node::Inner(cs) => {
            let (i, r) = locate(cs, from, false);
            walk(&cs[i].node, r, f) && cs[i + 1..].iter().all(|c| walk(&c.node, 0, f))
        }
    }
}

fn walk_back(node: &Node, from: usize, f: &mut dyn FnMut(u32) -> bool) -> bool {
    match node {
        Node::Leaf(v) => v[..=from].iter().rev().all(|&id| f(id)),
        Node::Inner(cs) => {
            let (i, r) = locate(cs, from, false);
            walk_back(&cs[i].node, r, f) && cs[..i].iter().rev().all(|c| walk_back(&c.node, c.count as usize - 1, f))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(t: &Tree) -> Vec<u32> {
        let mut out = Vec::new();
        t.walk(0, false, &mut |id| {
            out.push(id);
            true
        });
        out
    }

    /// Random inserts and removes at random ranks against a Vec model.
    #[test]
    fn matches_a_vec_model() {
        let mut seed = 0x1234_5678_9abc_def1u64;
        let mut rnd = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut t = Tree::new();
        let mut model: Vec<u32> = Vec::new();
        for step in 0..40_000u32 {
            let grow = if step < 20_000 { rnd(10) < 7 } else { rnd(10) < 3 };
            if grow || model.is_empty() {
                let r = rnd(model.len() + 1);
                t.insert(r, step);
                model.insert(r, step);
            } else {
                let r = rnd(model.len());
                assert_eq!(t.remove(r), model.remove(r));
            }
            if step % 997 == 0 {
                t.check();
                assert_eq!(collect(&t), model);
            }
        }
        t.check();
        assert_eq!(collect(&t), model);
        for r in (0..model.len()).step_by(37) {
            assert_eq!(t.get(r), model[r]);
        }
        while !model.is_empty() {
            let r = rnd(model.len());
            assert_eq!(t.remove(r), model.remove(r));
        }
        t.check();
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn partition_point_follows_a_monotone_predicate() {
        // Ids are the values themselves, inserted in order.
        let t = Tree::from_sorted((0..5000).map(|i| i * 2).collect());
        t.check();
        for probe in [0u32, 1, 2, 99, 100, 5000, 9998, 9999, 20000] {
            let want = (0..5000).filter(|i| i * 2 < probe).count();
            assert_eq!(t.partition_point(|id| id < probe), want, "probe {probe}");
        }
    }

    #[test]
    fn walks_both_ways_and_stops() {
        let t = Tree::from_sorted((0..1000).collect());
        let mut seen = Vec::new();
        t.walk(998, true, &mut |id| {
            seen.push(id);
            seen.len() < 300
        });
        assert_eq!(seen, (699..=998).rev().collect::<Vec<_>>());
        seen.clear();
        t.walk(995, false, &mut |id| {
            seen.push(id);
            true
        });
        assert_eq!(seen, vec![995, 996, 997, 998, 999]);
        seen.clear();
        t.walk(1000, false, &mut |id| {
            seen.push(id);
            true
        });
        assert!(seen.is_empty());
    }

    #[test]
    fn replace_updates_firsts() {
        let mut t = Tree::from_sorted((0..500).collect());
        t.replace(0, 7777);
        t.replace(48, 8888);
        t.check();
        assert_eq!(t.get(0), 7777);
        assert_eq!(t.get(48), 8888);
    }

    #[test]
    fn appending_in_order_keeps_the_tree_valid() {
        let mut t = Tree::new();
        for i in 0..10_000 {
            t.insert(i as usize, i);
        }
        t.check();
        for i in 0..10_000 {
            assert_eq!(t.remove(0), i);
            if i % 1000 == 0 {
                t.check();
            }
        }
    }
}
