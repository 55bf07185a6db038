//! RFC 6455 client frames: `parse_frame` over a buffer the way the connection reads it
//! (frame after frame until incomplete or an error), with the payload limit taken from the
//! input so both the refusal and the acceptance paths of every length form are reached.
#![no_main]

use aoba::net::websocket::{parse_frame, unmask};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    // 0..=255 → limits from 0 to 64 KiB + 255, so 16-bit lengths hit both sides.
    let max = (usize::from(sel) << 8) | usize::from(sel);
    let original = rest.to_vec();
    let mut buf = rest.to_vec();
    let mut off = 0;
    while off < buf.len() {
        match parse_frame(&mut buf[off..], max) {
            Ok(Some(f)) => {
                assert!(f.payload_start <= f.frame_end);
                assert!(off + f.frame_end <= buf.len());
                assert!(f.frame_end - f.payload_start <= max);
                assert!(f.opcode < 0x8 || f.fin, "fragmented control frame accepted");
                assert!(f.opcode < 0x8 || f.frame_end - f.payload_start <= 125);
                // Unmasking is its own inverse: masking again gives the wire bytes back.
                let mask: [u8; 4] = buf[off + f.payload_start - 4..off + f.payload_start]
                    .try_into()
                    .unwrap();
                let mut again = buf[off + f.payload_start..off + f.frame_end].to_vec();
                unmask(&mut again, mask);
                assert_eq!(
                    again,
                    original[off + f.payload_start..off + f.frame_end],
                    "unmask is not an involution"
                );
                // Header bytes are left as they were.
                assert_eq!(
                    buf[off..off + f.payload_start],
                    original[off..off + f.payload_start]
                );
                if f.frame_end == 0 {
                    break;
                }
                off += f.frame_end;
            }
            Ok(None) => break,
            Err(e) => {
                assert!(e.code == 1002 || e.code == 1009, "close code {}", e.code);
                break;
            }
        }
    }
});
