//! `user_data` layout: the top 8 bits say what completed, the low 56 bits which one.

pub const KIND_SHIFT: u32 = 56;
pub const PAYLOAD_MASK: u64 = (1 << KIND_SHIFT) - 1;

/// Completions of async operations (see [`crate::ops::Ops::complete`]). The server's own
/// kinds are 1–4.
pub const KIND_OP: u8 = 200;

/// Wake-ups of a [`crate::local::LocalRuntime`] from another ring: their only job is to end
/// the wait, so the runtime ignores them.
pub const KIND_WAKE: u8 = 201;

#[inline]
pub const fn encode(kind: u8, payload: u64) -> u64 {
    ((kind as u64) << KIND_SHIFT) | (payload & PAYLOAD_MASK)
}

#[inline]
pub const fn kind(user_data: u64) -> u8 {
    (user_data >> KIND_SHIFT) as u8
}

#[inline]
pub const fn payload(user_data: u64) -> u64 {
    user_data & PAYLOAD_MASK
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let u = super::encode(7, 0x00ab_cdef_1234);
        assert_eq!(super::kind(u), 7);
        assert_eq!(super::payload(u), 0x00ab_cdef_1234);
    }
}
