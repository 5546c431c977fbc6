//! Sorted sets (Redis's t_zset.c).

use crate::table::CommandSpec;

pub const COMMANDS: &[CommandSpec] = &[];
