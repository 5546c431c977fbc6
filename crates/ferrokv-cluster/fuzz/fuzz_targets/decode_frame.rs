//! Any bytes: the bus decoder must not panic, and whatever it accepts must encode back to
//! a frame that decodes to the same message.
#![no_main]

use ferrokv_cluster::wire::{decode_frame, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((msg, used))) = decode_frame(data) {
        assert!(used <= data.len());
        let again = msg.encode();
        let (back, n) = decode_frame(&again).expect("re-encoded frame decodes").expect("complete");
        assert_eq!(n, again.len());
        assert_eq!(back, msg);
    }
    let _ = Message::decode(data);
});
