//! Small sets of strings in one buffer, like the listpack Redis 7.2 uses for them: each
//! member is a LEB128 length followed by its bytes, in insertion order. Lookups are a
//! linear walk, which for a few dozen short members beats hashing and costs no
//! per-member allocation or pointer.

#[derive(Clone, Debug, Default)]
pub(crate) struct PackedSet {
    len: u32,
    data: Box<[u8]>,
}

/// Reads a LEB128 length at `pos`; returns it and the position after it.
#[inline]
fn read_len(data: &[u8], mut pos: usize) -> (usize, usize) {
    let (mut n, mut shift) = (0usize, 0);
    loop {
        let b = data[pos];
        pos += 1;
        n |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            return (n, pos);
        }
        shift += 7;
    }
}

fn write_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn encoded_len(n: usize) -> usize {
    let mut bytes = 1;
    let mut n = n >> 7;
    while n != 0 {
        bytes += 1;
        n >>= 7;
    }
    bytes
}

impl PackedSet {
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    pub(crate) fn data_bytes(&self) -> usize {
        self.data.len()
    }

    /// Members in insertion order.
    pub(crate) fn iter(&self) -> Iter<'_> {
        Iter { data: &self.data, pos: 0 }
    }

    /// The byte range of the entry holding `m` (length prefix included).
    fn find(&self, m: &[u8]) -> Option<(usize, usize)> {
        let mut pos = 0;
        while pos < self.data.len() {
            let (n, start) = read_len(&self.data, pos);
            let end = start + n;
            if n == m.len() && &self.data[start..end] == m {
                return Some((pos, end));
            }
            pos = end;
        }
        None
    }

    pub(crate) fn contains(&self, m: &[u8]) -> bool {
        self.find(m).is_some()
    }

    /// Appends `m`, which the caller knows is not a member.
    pub(crate) fn push_new(&mut self, m: &[u8]) {
        let mut v = std::mem::take(&mut self.data).into_vec();
        v.reserve_exact(encoded_len(m.len()) + m.len());
        write_len(&mut v, m.len());
        v.extend_from_slice(m);
        self.data = v.into_boxed_slice();
        self.len += 1;
    }

    /// Removes `m`; false when it was not there.
    pub(crate) fn remove(&mut self, m: &[u8]) -> bool {
        let Some((start, end)) = self.find(m) else { return false };
        let mut v = std::mem::take(&mut self.data).into_vec();
        v.drain(start..end);
        self.data = v.into_boxed_slice();
        self.len -= 1;
        true
    }

    /// The `i`th member in insertion order (`i < len`).
    pub(crate) fn nth(&self, i: usize) -> &[u8] {
        self.iter().nth(i).unwrap_or_default()
    }
}

pub(crate) struct Iter<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.pos >= self.data.len() {
            return None;
        }
        let (n, start) = read_len(self.data, self.pos);
        self.pos = start + n;
        Some(&self.data[start..start + n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_find_remove() {
        let mut s = PackedSet::default();
        let long = vec![b'x'; 300];
        for m in [&b"a"[..], b"", b"bc", &long] {
            assert!(!s.contains(m));
            s.push_new(m);
        }
        assert_eq!(s.len(), 4);
        // 1 + 1 + 1 + 1 + 2 + 2 + 300 bytes: the 300-byte member has a 2-byte length.
        assert_eq!(s.data_bytes(), 2 + 1 + 3 + 302);
        assert!(s.contains(b"") && s.contains(&long) && !s.contains(b"b"));
        assert_eq!(s.iter().collect::<Vec<_>>(), [&b"a"[..], b"", b"bc", &long]);
        assert_eq!(s.nth(2), b"bc");
        assert!(s.remove(b""));
        assert!(!s.remove(b""));
        assert!(s.remove(&long));
        assert_eq!(s.iter().collect::<Vec<_>>(), [&b"a"[..], b"bc"]);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn lengths_round_trip() {
        for n in [0, 1, 127, 128, 16383, 16384, 1 << 30] {
            let mut v = Vec::new();
            write_len(&mut v, n);
            assert_eq!(v.len(), encoded_len(n));
            assert_eq!(read_len(&v, 0), (n, v.len()));
        }
    }
}
