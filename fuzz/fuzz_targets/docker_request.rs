//! Fuzzes what the daemon makes of a Docker request body before any driver work: the JSON of
//! CreateNetwork (its `-o` options validated into a bus spec, as the handler and the driver do)
//! and of the endpoint and network calls. Any bytes: never a panic; a spec that is accepted
//! describes itself in text that names its device.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vxbus::{
    bus::BusSpec,
    docker::api::{CreateNetworkRequest, EndpointRequest, NetworkRequest},
};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<CreateNetworkRequest>(data) {
        if let Ok(options) = request.generic_options() {
            if let Ok(spec) = BusSpec::from_options(options) {
                let text = spec.to_string();
                assert!(text.contains(spec.device.as_str()), "{text}");
            }
        }
    }
    let _ = serde_json::from_slice::<EndpointRequest>(data);
    let _ = serde_json::from_slice::<NetworkRequest>(data);
});
