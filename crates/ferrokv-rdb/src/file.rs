//! dump.rdb framing: `REDIS0010`, AUX fields, then per database SELECTDB, RESIZEDB and
//! the key records, then EOF and the CRC-64 of everything before it (0 when written
//! with `rdbchecksum no`).
//!
//! A key record is: EXPIRETIME_MS (ms, 8 bytes LE) when the key has a TTL, IDLE (LRU
//! seconds) or FREQ (LFU counter) when the eviction policy keeps one, then the value's
//! type byte, the key and the value ([`crate::value`]). Older files may carry
//! EXPIRETIME (seconds, 4 bytes LE).
//!
//! Writing is a set of appenders the caller strings together, so that a snapshot can
//! be produced in chunks by several shards and checksummed by whoever writes the file
//! ([`Checksum`]). Reading goes record by record over the file's bytes, every error
//! with the offset it was found at.

use crate::crc64::crc64;
use crate::encoding::{write_len, write_string, Reader};
use crate::value::{self, RdbValue};
use crate::{DecodeError, RDB_VERSION};

pub const OPCODE_FUNCTION2: u8 = 245;
pub const OPCODE_FUNCTION_PRE_GA: u8 = 246;
pub const OPCODE_MODULE_AUX: u8 = 247;
pub const OPCODE_IDLE: u8 = 248;
pub const OPCODE_FREQ: u8 = 249;
pub const OPCODE_AUX: u8 = 250;
pub const OPCODE_RESIZEDB: u8 = 251;
pub const OPCODE_EXPIRETIME_MS: u8 = 252;
pub const OPCODE_EXPIRETIME: u8 = 253;
pub const OPCODE_SELECTDB: u8 = 254;
pub const OPCODE_EOF: u8 = 255;

// ---- writing -------------------------------------------------------------------

/// `REDIS0010`.
pub fn write_header(out: &mut Vec<u8>) {
    out.extend_from_slice(format!("REDIS{RDB_VERSION:04}").as_bytes());
}

/// An AUX field with a string value.
pub fn write_aux(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.push(OPCODE_AUX);
    write_string(out, key.as_bytes());
    write_string(out, value);
}

/// An AUX field with an integer value (Redis writes it as text, which the string
/// encoding stores as an integer when it fits).
pub fn write_aux_int(out: &mut Vec<u8>, key: &str, value: i64) {
    write_aux(out, key, value.to_string().as_bytes());
}

pub fn write_select_db(out: &mut Vec<u8>, db: u64) {
    out.push(OPCODE_SELECTDB);
    write_len(out, db);
}

/// The sizes a loader may presize its tables with (hints, not checked).
pub fn write_resize_db(out: &mut Vec<u8>, keys: u64, expires: u64) {
    out.push(OPCODE_RESIZEDB);
    write_len(out, keys);
    write_len(out, expires);
}

/// A function library (FUNCTION2: its code as one string).
pub fn write_function(out: &mut Vec<u8>, code: &[u8]) {
    out.push(OPCODE_FUNCTION2);
    write_string(out, code);
}

/// What precedes a key's type byte: its expiry and its LRU idle time or LFU counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyMeta {
    /// Absolute expiry, Unix milliseconds.
    pub expire_ms: Option<i64>,
    /// Seconds since last access (written under an LRU policy).
    pub idle_secs: Option<u64>,
    /// The LFU counter (written under an LFU policy).
    pub freq: Option<u8>,
}

/// Appends the opcodes of `meta`; the value writer ([`crate::value`], with the key)
/// follows.
pub fn write_key_meta(out: &mut Vec<u8>, meta: KeyMeta) {
    if let Some(ms) = meta.expire_ms {
        out.push(OPCODE_EXPIRETIME_MS);
        out.extend_from_slice(&ms.to_le_bytes());
    }
    if let Some(idle) = meta.idle_secs {
        out.push(OPCODE_IDLE);
        write_len(out, idle);
    }
    if let Some(f) = meta.freq {
        out.push(OPCODE_FREQ);
        out.push(f);
    }
}

