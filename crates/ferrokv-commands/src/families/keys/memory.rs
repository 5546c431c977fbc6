//! MEMORY USAGE (Redis's object.c `memoryCommand`): the bytes a key and its value hold.
//!
//! ferrokv's layout is its own, so the figure is ferrokv's, not Redis's: the key's
//! record in the shard's arena (its size class: key, small value, expiry and access
//! bits; see ferrokv-store's `db/arena.rs`) plus a 4-byte table index, the key's bytes
//! when they are kept on the heap (over 255), and the heap bytes of a value not kept in
//! the record, measured rather than estimated: the value is copied and the allocator
//! counters (see [`set_heap_meter`]) say what the copy took. A copy is O(n) in the
//! value's size, so `SAMPLES` is checked as Redis checks it but does not bound the work.

use crate::util::*;
use crate::Ctx;
use ferrokv_resp::Args;
use ferrokv_store::{StrBytes, Value};
use std::sync::OnceLock;

static METER: OnceLock<fn() -> i64> = OnceLock::new();

/// Gives MEMORY USAGE a reading of the calling thread's live heap bytes (the server's
/// counting allocator); without one, collections count only their elements' bytes.
pub fn set_heap_meter(f: fn() -> i64) {
    let _ = METER.set(f);
}

/// MEMORY USAGE key [SAMPLES count]
pub fn memory_usage(ctx: &mut Ctx, args: &Args) {
    let mut i = 3;
    while i < args.len() {
        if eq_ic(args.get(i), "samples") && i + 1 < args.len() {
            match parse_i64(args.get(i + 1)) {
                None => return ctx.out.error(ERR_NOT_INT),
                Some(n) if n < 0 => return ctx.out.error(ERR_SYNTAX),
                Some(_) => {}
            }
            i += 2;
        } else {
            return ctx.out.error(ERR_SYNTAX);
        }
    }
    let (key, now) = (args.get(2), ctx.now_ms);
    let db = ctx.keys.db(key);
    let Some((record, small)) = db.footprint(key, now) else {
        return ctx.out.null();
    };
    let heap = match db.peek(key, now) {
        Some(e) if !small => value_heap(&e.value),
        _ => 0,
    };
    let bytes = record + heap;
    ctx.out.integer(bytes as i64);
}

/// Heap bytes a value owns beyond the 32 bytes inside its record.
fn value_heap(v: &Value) -> usize {
    match v {
        Value::Int(_) => 0,
        Value::Str { bytes: StrBytes::Inline { .. }, .. } => 0,
        Value::Str { bytes: StrBytes::Heap(b), .. } => b.capacity(),
        other => match METER.get() {
            Some(meter) => {
                let before = meter();
                let copy = other.clone();
                let taken = meter() - before;
                drop(copy);
                taken.max(0) as usize
            }
            None => 0,
        },
    }
}
