//! HyperLogLog (Redis's hyperloglog.c).

use crate::table::CommandSpec;

pub const COMMANDS: &[CommandSpec] = &[];
