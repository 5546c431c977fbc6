//! The append-only file's formats, without IO: Redis 7's manifest and the command
//! stream (RESP arrays of bulk strings, `MULTI`/`EXEC` around atomic units).
//!
//! A Redis 7 AOF is a directory (`appenddirname`) holding a base file (an RDB file,
//! `<appendfilename>.<seq>.base.rdb`, or a command stream, `.base.aof`), incremental
//! command files (`<appendfilename>.<seq>.incr.aof`) and the manifest
//! (`<appendfilename>.manifest`) listing them, one line per file:
//!
//! ```text
//! file appendonly.aof.1.base.rdb seq 1 type b
//! file appendonly.aof.1.incr.aof seq 1 type i
//! ```
//!
//! Loading replays the base, then the incremental files in manifest order. A Redis 6
//! AOF is a single file in `dir` (possibly starting with an RDB preamble).

/// The kind of a file in the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Base,
    /// Left from before a rewrite, about to be deleted.
    History,
    Incr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestFile {
    pub name: String,
    pub seq: u64,
    pub kind: FileKind,
}

/// The manifest's files, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub files: Vec<ManifestFile>,
}

impl Manifest {
    /// Parses a manifest as Redis 7.0 writes it (keys in any order, a name in quotes
    /// when it has spaces). Errors name the line.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let mut files = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words =
                split_words(line).ok_or_else(|| format!("Invalid AOF manifest file format (line {})", n + 1))?;
            if words.len() % 2 != 0 {
                return Err(format!("Invalid AOF manifest file format (line {})", n + 1));
            }
            let (mut name, mut seq, mut kind) = (None, None, None);
            for kv in words.chunks_exact(2) {
                match kv[0].as_str() {
                    "file" => name = Some(kv[1].clone()),
                    "seq" => seq = kv[1].parse::<u64>().ok(),
                    "type" => {
                        kind = match kv[1].as_str() {
                            "b" => Some(FileKind::Base),
                            "h" => Some(FileKind::History),
                            "i" => Some(FileKind::Incr),
                            _ => None,
                        }
                    }
                    _ => {} // Unknown keys are for later versions.
                }
            }
            match (name, seq, kind) {
                (Some(name), Some(seq), Some(kind)) if !name.contains('/') => {
                    files.push(ManifestFile { name, seq, kind })
                }
                _ => return Err(format!("Invalid AOF manifest file format (line {})", n + 1)),
            }
        }
        if files.iter().filter(|f| f.kind == FileKind::Base).count() > 1 {
            return Err("Found duplicate base file information in the AOF manifest".into());
        }
        Ok(Manifest { files })
    }

    /// The manifest's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.files {
            let kind = match f.kind {
                FileKind::Base => 'b',
                FileKind::History => 'h',
                FileKind::Incr => 'i',
            };
            let name = if f.name.contains(' ') { format!("\"{}\"", f.name) } else { f.name.clone() };
            out.push_str(&format!("file {name} seq {} type {kind}\n", f.seq));
        }
        out
    }

    pub fn base(&self) -> Option<&ManifestFile> {
        self.files.iter().find(|f| f.kind == FileKind::Base)
    }

    /// The incremental files, in replay order.
    pub fn incrs(&self) -> impl Iterator<Item = &ManifestFile> {
        self.files.iter().filter(|f| f.kind == FileKind::Incr)
    }
}

/// A manifest line's words, split as Redis splits it (`sdssplitargs`).
fn split_words(line: &str) -> Option<Vec<String>> {
    let words = ferrokv_resp::inline::split_args(line.as_bytes()).ok()?;
    words.into_iter().map(|w| String::from_utf8(w).ok()).collect()
}

