//! dump.rdb files, read record by record to the end or the first error: never a panic,
//! never an error offset outside the file, an error after the End record, and the same
//! records from `next_raw` (values stepped over, decoded afterwards) as from
//! `next_record`.
//!
//! Three files per input: the bytes as they are (the signature and version are fuzzed
//! too); `REDIS0010` and the bytes (the records fuzzed, past a header that is almost
//! never guessed); and `REDIS0010`, the bytes, EOF and the file's correct CRC-64, which
//! reads to End whenever the records decode (an earlier EOF opcode in the bytes meets a
//! checksum that does not match, or a zero one, which is skipped as Redis skips it).
#![no_main]

use ferrokv_rdb::crc64::crc64;
use ferrokv_rdb::file::{self, FileError, FileProblem, FileReader, RawRecord, Record};
use libfuzzer_sys::fuzz_target;

/// Reads `f` to End or the first error; that error, if any. A second reader steps over
/// the same file with `next_raw` (values left encoded, as the parallel loader reads):
/// while `next_record` reads, it must give the same records and, decoded, the same
/// values, and stand at the same offset.
fn read_all(f: &[u8]) -> Option<FileError> {
    let mut r = match FileReader::new(f) {
        Ok(r) => r,
        Err(e) => {
            assert_eq!(e.offset, 0);
            return Some(e);
        }
    };
    let mut raw = FileReader::new(f).expect("the same header");
    loop {
        let record = r.next_record();
        if let Ok(record) = &record {
            match (record, raw.next_raw()) {
                (Record::Entry { key, value, meta }, Ok(RawRecord::Entry { key: k, t, value: bytes, meta: m, .. })) => {
                    assert_eq!((key, meta), (&k, &m));
                    assert_eq!(file::decode_value(t, bytes).as_ref(), Ok(value));
                }
                (record, Ok(RawRecord::Other(other))) => assert_eq!(record, &other),
                (record, other) => panic!("next_record read {record:?}, next_raw {other:?}"),
            }
            assert_eq!(r.offset(), raw.offset());
        }
        match record {
            Ok(Record::End) => {
                assert!(r.offset() <= f.len());
                assert!(r.next_record().is_err(), "a record after End");
                return None;
            }
            Ok(_) => assert!(r.offset() <= f.len()),
            Err(e) => {
                assert!(e.offset <= f.len(), "{e} in a file of {} bytes", f.len());
                let _ = e.to_string();
                return Some(e);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    read_all(data);

    let mut f = Vec::with_capacity(data.len() + 18);
    file::write_header(&mut f);
    f.extend_from_slice(data);
    read_all(&f);

    file::write_eof(&mut f);
    let eof = f.len() - 1;
    let crc = crc64(0, &f);
    f.extend_from_slice(&crc.to_le_bytes());
    if let Some(e) = read_all(&f) {
        // Our EOF's checksum is right: the only checksum that can fail is one after an
        // EOF opcode elsewhere (in the bytes, or inside what a record read past ours).
        let ours = matches!(e.error, FileProblem::Checksum { .. }) && e.offset == eof + 1;
        assert!(!ours, "{e}: the checksum after our EOF");
    }
});
