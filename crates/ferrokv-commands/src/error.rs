//! Command errors, typed until they are written.
//!
//! Clients match on an error reply's first word (`WRONGTYPE`, `CROSSSLOT`, `MOVED`...),
//! and so do Redis's error statistics, a script's `pcall` and ACL's `NOPERM`. An
//! [`ErrorCode`] names that word; a [`CommandError`] carries it with the full text, and
//! is written to the wire in one place ([`CommandError::write`], through
//! `ReplyBuf::error`). The execution function reports the code of the error a command
//! replied in its `Outcome`, whoever wrote it.

use ferrokv_resp::ReplyBuf;
use std::borrow::Cow;

/// The first word of an error reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Err,
    WrongType,
    NoAuth,
    WrongPass,
    NoProto,
    ExecAbort,
    CrossSlot,
    Moved,
    Ask,
    TryAgain,
    ClusterDown,
    Busy,
    BusyKey,
    NoScript,
    Oom,
    ReadOnly,
    NoPerm,
    Loading,
    MasterDown,
    NoReplicas,
    /// A word not listed here (the text keeps it).
    Other,
}

impl ErrorCode {
    const WORDS: &'static [(ErrorCode, &'static str)] = &[
        (ErrorCode::Err, "ERR"),
        (ErrorCode::WrongType, "WRONGTYPE"),
        (ErrorCode::NoAuth, "NOAUTH"),
        (ErrorCode::WrongPass, "WRONGPASS"),
        (ErrorCode::NoProto, "NOPROTO"),
        (ErrorCode::ExecAbort, "EXECABORT"),
        (ErrorCode::CrossSlot, "CROSSSLOT"),
        (ErrorCode::Moved, "MOVED"),
        (ErrorCode::Ask, "ASK"),
        (ErrorCode::TryAgain, "TRYAGAIN"),
        (ErrorCode::ClusterDown, "CLUSTERDOWN"),
        (ErrorCode::Busy, "BUSY"),
        (ErrorCode::BusyKey, "BUSYKEY"),
        (ErrorCode::NoScript, "NOSCRIPT"),
        (ErrorCode::Oom, "OOM"),
        (ErrorCode::ReadOnly, "READONLY"),
        (ErrorCode::NoPerm, "NOPERM"),
        (ErrorCode::Loading, "LOADING"),
        (ErrorCode::MasterDown, "MASTERDOWN"),
        (ErrorCode::NoReplicas, "NOREPLICAS"),
    ];

    /// The word as clients see it (`""` for [`ErrorCode::Other`]).
    pub fn word(self) -> &'static str {
        Self::WORDS.iter().find(|(c, _)| *c == self).map_or("", |(_, w)| w)
    }

    /// The code of an error text (`WRONGTYPE Operation...`, with or without the `-`).
    pub fn of(text: &[u8]) -> ErrorCode {
        let text = text.strip_prefix(b"-").unwrap_or(text);
        let end = text.iter().position(|&b| b == b' ' || b == b'\r').unwrap_or(text.len());
        let word = &text[..end];
        Self::WORDS.iter().find(|(_, w)| w.as_bytes() == word).map_or(ErrorCode::Other, |(c, _)| *c)
    }
}

/// An error reply: its code and its text, which starts with the code's word as
/// clients read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandError {
    code: ErrorCode,
    text: Cow<'static, str>,
}

impl CommandError {
    pub fn new(text: impl Into<Cow<'static, str>>) -> CommandError {
        let text = text.into();
        CommandError { code: ErrorCode::of(text.as_bytes()), text }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Writes the error reply: the one place a command error becomes wire text.
    pub fn write(&self, out: &mut ReplyBuf) {
        out.error(&self.text);
    }
}

impl From<&'static str> for CommandError {
    fn from(text: &'static str) -> Self {
        CommandError::new(text)
    }
}

impl From<String> for CommandError {
    fn from(text: String) -> Self {
        CommandError::new(text)
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_come_from_the_first_word() {
        assert_eq!(ErrorCode::of(b"-WRONGTYPE Operation against a key"), ErrorCode::WrongType);
        assert_eq!(ErrorCode::of(b"ERR syntax error"), ErrorCode::Err);
        assert_eq!(ErrorCode::of(b"-MOVED 12 127.0.0.1:7000\r\n"), ErrorCode::Moved);
        assert_eq!(ErrorCode::of(b"BUSYGROUP Consumer Group name already exists"), ErrorCode::Other);
        assert_eq!(ErrorCode::of(b"ASKING"), ErrorCode::Other, "a whole word, not a prefix");
        for (code, word) in ErrorCode::WORDS {
            assert_eq!(ErrorCode::of(word.as_bytes()), *code);
            assert_eq!(code.word(), *word);
        }
        let e = CommandError::from(format!("CROSSSLOT Keys in request don't hash to the same slot"));
        assert_eq!((e.code(), e.text().len()), (ErrorCode::CrossSlot, 53));
        let mut out = ReplyBuf::default();
        e.write(&mut out);
        assert_eq!(out.buf, b"-CROSSSLOT Keys in request don't hash to the same slot\r\n");
        assert_eq!(out.errors, 1);
    }
}