/// Appends a command as the AOF stores it: `*<n>\r\n` then `$<len>\r\n<arg>\r\n` each.
pub fn write_command(out: &mut Vec<u8>, args: &[Vec<u8>]) {
    header(out, b'*', args.len());
    for a in args {
        header(out, b'$', a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// [`write_command`] from borrowed arguments.
pub fn write_command_args<'a>(out: &mut Vec<u8>, args: impl ExactSizeIterator<Item = &'a [u8]>) {
    header(out, b'*', args.len());
    for a in args {
        header(out, b'$', a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// `<kind><n>\r\n`, the number written without allocating (this runs per argument of
/// every write the AOF records).
fn header(out: &mut Vec<u8>, kind: u8, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push(kind);
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// Why a command stream stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamError {
    /// The input ends inside a command that starts at this offset (a crash during a
    /// write): `aof-load-truncated` decides whether that is fatal.
    Truncated { offset: usize },
    /// Bytes that are not a command, at this offset.
    Invalid { offset: usize, what: &'static str },
}

/// Reads the commands of an AOF command stream one by one.
pub struct CommandReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> CommandReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        CommandReader { data, pos: 0 }
    }

    /// Bytes consumed so far (the end of the last whole command).
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// The next command, `Ok(None)` at the end of the input.
    pub fn next_command(&mut self) -> Result<Option<Vec<Vec<u8>>>, StreamError> {
        // Redis 7 writes timestamp annotations (`#TS:...`) when aof-timestamp-enabled.
        while self.data.get(self.pos) == Some(&b'#') {
            let end = find_crlf(self.data, self.pos).ok_or(StreamError::Truncated { offset: self.pos })?;
            self.pos = end + 2;
        }
        let start = self.pos;
        if start >= self.data.len() {
            return Ok(None);
        }
        let mut p = start;
        let truncated = StreamError::Truncated { offset: start };
        let invalid = |what| StreamError::Invalid { offset: start, what };
        if self.data[p] != b'*' {
            return Err(invalid("expected '*'"));
        }
        p += 1;
        let (argc, next) = read_number(self.data, p).ok_or(truncated.clone())?;
        let argc = argc.ok_or_else(|| invalid("bad array length"))?;
        if argc < 1 {
            return Err(invalid("bad array length"));
        }
        p = next;
        // Each argument takes at least 5 bytes: a count beyond the input is a lie.
        let mut args = Vec::with_capacity(argc.min((self.data.len() - p) / 5 + 1));
        for _ in 0..argc {
            match self.data.get(p) {
                None => return Err(truncated),
                Some(b'$') => {}
                Some(_) => return Err(invalid("expected '$'")),
            }
            let (len, next) = read_number(self.data, p + 1).ok_or(truncated.clone())?;
            let len = len.ok_or_else(|| invalid("bad bulk length"))?;
            let end = next.checked_add(len).ok_or(truncated.clone())?;
            if end + 2 > self.data.len() {
                return Err(truncated);
            }
            if &self.data[end..end + 2] != b"\r\n" {
                return Err(invalid("bulk string not followed by CRLF"));
            }
            args.push(self.data[next..end].to_vec());
            p = end + 2;
        }
        self.pos = p;
        Ok(Some(args))
    }
}

fn find_crlf(data: &[u8], from: usize) -> Option<usize> {
    data[from..].windows(2).position(|w| w == b"\r\n").map(|i| from + i)
}

/// A decimal number ending in CRLF at `p`: `None` when the input ends first, `Some((None,
/// _))` when it is not a number.
fn read_number(data: &[u8], p: usize) -> Option<(Option<usize>, usize)> {
    let end = find_crlf(data, p)?;
    let text = &data[p..end];
    let n = if text.is_empty() || text.len() > 18 || !text.iter().all(u8::is_ascii_digit) {
        None
    } else {
        std::str::from_utf8(text).ok().and_then(|t| t.parse().ok())
    };
    Some((n, end + 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn manifests_round_trip_and_bad_ones_are_refused() {
        let text = "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n";
        let m = Manifest::parse(text).unwrap();
        assert_eq!(m.render(), text);
        assert_eq!(m.base().unwrap().name, "appendonly.aof.1.base.rdb");
        assert_eq!(m.incrs().count(), 1);
        let spaced = Manifest::parse("file \"my file.aof\" seq 2 type i\n").unwrap();
        assert_eq!(spaced.files[0].name, "my file.aof");
        assert_eq!(Manifest::parse(&spaced.render()).unwrap(), spaced);
        for bad in ["file x seq 1", "file x seq y type i", "file x seq 1 type z", "file ../x seq 1 type i"] {
            assert!(Manifest::parse(bad).is_err(), "{bad}");
        }
        assert!(Manifest::parse("file a seq 1 type b\nfile b seq 2 type b\n").is_err());
    }

    #[test]
    fn truncation_is_told_from_garbage() {
        let mut out = Vec::new();
        write_command(&mut out, &[b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()]);
        let whole = out.len();
        write_command(&mut out, &[b"INCR".to_vec(), b"n".to_vec()]);
        for cut in whole + 1..out.len() {
            let mut r = CommandReader::new(&out[..cut]);
            assert!(r.next_command().unwrap().is_some());
            assert_eq!(r.next_command(), Err(StreamError::Truncated { offset: whole }), "cut at {cut}");
        }
        let mut r = CommandReader::new(b"*1\r\n$4\r\nPING\r\nxx");
        assert!(r.next_command().unwrap().is_some());
        assert!(matches!(r.next_command(), Err(StreamError::Invalid { offset: 14, .. })));
        let mut r = CommandReader::new(b"#TS:123\r\n*1\r\n$4\r\nPING\r\n");
        assert_eq!(r.next_command().unwrap(), Some(vec![b"PING".to_vec()]));
        assert_eq!(r.next_command().unwrap(), None);
    }

    proptest! {
        #[test]
        fn commands_round_trip(cmds in proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..5), 0..10)) {
            let mut out = Vec::new();
            for c in &cmds {
                write_command(&mut out, c);
            }
            let mut r = CommandReader::new(&out);
            for c in &cmds {
                let got = r.next_command().unwrap();
                prop_assert_eq!(got.as_ref(), Some(c));
            }
            prop_assert_eq!(r.next_command().unwrap(), None);
        }

        #[test]
        fn any_bytes_read_without_panicking(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            let mut r = CommandReader::new(&data);
            for _ in 0..20 {
                if !matches!(r.next_command(), Ok(Some(_))) {
                    break;
                }
            }
        }
    }
}
