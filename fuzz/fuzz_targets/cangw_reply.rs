//! Fuzzes the decoding of what the kernel answers a can-gw dump with: any datagram, decoded as
//! `CanGw::list` decodes it. Never a panic or a read beyond the datagram; a rule decoded from
//! a datagram has two interfaces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vxbus_dataplane::cangw::decode_dump_datagram;

fuzz_target!(|data: &[u8]| {
    if let Ok(rules) = decode_dump_datagram(data) {
        assert!(rules.len() <= data.len() / 16, "more rules than messages fit");
    }
});
