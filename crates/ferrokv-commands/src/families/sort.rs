//! SORT and SORT_RO (Redis's sort.c).

use crate::table::CommandSpec;

pub const COMMANDS: &[CommandSpec] = &[];
