//! (in progress)
use crate::Ctx;
use ferrokv_resp::Args;
pub fn lcs(ctx: &mut Ctx, _args: &Args) {
    ctx.out.error("ERR not implemented yet");
}
