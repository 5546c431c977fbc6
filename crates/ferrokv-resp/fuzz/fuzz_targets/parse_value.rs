//! Any bytes: the reply parser must not panic, the piecewise reader must agree with it,
//! and what it parses must encode to bytes that parse back to the same encoding.
#![no_main]

use ferrokv_resp::value::{encode_value, parse_value, Value, ValueReader};
use ferrokv_resp::ProtocolError;
use libfuzzer_sys::fuzz_target;

/// A parse result with the value as its encoding, so that NaN compares equal.
fn comparable(r: Result<Option<(Value, usize)>, ProtocolError>) -> Result<Option<(Vec<u8>, usize)>, ProtocolError> {
    r.map(|o| {
        o.map(|(v, n)| {
            let mut out = Vec::new();
            encode_value(&v, &mut out);
            (out, n)
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, wire)) = data.split_first() else {
        return;
    };
    let whole = parse_value(wire);

    let step = usize::from(step) + 1;
    let mut reader = ValueReader::new();
    let mut end = 0;
    let pieces = loop {
        end = (end + step).min(wire.len());
        match reader.parse(&wire[..end]) {
            Ok(None) if end < wire.len() => continue,
            other => break other,
        }
    };
    assert_eq!(comparable(pieces), comparable(whole.clone()));

    if let Ok(Some((v, n))) = whole {
        assert!(n > 0 && n <= wire.len());
        let mut once = Vec::new();
        encode_value(&v, &mut once);
        let Ok(Some((again, m))) = parse_value(&once) else {
            panic!("encoding of {v:?} does not parse: {once:?}");
        };
        assert_eq!(m, once.len());
        let mut twice = Vec::new();
        encode_value(&again, &mut twice);
        assert_eq!(once, twice);
    }
});
