//! Hashes (Redis's t_hash.c).

use crate::table::CommandSpec;

pub const COMMANDS: &[CommandSpec] = &[];
