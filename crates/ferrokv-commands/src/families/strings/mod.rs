//! String commands (Redis's t_string.c).

use crate::table::{CommandSpec, Handler, KeyPositions};
use crate::util::*;
use crate::Ctx;
use ferrokv_resp::Args;
use ferrokv_store::Value;

pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "get",
        2,
        &["readonly", "fast"],
        KeyPositions::new(1, 1, 1),
        &["@read", "@string", "@fast"],
        Handler::Data(get),
    ),
    CommandSpec::new(
        "set",
        -3,
        &["write", "denyoom"],
        KeyPositions::new(1, 1, 1),
        &["@write", "@string", "@slow"],
        Handler::Data(set),
    ),
];

/// GET key
pub fn get(ctx: &mut Ctx, args: &Args) {
    let now = ctx.now_ms;
    match ctx.keys.db(args.get(1)).get(args.get(1), now) {
        None => ctx.out.null(),
        Some(e) => match &e.value {
            Value::Int(n) => ctx.out.bulk_integer(*n),
            Value::Str { bytes, .. } => ctx.out.bulk(bytes),
        },
    }
}

/// SET key value (options arrive in their own change)
pub fn set(ctx: &mut Ctx, args: &Args) {
    if args.len() != 3 {
        return ctx.out.error(ERR_SYNTAX);
    }
    let key = args.get(1);
    ctx.db(key).set(key, Value::string(args.get(2)), 0);
    ctx.touch(key);
    ctx.out.ok();
}