/// The EOF opcode. The file then ends with [`Checksum::trailer`] over every byte
/// before it, EOF included.
pub fn write_eof(out: &mut Vec<u8>) {
    out.push(OPCODE_EOF);
}

/// The CRC-64 of a file written in pieces.
#[derive(Clone, Copy, Debug, Default)]
pub struct Checksum(u64);

impl Checksum {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0 = crc64(self.0, bytes);
    }

    /// The file's last 8 bytes: the checksum, or zeros when `enabled` is false
    /// (`rdbchecksum no`, which loaders then skip checking).
    pub fn trailer(&self, enabled: bool) -> [u8; 8] {
        if enabled {
            self.0.to_le_bytes()
        } else {
            [0; 8]
        }
    }
}

// ---- reading -------------------------------------------------------------------

/// One record of a file.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Aux {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    SelectDb(u64),
    ResizeDb {
        keys: u64,
        expires: u64,
    },
    /// A function library's code.
    Function(Vec<u8>),
    Entry {
        key: Vec<u8>,
        value: RdbValue,
        meta: KeyMeta,
    },
    /// The EOF opcode, the checksum checked (when the file has one).
    End,
}

/// A record as [`FileReader::next_raw`] gives it.
#[derive(Clone, Debug, PartialEq)]
pub enum RawRecord<'a> {
    Other(Record),
    /// A key whose value is `value`'s bytes, of type `t`; `offset`: where the record
    /// starts in the file.
    Entry {
        key: Vec<u8>,
        t: u8,
        value: &'a [u8],
        meta: KeyMeta,
        offset: usize,
    },
}

/// Decodes a value [`FileReader::next_raw`] left encoded.
pub fn decode_value(t: u8, bytes: &[u8]) -> Result<RdbValue, DecodeError> {
    let mut r = Reader::new(bytes);
    let v = value::read_value(t, &mut r)?;
    if r.remaining() != 0 {
        return Err(DecodeError::Invalid("value length"));
    }
    Ok(v)
}

/// Why a file could not be read, and where.
#[derive(Clone, Debug, PartialEq)]
pub struct FileError {
    /// Byte offset in the file of the record (or header) that failed.
    pub offset: usize,
    pub error: FileProblem,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FileProblem {
    /// Not an RDB file, or a version we cannot read.
    Header(String),
    Decode(DecodeError),
    /// The checksum at the end does not match the file.
    Checksum {
        stored: u64,
        computed: u64,
    },
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error {
            FileProblem::Header(what) => write!(f, "{what}"),
            FileProblem::Decode(e) => write!(f, "{e} at offset {}", self.offset),
            FileProblem::Checksum { stored, computed } => {
                write!(f, "wrong RDB checksum expected: ({stored:x}) got ({computed:x}) at offset {}", self.offset)
            }
        }
    }
}

impl std::error::Error for FileError {}

/// Reads a file's records in order.
pub struct FileReader<'a> {
    data: &'a [u8],
    r: Reader<'a>,
    version: u16,
    ended: bool,
    /// The CRC-64 of the file's bytes before `data` (a [`StreamReader`]'s window).
    crc_before: u64,
    /// The file offset of `data[0]`.
    base: usize,
}

