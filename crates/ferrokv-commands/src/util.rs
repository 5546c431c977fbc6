//! Argument parsing shared by the families, with Redis's exact error words.

pub const ERR_SYNTAX: &str = "ERR syntax error";
pub const ERR_NOT_INT: &str = "ERR value is not an integer or out of range";
pub const ERR_NOT_FLOAT: &str = "ERR value is not a valid float";
pub const ERR_WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const ERR_OVERFLOW: &str = "ERR increment or decrement would overflow";

/// Parses an integer argument as Redis's `string2ll` does (no spaces, no `+`, no
/// leading zeros except "0", optional `-`).
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    ferrokv_store::value::parse_canonical_i64(b)
}

/// Case-insensitive comparison with an ASCII keyword.
#[inline]
pub fn eq_ic(a: &[u8], kw: &str) -> bool {
    a.eq_ignore_ascii_case(kw.as_bytes())
}

/// `ERR wrong number of arguments for 'name' command`.
pub fn arity_error(name: &str) -> String {
    format!("ERR wrong number of arguments for '{}' command", name)
}
