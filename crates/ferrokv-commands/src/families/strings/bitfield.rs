//! (in progress)
use crate::Ctx;
use ferrokv_resp::Args;
pub fn bitfield(ctx: &mut Ctx, _args: &Args) {
    ctx.out.error("ERR not implemented yet");
}
pub fn bitfield_ro(ctx: &mut Ctx, _args: &Args) {
    ctx.out.error("ERR not implemented yet");
}