impl<'a> FileReader<'a> {
    /// Checks the header (`REDIS` and a version from 1 to ours).
    pub fn new(data: &'a [u8]) -> Result<Self, FileError> {
        let header = |what: String| FileError { offset: 0, error: FileProblem::Header(what) };
        if data.len() < 9 || &data[..5] != b"REDIS" {
            return Err(header("Wrong signature trying to load DB from file".into()));
        }
        let version = std::str::from_utf8(&data[5..9])
            .ok()
            .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u16>().ok())
            .ok_or_else(|| header("Wrong signature trying to load DB from file".into()))?;
        if !(1..=RDB_VERSION).contains(&version) {
            return Err(header(format!("Can't handle RDB format version {version}")));
        }
        let mut r = Reader::new(data);
        r.bytes(9).map_err(|e| FileError { offset: 0, error: FileProblem::Decode(e) })?;
        Ok(FileReader { data, r, version, ended: false, crc_before: 0, base: 0 })
    }

    pub fn version(&self) -> u16 {
        self.version
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> usize {
        self.r.position()
    }

    /// The next record; [`Record::End`] once, after which the reader is done.
    pub fn next_record(&mut self) -> Result<Record, FileError> {
        match self.next_raw()? {
            RawRecord::Other(r) => Ok(r),
            RawRecord::Entry { key, t, value, meta, offset } => {
                let value = decode_value(t, value).map_err(|e| FileError { offset, error: FileProblem::Decode(e) })?;
                Ok(Record::Entry { key, value, meta })
            }
        }
    }

    /// The next record with a key's value left encoded (its bytes stepped over, not
    /// decoded): a loader decodes entries on other threads ([`decode_value`]).
    pub fn next_raw(&mut self) -> Result<RawRecord<'a>, FileError> {
        let start = self.r.position();
        let base = self.base;
        let at = |e: DecodeError| FileError { offset: base + start, error: FileProblem::Decode(e) };
        if self.ended {
            return Err(at(DecodeError::Invalid("read past EOF")));
        }
        let mut meta = KeyMeta::default();
        loop {
            let op = self.r.byte().map_err(at)?;
            match op {
                OPCODE_EXPIRETIME_MS => {
                    let b = self.r.bytes(8).map_err(at)?;
                    meta.expire_ms = Some(i64::from_le_bytes(b.try_into().expect("8 bytes")));
                }
                OPCODE_EXPIRETIME => {
                    let b = self.r.bytes(4).map_err(at)?;
                    meta.expire_ms = Some(i32::from_le_bytes(b.try_into().expect("4 bytes")) as i64 * 1000);
                }
                OPCODE_IDLE => meta.idle_secs = Some(self.r.length().map_err(at)?),
                OPCODE_FREQ => meta.freq = Some(self.r.byte().map_err(at)?),
                OPCODE_SELECTDB => return Ok(RawRecord::Other(Record::SelectDb(self.r.length().map_err(at)?))),
                OPCODE_RESIZEDB => {
                    let keys = self.r.length().map_err(at)?;
                    let expires = self.r.length().map_err(at)?;
                    return Ok(RawRecord::Other(Record::ResizeDb { keys, expires }));
                }
                OPCODE_AUX => {
                    let key = self.r.string().map_err(at)?;
                    let value = self.r.string().map_err(at)?;
                    return Ok(RawRecord::Other(Record::Aux { key, value }));
                }
                OPCODE_FUNCTION2 => return Ok(RawRecord::Other(Record::Function(self.r.string().map_err(at)?))),
                OPCODE_FUNCTION_PRE_GA => return Err(at(DecodeError::Unsupported("pre-release function records"))),
                OPCODE_MODULE_AUX => return Err(at(DecodeError::Unsupported("module data"))),
                OPCODE_EOF => {
                    self.ended = true;
                    if self.version >= 5 {
                        let end = self.r.position();
                        let b = self.r.bytes(8).map_err(at)?;
                        let stored = u64::from_le_bytes(b.try_into().expect("8 bytes"));
                        if stored != 0 {
                            let computed = crc64(self.crc_before, &self.data[..end]);
                            if computed != stored {
                                return Err(FileError {
                                    offset: base + end,
                                    error: FileProblem::Checksum { stored, computed },
                                });
                            }
                        }
                    }
                    return Ok(RawRecord::Other(Record::End));
                }
                t if value::is_value_type(t) => {
                    let key = self.r.string().map_err(at)?;
                    let from = self.r.position();
                    value::skip_value(t, &mut self.r).map_err(at)?;
                    let value = &self.data[from..self.r.position()];
                    return Ok(RawRecord::Entry { key, t, value, meta, offset: base + start });
                }
                _ => return Err(at(DecodeError::Invalid("record type"))),
            }
        }
    }
}

