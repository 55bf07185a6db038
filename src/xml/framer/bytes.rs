//! Byte-level helpers of the framer's scan: the byte classes of its loops over names and
//! start tags, and the eight-bytes-at-a-time search of text and attribute values.

/// Byte classes for the loops over names and start tags: a bit per loop, set on the bytes
/// that stop it (a lookup per byte instead of a jump table).
pub(super) const STOP_START_NAME: u8 = 1;
pub(super) const STOP_IN_TAG: u8 = 2;
pub(super) const STOP_CLOSE_NAME: u8 = 4;
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let ws = [b' ', b'\t', b'\n', b'\r'];
    let mut i = 0;
    while i < ws.len() {
        t[ws[i] as usize] |= STOP_START_NAME | STOP_CLOSE_NAME;
        i += 1;
    }
    let bad = [b'<', b'\'', b'"', b'='];
    let mut i = 0;
    while i < bad.len() {
        t[bad[i] as usize] |= STOP_START_NAME | STOP_CLOSE_NAME;
        i += 1;
    }
    t[b'/' as usize] |= STOP_START_NAME | STOP_IN_TAG | STOP_CLOSE_NAME;
    t[b'>' as usize] |= STOP_START_NAME | STOP_IN_TAG | STOP_CLOSE_NAME;
    t[b'<' as usize] |= STOP_IN_TAG;
    t[b'\'' as usize] |= STOP_IN_TAG;
    t[b'"' as usize] |= STOP_IN_TAG;
    t
};

/// The first byte at or after `p` (before `end`) whose class has a bit of `stop`.
#[inline(always)]
pub(super) fn skip_until(buf: &[u8], mut p: usize, end: usize, stop: u8) -> usize {
    while p < end && CLASS[usize::from(buf[p])] & stop == 0 {
        p += 1;
    }
    p
}

#[inline(always)]
pub(super) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The first `x` or `y` in `s`, eight bytes at a time (SWAR): text and attribute values
/// are most of a stanza.
#[inline]
pub(super) fn find2(s: &[u8], x: u8, y: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // A zero byte of `v` sets its high bit here (exact for the lowest one).
    let zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
    let (xs, ys) = (LO * u64::from(x), LO * u64::from(y));
    let mut i = 0;
    while i + 8 <= s.len() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[i..i + 8]);
        let w = u64::from_le_bytes(w);
        let z = zero(w ^ xs) | zero(w ^ ys);
        if z != 0 {
            return Some(i + (z.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    s[i..].iter().position(|&b| b == x || b == y).map(|j| i + j)
}
