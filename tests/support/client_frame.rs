//! Masked client frames as a browser sends them, written by tungstenite
//! (the oracle), for the decoder's unit tests, the integration tests and
//! the frame benches: one copy, included by path where it is needed.

use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};

/// A frame masked with `mask`; `first` is the FIN/RSV/opcode byte, so
/// malformed frames (reserved bits or opcodes, fragmented control frames)
/// can be built too.
pub fn masked_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    // `Frame::message` wants a data opcode; the real one is set after.
    let mut frame = Frame::message(
        payload.to_vec(),
        OpCode::Data(Data::Binary),
        first & 0x80 != 0,
    );
    let header = frame.header_mut();
    header.opcode = OpCode::from(first & 0x0f);
    header.rsv1 = first & 0x40 != 0;
    header.rsv2 = first & 0x20 != 0;
    header.rsv3 = first & 0x10 != 0;
    header.mask = Some(mask);
    let mut out = Vec::new();
    frame.format(&mut out).expect("writing to a Vec");
    out
}