/// A record as [`StreamReader::next`] gives it: a key's value left encoded, owned.
#[derive(Clone, Debug, PartialEq)]
pub enum OwnedRecord {
    Other(Record),
    Entry { key: Vec<u8>, t: u8, value: Vec<u8>, meta: KeyMeta, offset: usize },
}

/// Reads a file's records from bytes that arrive in pieces (a replica's full sync):
/// only the record being read is held, never the whole file. Feed bytes with
/// [`StreamReader::feed`]; [`StreamReader::next`] gives each record once it is complete.
#[derive(Default)]
pub struct StreamReader {
    buf: Vec<u8>,
    /// Bytes of `buf` already read.
    used: usize,
    /// The file offset of `buf[0]`, and the CRC-64 of the file up to `used`.
    base: usize,
    crc: Checksum,
    version: Option<u16>,
    ended: bool,
}

impl StreamReader {
    pub fn new() -> StreamReader {
        StreamReader::default()
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        // Drop what was read before growing, so the buffer holds about one record.
        if self.used > 0 && self.used * 2 >= self.buf.len() {
            self.buf.drain(..self.used);
            self.base += self.used;
            self.used = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The EOF record (and checksum) was read.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Bytes read so far (records and header).
    pub fn offset(&self) -> usize {
        self.base + self.used
    }

    /// The next complete record; `Ok(None)` until enough bytes were fed.
    pub fn next_record(&mut self) -> Result<Option<OwnedRecord>, FileError> {
        if self.ended {
            return Err(FileError {
                offset: self.offset(),
                error: FileProblem::Decode(DecodeError::Invalid("read past EOF")),
            });
        }
        let version = match self.version {
            Some(v) => v,
            None => {
                if self.buf.len() < 9 {
                    return Ok(None);
                }
                let v = FileReader::new(&self.buf)?.version();
                self.version = Some(v);
                self.crc.update(&self.buf[..9]);
                self.used = 9;
                v
            }
        };
        let window = &self.buf[self.used..];
        let mut r = FileReader {
            data: window,
            r: Reader::new(window),
            version,
            ended: false,
            crc_before: self.crc.0,
            base: self.base + self.used,
        };
        let rec = match r.next_raw() {
            Ok(rec) => rec,
            Err(FileError { error: FileProblem::Decode(DecodeError::Truncated), .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let consumed = r.offset();
        let owned = match rec {
            RawRecord::Other(o) => {
                self.ended = matches!(o, Record::End);
                OwnedRecord::Other(o)
            }
            RawRecord::Entry { key, t, value, meta, offset } => {
                OwnedRecord::Entry { key, t, value: value.to_vec(), meta, offset }
            }
        };
        self.crc.update(&self.buf[self.used..self.used + consumed]);
        self.used += consumed;
        Ok(Some(owned))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{write_hash_listpack, write_string_value, write_zset_skiplist};

    fn sample(checksum: bool) -> Vec<u8> {
        let mut out = Vec::new();
        write_header(&mut out);
        write_aux(&mut out, "redis-ver", b"7.0.15");
        write_aux_int(&mut out, "redis-bits", 64);
        write_select_db(&mut out, 0);
        write_resize_db(&mut out, 3, 1);
        write_key_meta(&mut out, KeyMeta { expire_ms: Some(1_900_000_000_000), ..KeyMeta::default() });
        write_string_value(&mut out, Some(b"k1"), b"v1", true);
        write_key_meta(&mut out, KeyMeta { idle_secs: Some(70), ..KeyMeta::default() });
        write_hash_listpack(&mut out, Some(b"h"), [(&b"f"[..], &b"1"[..])], true);
        write_key_meta(&mut out, KeyMeta { freq: Some(5), ..KeyMeta::default() });
        write_zset_skiplist(&mut out, Some(b"z"), 1, [(&b"m"[..], 2.5)], true);
        write_eof(&mut out);
        let mut c = Checksum::default();
        c.update(&out);
        let t = c.trailer(checksum);
        out.extend_from_slice(&t);
        out
    }

    fn all(data: &[u8]) -> Result<Vec<Record>, FileError> {
        let mut r = FileReader::new(data)?;
        let mut out = Vec::new();
        loop {
            let rec = r.next_record()?;
            let end = rec == Record::End;
            out.push(rec);
            if end {
                return Ok(out);
            }
        }
    }

    /// What a StreamReader gives, fed `data` in pieces of `step` bytes.
    fn streamed(data: &[u8], step: usize) -> Result<Vec<Record>, FileError> {
        let mut r = StreamReader::new();
        let mut out = Vec::new();
        for piece in data.chunks(step) {
            r.feed(piece);
            while let Some(rec) = r.next_record()? {
                out.push(match rec {
                    OwnedRecord::Other(o) => o,
                    OwnedRecord::Entry { key, t, value, meta, offset } => {
                        let value =
                            decode_value(t, &value).map_err(|e| FileError { offset, error: FileProblem::Decode(e) })?;
                        Record::Entry { key, value, meta }
                    }
                });
                if r.ended() {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    #[test]
    fn a_stream_fed_in_any_pieces_reads_as_the_whole_file() {
        for checksum in [true, false] {
            let data = sample(checksum);
            let whole = all(&data).unwrap();
            for step in [1, 2, 3, 7, 64, data.len()] {
                assert_eq!(streamed(&data, step).unwrap(), whole, "pieces of {step}");
            }
        }
        // A flipped byte fails the checksum, with the offset of the trailer.
        let mut bad = sample(true);
        let n = bad.len();
        bad[n - 12] ^= 1;
        let e = streamed(&bad, 5).unwrap_err();
        assert!(matches!(e.error, FileProblem::Checksum { .. } | FileProblem::Decode(_)), "{e:?}");
    }

    #[test]
    fn records_round_trip() {
        for checksum in [true, false] {
            let recs = all(&sample(checksum)).unwrap();
            assert_eq!(recs.len(), 8);
            assert_eq!(recs[0], Record::Aux { key: b"redis-ver".to_vec(), value: b"7.0.15".to_vec() });
            assert_eq!(recs[1], Record::Aux { key: b"redis-bits".to_vec(), value: b"64".to_vec() });
            assert_eq!(recs[2], Record::SelectDb(0));
            assert_eq!(recs[3], Record::ResizeDb { keys: 3, expires: 1 });
            assert_eq!(
                recs[4],
                Record::Entry {
                    key: b"k1".to_vec(),
                    value: RdbValue::String(b"v1".to_vec()),
                    meta: KeyMeta { expire_ms: Some(1_900_000_000_000), ..KeyMeta::default() }
                }
            );
            assert!(matches!(&recs[5], Record::Entry { meta, .. } if meta.idle_secs == Some(70)));
            assert_eq!(
                recs[6],
                Record::Entry {
                    key: b"z".to_vec(),
                    value: RdbValue::ZSet(vec![(b"m".to_vec(), 2.5)]),
                    meta: KeyMeta { freq: Some(5), ..KeyMeta::default() }
                }
            );
            assert_eq!(recs[7], Record::End);
        }
    }

    #[test]
    fn corruption_is_reported_with_an_offset() {
        let good = sample(true);
        // Every truncation fails (never panics), at an offset within the file.
        for n in 0..good.len() {
            match all(&good[..n]) {
                Ok(_) => panic!("truncated to {n} bytes but read"),
                Err(e) => assert!(e.offset <= n, "{e}"),
            }
        }
        // Any flipped byte is caught: by the decoder or by the checksum.
        for i in 9..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x20;
            assert!(all(&bad).is_err(), "flip at {i} went unnoticed");
        }
        let mut newer = good.clone();
        newer[5..9].copy_from_slice(b"0011");
        assert_eq!(all(&newer).unwrap_err().to_string(), "Can't handle RDB format version 11");
        assert!(all(b"NOTREDIS0010").is_err());
    }
}
