//! Property tests: requests survive any split into reads, pipelines come out in order,
//! replies survive encode → parse, no input makes a parser panic, and the look ahead
//! used for prefetching names the keys the parser will see.

use ferrokv_resp::value::{encode_value, parse_value, Value, ValueReader};
use ferrokv_resp::{Limits, Parsed, ProtocolError, RequestParser};
use proptest::prelude::*;

/// What a server sees on one connection: each frame's arguments (`None` for an empty
/// frame), then an error or the end of the input.
#[derive(Debug, PartialEq)]
struct Session {
    frames: Vec<Option<Vec<Vec<u8>>>>,
    error: Option<ProtocolError>,
    /// Bytes left over at the end (an incomplete frame).
    rest: usize,
}

/// Feeds `input` to a parser the way a server does: bytes arrive in pieces ending at
/// `cuts`, are appended to a buffer, and complete frames are consumed from its front.
/// With `compact`, consumed bytes are dropped after every read, moving the unconsumed
/// ones to the front of the buffer (the parser must not care).
fn serve(input: &[u8], cuts: &[usize], limits: &Limits, compact: bool) -> Session {
    let mut p = RequestParser::new();
    let mut buf = Vec::new();
    let mut start = 0;
    let mut frames = Vec::new();
    let mut fed = 0;
    let mut ends: Vec<usize> = cuts.iter().copied().filter(|&c| c > 0 && c < input.len()).collect();
    ends.sort_unstable();
    ends.push(input.len());
    for end in ends {
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
                    frames.push(Some(p.args(&buf[start..]).iter().map(|a| a.to_vec()).collect()));
                    assert!(consumed > 0);
                    start += consumed;
                }
                Ok(Parsed::Empty { consumed }) => {
                    frames.push(None);
                    assert!(consumed > 0);
                    start += consumed;
                }
                Ok(Parsed::Incomplete) => break,
                Err(e) => return Session { frames, error: Some(e), rest: 0 },
            }
        }
    }
    Session { frames, error: None, rest: buf.len() - start }
}

fn multibulk(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// An inline line that `sdssplitargs` splits back into `args`: every argument in
/// double quotes, with escapes for what could not stand there.
fn inline(args: &[Vec<u8>], crlf: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.push(b'"');
        for &b in a {
            match b {
                b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
                0x20..=0x7e => out.push(b),
                _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            }
        }
        out.push(b'"');
    }
    out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
    out
}

fn arg() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..24),
        // Bytes that mean something to the protocol, to tempt the parser.
        prop::collection::vec(prop::sample::select(b"*$\r\n0123456789-\"' \\x\0".to_vec()), 0..24),
        // Now and then an argument bigger than a typical read.
        prop::collection::vec(any::<u8>(), 300..1200),
    ]
}

fn args() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(arg(), 1..8)
}

#[derive(Clone, Debug)]
enum Frame {
    Multibulk(Vec<Vec<u8>>),
    Inline(Vec<Vec<u8>>, bool),
    /// `*0`, `*-1`, or a blank line.
    Empty(&'static [u8]),
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        4 => args().prop_map(Frame::Multibulk),
        2 => (prop::collection::vec(prop::collection::vec(any::<u8>(), 0..16), 1..5), any::<bool>())
            .prop_map(|(a, crlf)| Frame::Inline(a, crlf)),
        1 => prop::sample::select(vec![&b"*0\r\n"[..], b"*-1\r\n", b"\r\n", b"\n", b"   \t\r\n"]).prop_map(Frame::Empty),
    ]
}

fn cuts(max: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..max.max(1), 0..12)
}

