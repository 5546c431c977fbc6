//! The client: one command from the command line, or a read-eval-print loop.
//!
//! With `-c` the client follows cluster redirections as redis-cli does: on
//! `-MOVED <slot> <host>:<port>` it connects to that node and sends the command again;
//! on `-ASK <slot> <host>:<port>` it connects there and sends `ASKING` before the
//! command, once. At most [`MAX_REDIRECTS`] redirections are followed for one command;
//! past that the last redirection error is printed as the reply.

use std::io::{self, BufRead, IsTerminal, Write};
use std::time::Instant;

use ferrokv_resp::inline::split_args;
use ferrokv_resp::Value;

use crate::conn::{describe, Conn, Endpoint, Handshake, Timeouts};
use crate::output::{render, Mode};

pub const MAX_REDIRECTS: usize = 16;

#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub endpoint: Endpoint,
    pub handshake: Handshake,
    /// `-c`: follow MOVED and ASK.
    pub cluster: bool,
    pub mode: Mode,
    /// `-e`: in one-shot mode an error reply goes to stderr and the exit code is 1.
    pub exit_on_error: bool,
}

/// A parsed `-MOVED` / `-ASK` error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirection {
    pub ask: bool,
    pub slot: u16,
    pub to: Endpoint,
}

/// Reads `MOVED 3999 127.0.0.1:6381` or `ASK 3999 127.0.0.1:6381`. A node that does not
/// know its own address sends `:6381`: the host is then the one we are talking to.
pub fn parse_redirect(error: &str, current: &Endpoint) -> Option<Redirection> {
    let mut words = error.split(' ');
    let ask = match words.next()? {
        "MOVED" => false,
        "ASK" => true,
        _ => return None,
    };
    let slot: u16 = words.next()?.parse().ok()?;
    let (host, port) = words.next()?.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = if host.is_empty() { current.host.as_str() } else { host };
    Some(Redirection { ask, slot, to: Endpoint::new(host, port) })
}

/// Commands after which the server keeps sending messages until the connection closes.
fn is_streaming(command: &[Vec<u8>]) -> bool {
    let first = command.first().map(|c| c.to_ascii_lowercase()).unwrap_or_default();
    matches!(first.as_slice(), b"subscribe" | b"psubscribe" | b"ssubscribe" | b"monitor")
}

pub struct Client {
    config: ClientConfig,
    /// The node commands go to; changes when a redirection is followed.
    target: Endpoint,
    conn: Option<Conn>,
    interactive: bool,
}

impl Client {
    pub fn new(config: ClientConfig, interactive: bool) -> Client {
        let target = config.endpoint.clone();
        Client { config, target, conn: None, interactive }
    }

    fn connect(&mut self) -> Result<&mut Conn, String> {
        if self.conn.is_none() {
            let (conn, complaint) = Conn::open(&self.target, &self.config.handshake, Timeouts::default())?;
            if let Some(complaint) = complaint {
                eprintln!("{complaint}");
            }
            self.conn = Some(conn);
        }
        self.conn.as_mut().ok_or_else(|| "not connected".to_string())
    }

    fn prompt(&self) -> String {
        match &self.conn {
            None => "not connected> ".to_string(),
            Some(_) if self.target.host.contains(':') => format!("[{}]:{}> ", self.target.host, self.target.port),
            Some(_) => format!("{}> ", self.target),
        }
    }

    /// Sends `command` and returns its reply, following redirections with `-c`. The
    /// error is a connection failure, worded for stderr.
    pub fn execute(&mut self, command: &[Vec<u8>]) -> Result<Value, String> {
        let mut redirects = 0;
        let mut asking = false;
        loop {
            let conn = self.connect()?;
            if asking {
                match conn.call(&["ASKING"]) {
                    Ok(Value::Error(e)) => return Err(format!("ASKING failed: {e}")),
                    Ok(_) => {}
                    Err(e) => {
                        self.conn = None;
                        return Err(format!("Error: {}", describe(&e)));
                    }
                }
            }
            let reply = match conn.call(command) {
                Ok(reply) => reply,
                Err(e) => {
                    self.conn = None;
                    return Err(format!("Error: {}", describe(&e)));
                }
            };
            let redirect = match &reply {
                Value::Error(e) if self.config.cluster => parse_redirect(e, &self.target),
                _ => None,
            };
            match redirect {
                Some(r) if redirects < MAX_REDIRECTS => {
                    redirects += 1;
                    if self.interactive {
                        println!("-> Redirected to slot [{}] located at {}", r.slot, r.to);
                    }
                    self.target = r.to;
                    self.conn = None;
                    asking = r.ask;
                }
                _ => return Ok(reply),
            }
        }
    }

