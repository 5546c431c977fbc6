//! Any bytes, split into reads anywhere: the request parser must not panic, and the
//! commands, error or leftover it reports must not depend on the split. The look ahead
//! for prefetching must not panic either, and may only name bytes of the input.
#![no_main]

use ferrokv_resp::{Limits, Parsed, ProtocolError, RequestParser};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
struct Session {
    frames: Vec<Option<Vec<Vec<u8>>>>,
    error: Option<ProtocolError>,
    rest: usize,
}

/// Feeds `input` in reads ending at `cuts`, as a server would; with `compact`, consumed
/// bytes are dropped from the front of the buffer before every read.
fn serve(input: &[u8], cuts: &[usize], limits: &Limits, compact: bool) -> Session {
    let mut p = RequestParser::new();
    let mut buf = Vec::new();
    let mut start = 0;
    let mut frames = Vec::new();
    let mut fed = 0;
    for &end in cuts.iter().chain([&input.len()]) {
        let end = end.min(input.len());
        if end <= fed {
            continue;
        }
        if compact {
            buf.drain(..start);
            start = 0;
        }
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
        loop {
            match p.parse(&buf[start..], limits) {
                Ok(Parsed::Command { consumed }) => {
                    assert!(consumed > 0 && consumed <= buf.len() - start);
                    frames.push(Some(p.args(&buf[start..]).iter().map(|a| a.to_vec()).collect()));
                    start += consumed;
                }
                Ok(Parsed::Empty { consumed }) => {
                    assert!(consumed > 0 && consumed <= buf.len() - start);
                    frames.push(None);
                    start += consumed;
                }
                Ok(Parsed::Incomplete) => break,
                Err(e) => return Session { frames, error: Some(e), rest: 0 },
            }
        }
    }
    Session { frames, error: None, rest: buf.len() - start }
}

fuzz_target!(|data: &[u8]| {
    // Byte 0: limits; bytes 1..3: a seed for the read sizes; the rest: the wire.
    if data.len() < 3 {
        return;
    }
    let limits = Limits {
        authenticated: data[0] & 1 == 0,
        max_bulk_len: if data[0] & 2 == 0 { 512 * 1024 * 1024 } else { usize::from(data[0] >> 2) },
    };
    let mut seed = u32::from(u16::from_le_bytes([data[1], data[2]])) | 1;
    let wire = &data[3..];
    let mut cuts = Vec::new();
    let mut at = 0;
    while at < wire.len() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        at += 1 + (seed % 97) as usize;
        cuts.push(at);
    }
    let mut keys = [&b""[..]; 16];
    let n = ferrokv_resp::peek::second_args(wire, &mut keys);
    let range = wire.as_ptr_range();
    assert!(keys[..n].iter().all(|k| range.start <= k.as_ptr() && k.as_ptr_range().end <= range.end));
    let whole = serve(wire, &[], &limits, false);
    assert_eq!(serve(wire, &cuts, &limits, data[0] & 4 != 0), whole);
});
