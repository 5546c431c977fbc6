//! The containers RDB strings hold, each decoder fed directly (the first byte picks
//! which): listpacks, ziplists, zipmaps, LZF with a declared length taken from the
//! input, and LZF compression. Never a panic, never an allocation by a length the input
//! does not back (run with `-malloc_limit_mb`); whatever decodes must write back, with
//! the crate's writers, to bytes that decode to the same elements; whatever compresses
//! must fit its bound, decompress to the input, and come out the same after another
//! call (the compressor keeps its hash table between calls).
#![no_main]

use ferrokv_rdb::listpack::{self, ListpackWriter};
use ferrokv_rdb::{legacy, lzf};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, input)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => {
            if let Ok(elements) = listpack::elements(input) {
                let mut w = ListpackWriter::new();
                for e in &elements {
                    w.push(e);
                }
                assert_eq!(listpack::elements(&w.finish()), Ok(elements));
            }
        }
        1 => {
            if let Ok(elements) = legacy::ziplist_elements(input) {
                let refs: Vec<&[u8]> = elements.iter().map(Vec::as_slice).collect();
                assert_eq!(legacy::ziplist_elements(&legacy::write_ziplist(&refs)), Ok(elements));
            }
        }
        2 => {
            if let Ok(pairs) = legacy::zipmap_pairs(input) {
                let refs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
                assert_eq!(legacy::zipmap_pairs(&legacy::write_zipmap(&refs)), Ok(pairs));
            }
        }
        3 => {
            // The declared (original) length, as an RDB LZF string carries it.
            let Some((len, compressed)) = input.split_first_chunk::<4>() else {
                return;
            };
            let len = u32::from_le_bytes(*len) as usize;
            if let Ok(out) = lzf::decompress(compressed, len) {
                assert_eq!(out.len(), len);
            }
        }
        _ => {
            // Room from 4 bytes less than the input (what Redis asks for) up to 46 more.
            let room = (input.len() + usize::from(which / 5)).saturating_sub(4);
            let once = lzf::compress(input, room);
            if let Some(c) = &once {
                assert!(c.len() <= room, "{} bytes in room for {room}", c.len());
                assert_eq!(lzf::decompress(c, input.len()).as_deref(), Ok(input));
            }
            // The hash table is kept per thread between calls: a call in between, on
            // other bytes, must leave no trace in the next.
            let other: Vec<u8> = input.iter().rev().map(|b| b ^ 1).collect();
            let _ = lzf::compress(&other, other.len());
            assert_eq!(lzf::compress(input, room), once, "compressing depends on an earlier call");
        }
    }
});
