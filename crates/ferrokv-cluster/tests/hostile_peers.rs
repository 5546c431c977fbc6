//! Arbitrary peer messages, link events, commands and clock jumps never panic the state
//! machine or break its internal consistency; everything it sends or saves reads back.

mod drive;

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_inputs_keep_the_state_consistent(data in proptest::collection::vec(any::<u8>(), 0..4000)) {
        drive::drive(&data);
    }
}
