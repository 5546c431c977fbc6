//! Redis's RDB format, without IO: the codec that snapshots, DUMP/RESTORE, full sync
//! and slot migration share (issue 9).
//!
//! This first slice has the pieces every value is built from — the CRC-64 (Jones)
//! checksum, length encoding, the string encodings (raw, integer, LZF-compressed, read
//! and written) — and DUMP payloads of string values (type byte, value, RDB version,
//! checksum). The aggregate types (lists as quicklists of listpacks, hashes, sets,
//! sorted sets) and the file framing (header, AUX fields, SELECTDB, EOF) come next.

#![forbid(unsafe_code)]

pub mod crc64;
pub mod dump;
pub mod encoding;
pub mod legacy;
pub mod listpack;
pub mod lzf;

/// The RDB version Redis 7.0 writes, and the newest it reads.
pub const RDB_VERSION: u16 = 10;

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
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("truncated input"),
            DecodeError::Invalid(what) => write!(f, "invalid {what}"),
            DecodeError::BadPayload => f.write_str("DUMP payload version or checksum are wrong"),
        }
    }
}

impl std::error::Error for DecodeError {}
