//! Sets (Redis's t_set.c).

use crate::table::CommandSpec;

pub const COMMANDS: &[CommandSpec] = &[];
