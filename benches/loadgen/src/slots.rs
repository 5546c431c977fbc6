//! Where a key goes in a Redis Cluster: its hash slot (CRC16/XMODEM of the key or of its
//! `{hash tag}`, modulo 16384), the slot map a cluster client keeps (slot → endpoint,
//! built from CLUSTER SLOTS, corrected slot by slot by MOVED), and the redirect errors
//! that correct it.

use ferrokv_resp::Value;

/// Hash slots in a Redis Cluster.
pub const SLOTS: usize = 16384;

const fn crc16_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static CRC16: [u16; 256] = crc16_table();

fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| (crc << 8) ^ CRC16[usize::from((crc >> 8) as u8 ^ b)])
}

/// The hash slot of `key`: the CRC16 of the first non-empty `{...}` section when there
/// is one, else of the whole key.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) & (SLOTS as u16 - 1)
}

/// A redirect error of a cluster node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redirect {
    /// `MOVED <slot> <host>:<port>`: the slot lives there now; update the map.
    Moved { slot: u16, addr: String },
    /// `ASK <slot> <host>:<port>`: this one command goes there, preceded by ASKING.
    Ask { slot: u16, addr: String },
}

/// Parses the text of an error reply (without the leading `-`) as MOVED or ASK.
/// `default_host` replaces an empty host (`MOVED 12 :7001`, sent by nodes that do not
/// know their own address).
pub fn parse_redirect(error: &[u8], default_host: &str) -> Option<Redirect> {
    let text = std::str::from_utf8(error).ok()?;
    let mut words = text.split(' ');
    let kind = words.next()?;
    let slot: u16 = words.next()?.parse().ok().filter(|&s: &u16| usize::from(s) < SLOTS)?;
    let endpoint = words.next()?;
    if words.next().is_some() {
        return None;
    }
    let (host, port) = endpoint.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let addr = endpoint_addr(host, port, default_host);
    match kind {
        "MOVED" => Some(Redirect::Moved { slot, addr }),
        "ASK" => Some(Redirect::Ask { slot, addr }),
        _ => None,
    }
}

