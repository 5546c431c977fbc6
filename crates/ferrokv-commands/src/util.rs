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

/// A SCAN-family cursor as Redis's `parseScanCursorOrReply` reads it with `strtoul`:
/// optional sign, decimal digits, nothing after (C stops at a NUL; an empty string is 0;
/// `-n` wraps around), no leading space. None means "ERR invalid cursor".
pub fn parse_scan_cursor(arg: &[u8]) -> Option<u64> {
    let arg = arg.split(|&b| b == 0).next().unwrap_or(arg);
    if arg.is_empty() {
        return Some(0);
    }
    if matches!(arg[0], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        return None;
    }
    let (neg, digits) = match arg[0] {
        b'-' => (true, &arg[1..]),
        b'+' => (false, &arg[1..]),
        _ => (false, arg),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// A database index argument as Redis's `getIntFromObjectOrReply` reads it: not a
/// long → [`ERR_NOT_INT`]; outside an `int` → Redis's range error. (Whether the index
/// exists is the caller's check.)
pub fn parse_db_index(arg: &[u8]) -> Result<i64, &'static str> {
    match parse_i64(arg) {
        Some(n) if i32::try_from(n).is_ok() => Ok(n),
        Some(_) => Err("ERR value is out of range, value must between -2147483648 and 2147483647"),
        None => Err(ERR_NOT_INT),
    }
}
