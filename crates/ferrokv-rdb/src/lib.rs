//! Redis's RDB format, without IO: the codec that snapshots, DUMP/RESTORE, full sync
//! and slot migration share (issue 9).
//!
//! - [`encoding`]: lengths and strings (raw, integer, LZF-compressed), [`crc64`] (Jones),
//!   [`lzf`], [`listpack`] and the pre-7.0 containers in [`legacy`];
//! - [`value`]: a type byte and a value, written as Redis 7.0 writes each encoding and
//!   read in every encoding Redis 7.0 reads;
//! - [`dump`]: DUMP/RESTORE payloads (value, RDB version, checksum);
//! - [`aof`]: the append-only file's manifest and command stream;
//! - [`file`]: dump.rdb framing (header, AUX fields, SELECTDB, RESIZEDB, expiry and
//!   LRU/LFU opcodes, EOF and checksum), written and read record by record.

// Unsafe only where the CPU's carry-less multiplication computes the CRC-64
// (`crc64::clmul`, allowed there alone).
#![deny(unsafe_code)]

pub mod aof;
pub mod crc64;
pub mod dump;
pub mod encoding;
pub mod file;
pub mod legacy;
pub mod listpack;
pub mod lzf;
pub mod value;

/// The RDB version Redis 7.0 writes, and the newest it reads.
pub const RDB_VERSION: u16 = 10;

/// Field/value pairs (a hash) in order.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended inside a value.
    Truncated,
    /// A length, encoding or type byte that is not valid here.
    Invalid(&'static str),
    /// A DUMP payload whose checksum does not match, or whose RDB version is newer
    /// than ours.
    BadPayload,
    /// A valid value of a kind ferrokv does not hold (modules, streams).
    Unsupported(&'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("truncated input"),
            DecodeError::Invalid(what) => write!(f, "invalid {what}"),
            DecodeError::BadPayload => f.write_str("DUMP payload version or checksum are wrong"),
            DecodeError::Unsupported(what) => write!(f, "{what} are not supported"),
        }
    }
}

impl std::error::Error for DecodeError {}
