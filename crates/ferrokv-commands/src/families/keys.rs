//! Generic key commands (Redis's db.c and expire.c).

use crate::table::{CommandSpec, Handler, KeyPositions};
use crate::Ctx;
use ferrokv_resp::Args;

pub const COMMANDS: &[CommandSpec] = &[CommandSpec::new(
    "del",
    -2,
    &["write"],
    KeyPositions::new(1, -1, 1),
    &["@keyspace", "@write", "@slow"],
    Handler::Data(del),
)];

/// DEL key [key ...]
pub fn del(ctx: &mut Ctx, args: &Args) {
    let now = ctx.now_ms;
    let mut n = 0;
    for k in args.iter().skip(1) {
        if ctx.db(k).remove(k, now).is_some() {
            ctx.touch(k);
            n += 1;
        }
    }
    ctx.out.integer(n);
}
