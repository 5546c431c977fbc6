//! Request parsing and reply encoding at pipeline depth 16, the shape redis-benchmark
//! `-P 16` sends. Throughput is printed per command (elements/s) and per byte.
//!
//! `cargo bench -p ferrokv-resp`

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ferrokv_resp::value::parse_value;
use ferrokv_resp::{Limits, Parsed, Proto, ReplyBuf, RequestParser};

const DEPTH: usize = 16;

fn multibulk(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `DEPTH` commands built by `command(i)`, back to back.
fn pipeline(command: impl Fn(usize) -> Vec<u8>) -> Vec<u8> {
    (0..DEPTH).flat_map(command).collect()
}

/// Parses every command of `buf` and sums the argument lengths, so nothing is skipped.
fn parse_all(p: &mut RequestParser, buf: &[u8], limits: &Limits) -> usize {
    let mut at = 0;
    let mut total = 0;
    loop {
        match p.parse(&buf[at..], limits) {
            Ok(Parsed::Command { consumed }) => {
                total += p.args(&buf[at..]).iter().map(<[u8]>::len).sum::<usize>();
                at += consumed;
            }
            Ok(Parsed::Empty { consumed }) => at += consumed,
            Ok(Parsed::Incomplete) | Err(_) => return total,
        }
    }
}

fn bench_parse(c: &mut Criterion) {
    let value = [b'v'; 64];
    let set = pipeline(|i| multibulk(&[b"SET", format!("key:{:06}", 123 + i).as_bytes(), &value]));
    let get = pipeline(|i| multibulk(&[b"GET", format!("key:{:06}", 123 + i).as_bytes()]));
    let inline = pipeline(|i| format!("GET key:{:06}\r\n", 123 + i).into_bytes());
    let limits = Limits::default();

    let mut g = c.benchmark_group("parse");
    for (name, buf) in [("set_p16", &set), ("get_p16", &get), ("inline_get_p16", &inline)] {
        g.throughput(Throughput::Elements(DEPTH as u64));
        g.bench_function(format!("{name}/commands"), |b| {
            let mut p = RequestParser::new();
            b.iter(|| parse_all(&mut p, black_box(buf), &limits))
        });
        g.throughput(Throughput::Bytes(buf.len() as u64));
        g.bench_function(format!("{name}/bytes"), |b| {
            let mut p = RequestParser::new();
            b.iter(|| parse_all(&mut p, black_box(buf), &limits))
        });
    }
    // The same SET pipeline arriving in 7-byte reads: the cost of resuming.
    g.throughput(Throughput::Elements(DEPTH as u64));
    g.bench_function("set_p16_in_7_byte_reads/commands", |b| {
        let mut p = RequestParser::new();
        b.iter(|| {
            let mut at = 0;
            let mut end = 0;
            let mut n = 0;
            while at < set.len() {
                end = (end + 7).min(set.len());
                while let Ok(Parsed::Command { consumed }) = p.parse(&set[at..end], &limits) {
                    at += consumed;
                    n += 1;
                }
            }
            n
        })
    });
    g.finish();
}

fn bench_encode(c: &mut Criterion) {
    let value = [b'v'; 64];
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(DEPTH as u64));
    g.bench_function("bulk64_p16/replies", |b| {
        b.iter_batched_ref(
            || ReplyBuf::with_buf(Vec::with_capacity(4096), Proto::Resp2),
            |r| {
                r.clear();
                for _ in 0..DEPTH {
                    r.bulk(black_box(&value));
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("ok_p16/replies", |b| {
        let mut r = ReplyBuf::with_buf(Vec::with_capacity(4096), Proto::Resp2);
        b.iter(|| {
            r.clear();
            for _ in 0..DEPTH {
                r.ok();
            }
            r.len()
        })
    });
    g.bench_function("integer_p16/replies", |b| {
        let mut r = ReplyBuf::with_buf(Vec::with_capacity(4096), Proto::Resp2);
        b.iter(|| {
            r.clear();
            for i in 0..DEPTH as i64 {
                r.integer(black_box(1_000_000 + i));
            }
            r.len()
        })
    });
    g.finish();
}

fn bench_value(c: &mut Criterion) {
    let value = [b'v'; 64];
    let mut r = ReplyBuf::new(Proto::Resp2);
    r.array(DEPTH);
    for _ in 0..DEPTH {
        r.bulk(&value);
    }
    let wire = r.buf;
    let mut g = c.benchmark_group("value");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("parse_array_of_16_bulk64", |b| b.iter(|| parse_value(black_box(&wire))));
    g.finish();
}

criterion_group!(benches, bench_parse, bench_encode, bench_value);
criterion_main!(benches);
