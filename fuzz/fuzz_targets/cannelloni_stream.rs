//! Fuzzes the cannelloni TCP stream decoder with what a peer could send after the hello: any
//! bytes, cut into reads at places the input chooses. It must never panic, and the frames it
//! takes must encode back to the bytes they came from.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use vxbus_tunnel::wire::StreamCodec;

fuzz_target!(|data: &[u8]| {
    let Some((&step, input)) = data.split_first() else { return };
    let step = usize::from(step).max(1);
    let mut src = BytesMut::new();
    let mut taken = BytesMut::new();
    let mut consumed = 0;
    for piece in input.chunks(step) {
        src.extend_from_slice(piece);
        loop {
            let before = src.len();
            match StreamCodec.decode(&mut src) {
                Ok(Some(frame)) => {
                    frame.encode(&mut taken);
                    consumed += before - src.len();
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    assert_eq!(&taken[..], &input[..consumed]);
});
