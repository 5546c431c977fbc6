//! Script flags: a script's `#!lua flags=...` shebang line (EVAL) or a function's
//! `flags` (FUNCTION LOAD), as Redis 7.0 reads them.

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScriptFlags(pub u8);

impl ScriptFlags {
    pub const NO_WRITES: ScriptFlags = ScriptFlags(1);
    pub const ALLOW_OOM: ScriptFlags = ScriptFlags(2);
    pub const ALLOW_STALE: ScriptFlags = ScriptFlags(4);
    pub const NO_CLUSTER: ScriptFlags = ScriptFlags(8);
    pub const ALLOW_CROSS_SLOT: ScriptFlags = ScriptFlags(16);
    /// A script without a shebang: Redis's compatibility mode (no flag checks before
    /// the run, writes allowed, cross-slot access allowed).
    pub const EVAL_COMPAT: ScriptFlags = ScriptFlags(32);

    /// The flag names, in Redis's order (FUNCTION LIST prints them so).
    pub const NAMES: &'static [(&'static str, ScriptFlags)] = &[
        ("no-writes", ScriptFlags::NO_WRITES),
        ("allow-oom", ScriptFlags::ALLOW_OOM),
        ("allow-stale", ScriptFlags::ALLOW_STALE),
        ("no-cluster", ScriptFlags::NO_CLUSTER),
        ("allow-cross-slot-keys", ScriptFlags::ALLOW_CROSS_SLOT),
    ];

    pub fn has(self, f: ScriptFlags) -> bool {
        self.0 & f.0 != 0
    }

    pub fn with(self, f: ScriptFlags) -> ScriptFlags {
        ScriptFlags(self.0 | f.0)
    }

    pub fn by_name(name: &[u8]) -> Option<ScriptFlags> {
        Self::NAMES.iter().find(|(n, _)| n.as_bytes() == name).map(|(_, f)| *f)
    }
}

/// Reads the shebang of `body`: its flags and the length of the shebang line (without
/// its line feed). No shebang: compatibility mode. Errors are Redis's texts (without
/// the `ERR ` the reply adds).
pub fn parse_shebang(body: &[u8]) -> Result<(ScriptFlags, usize), String> {
    if !body.starts_with(b"#!") {
        return Ok((ScriptFlags::EVAL_COMPAT, 0));
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err("Invalid script shebang".into());
    };
    let line = &body[..end];
    let parts: Vec<&[u8]> = line.split(|b| b.is_ascii_whitespace()).filter(|p| !p.is_empty()).collect();
    let Some(engine) = parts.first() else {
        return Err("Invalid engine in script shebang".into());
    };
    if *engine != b"#!lua" {
        return Err(format!("Unexpected engine in script shebang: {}", String::from_utf8_lossy(engine)));
    }
    let mut flags = ScriptFlags::default();
    for p in &parts[1..] {
        let Some(list) = p.strip_prefix(b"flags=") else {
            return Err(format!("Unknown lua shebang option: {}", String::from_utf8_lossy(p)));
        };
        if list.is_empty() {
            continue;
        }
        for f in list.split(|&b| b == b',') {
            match ScriptFlags::by_name(f) {
                Some(x) => flags = flags.with(x),
                None => return Err(format!("Unexpected flag in script shebang: {}", String::from_utf8_lossy(f))),
            }
        }
    }
    Ok((flags, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebangs_as_redis_reads_them() {
        assert_eq!(parse_shebang(b"return 1"), Ok((ScriptFlags::EVAL_COMPAT, 0)));
        assert_eq!(parse_shebang(b"#!lua\nreturn 1"), Ok((ScriptFlags::default(), 5)));
        let (f, n) = parse_shebang(b"#!lua flags=no-writes,allow-oom\nreturn 1").unwrap();
        assert!(f.has(ScriptFlags::NO_WRITES) && f.has(ScriptFlags::ALLOW_OOM) && !f.has(ScriptFlags::EVAL_COMPAT));
        assert_eq!(n, 31);
        assert_eq!(parse_shebang(b"#!lua"), Err("Invalid script shebang".into()));
        assert_eq!(parse_shebang(b"#!python\n"), Err("Unexpected engine in script shebang: #!python".into()));
        assert_eq!(parse_shebang(b"#!lua flags=bad\n"), Err("Unexpected flag in script shebang: bad".into()));
        assert_eq!(parse_shebang(b"#!lua name=x\n"), Err("Unknown lua shebang option: name=x".into()));
    }
}
