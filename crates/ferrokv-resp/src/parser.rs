//! Request parser: placeholder API, completed in its own change.
use crate::args::Span;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_bulk_len: usize,
    pub authenticated: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bulk_len: 512 * 1024 * 1024, authenticated: true }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    Command { consumed: usize },
    Empty { consumed: usize },
    Incomplete,
}

#[derive(Default, Debug)]
pub struct RequestParser {
    pub spans: Vec<Span>,
    pub scratch: Vec<u8>,
}

impl RequestParser {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn parse(&mut self, _buf: &[u8], _limits: &Limits) -> Result<Parsed, ProtocolError> {
        Ok(Parsed::Incomplete)
    }
    pub fn args<'a>(&'a self, buf: &'a [u8]) -> crate::Args<'a> {
        crate::Args::new(buf, &self.scratch, &self.spans)
    }
}
