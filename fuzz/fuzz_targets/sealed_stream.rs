//! Fuzzes what a sealed TCP stream's reader takes from the network (`tunnel.key`): any bytes,
//! cut into reads where the input chooses, split into records and each record opened. It must
//! never panic, no record may be longer than the bound, and nothing forged may open.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use vxbus_tunnel::seal::{Key, OwnIds, RecordCodec, StreamHandshake, MAX_RECORD};

fuzz_target!(|data: &[u8]| {
    let Some((&step, input)) = data.split_first() else { return };
    let step = usize::from(step).max(1);
    let key = Key::from_hex(&"5a".repeat(32)).expect("a valid key");
    // Two hosts: each side's ids are its own tunnel's.
    let (mut ours, mut theirs) = (
        StreamHandshake::new(&key, &OwnIds::default()),
        StreamHandshake::new(&key, &OwnIds::default()),
    );
    let (our_hello, their_hello) = (ours.hello(), theirs.hello());
    let Ok((_, mut opener)) = ours.take_hello(&their_hello[2..]) else {
        panic!("a fresh hello opens")
    };
    let _ = theirs.take_hello(&our_hello[2..]);
    let mut src = BytesMut::new();
    for piece in input.chunks(step) {
        src.extend_from_slice(piece);
        loop {
            match RecordCodec.decode(&mut src) {
                Ok(Some(record)) => {
                    assert!(record.len() <= MAX_RECORD);
                    // Random bytes are never sealed with the key: nothing opens.
                    assert!(opener.open(&record).is_err());
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
