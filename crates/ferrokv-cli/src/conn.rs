//! One blocking connection to a server: send a command as a RESP array, read one reply.
//!
//! Errors are worded as redis-cli (hiredis) words them, because users and scripts read
//! them: "Could not connect to Redis at 127.0.0.1:6379: Connection refused",
//! "Server closed the connection".

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use ferrokv_resp::{encode_value, Value, ValueReader};

/// Where a server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Endpoint { host: host.into(), port }
    }

    /// Parses `HOST:PORT` (the port after the last colon; `[v6]:port` loses its brackets).
    pub fn parse(text: &str) -> Option<Endpoint> {
        let (host, port) = text.rsplit_once(':')?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let port: u16 = port.parse().ok()?;
        if host.is_empty() || port == 0 {
            return None;
        }
        Some(Endpoint::new(host, port))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Credentials and protocol to set up on every new connection.
#[derive(Clone, Debug, Default)]
pub struct Handshake {
    pub user: Option<String>,
    pub password: Option<String>,
    pub resp3: bool,
}

/// Limits on how long a connection waits; `None` waits for ever (redis-cli's default,
/// so that `BLPOP k 0` works).
#[derive(Clone, Copy, Debug, Default)]
pub struct Timeouts {
    pub connect: Option<Duration>,
    pub io: Option<Duration>,
}

pub struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet consumed by a reply.
    buf: Vec<u8>,
    reader: ValueReader,
}

/// `io::Error`'s text without Rust's " (os error N)" suffix, i.e. C's `strerror`.
pub fn describe(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

impl Conn {
    /// Connects without a handshake. The error is redis-cli's message.
    pub fn connect(endpoint: &Endpoint, timeouts: Timeouts) -> Result<Conn, String> {
        let fail = |why: String| format!("Could not connect to Redis at {endpoint}: {why}");
        let addrs = (endpoint.host.as_str(), endpoint.port).to_socket_addrs().map_err(|e| fail(describe(&e)))?;
        let mut last = None;
        for addr in addrs {
            let attempt = match timeouts.connect {
                Some(t) => TcpStream::connect_timeout(&addr, t),
                None => TcpStream::connect(addr),
            };
            match attempt {
                Ok(stream) => {
                    // Latency matters more than packet count for an interactive client.
                    let _ = stream.set_nodelay(true);
                    stream.set_read_timeout(timeouts.io).map_err(|e| fail(describe(&e)))?;
                    stream.set_write_timeout(timeouts.io).map_err(|e| fail(describe(&e)))?;
                    return Ok(Conn { stream, buf: Vec::new(), reader: ValueReader::new() });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(fail(last.map(|e| describe(&e)).unwrap_or_else(|| "Name or service not known".into())))
    }

    /// Connects and runs the handshake: AUTH when a password is set, HELLO 3 for RESP3.
    /// A refused handshake does not close the connection (redis-cli goes on and sends
    /// the command, which the server then refuses): it comes back as a complaint worded
    /// as redis-cli words it ("AUTH failed: WRONGPASS ...") for the caller to judge.
    pub fn open(
        endpoint: &Endpoint,
        handshake: &Handshake,
        timeouts: Timeouts,
    ) -> Result<(Conn, Option<String>), String> {
        let mut conn = Conn::connect(endpoint, timeouts)?;
        if let Some(password) = &handshake.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &handshake.user {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            match conn.call(&args) {
                Ok(Value::Error(e)) => return Ok((conn, Some(format!("AUTH failed: {e}")))),
                Ok(_) => {}
                Err(e) => return Err(format!("Error: {}", describe(&e))),
            }
        }
        if handshake.resp3 {
            match conn.call(&["HELLO", "3"]) {
                Ok(Value::Error(e)) => return Ok((conn, Some(format!("HELLO 3 failed: {e}")))),
                Ok(_) => {}
                Err(e) => return Err(format!("Error: {}", describe(&e))),
            }
        }
        Ok((conn, None))
    }

    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<()> {
        let command = Value::Array(args.iter().map(|a| Value::Bulk(a.as_ref().to_vec())).collect());
        let mut out = Vec::new();
        encode_value(&command, &mut out);
        self.stream.write_all(&out)
    }

    /// Reads one reply. RESP3 push messages (pub/sub, invalidations) that arrive
    /// before it are returned like any reply; the caller decides.
    pub fn read(&mut self) -> io::Result<Value> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.reader.parse(&self.buf) {
                Ok(Some((value, used))) => {
                    self.buf.drain(..used);
                    return Ok(value);
                }
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.0)),
            }
            let n = match self.stream.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "Server closed the connection"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Value> {
        self.send(args)?;
        self.read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn endpoints_parse_like_redis_cli_addresses() {
        assert_eq!(Endpoint::parse("127.0.0.1:7000"), Some(Endpoint::new("127.0.0.1", 7000)));
        assert_eq!(Endpoint::parse("[::1]:7000"), Some(Endpoint::new("::1", 7000)));
        assert_eq!(Endpoint::parse("::1:7000"), Some(Endpoint::new("::1", 7000)));
        assert_eq!(Endpoint::parse("host"), None);
        assert_eq!(Endpoint::parse("host:"), None);
        assert_eq!(Endpoint::parse(":7000"), None);
        assert_eq!(Endpoint::parse("host:70000"), None);
        assert_eq!(Endpoint::parse("host:0"), None);
    }

    #[test]
    fn strerror_text_drops_the_os_error_number() {
        let e = io::Error::from_raw_os_error(111);
        assert_eq!(describe(&e), "Connection refused");
    }

    #[test]
    fn refused_connection_is_worded_as_redis_cli_words_it() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let err = Conn::connect(&Endpoint::new("127.0.0.1", port), Timeouts::default()).err();
        assert_eq!(err, Some(format!("Could not connect to Redis at 127.0.0.1:{port}: Connection refused")));
    }

    #[test]
    fn replies_split_across_reads_and_pipelined_replies_are_read_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut got = [0u8; 64];
            let n = s.read(&mut got).expect("read");
            assert_eq!(&got[..n], b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
            s.write_all(b"$5\r\nhel").expect("write");
            s.flush().expect("flush");
            std::thread::sleep(Duration::from_millis(20));
            s.write_all(b"lo\r\n:7\r\n").expect("write");
        });
        let mut conn = Conn::connect(&Endpoint::new("127.0.0.1", port), Timeouts::default()).expect("connect");
        assert_eq!(conn.call(&["GET", "k"]).expect("reply"), Value::Bulk(b"hello".to_vec()));
        assert_eq!(conn.read().expect("second reply"), Value::Int(7));
        let closed = conn.read().expect_err("closed");
        assert_eq!(closed.to_string(), "Server closed the connection");
        server.join().expect("server thread");
    }
}
