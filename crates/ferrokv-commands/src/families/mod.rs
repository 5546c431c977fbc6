//! Command families, one file per Redis data type or concern.

pub mod keys;
pub mod server;
pub mod strings;
