//! Argument vectors. A parsed command is a list of spans into the input buffer, plus a
//! scratch buffer for arguments that had to be rewritten (inline commands with quotes).
//! Executing a command borrows the spans ([`Args`]); forwarding it to another shard
//! copies it once into [`OwnedArgs`].

/// One argument: `len` bytes at `start`, in the input buffer or in the scratch buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub len: u32,
    pub in_scratch: bool,
}

/// A command's arguments, borrowed. `get(0)` is the command name.
#[derive(Clone, Copy)]
pub struct Args<'a> {
    input: &'a [u8],
    scratch: &'a [u8],
    spans: &'a [Span],
}

impl<'a> Args<'a> {
    pub fn new(input: &'a [u8], scratch: &'a [u8], spans: &'a [Span]) -> Self {
        Args { input, scratch, spans }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The argument at `i`. Panics when `i >= len()`: callers check arity first.
    #[inline]
    pub fn get(&self, i: usize) -> &'a [u8] {
        let s = self.spans[i];
        let src = if s.in_scratch { self.scratch } else { self.input };
        &src[s.start as usize..(s.start + s.len) as usize]
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }

    /// Copies the arguments into one owned buffer.
    pub fn to_owned_args(&self) -> OwnedArgs {
        let total: usize = self.spans.iter().map(|s| s.len as usize).sum();
        let mut o = OwnedArgs { buf: Vec::with_capacity(total), spans: Vec::with_capacity(self.len()) };
        for a in self.iter() {
            o.push(a);
        }
        o
    }
}

impl std::fmt::Debug for Args<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter().map(|a| String::from_utf8_lossy(a))).finish()
    }
}

/// A command's arguments in one owned buffer.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct OwnedArgs {
    buf: Vec<u8>,
    spans: Vec<Span>,
}

impl OwnedArgs {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_slices<I, T>(items: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        let mut o = OwnedArgs::new();
        for i in items {
            o.push(i.as_ref());
        }
        o
    }

    pub fn push(&mut self, a: &[u8]) {
        self.spans.push(Span { start: self.buf.len() as u32, len: a.len() as u32, in_scratch: false });
        self.buf.extend_from_slice(a);
    }

    /// Empties it, keeping its buffers (a caller that reuses one per command).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.spans.clear();
    }

    #[inline]
    pub fn args(&self) -> Args<'_> {
        Args::new(&self.buf, &[], &self.spans)
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

impl std::fmt::Debug for OwnedArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.args().fmt(f)
    }
}
