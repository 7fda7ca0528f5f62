//! Fuzzes the cannelloni datagram decoder with what anyone on the network can send to a tunnel's
//! UDP port. It must never panic; whatever it takes must encode back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vxbus_tunnel::wire::{decode_datagram, DatagramBuilder};

fuzz_target!(|data: &[u8]| {
    let Ok(datagram) = decode_datagram(data) else { return };
    let mut builder = DatagramBuilder::new(1 << 17);
    for frame in &datagram.frames {
        assert!(builder.push(frame), "a decoded frame fits a large datagram");
    }
    assert_eq!(&builder.finish(datagram.seq)[..], data);
});
