//! Values to and from RDB ([`ferrokv_rdb`]): what DUMP, RESTORE, snapshots and loading
//! share.
//!
//! Writing picks the RDB encoding from the value's own, as Redis does: a listpack hash
//! or sorted set as a listpack, a table as a table, an intset as an intset (at the
//! narrowest width that holds its members: Redis's intset keeps the widest it ever
//! needed, so a set that once held a big member and lost it dumps narrower than
//! Redis's), a list as quicklist nodes split as this list's nodes are. Reading builds
//! the value by inserting its elements under the current limits, so a loaded value
//! takes the encoding the config gives it (Redis converts on load the same way).

use crate::hash::{self, HashValue};
use crate::list::ListValue;
use crate::set::{SetLimits, SetValue};
use crate::value::Value;
use crate::zset::{ZSetLimits, ZSetValue};
use ferrokv_rdb::value::{self as rv, RdbValue};

/// The encoding thresholds a loaded value is built under (the config's).
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    pub hash: hash::Limits,
    pub set: SetLimits,
    pub zset: ZSetLimits,
    /// `list-max-listpack-size`.
    pub list_fill: i64,
}

/// Appends `v` as RDB writes it: type byte, the key when `key` is given (a dump.rdb
/// record), the value. `compress`: `rdbcompression`.
pub fn write_value(out: &mut Vec<u8>, key: Option<&[u8]>, v: &Value, compress: bool) {
    let mut buf = [0u8; 20];
    match v {
        Value::Int(n) => rv::write_string_value(out, key, crate::set::format_i64(*n, &mut buf), compress),
        Value::Str { bytes, .. } => rv::write_string_value(out, key, bytes, compress),
        Value::List(l) => {
            let all: Vec<&[u8]> = l.iter().collect();
            let mut rest = &all[..];
            let nodes = l.node_sizes().map(|n| {
                let (node, tail) = rest.split_at(n);
                rest = tail;
                node.iter().copied()
            });
            rv::write_list_quicklist(out, key, nodes, compress);
        }
        Value::Hash(h) => {
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
            let refs = pairs.iter().map(|(f, v)| (&f[..], &v[..]));
            if h.encoding() == "listpack" {
                rv::write_hash_listpack(out, key, refs, compress);
            } else {
                rv::write_hash_table(out, key, pairs.len(), refs, compress);
            }
        }
        Value::Set(s) => {
            if s.is_intset() {
                let ints: Vec<i64> = s.iter().filter_map(|m| m.as_int()).collect();
                let written = rv::write_set_intset(out, key, &ints, rv::intset_width(&ints), compress);
                debug_assert!(written, "an intset iterates sorted, distinct integers");
            } else {
                let members: Vec<Vec<u8>> = s.iter().map(|m| m.to_vec()).collect();
                rv::write_set_table(out, key, members.len(), members.iter().map(|m| &m[..]), compress);
            }
        }
        Value::ZSet(z) => {
            let ranked = z.to_vec();
            let refs = ranked.iter().map(|(m, s)| (&m[..], *s));
            if z.is_listpack() {
                rv::write_zset_listpack(out, key, refs, compress);
            } else {
                rv::write_zset_skiplist(out, key, ranked.len(), refs.rev(), compress);
            }
        }
    }
}

/// The DUMP payload of `v`.
pub fn dump(v: &Value, compress: bool) -> Vec<u8> {
    // A string's payload: type, length (at most 9 bytes), the bytes, the 10-byte footer.
    let size = if let Value::Str { bytes, .. } = v { bytes.len() + 20 } else { 0 };
    ferrokv_rdb::dump::payload_sized(size, |out| write_value(out, None, v, compress))
}

/// Why a decoded value cannot become a key's value (Redis's loader refuses the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// A collection with no elements (Redis never writes one; its loader skips it in a
    /// file and RESTORE refuses it).
    Empty,
    /// The same member or field twice.
    Duplicate,
}