fn endpoint_addr(host: &str, port: u16, default_host: &str) -> String {
    let host = if host.is_empty() || host == "?" { default_host } else { host };
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Slot → endpoint, as a cluster client keeps it. Endpoints are `host:port` strings
/// numbered in the order they were first seen; a number never changes meaning, so
/// connections can be indexed by it.
#[derive(Clone, Debug)]
pub struct SlotMap {
    owner: Vec<u16>,
    endpoints: Vec<String>,
}

impl SlotMap {
    /// Every slot on `addr`: what a client knows before it asked (or when it learns the
    /// map from MOVED replies only).
    pub fn single(addr: &str) -> SlotMap {
        SlotMap { owner: vec![0; SLOTS], endpoints: vec![addr.to_string()] }
    }

    /// The map from a CLUSTER SLOTS reply: each range's master (first endpoint).
    /// Slots no range covers stay on the first endpoint (they will answer MOVED or
    /// CLUSTERDOWN). `default_host` stands in for an empty or unknown (`?`) host.
    pub fn from_cluster_slots(reply: &Value, default_host: &str) -> Result<SlotMap, String> {
        let Value::Array(ranges) = reply else {
            return Err(format!("CLUSTER SLOTS: unexpected reply {reply:?}"));
        };
        let mut map = SlotMap { owner: vec![0; SLOTS], endpoints: Vec::new() };
        for range in ranges {
            let bad = || format!("CLUSTER SLOTS: unexpected range {range:?}");
            let Value::Array(fields) = range else { return Err(bad()) };
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return Err(bad());
            };
            let host = match master.first() {
                Some(Value::Bulk(h)) => String::from_utf8_lossy(h).into_owned(),
                _ => return Err(bad()),
            };
            let Some(&Value::Int(port)) = master.get(1) else { return Err(bad()) };
            let port = u16::try_from(port).map_err(|_| bad())?;
            if *start < 0 || *end < *start || *end >= SLOTS as i64 {
                return Err(bad());
            }
            let endpoint = map.endpoint(&endpoint_addr(&host, port, default_host));
            for slot in *start..=*end {
                map.owner[slot as usize] = endpoint;
            }
        }
        if map.endpoints.is_empty() {
            return Err("CLUSTER SLOTS: no slot is assigned".into());
        }
        Ok(map)
    }

    /// The number of `addr`, added when new.
    pub fn endpoint(&mut self, addr: &str) -> u16 {
        match self.endpoints.iter().position(|e| e == addr) {
            Some(i) => i as u16,
            None => {
                self.endpoints.push(addr.to_string());
                (self.endpoints.len() - 1) as u16
            }
        }
    }

    /// The endpoint number serving `slot`.
    pub fn owner(&self, slot: u16) -> u16 {
        self.owner[usize::from(slot)]
    }

    /// Applies `MOVED slot addr`: the slot is served by `addr` from now on. Returns the
    /// endpoint's number.
    pub fn moved(&mut self, slot: u16, addr: &str) -> u16 {
        let endpoint = self.endpoint(addr);
        self.owner[usize::from(slot)] = endpoint;
        endpoint
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Slots per endpoint, in endpoint order.
    pub fn slot_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.endpoints.len()];
        for &o in &self.owner {
            counts[usize::from(o)] += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_the_cluster_spec() {
        // The spec's check value: CRC16/XMODEM("123456789") = 0x31C3.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"123456789"), 0x31c3 & 0x3fff);
        // Slots redis-server 7.0.15 gives (CLUSTER KEYSLOT).
        for (key, slot) in [
            (&b"foo"[..], 12182),
            (b"key:000000000001", 8924),
            (b"{user1000}.following", 3443),
            (b"foo{}{bar}", 8363),
            (b"foo{{bar}}zap", 4015),
            (b"foo{bar}{zap}", 5061),
        ] {
            assert_eq!(key_slot(key), slot, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn redirects_parse() {
        assert_eq!(
            parse_redirect(b"MOVED 3999 127.0.0.1:6381", "h"),
            Some(Redirect::Moved { slot: 3999, addr: "127.0.0.1:6381".into() })
        );
        assert_eq!(
            parse_redirect(b"ASK 1 :7000", "10.0.0.1"),
            Some(Redirect::Ask { slot: 1, addr: "10.0.0.1:7000".into() })
        );
        assert_eq!(
            parse_redirect(b"MOVED 5 ::1:7000", "h"),
            Some(Redirect::Moved { slot: 5, addr: "[::1]:7000".into() })
        );
        assert_eq!(parse_redirect(b"MOVED 16384 127.0.0.1:1", "h"), None);
        assert_eq!(parse_redirect(b"ERR unknown command", "h"), None);
        assert_eq!(parse_redirect(b"MOVED 1 127.0.0.1:x", "h"), None);
        assert_eq!(parse_redirect(b"TRYAGAIN Multiple keys request during rehashing of slot", "h"), None);
    }

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![Value::Bulk(host.into()), Value::Int(port), Value::Bulk(b"id".to_vec())])
    }

    fn range(start: i64, end: i64, master: Value) -> Value {
        Value::Array(vec![Value::Int(start), Value::Int(end), master])
    }

    #[test]
    fn map_from_cluster_slots_and_moved() {
        let reply = Value::Array(vec![
            range(0, 5460, node("127.0.0.1", 7000)),
            range(5461, 10922, node("", 7001)),
            range(10923, 16383, node("127.0.0.1", 7002)),
            range(100, 100, node("127.0.0.1", 7002)),
        ]);
        let mut map = SlotMap::from_cluster_slots(&reply, "127.0.0.1").unwrap();
        assert_eq!(map.endpoints(), ["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"]);
        assert_eq!(map.owner(0), 0);
        assert_eq!(map.owner(5461), 1);
        assert_eq!(map.owner(16383), 2);
        assert_eq!(map.owner(100), 2);
        assert_eq!(map.slot_counts(), [5460, 5462, 5462]);

        // MOVED to a known endpoint changes that slot only.
        let Some(Redirect::Moved { slot, addr }) = parse_redirect(b"MOVED 5461 127.0.0.1:7000", "127.0.0.1") else {
            panic!()
        };
        assert_eq!(map.moved(slot, &addr), 0);
        assert_eq!(map.owner(5461), 0);
        assert_eq!(map.owner(5462), 1);
        // MOVED to a new endpoint adds it; the others keep their numbers.
        assert_eq!(map.moved(7, "127.0.0.1:7003"), 3);
        assert_eq!(map.owner(7), 3);
        assert_eq!(map.endpoints()[3], "127.0.0.1:7003");
        assert_eq!(map.slot_counts(), [5460, 5461, 5462, 1]);

        // A client that starts from the seed alone learns from MOVED.
        let mut lazy = SlotMap::single("127.0.0.1:7000");
        assert_eq!(lazy.owner(16000), 0);
        lazy.moved(16000, "127.0.0.1:7002");
        assert_eq!(lazy.owner(16000), 1);
        assert_eq!(lazy.owner(15999), 0);
    }

    #[test]
    fn bad_cluster_slots_replies_are_errors() {
        assert!(SlotMap::from_cluster_slots(&Value::Array(vec![]), "h").is_err());
        assert!(SlotMap::from_cluster_slots(
            &Value::Error("ERR This instance has cluster support disabled".into()),
            "h"
        )
        .is_err());
        let out_of_range = Value::Array(vec![range(0, 16384, node("h", 1))]);
        assert!(SlotMap::from_cluster_slots(&out_of_range, "h").is_err());
        let bad_port = Value::Array(vec![range(0, 1, node("h", 70000))]);
        assert!(SlotMap::from_cluster_slots(&bad_port, "h").is_err());
    }
}