    /// Prints what the server sends after SUBSCRIBE or MONITOR until it closes.
    fn stream(&mut self, command: &[Vec<u8>], out: &mut impl Write) -> Result<(), String> {
        if self.config.mode == Mode::Human && !command[0].eq_ignore_ascii_case(b"monitor") {
            let _ = writeln!(out, "Reading messages... (press Ctrl-C to quit)");
        }
        loop {
            let conn = self.connect()?;
            match conn.read() {
                Ok(message) => {
                    let _ = out.write_all(&render(&message, command, self.config.mode));
                    let _ = out.flush();
                }
                Err(e) => {
                    self.conn = None;
                    return Err(format!("Error: {}", describe(&e)));
                }
            }
        }
    }

    /// Runs one command and prints its reply. Returns false when the command could not
    /// be run (the reason is on stderr) or, with `-e`, when the reply was an error.
    fn run_and_print(&mut self, command: &[Vec<u8>], out: &mut impl Write) -> bool {
        let reply = match self.execute(command) {
            Ok(reply) => reply,
            Err(message) => {
                eprintln!("{message}");
                return false;
            }
        };
        if let (Value::Error(e), true, false) = (&reply, self.config.exit_on_error, self.interactive) {
            eprintln!("{e}");
            return false;
        }
        let _ = out.write_all(&render(&reply, command, self.config.mode));
        let _ = out.flush();
        if is_streaming(command) && !matches!(reply, Value::Error(_)) {
            if let Err(message) = self.stream(command, out) {
                eprintln!("{message}");
                return false;
            }
        }
        true
    }
}

/// `ferrokv-cli [options] CMD ARG...`: the exit code.
pub fn one_shot(config: ClientConfig, command: &[Vec<u8>]) -> i32 {
    let mut client = Client::new(config, false);
    let stdout = io::stdout();
    let mut out = stdout.lock();
    if client.run_and_print(command, &mut out) {
        0
    } else {
        1
    }
}

/// What a REPL line asks for beyond sending a command.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Empty,
    Invalid,
    Quit,
    Connect(Endpoint),
    Clear,
    BadRepeat,
    Command { repeat: u64, args: Vec<Vec<u8>> },
}

/// Reads one line as redis-cli's REPL does: `quit`/`exit`, `connect HOST PORT`,
/// `clear`, and a leading count repeats the command (`3 INCR k`).
fn classify(line: &[u8]) -> Line {
    let Ok(mut args) = split_args(line) else {
        return Line::Invalid;
    };
    let Some(first) = args.first() else {
        return Line::Empty;
    };
    if first.eq_ignore_ascii_case(b"quit") || first.eq_ignore_ascii_case(b"exit") {
        return Line::Quit;
    }
    if first.eq_ignore_ascii_case(b"clear") && args.len() == 1 {
        return Line::Clear;
    }
    if first.eq_ignore_ascii_case(b"connect") && args.len() == 3 {
        let host = String::from_utf8_lossy(&args[1]).into_owned();
        // redis-cli's atoi: a bad port is 0, which then fails to connect.
        let port = std::str::from_utf8(&args[2]).ok().and_then(|p| p.parse().ok()).unwrap_or(0);
        return Line::Connect(Endpoint::new(host, port));
    }
    let count = std::str::from_utf8(first).ok().and_then(|s| s.parse::<i64>().ok());
    match count {
        Some(n) if args.len() > 1 => {
            if n <= 0 {
                return Line::BadRepeat;
            }
            args.remove(0);
            Line::Command { repeat: n as u64, args }
        }
        _ => Line::Command { repeat: 1, args },
    }
}