const LIMITS: Limits = Limits { max_bulk_len: 512 * 1024 * 1024, authenticated: true };

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn multibulk_survives_any_split((args, cuts) in args().prop_flat_map(|a| {
        let len = multibulk(&a).len();
        (Just(a), cuts(len))
    }), compact in any::<bool>()) {
        let wire = multibulk(&args);
        let got = serve(&wire, &cuts, &LIMITS, compact);
        prop_assert_eq!(got, Session { frames: vec![Some(args)], error: None, rest: 0 });
    }

    #[test]
    fn pipelines_come_out_in_order(frames in prop::collection::vec(frame(), 1..10), seed in any::<u64>(), compact in any::<bool>()) {
        let mut wire = Vec::new();
        let mut want = Vec::new();
        for f in &frames {
            match f {
                Frame::Multibulk(a) => {
                    wire.extend(multibulk(a));
                    want.push(Some(a.clone()));
                }
                Frame::Inline(a, crlf) => {
                    wire.extend(inline(a, *crlf));
                    want.push(Some(a.clone()));
                }
                Frame::Empty(bytes) => {
                    wire.extend_from_slice(bytes);
                    want.push(None);
                }
            }
        }
        // Reads of pseudo-random sizes, including 1-byte ones.
        let mut cuts = Vec::new();
        let mut at = 0usize;
        let mut s = seed | 1;
        while at < wire.len() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            at += 1 + (s % 64) as usize * usize::from(s % 5 != 0);
            cuts.push(at);
        }
        let whole = serve(&wire, &[], &LIMITS, false);
        prop_assert_eq!(&whole, &Session { frames: want, error: None, rest: 0 });
        prop_assert_eq!(serve(&wire, &cuts, &LIMITS, compact), whole);
    }

    #[test]
    fn every_single_split_point_works(args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..6), 1..4)) {
        let wire = multibulk(&args);
        for cut in 0..=wire.len() {
            let got = serve(&wire, &[cut], &LIMITS, false);
            prop_assert_eq!(got, Session { frames: vec![Some(args.clone())], error: None, rest: 0 });
        }
    }

    /// The look ahead agrees with the parser: the second argument of each multibulk
    /// frame with two or more, in order, up to the first frame it cannot read.
    #[test]
    fn look_ahead_names_the_parsers_keys(frames in prop::collection::vec(frame(), 1..12), cut in any::<prop::sample::Index>()) {
        let mut wire = Vec::new();
        let mut want = Vec::new();
        let mut readable = true;
        for f in &frames {
            match f {
                Frame::Multibulk(a) => {
                    wire.extend(multibulk(a));
                    if readable && a.len() >= 2 {
                        want.push((a[1].clone(), wire.len()));
                    }
                }
                Frame::Inline(a, crlf) => {
                    wire.extend(inline(a, *crlf));
                    readable = false;
                }
                Frame::Empty(bytes) => {
                    wire.extend_from_slice(bytes);
                    // `*0` is a multibulk without arguments, stepped over.
                    readable &= *bytes == b"*0\r\n";
                }
            }
        }
        // Cut anywhere: only frames complete before the cut are named.
        let end = cut.index(wire.len() + 1);
        let want: Vec<Vec<u8>> = want.into_iter().filter(|(_, e)| *e <= end).map(|(k, _)| k).collect();
        let mut keys = [&b""[..]; 16];
        let n = ferrokv_resp::peek::second_args(&wire[..end], &mut keys);
        let got: Vec<Vec<u8>> = keys[..n].iter().map(|k| k.to_vec()).collect();
        prop_assert_eq!(&got[..], &want[..want.len().min(16)]);
    }

    /// Whatever the bytes, a session is the same however they are split: the same
    /// commands, then the same error or the same leftover.
    #[test]
    fn garbage_is_split_independent(
        wire in prop::collection::vec(prop_oneof![
            3 => prop::sample::select(b"*$\r\n0123456789-\"' \\x\0abcSETGET".to_vec()),
            1 => any::<u8>(),
        ], 0..200),
        cuts in cuts(200),
        authenticated in any::<bool>(),
        max_bulk_len in prop_oneof![Just(512usize * 1024 * 1024), 0usize..20],
    ) {
        let limits = Limits { max_bulk_len, authenticated };
        let whole = serve(&wire, &[], &limits, false);
        prop_assert_eq!(serve(&wire, &cuts, &limits, true), whole);
        let bytewise: Vec<usize> = (1..wire.len()).collect();
        prop_assert_eq!(serve(&wire, &bytewise, &limits, false), serve(&wire, &[], &limits, false));
    }

    #[test]
    fn random_bytes_never_panic(wire in prop::collection::vec(any::<u8>(), 0..300), cuts in cuts(300)) {
        let limits = Limits { max_bulk_len: 100, authenticated: false };
        let _ = serve(&wire, &cuts, &limits, false);
        let _ = parse_value(&wire);
        let mut r = ValueReader::new();
        for end in cuts.iter().copied().chain([wire.len()]) {
            let _ = r.parse(&wire[..end.min(wire.len())]);
        }
    }
}

