//! Differential test against a real redis-server: damaged pipelines of ECHO commands are
//! sent to Redis and to our parser, and Redis's replies must be what our parse implies:
//! one reply per command (ECHO's reply being its argument), then the same protocol
//! error, or silence when the last frame is incomplete.
//!
//! Needs a server to talk to, so it is ignored by default:
//! `FERROKV_TEST_REDIS=127.0.0.1:6379 cargo test -p ferrokv-resp --test against_redis -- --ignored`
//! Arguments use no letters, so no damage can turn them into a command that matters.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ferrokv_resp::value::{parse_value, Value};
use ferrokv_resp::{Limits, Parsed, RequestParser};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick(&mut self, from: &[u8]) -> u8 {
        from[self.below(from.len())]
    }
}

const ALPHABET: &[u8] = b"0123456789*$:\r\n\"' \\x-\t";

fn input(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..1 + rng.below(6) {
        let arg: Vec<u8> = (0..rng.below(12)).map(|_| rng.pick(ALPHABET)).collect();
        match rng.below(4) {
            0 => {
                // Inline, quoted so that sdssplitargs gives the bytes back.
                out.extend_from_slice(b"ECHO \"");
                for &b in &arg {
                    match b {
                        b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        _ => out.push(b),
                    }
                }
                out.extend_from_slice(b"\"\r\n");
            }
            1 => out.extend_from_slice([&b"*0\r\n"[..], b"*-1\r\n", b"\r\n"][rng.below(3)]),
            _ => {
                out.extend_from_slice(format!("*2\r\n$4\r\nECHO\r\n${}\r\n", arg.len()).as_bytes());
                out.extend_from_slice(&arg);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    // Damage: flip, insert or delete a few bytes.
    for _ in 0..rng.below(3) {
        if out.is_empty() {
            break;
        }
        let at = rng.below(out.len());
        match rng.below(3) {
            0 => out[at] = rng.pick(ALPHABET),
            1 => out.insert(at, rng.pick(ALPHABET)),
            _ => {
                out.remove(at);
            }
        }
    }
    out
}

/// What our parser says Redis should answer: one expected reply per command (`Some`
/// bulk for a well-formed ECHO, `None` for any other reply), then the error or nothing.
fn expected(wire: &[u8]) -> (Vec<Option<Vec<u8>>>, Option<String>) {
    let mut p = RequestParser::new();
    let mut at = 0;
    let mut replies = Vec::new();
    loop {
        match p.parse(&wire[at..], &Limits::default()) {
            Ok(Parsed::Command { consumed }) => {
                let args = p.args(&wire[at..]);
                let echo = args.len() == 2 && args.get(0).eq_ignore_ascii_case(b"ECHO");
                replies.push(echo.then(|| args.get(1).to_vec()));
                at += consumed;
            }
            Ok(Parsed::Empty { consumed }) => at += consumed,
            Ok(Parsed::Incomplete) => return (replies, None),
            Err(e) => return (replies, Some(format!("ERR {}", e.0))),
        }
    }
}

#[test]
#[ignore]
fn parser_agrees_with_redis() {
    let Ok(addr) = std::env::var("FERROKV_TEST_REDIS") else {
        eprintln!("FERROKV_TEST_REDIS is not set: nothing to compare with");
        return;
    };
    let cases: usize = std::env::var("FERROKV_TEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(300);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut errors = std::collections::BTreeMap::new();
    for case in 0..cases {
        let wire = input(&mut rng);
        let (want, error) = expected(&wire);
        *errors.entry(error.clone().unwrap_or_else(|| "(no error)".into())).or_insert(0) += 1;
        let mut s = TcpStream::connect(&addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(150))).unwrap();
        s.write_all(&wire).unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
        let mut replies = Vec::new();
        let mut at = 0;
        while let Ok(Some((v, n))) = parse_value(&got[at..]) {
            replies.push(v);
            at += n;
        }
        let shown = String::from_utf8_lossy(&wire);
        assert_eq!(at, got.len(), "case {case}: {shown:?}: unparsed reply bytes");
        let want_len = want.len() + usize::from(error.is_some());
        assert_eq!(replies.len(), want_len, "case {case}: {shown:?}: replies {replies:?}");
        for (w, r) in want.iter().zip(&replies) {
            if let Some(arg) = w {
                assert_eq!(r, &Value::Bulk(arg.clone()), "case {case}: {shown:?}");
            }
        }
        if let Some(e) = error {
            assert_eq!(replies.last(), Some(&Value::Error(e)), "case {case}: {shown:?}");
        }
    }
    eprintln!("outcomes: {errors:#?}");
}