/// The interactive mode: prompts when stdin is a terminal, otherwise reads commands line
/// by line without a prompt (as redis-cli does when fed from a pipe). The exit code.
pub fn repl(config: ClientConfig) -> i32 {
    let tty = io::stdin().is_terminal();
    let human = config.mode == Mode::Human;
    let mut client = Client::new(config, true);
    if let Err(message) = client.connect() {
        eprintln!("{message}");
    }
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let stdout = io::stdout();
    let mut line = Vec::new();
    loop {
        if tty {
            let mut out = stdout.lock();
            let _ = out.write_all(client.prompt().as_bytes());
            let _ = out.flush();
        }
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => return 0,
            Ok(_) => {}
            Err(e) => {
                eprintln!("Error: {}", describe(&e));
                return 1;
            }
        }
        while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            line.pop();
        }
        let mut out = stdout.lock();
        match classify(&line) {
            Line::Empty => {}
            Line::Invalid => {
                let _ = writeln!(out, "Invalid argument(s)");
            }
            Line::Quit => return 0,
            Line::Clear => {
                let _ = out.write_all(b"\x1b[H\x1b[2J");
            }
            Line::BadRepeat => {
                let _ = writeln!(out, "Invalid redis-cli repeat command option value.");
            }
            Line::Connect(endpoint) => {
                client.target = endpoint;
                client.conn = None;
                if let Err(message) = client.connect() {
                    eprintln!("{message}");
                }
            }
            Line::Command { repeat, args } => {
                let started = Instant::now();
                for _ in 0..repeat {
                    if !client.run_and_print(&args, &mut out) {
                        break;
                    }
                }
                let elapsed = started.elapsed().as_secs_f64();
                if elapsed >= 0.5 && human {
                    let _ = writeln!(out, "({elapsed:.2}s)");
                }
            }
        }
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here() -> Endpoint {
        Endpoint::new("10.0.0.1", 7000)
    }

    #[test]
    fn moved_and_ask_errors_are_parsed() {
        assert_eq!(
            parse_redirect("MOVED 3999 127.0.0.1:6381", &here()),
            Some(Redirection { ask: false, slot: 3999, to: Endpoint::new("127.0.0.1", 6381) })
        );
        assert_eq!(
            parse_redirect("ASK 0 ::1:6381", &here()),
            Some(Redirection { ask: true, slot: 0, to: Endpoint::new("::1", 6381) })
        );
        assert_eq!(
            parse_redirect("MOVED 12 :7001", &here()),
            Some(Redirection { ask: false, slot: 12, to: Endpoint::new("10.0.0.1", 7001) })
        );
    }

    #[test]
    fn other_errors_are_not_redirections() {
        for e in ["ERR unknown command", "MOVED", "MOVED x 1.2.3.4:5", "MOVED 1 1.2.3.4", "ASK 1 h:port", "moved 1 h:1"]
        {
            assert_eq!(parse_redirect(e, &here()), None, "{e}");
        }
    }

    fn words(ws: &[&str]) -> Vec<Vec<u8>> {
        ws.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn repl_lines_are_classified_like_redis_cli() {
        assert_eq!(classify(b""), Line::Empty);
        assert_eq!(classify(b"   "), Line::Empty);
        assert_eq!(classify(b"get \"a"), Line::Invalid);
        assert_eq!(classify(b"QUIT"), Line::Quit);
        assert_eq!(classify(b"exit now"), Line::Quit);
        assert_eq!(classify(b"clear"), Line::Clear);
        assert_eq!(classify(b"connect h 7001"), Line::Connect(Endpoint::new("h", 7001)));
        assert_eq!(classify(b"set k \"a b\""), Line::Command { repeat: 1, args: words(&["set", "k", "a b"]) });
        assert_eq!(classify(b"3 incr k"), Line::Command { repeat: 3, args: words(&["incr", "k"]) });
        assert_eq!(classify(b"0 incr k"), Line::BadRepeat);
        assert_eq!(classify(b"-2 incr k"), Line::BadRepeat);
        // A lone number is a command (the server will answer it), not a repeat count.
        assert_eq!(classify(b"5"), Line::Command { repeat: 1, args: words(&["5"]) });
    }

    /// A node that answers each command with `reply(own port, command bytes)`, on any
    /// number of connections, and counts the commands it got.
    fn fake_node(
        reply: impl Fn(u16, &[u8]) -> Vec<u8> + Send + Sync + 'static,
    ) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::Read;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        let reply = Arc::new(reply);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let (seen, reply) = (seen.clone(), reply.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    // The client waits for each reply: one read is one command.
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 {
                            return;
                        }
                        seen.fetch_add(1, Ordering::SeqCst);
                        if stream.write_all(&reply(port, &buf[..n])).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (port, count)
    }

    fn client(port: u16, cluster: bool) -> Client {
        let config = ClientConfig {
            endpoint: Endpoint::new("127.0.0.1", port),
            handshake: Handshake::default(),
            cluster,
            mode: Mode::Raw,
            exit_on_error: false,
        };
        Client::new(config, false)
    }

    #[test]
    fn moved_is_followed_at_most_sixteen_times() {
        use std::sync::atomic::Ordering;
        let (port, count) = fake_node(|port, _| format!("-MOVED 7 127.0.0.1:{port}\r\n").into_bytes());
        let reply = client(port, true).execute(&words(&["GET", "k"])).expect("a reply");
        assert_eq!(reply, Value::Error(format!("MOVED 7 127.0.0.1:{port}")));
        assert_eq!(count.load(Ordering::SeqCst), 1 + MAX_REDIRECTS);

        // Without -c the redirection is the reply.
        let reply = client(port, false).execute(&words(&["GET", "k"])).expect("a reply");
        assert_eq!(reply, Value::Error(format!("MOVED 7 127.0.0.1:{port}")));
        assert_eq!(count.load(Ordering::SeqCst), 2 + MAX_REDIRECTS);
    }

    #[test]
    fn ask_sends_asking_first_and_moved_to_an_empty_host_keeps_the_host() {
        use std::sync::atomic::Ordering;
        let (target, target_count) = fake_node(|_, command| {
            let asking = command.windows(6).any(|w| w == b"ASKING");
            if asking {
                b"+OK\r\n".to_vec()
            } else {
                b"$6\r\nanswer\r\n".to_vec()
            }
        });
        let (entry, entry_count) = fake_node(move |_, command| {
            if command.windows(6).any(|w| w == b"ASKING") {
                b"+OK\r\n".to_vec()
            } else {
                format!("-MOVED 3 :{target}\r\n").into_bytes()
            }
        });
        // `entry` moves us to `target` by port only; this one asks us to go to `entry`.
        let (asker, asker_count) = fake_node(move |_, _| format!("-ASK 3 127.0.0.1:{entry}\r\n").into_bytes());
        let mut c = client(asker, true);
        // asker -ASK-> entry (ASKING, then the command) -MOVED-> target.
        let reply = c.execute(&words(&["GET", "k"])).expect("a reply");
        assert_eq!(reply, Value::Bulk(b"answer".to_vec()));
        assert_eq!(asker_count.load(Ordering::SeqCst), 1);
        assert_eq!(entry_count.load(Ordering::SeqCst), 2, "ASKING and the command");
        assert_eq!(target_count.load(Ordering::SeqCst), 1, "the command alone: ASKING is for one command");
        assert_eq!(c.target, Endpoint::new("127.0.0.1", target));
    }

    #[test]
    fn a_redirection_to_a_dead_node_is_a_connection_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let dead = listener.local_addr().expect("addr").port();
        drop(listener);
        let (port, _) = fake_node(move |_, _| format!("-MOVED 7 127.0.0.1:{dead}\r\n").into_bytes());
        let err = client(port, true).execute(&words(&["GET", "k"])).expect_err("refused");
        assert_eq!(err, format!("Could not connect to Redis at 127.0.0.1:{dead}: Connection refused"));
    }

    #[test]
    fn streaming_commands_are_recognised() {
        assert!(is_streaming(&words(&["SUBSCRIBE", "c"])));
        assert!(is_streaming(&words(&["monitor"])));
        assert!(!is_streaming(&words(&["PUBLISH", "c", "m"])));
    }
}
