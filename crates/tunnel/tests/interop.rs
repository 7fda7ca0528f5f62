//! The codec against bytes recorded from the real cannelloni 2.1.2 (`tests/data/`, copied from
//! the project's shared interop records; its `about` says how each part was made): vxbus must
//! send exactly what cannelloni sends for a frame, and make of a datagram or stream exactly
//! what cannelloni made of it, dropped datagrams included.

use bytes::BytesMut;
use serde_json::Value;
use tokio_util::codec::Decoder;
use vxbus_tunnel::wire::{
    decode_datagram, DatagramBuilder, Frame, StreamCodec, CAN_EFF_FLAG, CAN_RTR_FLAG, TCP_HELLO,
};

fn record() -> Value {
    let text = include_str!("data/cannelloni-2.1.2.json");
    serde_json::from_str(text).expect("the interop record is JSON")
}

fn hex(text: &str) -> Vec<u8> {
    assert!(text.len() % 2 == 0, "odd hex {text}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A frame in cansend/candump notation (`123#11`, `1FFFFFFF#R`, `321#R8`, `1A0##5AABB`), or the
/// last word of a candump -L line.
fn frame(notation: &str) -> Frame {
    let word = notation.split_whitespace().last().expect("a frame");
    let (id, rest) = word.split_once('#').expect("id#data");
    let mut id_word = u32::from_str_radix(id, 16).expect("hex id");
    if id.len() > 3 {
        id_word |= CAN_EFF_FLAG;
    }
    if let Some(fd) = rest.strip_prefix('#') {
        let flags = u8::from_str_radix(&fd[..1], 16).expect("FD flags digit");
        return Frame::fd(id_word, flags, &hex(&fd[1..])).expect("a valid FD frame");
    }
    if let Some(dlc) = rest.strip_prefix('R') {
        let dlc = if dlc.is_empty() {
            0
        } else {
            dlc.parse().expect("DLC")
        };
        return Frame::remote(id_word | CAN_RTR_FLAG, dlc).expect("a valid remote frame");
    }
    Frame::classic(id_word, &hex(rest)).expect("a valid classic frame")
}

fn frames(lines: &Value) -> Vec<Frame> {
    lines
        .as_array()
        .expect("a list of candump lines")
        .iter()
        .map(|line| frame(line.as_str().expect("a line")))
        .collect()
}

#[test]
fn vxbus_sends_what_cannelloni_sends_one_frame_each() {
    let record = record();
    let cases = record["udp"]["one_frame_per_datagram"].as_array().unwrap();
    assert_eq!(cases.len(), 12);
    for case in cases {
        // The kernel's view of the frame (candump), as vxbus reads it from its socket.
        let frame = frame(case["candump"].as_str().unwrap());
        let expected = hex(case["datagram"].as_str().unwrap());
        let mut builder = DatagramBuilder::new(1472);
        assert!(builder.push(&frame));
        assert_eq!(
            builder.finish(expected[2]).to_vec(),
            expected,
            "{}",
            case["cansend"]
        );
    }
}

#[test]
fn a_burst_decodes_to_the_frames_in_order_with_consecutive_sequence_numbers() {
    let record = record();
    let burst = &record["udp"]["burst"];
    let mut seqs = Vec::new();
    let mut decoded = Vec::new();
    for datagram in burst["datagrams"].as_array().unwrap() {
        let datagram = decode_datagram(&hex(datagram.as_str().unwrap())).unwrap();
        seqs.push(datagram.seq);
        decoded.extend(datagram.frames);
    }
    assert_eq!(decoded, frames(&burst["candump"]));
    assert_eq!(decoded.len(), 40);
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "{seqs:?}"
    );
    // And vxbus's builder, given the same frames in the same groups, writes the same bytes.
    let mut at = 0;
    for (datagram, &seq) in burst["datagrams"].as_array().unwrap().iter().zip(&seqs) {
        let bytes = hex(datagram.as_str().unwrap());
        let count = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
        let mut builder = DatagramBuilder::new(1472);
        for frame in &decoded[at..at + count] {
            assert!(builder.push(frame));
        }
        assert_eq!(builder.finish(seq).to_vec(), bytes);
        at += count;
    }
}

#[test]
fn vxbus_takes_what_cannelloni_takes_and_drops_what_it_drops() {
    let record = record();
    let cases = record["udp"]["into_cannelloni"].as_array().unwrap();
    assert_eq!(cases.len(), 17);
    let mut dropped = 0;
    for case in cases {
        let bytes = hex(case["datagram"].as_str().unwrap());
        let expected = frames(&case["candump"]);
        match decode_datagram(&bytes) {
            Ok(datagram) => assert_eq!(datagram.frames, expected, "{}", case["datagram"]),
            Err(err) => {
                assert!(expected.is_empty(), "{}: {err}", case["datagram"]);
                dropped += 1;
            }
        }
    }
    // Protocol version 3 and op code 1 (ACK).
    assert_eq!(dropped, 2);
}

#[test]
fn the_tcp_stream_is_the_same_frames_after_the_hello() {
    let record = record();
    let tcp = &record["tcp"];
    assert_eq!(hex(tcp["client_hello"].as_str().unwrap()), TCP_HELLO);
    for direction in ["to_peer", "from_peer"] {
        let stream = hex(tcp[direction]["stream"].as_str().unwrap());
        let expected = frames(&tcp[direction]["candump"]);
        let mut buf = BytesMut::from(&stream[..]);
        let mut decoded = Vec::new();
        while let Some(frame) = StreamCodec.decode(&mut buf).unwrap() {
            decoded.push(frame);
        }
        assert!(buf.is_empty(), "{direction}: bytes left over");
        let mut encoded = BytesMut::new();
        decoded.iter().for_each(|frame| frame.encode(&mut encoded));
        assert_eq!(encoded.to_vec(), stream, "{direction}");
        if direction == "to_peer" {
            assert_eq!(decoded, expected, "{direction}");
            continue;
        }
        // One difference, on purpose: cannelloni 2.1.2's TCP reader writes a remote request
        // with DLC 0 whatever the stream says (`321#R8` arrives as `321#R`; its UDP reader
        // keeps the DLC). vxbus keeps the DLC that is on the wire.
        let mut differences = Vec::new();
        for (ours, theirs) in decoded.iter().zip(&expected) {
            if ours != theirs {
                assert!(ours.is_remote() && theirs.is_remote() && ours.id() == theirs.id());
                assert_eq!(theirs.len(), 0);
                differences.push(format!("{ours:?}"));
            }
        }
        assert_eq!(decoded.len(), expected.len());
        assert_eq!(differences, ["321#R8"]);
    }
}
