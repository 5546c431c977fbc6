//! (in progress)
use crate::Ctx;
use ferrokv_resp::Args;
pub fn setbit(ctx: &mut Ctx, _args: &Args) {
    ctx.out.error("ERR not implemented yet");
}
pub fn getbit(ctx: &mut Ctx, _args: &Args) {
    ctx.out.error("ERR not implemented yet");
}
pub fn bitcount(ctx: &mut Ctx, _args: &Args) {
    ctx.out.error("ERR not implemented yet");
}
pub fn bitpos(ctx: &mut Ctx, _args: &Args) {
    ctx.out.error("ERR not implemented yet");
}
pub fn bitop(ctx: &mut Ctx, _args: &Args) {
    ctx.out.error("ERR not implemented yet");
}
