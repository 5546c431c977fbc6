//! Any bytes, read as a sequence of peer messages, link events, commands and clock jumps:
//! the state machine must not panic, must stay internally consistent, and everything it
//! sends or saves must read back (see `tests/drive`).
#![no_main]

#[path = "../../tests/drive/mod.rs"]
mod drive;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drive::drive(data));
