//! A raw RESP connection: sends commands (or any bytes) and returns each reply as the
//! exact bytes the server sent, so tests can compare servers byte for byte.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::resp::{self, encode_command, show, show_command, Reply};

/// How long a reply may take before a test gives up on it.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    timeout: Duration,
}

impl Conn {
    pub fn connect(port: u16) -> io::Result<Conn> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_nodelay(true)?;
        Ok(Conn { stream, buf: Vec::new(), timeout: REPLY_TIMEOUT })
    }

    /// Changes how long [`Conn::read_reply`] waits.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sends one command and returns its reply's bytes; panics (naming the command)
    /// when the connection fails or the reply is late or malformed.
    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Vec<u8> {
        self.try_send(args).unwrap_or_else(|e| panic!("{}: {e}", show_command(args)))
    }

    /// [`Conn::send`], returning the reply decoded.
    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        let bytes = self.send(args);
        resp::parse_one(&bytes).unwrap_or_else(|e| panic!("{}: {e}", show_command(args)))
    }

    /// Sends a command given as one string split on spaces (no quoting), e.g.
    /// `conn.cmd("SET k v")`.
    pub fn cmd(&mut self, line: &str) -> Vec<u8> {
        let args: Vec<&str> = line.split(' ').filter(|a| !a.is_empty()).collect();
        self.send(&args)
    }

    pub fn try_send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Vec<u8>> {
        self.write_raw(&encode_command(args))?;
        self.read_reply()
    }

    /// Writes all commands at once, then reads one reply per command.
    pub fn pipeline<A: AsRef<[u8]>>(&mut self, commands: &[Vec<A>]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for command in commands {
            out.extend_from_slice(&encode_command(command));
        }
        self.write_raw(&out).unwrap_or_else(|e| panic!("writing a pipeline of {}: {e}", commands.len()));
        (0..commands.len())
            .map(|i| {
                self.read_reply().unwrap_or_else(|e| {
                    panic!("pipeline reply {i} of {} ({}): {e}", commands.len(), show_command(&commands[i]))
                })
            })
            .collect()
    }

    /// Writes bytes as they are (inline commands, malformed requests, partial frames).
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one complete reply frame.
    pub fn read_reply(&mut self) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match resp::frame_len(&self.buf) {
                Ok(Some(len)) => return Ok(self.buf.drain(..len).collect()),
                Ok(None) => {}
                Err(e) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{e} in {}", show(&self.buf))))
                }
            }
            if self.fill(deadline)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed by the server; partial reply {}", show(&self.buf)),
                ));
            }
        }
    }

    /// Reads until the server closes the connection or `timeout` passes. Returns the
    /// bytes received (including any unread reply bytes) and whether it was closed.
    pub fn read_until_closed(&mut self, timeout: Duration) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + timeout;
        let closed = loop {
            match self.fill(deadline) {
                Ok(0) => break true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        (std::mem::take(&mut self.buf), closed)
    }

    /// True when the server has closed the connection (reads EOF within `timeout`
    /// with no further data).
    pub fn is_closed(&mut self, timeout: Duration) -> bool {
        let (rest, closed) = self.read_until_closed(timeout);
        self.buf = rest;
        closed && self.buf.is_empty()
    }

    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Reads frames up to PING's reply (`+PONG`, or `pong` in RESP2's subscribed state)
    /// and returns the frames before it: what the server pushed before answering a PING
    /// sent after them.
    pub fn until_pong(&mut self) -> Vec<Vec<u8>> {
        const PONG2: &[u8] = b"*2\r\n$4\r\npong\r\n$0\r\n\r\n";
        let mut got = Vec::new();
        loop {
            let f = self.read_reply().unwrap_or_else(|e| panic!("reading up to PONG: {e}; so far {got:?}"));
            if f == PONG2 || f == b"+PONG\r\n" {
                return got;
            }
            got.push(f);
        }
    }

    fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        let now = Instant::now();
        if now >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no complete reply within {:?}; have {}", self.timeout, show(&self.buf)),
            ));
        }
        self.stream.set_read_timeout(Some(deadline - now))?;
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no complete reply within {:?}; have {}", self.timeout, show(&self.buf)),
            )),
            Err(e) => Err(e),
        }
    }
}

/// What one step of a multi-connection session wrote (see [`Conn::send_step`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The command and a PING: the command's frames end at the PING's reply.
    Pinged,
    /// Queued inside MULTI (a PING would be queued too): one reply to read.
    Queued,
    /// QUIT: its reply, then the connection closes.
    Quit,
}

impl Conn {
    /// Writes one step of a session where several connections subscribe, track or
    /// publish: `args`, followed by a PING whose reply marks the end of the frames the
    /// command caused on this connection, except inside MULTI (tracked in `in_multi`)
    /// and for QUIT.
    pub fn send_step(&mut self, args: &[&str], in_multi: &mut bool) -> Step {
        let first = args[0].to_ascii_lowercase();
        if first == "multi" {
            *in_multi = true;
        }
        let step = if first == "quit" {
            Step::Quit
        } else if *in_multi {
            Step::Queued
        } else {
            Step::Pinged
        };
        if first == "exec" {
            *in_multi = false;
        }
        let mut bytes = crate::resp::encode_command(args);
        if step == Step::Pinged {
            bytes.extend_from_slice(&crate::resp::encode_command(&["PING"]));
        }
        self.write_raw(&bytes).expect("write");
        step
    }
}
