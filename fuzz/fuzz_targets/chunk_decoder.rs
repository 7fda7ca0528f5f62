//! Fuzzes the chunk decoder with what a plugin could write on its pipe: any bytes, cut into reads
//! at places the input chooses. It must never panic, and whatever it decodes must encode to bytes
//! that decode to the same chunk.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};
use vxbus_sdk::ChunkCodec;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the read size, so splits inside headers and buffers are explored.
    let Some((&step, input)) = data.split_first() else { return };
    let step = usize::from(step).max(1);
    let mut codec = ChunkCodec::with_max_buffer(1 << 12);
    let mut src = BytesMut::new();
    for piece in input.chunks(step) {
        src.extend_from_slice(piece);
        loop {
            match codec.decode(&mut src) {
                Ok(Some(chunk)) => {
                    let mut again = BytesMut::new();
                    codec.encode(chunk.clone(), &mut again).expect("a decoded chunk re-encodes");
                    let back = codec.decode(&mut again).expect("re-encoded bytes decode");
                    assert_eq!(back.as_ref(), Some(&chunk));
                    assert!(again.is_empty());
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
