//! How replies are printed, as redis-cli 7.0 prints them.
//!
//! redis-cli has two modes: the human one (`(integer) 1`, `"bar"`, `1) ...`) when stdout
//! is a terminal or `--no-raw` is given, and the raw one (`1`, `bar`, one element per
//! line) when stdout is a pipe or `--raw` is given. A few commands whose replies are
//! text meant for people (INFO, CLUSTER NODES, CLIENT LIST, ...) are printed raw in
//! both modes and without the newline that ends other replies.

use ferrokv_resp::{format_double, format_for_humans, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Human,
    Raw,
}

/// The bytes to write for `reply` to `command`.
pub fn render(reply: &Value, command: &[Vec<u8>], mode: Mode) -> Vec<u8> {
    if is_verbatim_command(command) {
        return raw(reply);
    }
    match mode {
        Mode::Human => format_for_humans(reply).into_bytes(),
        Mode::Raw => {
            let mut out = raw(reply);
            out.push(b'\n');
            out
        }
    }
}

/// redis-cli's `cliFormatReplyRaw`: strings as they are, integers as digits, nothing for
/// nil, aggregates one element per line, map entries as `key value`, errors followed by
/// a newline of their own.
pub fn raw(reply: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    raw_into(reply, &mut out);
    out
}

fn raw_into(reply: &Value, out: &mut Vec<u8>) {
    match reply {
        Value::Nil | Value::NilArray | Value::Null => {}
        Value::Error(e) => {
            out.extend_from_slice(e.as_bytes());
            out.push(b'\n');
        }
        Value::Simple(s) => out.extend_from_slice(s.as_bytes()),
        Value::Bulk(b) => out.extend_from_slice(b),
        Value::Verbatim { text, .. } => out.extend_from_slice(text),
        Value::Bool(b) => out.extend_from_slice(if *b { b"(true)" } else { b"(false)" }),
        Value::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::Double(d) => out.extend_from_slice(format_double(*d).as_bytes()),
        Value::BigNumber(n) => out.extend_from_slice(n.as_bytes()),
        Value::Array(items) | Value::Set(items) | Value::Push(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b'\n');
                }
                raw_into(item, out);
            }
        }
        Value::Map(pairs) => {
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(b'\n');
                }
                raw_into(k, out);
                out.push(b' ');
                raw_into(v, out);
            }
        }
    }
}

/// The commands redis-cli always prints raw (its `cliSendCommand` list).
pub fn is_verbatim_command(command: &[Vec<u8>]) -> bool {
    let is = |i: usize, word: &str| command.get(i).is_some_and(|a| a.eq_ignore_ascii_case(word.as_bytes()));
    let argc = command.len();
    is(0, "info")
        || is(0, "lolwut")
        || (argc >= 2 && is(0, "debug") && (is(1, "htstats") || is(1, "htstats-key") || is(1, "client-eviction")))
        || (argc >= 2 && is(0, "memory") && (is(1, "malloc-stats") || is(1, "doctor")))
        || (argc == 2 && is(0, "cluster") && (is(1, "nodes") || is(1, "info")))
        || (argc >= 2 && is(0, "client") && (is(1, "list") || is(1, "info")))
        || (argc == 3 && is(0, "latency") && is(1, "graph"))
        || (argc == 2 && is(0, "latency") && is(1, "doctor"))
        || (argc >= 2 && is(0, "proxy") && is(1, "info"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn bulk(s: &str) -> Value {
        Value::Bulk(s.as_bytes().to_vec())
    }

    /// What `redis-cli CMD | od -c` showed against redis-server 7.0.15.
    #[test]
    fn raw_mode_matches_redis_cli_on_a_pipe() {
        let get = cmd(&["GET", "k"]);
        assert_eq!(render(&bulk("v"), &get, Mode::Raw), b"v\n");
        assert_eq!(render(&Value::Nil, &get, Mode::Raw), b"\n");
        assert_eq!(render(&Value::Simple("OK".into()), &get, Mode::Raw), b"OK\n");
        assert_eq!(render(&Value::Int(-3), &get, Mode::Raw), b"-3\n");
        assert_eq!(render(&Value::Array(vec![]), &get, Mode::Raw), b"\n");
        assert_eq!(render(&Value::Array(vec![bulk("a"), bulk("b")]), &get, Mode::Raw), b"a\nb\n");
        assert_eq!(
            render(&Value::Error("ERR value is not an integer or out of range".into()), &get, Mode::Raw),
            b"ERR value is not an integer or out of range\n\n"
        );
        assert_eq!(render(&Value::Map(vec![(bulk("f"), Value::Int(1))]), &get, Mode::Raw), b"f 1\n");
        assert_eq!(render(&Value::Bool(true), &get, Mode::Raw), b"(true)\n");
        assert_eq!(render(&Value::Double(1.5), &get, Mode::Raw), b"1.5\n");
    }

    #[test]
    fn human_mode_is_format_for_humans() {
        let get = cmd(&["GET", "k"]);
        assert_eq!(render(&bulk("v"), &get, Mode::Human), b"\"v\"\n");
        assert_eq!(render(&Value::Nil, &get, Mode::Human), b"(nil)\n");
        assert_eq!(render(&Value::Error("ERR x".into()), &get, Mode::Human), b"(error) ERR x\n");
    }

    #[test]
    fn text_commands_print_raw_without_a_trailing_newline_in_both_modes() {
        let text = bulk("cluster_state:ok\r\n");
        for mode in [Mode::Human, Mode::Raw] {
            assert_eq!(render(&text, &cmd(&["cluster", "INFO"]), mode), b"cluster_state:ok\r\n");
            assert_eq!(render(&text, &cmd(&["INFO", "server"]), mode), b"cluster_state:ok\r\n");
        }
        // CLUSTER INFO with an extra argument is not on redis-cli's list.
        assert_eq!(render(&text, &cmd(&["cluster", "info", "x"]), Mode::Human), b"\"cluster_state:ok\\r\\n\"\n");
        assert!(!is_verbatim_command(&cmd(&["CLUSTER", "SLOTS"])));
        assert!(is_verbatim_command(&cmd(&["client", "list", "type", "normal"])));
    }
}
