//! Lists (Redis's t_list.c), blocking forms included.

use crate::table::CommandSpec;

pub const COMMANDS: &[CommandSpec] = &[];
