//! The Kafka wire protocol, as this project speaks it.
//!
//! A frame on the wire is a big-endian `i32` length followed by that many
//! bytes: a request (header + body) or a response (header + body). Message
//! bodies are encoded and decoded by the `kafka-protocol` crate; this module
//! adds framing with a size limit, the table of APIs we implement, and
//! panic-free decoding of untrusted bytes.

pub mod apis;
pub mod codec;
pub mod frame;

pub use apis::{supported_range, SUPPORTED_APIS};
pub use codec::{decode_request, encode_response, DecodeError, Request};
pub use frame::{read_frame, write_frame, FrameError};
