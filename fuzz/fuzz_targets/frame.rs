//! Frames from the network: any bytes decode to a frame or a typed error without
//! panicking or allocating more than the announced (bounded) length, and what decodes
//! re-encodes to the bytes it came from.
#![no_main]

use leanspec_peer_core::net::frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, Vec<u8>)| {
    let (max, bytes) = input;
    // Small limits too, as the hello and join readers use.
    let max = usize::from(max).max(2);
    if let Ok(((kind, body), used)) = frame::decode(&bytes, max) {
        assert!(used <= bytes.len() && used <= max + 4);
        let again = frame::encode(kind, &body).expect("a decoded frame re-encodes");
        assert_eq!(again, bytes[..used], "decoding is canonical");
    }
});
