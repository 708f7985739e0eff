//! Responses as wire bytes, shared by the UDP and TCP listeners.

use hickory_server::proto::op::{
    Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::Record;
use hickory_server::proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_server::server::ResponseInfo;
use hickory_server::zone_handler::MessageResponse;
use tracing::debug;

/// A response of a header alone (no section), as the wire bytes.
pub(crate) fn header_only(metadata: Metadata) -> Vec<u8> {
    let header = Header {
        metadata,
        counts: HeaderCounts::default(),
    };
    let mut bytes = Vec::with_capacity(12);
    // A header is 12 bytes and always fits an encoder without a size limit.
    let _ = header.emit(&mut BinEncoder::new(&mut bytes));
    bytes
}

/// Encodes `response` in at most `max_size` bytes (the encoder truncates at a record boundary
/// and sets TC); a response that cannot be encoded becomes a SERVFAIL header.
pub(crate) fn encode_response<'a>(
    response: MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    max_size: u16,
) -> (Vec<u8>, ResponseInfo) {
    let id = response.metadata().id;
    let mut bytes = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_max_size(max_size);
    match response.destructive_emit(&mut encoder) {
        Ok(info) => (bytes, info),
        Err(error) => {
            debug!(%error, "cannot encode a response: SERVFAIL");
            let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
            metadata.response_code = ResponseCode::ServFail;
            let info = ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            });
            (header_only(metadata), info)
        }
    }
}
