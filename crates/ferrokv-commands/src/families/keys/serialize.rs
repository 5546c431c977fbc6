//! DUMP and RESTORE (Redis's cluster.c): a value as a DUMP payload (its RDB encoding,
//! the RDB version and a CRC-64) and back. RESTORE-ASKING is RESTORE that a node
//! importing the key's slot accepts without a preceding ASKING (MIGRATE sends it).

use crate::ctx::argv;
use crate::util::*;
use crate::{Ctx, ExecConfig};
use ferrokv_resp::Args;
use ferrokv_store::rdb::{build_value, dump as dump_value, Limits};

/// The encoding limits of the current config, for values built from RDB.
pub fn rdb_limits(cfg: &ExecConfig) -> Limits {
    Limits {
        hash: ferrokv_store::hash::Limits {
            max_entries: cfg.hash_max_listpack_entries as usize,
            max_value: cfg.hash_max_listpack_value as usize,
        },
        set: ferrokv_store::set::SetLimits {
            max_intset_entries: cfg.set_max_intset_entries,
            max_packed_entries: cfg.set_max_listpack_entries,
            max_packed_value: cfg.set_max_listpack_value,
        },
        zset: ferrokv_store::zset::ZSetLimits {
            max_listpack_entries: cfg.zset_max_listpack_entries,
            max_listpack_value: cfg.zset_max_listpack_value,
        },
        list_fill: cfg.list_max_listpack_size,
    }
}

/// DUMP key
pub fn dump(ctx: &mut Ctx, args: &Args) {
    let (key, now, compress) = (args.get(1), ctx.now_ms, ctx.cfg.rdb_compression);
    match ctx.keys.db(key).read(key, now) {
        None => ctx.out.null(),
        Some(e) => {
            let payload = dump_value(&e.value, compress);
            ctx.out.bulk(&payload);
        }
    }
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]
///
/// Checks in Redis's order: options, then an existing key (BUSYKEY), then the TTL,
/// then the payload. A TTL already in the past restores nothing (and deletes a key it
/// would have replaced). A relative TTL propagates as an absolute one (`ABSTTL`).
pub fn restore(ctx: &mut Ctx, args: &Args) {
    let (mut replace, mut absttl) = (false, false);
    let (mut idle, mut freq): (Option<u64>, Option<u8>) = (None, None);
    let mut j = 4;
    while j < args.len() {
        let a = args.get(j);
        let more = j + 1 < args.len();
        if eq_ic(a, "replace") {
            replace = true;
        } else if eq_ic(a, "absttl") {
            absttl = true;
        } else if eq_ic(a, "idletime") && more && freq.is_none() {
            match parse_i64(args.get(j + 1)) {
                None => return ctx.out.error(ERR_NOT_INT),
                Some(n) if n < 0 => return ctx.out.error("ERR Invalid IDLETIME value, must be >= 0"),
                Some(n) => idle = Some(n as u64),
            }
            j += 1;
        } else if eq_ic(a, "freq") && more && idle.is_none() {
            match parse_i64(args.get(j + 1)) {
                None => return ctx.out.error(ERR_NOT_INT),
                Some(n) if !(0..=255).contains(&n) => {
                    return ctx.out.error("ERR Invalid FREQ value, must be >= 0 and <= 255")
                }
                Some(n) => freq = Some(n as u8),
            }
            j += 1;
        } else {
            return ctx.out.error(ERR_SYNTAX);
        }
        j += 1;
    }
    let (key, now) = (args.get(1), ctx.now_ms);
    if !replace && ctx.keys.db(key).get(key, now).is_some() {
        return ctx.out.error("BUSYKEY Target key name already exists.");
    }
    let ttl = match parse_i64(args.get(2)) {
        None => return ctx.out.error(ERR_NOT_INT),
        Some(t) if t < 0 => return ctx.out.error("ERR Invalid TTL value, must be >= 0"),
        Some(t) => t,
    };
    let decoded = match ferrokv_rdb::dump::restore(args.get(3)) {
        Ok(v) => v,
        Err(ferrokv_rdb::DecodeError::BadPayload) => {
            return ctx.out.error("ERR DUMP payload version or checksum are wrong")
        }
        Err(_) => return ctx.out.error("ERR Bad data format"),
    };
    let Ok(value) = build_value(decoded, &rdb_limits(ctx.cfg)) else {
        return ctx.out.error("ERR Bad data format");
    };
    let db = ctx.keys.db(key);
    let deleted = replace && db.remove(key, now).is_some();
    let expire_at = match ttl {
        0 => 0,
        t if absttl => t,
        t => t.saturating_add(now as i64),
    };
    if expire_at != 0 && expire_at <= now as i64 {
        if deleted {
            ctx.rewrite(|| argv(&[&b"DEL"[..], key]));
            ctx.touch(key);
        }
        return ctx.out.ok();
    }
    db.set(key, value, expire_at as u64);
    db.set_access_history(key, idle, freq);
    if expire_at != 0 && !absttl {
        ctx.rewrite(|| {
            let mut words: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
            words[2] = expire_at.to_string().into_bytes();
            words.push(b"ABSTTL".to_vec());
            words
        });
    }
    ctx.touch(key);
    ctx.out.ok();
}
