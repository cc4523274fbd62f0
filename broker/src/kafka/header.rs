//! Kafka request and response headers. A request header is api key, api
//! version, correlation id, a nullable client id, and in its flexible form
//! (v2, chosen per API and version) tagged fields; the header version comes
//! from kafka-protocol's table of every API. A response header is the
//! correlation id (v0), plus tagged fields (v1, for flexible responses;
//! ApiVersions is always answered with v0).

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// Bytes every request header starts with: api key, version, correlation id.
pub(crate) const REQUEST_HEADER_BYTES_MIN: usize = 8;

/// Why a request's header could not be read. Each closes the connection,
/// as Kafka does: the client cannot be answered in a form it expects.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum HeaderError {
    /// Fewer bytes than the fixed part.
    #[error("request of {0} bytes is shorter than a request header (8 bytes)")]
    Short(usize),
    /// An api key Kafka does not define.
    #[error("unknown api key {api_key} (version {version}, correlation id {correlation_id})")]
    UnknownApi {
        /// The key sent.
        api_key: i16,
        /// The version sent.
        version: i16,
        /// The correlation id sent.
        correlation_id: i32,
    },
    /// The header does not decode.
    #[error("malformed {api:?} request header: {reason}")]
    Malformed {
        /// The API.
        api: ApiKey,
        /// What failed.
        reason: String,
    },
}

/// A request split into its header and its body (not decoded yet).
#[derive(Debug)]
pub(crate) struct Request {
    pub api: ApiKey,
    pub header: RequestHeader,
    pub body: Bytes,
}

/// Reads the header of one request frame.
pub(crate) fn parse(mut frame: Bytes) -> Result<Request, HeaderError> {
    if frame.len() < REQUEST_HEADER_BYTES_MIN {
        return Err(HeaderError::Short(frame.len()));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api = ApiKey::try_from(api_key).map_err(|()| HeaderError::UnknownApi {
        api_key,
        version,
        correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    })?;
    let header =
        RequestHeader::decode(&mut frame, api.request_header_version(version)).map_err(|e| {
            HeaderError::Malformed {
                api,
                reason: e.to_string(),
            }
        })?;
    Ok(Request {
        api,
        header,
        body: frame,
    })
}

/// Encodes a whole response (header, then body at `version`).
pub(crate) fn encode_response<R: Encodable>(
    api: ApiKey,
    correlation_id: i32,
    version: i16,
    body: &R,
) -> anyhow::Result<Bytes> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api.response_header_version(version);
    // Sized first: a fetch answer of megabytes is then written once, not
    // copied at every doubling of the buffer.
    let size = header.compute_size(header_version)? + body.compute_size(version)?;
    let mut buf = BytesMut::with_capacity(size);
    header.encode(&mut buf, header_version)?;
    body.encode(&mut buf, version)?;
    Ok(buf.freeze())
}