/// Builds a key's value from a decoded one, under `limits`.
pub fn build_value(v: RdbValue, limits: &Limits) -> Result<Value, BuildError> {
    if v.is_empty() {
        return Err(BuildError::Empty);
    }
    Ok(match v {
        RdbValue::String(s) => Value::string_owned(s),
        RdbValue::List(elements) => {
            let mut l = ListValue::new(limits.list_fill);
            l.extend(elements.iter().map(|e| &e[..]));
            Value::List(Box::new(l))
        }
        RdbValue::Set(members) => {
            let mut s = SetValue::for_member(&members[0]);
            for m in &members {
                if !s.add(m, &limits.set) {
                    return Err(BuildError::Duplicate);
                }
            }
            s.compact(&limits.set);
            Value::Set(Box::new(s))
        }
        RdbValue::Hash(pairs) => {
            let mut h = HashValue::new();
            h.prepare_insert(pairs.iter().flat_map(|(f, v)| [&f[..], &v[..]]), &limits.hash);
            for (f, v) in &pairs {
                if !h.set(f, v, &limits.hash) {
                    return Err(BuildError::Duplicate);
                }
            }
            Value::Hash(h)
        }
        RdbValue::ZSet(mut members) => {
            // Score order as the skiplist has it (-0 and 0 equal, then by member).
            members.sort_by(|a, b| a.1.partial_cmp(&b.1).expect("no NaN").then_with(|| a.0.cmp(&b.0)));
            let mut seen: hashbrown::HashSet<&[u8], foldhash::fast::RandomState> = Default::default();
            if !members.iter().all(|(m, _)| seen.insert(&m[..])) {
                return Err(BuildError::Duplicate);
            }
            drop(seen);
            Value::ZSet(Box::new(ZSetValue::from_sorted(members, &limits.zset)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrokv_rdb::dump::restore;

    fn round_trip(v: &Value) -> Value {
        let payload = dump(v, true);
        build_value(restore(&payload).unwrap(), &Limits { list_fill: -2, ..Limits::default() }).unwrap()
    }

    #[test]
    fn every_type_round_trips() {
        let lim = Limits { list_fill: -2, ..Limits::default() };
        let mut vals = vec![Value::string(b"hello"), Value::string(b"12345"), Value::string(&[7u8; 300])];
        for n in [3usize, 200, 5000] {
            let list = RdbValue::List((0..n).map(|i| format!("e{i}").into_bytes()).collect());
            vals.push(build_value(list, &lim).unwrap());
            let set = RdbValue::Set((0..n).map(|i| (i as i64 * 7 - 50).to_string().into_bytes()).collect());
            vals.push(build_value(set, &lim).unwrap());
            let set = RdbValue::Set((0..n).map(|i| format!("m{i}").into_bytes()).collect());
            vals.push(build_value(set, &lim).unwrap());
            let hash =
                RdbValue::Hash((0..n).map(|i| (format!("f{i}").into_bytes(), i.to_string().into_bytes())).collect());
            vals.push(build_value(hash, &lim).unwrap());
            let zset = RdbValue::ZSet((0..n).map(|i| (format!("z{i}").into_bytes(), (i % 17) as f64 / 4.0)).collect());
            vals.push(build_value(zset, &lim).unwrap());
        }
        for v in &vals {
            let back = round_trip(v);
            assert_eq!(&back, v, "{}", v.type_name());
            assert_eq!(back.encoding(), v.encoding());
        }
    }

    #[test]
    fn empty_and_duplicate_collections_are_refused() {
        let lim = Limits::default();
        assert_eq!(build_value(RdbValue::Set(vec![]), &lim), Err(BuildError::Empty));
        assert_eq!(build_value(RdbValue::Set(vec![b"1".to_vec(), b"1".to_vec()]), &lim), Err(BuildError::Duplicate));
        let dup = RdbValue::Hash(vec![(b"f".to_vec(), b"1".to_vec()), (b"f".to_vec(), b"2".to_vec())]);
        assert_eq!(build_value(dup, &lim), Err(BuildError::Duplicate));
        let dup = RdbValue::ZSet(vec![(b"m".to_vec(), 1.0), (b"m".to_vec(), 2.0)]);
        assert_eq!(build_value(dup, &lim), Err(BuildError::Duplicate));
    }
}