fn value() -> impl Strategy<Value = Value> {
    let text = || "[a-zA-Z0-9 :_.-]{0,12}";
    let leaf = prop_oneof![
        text().prop_map(Value::Simple),
        "[a-zA-Z0-9 \r\n_-]{0,12}".prop_map(Value::Error),
        any::<i64>().prop_map(Value::Int),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(Value::Bulk),
        Just(Value::Nil),
        Just(Value::NilArray),
        Just(Value::Null),
        any::<f64>().prop_filter("NaN never equals itself", |d| !d.is_nan()).prop_map(Value::Double),
        any::<bool>().prop_map(Value::Bool),
        ("[a-z]{3}", prop::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(format, text)| Value::Verbatim { format, text }),
        "-?[1-9][0-9]{0,40}".prop_map(Value::BigNumber),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Set),
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Push),
            prop::collection::vec((inner.clone(), inner), 0..4).prop_map(Value::Map),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn values_round_trip(v in value(), cuts in cuts(400)) {
        let mut wire = Vec::new();
        encode_value(&v, &mut wire);
        let n = wire.len();
        wire.extend_from_slice(b"+next\r\n");
        prop_assert_eq!(parse_value(&wire), Ok(Some((v.clone(), n))));
        // In pieces, through the reader.
        let mut r = ValueReader::new();
        let mut ends: Vec<usize> = cuts.into_iter().filter(|&c| c < n).collect();
        ends.sort_unstable();
        for end in ends {
            prop_assert_eq!(r.parse(&wire[..end]), Ok(None));
        }
        prop_assert_eq!(r.parse(&wire), Ok(Some((v, n))));
    }
}

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

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The reader, fed in pieces, agrees with the one-shot parser on any bytes.
    #[test]
    fn reader_agrees_with_parse_value(
        wire in prop::collection::vec(prop_oneof![
            3 => prop::sample::select(b"*$%~>|=!+-:,#(_\r\n0123-tf:x".to_vec()),
            1 => any::<u8>(),
        ], 0..120),
        cuts in cuts(120),
    ) {
        let whole = comparable(parse_value(&wire));
        let mut r = ValueReader::new();
        let mut ends: Vec<usize> = cuts.into_iter().filter(|&c| c < wire.len()).collect();
        ends.sort_unstable();
        for end in ends {
            match comparable(r.parse(&wire[..end])) {
                Ok(None) => {}
                // Done or failed early: the whole buffer must say the same.
                early => {
                    prop_assert_eq!(early, whole);
                    return Ok(());
                }
            }
        }
        prop_assert_eq!(comparable(r.parse(&wire)), whole);
    }
}

#[test]
fn a_million_arguments_in_4k_reads_is_linear() {
    // 1M arguments of 8 bytes: ~15 MB, in 4 KiB reads. Quadratic rescanning would be
    // 3,700 reads × up to 15 MB; this test would not finish.
    let n = 1_000_000;
    let mut wire = format!("*{n}\r\n").into_bytes();
    for i in 0..n {
        wire.extend_from_slice(format!("$8\r\n{i:08}\r\n").as_bytes());
    }
    let mut p = RequestParser::new();
    let mut end = 0;
    let result = loop {
        end = (end + 4096).min(wire.len());
        match p.parse(&wire[..end], &LIMITS).unwrap() {
            Parsed::Incomplete => assert!(end < wire.len()),
            done => break done,
        }
    };
    assert_eq!(result, Parsed::Command { consumed: wire.len() });
    let args = p.args(&wire);
    assert_eq!(args.len(), n);
    assert_eq!(args.get(123_456), b"00123456");
}
