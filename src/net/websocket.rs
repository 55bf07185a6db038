//! RFC 6455 framing, by hand: the server's hot path. Client frames are parsed straight
//! from the connection's read buffer and unmasked in place, so a stanza is never copied
//! between the socket and the tokenizer. Server frames are a header in front of payload
//! parts that are written with one vectored write.

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Close codes (RFC 6455 §7.4.1).
pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_PROTOCOL: u16 = 1002;
pub const CLOSE_UNSUPPORTED: u16 = 1003;
pub const CLOSE_INVALID_DATA: u16 = 1007;
pub const CLOSE_POLICY: u16 = 1008;
pub const CLOSE_TOO_BIG: u16 = 1009;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsError {
    pub code: u16,
    pub reason: &'static str,
}

impl WsError {
    const fn protocol(reason: &'static str) -> WsError {
        WsError {
            code: CLOSE_PROTOCOL,
            reason,
        }
    }
}

/// A parsed client frame; its payload, already unmasked, is `buf[payload_start..frame_end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload_start: usize,
    pub frame_end: usize,
}

/// Parses one client frame at the start of `buf` and unmasks its payload in place.
/// `Ok(None)`: not complete yet (read more). A payload longer than `max_payload` is
/// refused as soon as its header is seen, before it is buffered.
pub fn parse_frame(buf: &mut [u8], max_payload: usize) -> Result<Option<Frame>, WsError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    let fin = b0 & 0x80 != 0;
    if b0 & 0x70 != 0 {
        return Err(WsError::protocol(
            "RSV bits set without a negotiated extension",
        ));
    }
    let opcode = b0 & 0x0F;
    match opcode {
        OP_CONT | OP_TEXT | OP_BINARY => {}
        OP_CLOSE | OP_PING | OP_PONG => {
            if !fin {
                return Err(WsError::protocol("fragmented control frame"));
            }
        }
        _ => return Err(WsError::protocol("unknown opcode")),
    }
    if b1 & 0x80 == 0 {
        return Err(WsError::protocol("client frame not masked"));
    }
    let (len, mut pos) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let l = u64::from_be_bytes(buf[2..10].try_into().unwrap());
            if l >> 63 != 0 {
                return Err(WsError::protocol("payload length with the top bit set"));
            }
            (l, 10)
        }
        n => (n as u64, 2),
    };
    if opcode >= OP_CLOSE && len > 125 {
        return Err(WsError::protocol("control frame payload over 125 bytes"));
    }
    if len > max_payload as u64 {
        return Err(WsError {
            code: CLOSE_TOO_BIG,
            reason: "message too big",
        });
    }
    let len = len as usize;
    if buf.len() < pos + 4 + len {
        return Ok(None);
    }
    let mask: [u8; 4] = buf[pos..pos + 4].try_into().unwrap();
    pos += 4;
    unmask(&mut buf[pos..pos + len], mask);
    Ok(Some(Frame {
        fin,
        opcode,
        payload_start: pos,
        frame_end: pos + len,
    }))
}

/// XORs the payload with the mask, eight bytes at a time.
pub fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let m8 = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes((&*c).try_into().unwrap()) ^ m8;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    let rem = chunks.into_remainder();
    for (i, b) in rem.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// A server frame header: FIN set, unmasked. Returns the bytes and their count.
#[inline]
pub fn header(opcode: u8, len: usize) -> ([u8; 10], u8) {
    let mut h = [0u8; 10];
    h[0] = 0x80 | opcode;
    if len < 126 {
        h[1] = len as u8;
        (h, 2)
    } else if len <= u16::MAX as usize {
        h[1] = 126;
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        (h, 4)
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        (h, 10)
    }
}

/// A whole server frame in one buffer (control frames and negotiation replies).
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let (h, n) = header(opcode, payload.len());
    let mut v = Vec::with_capacity(n as usize + payload.len());
    v.extend_from_slice(&h[..n as usize]);
    v.extend_from_slice(payload);
    v
}

pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(2 + reason.len());
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(&reason.as_bytes()[..reason.len().min(123)]);
    frame(OP_CLOSE, &p)
}

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    use base64::Engine;
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(opcode: u8, fin: bool, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut v = vec![(if fin { 0x80 } else { 0 }) | opcode];
        let n = payload.len();
        if n < 126 {
            v.push(0x80 | n as u8);
        } else if n <= 65535 {
            v.push(0x80 | 126);
            v.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            v.push(0x80 | 127);
            v.extend_from_slice(&(n as u64).to_be_bytes());
        }
        v.extend_from_slice(&mask);
        v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        v
    }

    #[test]
    fn rfc6455_accept_key_sample() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn rfc6455_masked_hello() {
        // RFC 6455 §5.7: a single-frame masked text message "Hello".
        let mut b = vec![
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let f = parse_frame(&mut b, 1024).unwrap().unwrap();
        assert!(f.fin);
        assert_eq!(f.opcode, OP_TEXT);
        assert_eq!(&b[f.payload_start..f.frame_end], b"Hello");
    }

    #[test]
    fn lengths_and_partial_input() {
        for n in [0usize, 1, 125, 126, 127, 65535, 65536, 70000] {
            let p: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            let full = masked(OP_TEXT, true, &p, [1, 2, 3, 4]);
            for cut in [0, 1, full.len() / 2, full.len() - 1] {
                if cut < full.len() {
                    let mut part = full[..cut].to_vec();
                    assert_eq!(
                        parse_frame(&mut part, 1 << 20).unwrap(),
                        None,
                        "n={n} cut={cut}"
                    );
                }
            }
            let mut b = full.clone();
            let f = parse_frame(&mut b, 1 << 20).unwrap().unwrap();
            assert_eq!(&b[f.payload_start..f.frame_end], &p[..]);
            assert_eq!(f.frame_end, full.len());
        }
    }

    #[test]
    fn rejects_bad_frames() {
        let mut unmasked = vec![0x81, 0x01, b'a'];
        assert_eq!(
            parse_frame(&mut unmasked, 10).unwrap_err().code,
            CLOSE_PROTOCOL
        );
        let mut rsv = masked(OP_TEXT, true, b"a", [0; 4]);
        rsv[0] |= 0x40;
        assert_eq!(parse_frame(&mut rsv, 10).unwrap_err().code, CLOSE_PROTOCOL);
        let mut op = masked(0x3, true, b"a", [0; 4]);
        assert_eq!(parse_frame(&mut op, 10).unwrap_err().code, CLOSE_PROTOCOL);
        let mut frag_ping = masked(OP_PING, false, b"a", [0; 4]);
        assert_eq!(
            parse_frame(&mut frag_ping, 10).unwrap_err().code,
            CLOSE_PROTOCOL
        );
        let mut big_ping = masked(OP_PING, true, &[0; 126], [0; 4]);
        assert_eq!(
            parse_frame(&mut big_ping, 1000).unwrap_err().code,
            CLOSE_PROTOCOL
        );
        // Too big is refused from the header alone.
        let mut big = masked(OP_TEXT, true, &[0; 2000], [0; 4]);
        big.truncate(8);
        assert_eq!(parse_frame(&mut big, 1000).unwrap_err().code, CLOSE_TOO_BIG);
    }

    #[test]
    fn server_header_sizes() {
        assert_eq!(header(OP_TEXT, 5), ([0x81, 5, 0, 0, 0, 0, 0, 0, 0, 0], 2));
        assert_eq!(header(OP_TEXT, 300).1, 4);
        assert_eq!(header(OP_TEXT, 70000).1, 10);
        assert_eq!(close_frame(1000, ""), vec![0x88, 2, 0x03, 0xe8]);
    }
}
