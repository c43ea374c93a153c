//! One connection to a broker: a request goes out, its response comes back,
//! each bounded by a timeout. After a timeout or socket error the connection
//! is unusable (a late response would be read as the next one's), so the
//! caller drops it and connects again.

use std::time::Duration;

use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Request, StrBytes};

use crate::wire::{self, codec};

/// Why a request did not get a response.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect; nothing was sent.
    #[error("connect to {addr} failed: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// No response within the timeout; the request may or may not have had effect.
    #[error("request timed out after {timeout_ms} ms")]
    Timeout {
        /// The timeout.
        timeout_ms: u64,
    },
    /// The connection broke after the request may have been sent.
    #[error("connection lost: {0}")]
    Io(#[from] wire::FrameError),
    /// The response did not decode, or answered another request.
    #[error("bad response: {0}")]
    BadResponse(String),
}

impl ClientError {
    /// Whether the request certainly had no effect on the broker.
    pub fn is_definite(&self) -> bool {
        matches!(self, ClientError::Connect { .. })
    }
}

/// A connection to one broker.
pub struct Connection {
    stream: tokio::net::TcpStream,
    addr: String,
    client_id: String,
    next_correlation_id: i32,
    response_bytes_max: usize,
}

impl Connection {
    /// Connects to `addr` within `timeout_ms`.
    pub async fn connect(addr: &str, client_id: &str, timeout_ms: u64) -> Result<Self, ClientError> {
        let connect = tokio::net::TcpStream::connect(addr.to_string());
        let stream = match tokio::time::timeout(Duration::from_millis(timeout_ms), connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => {
                return Err(ClientError::Connect {
                    addr: addr.into(),
                    source,
                })
            }
            Err(_) => {
                return Err(ClientError::Connect {
                    addr: addr.into(),
                    source: std::io::ErrorKind::TimedOut.into(),
                })
            }
        };
        let _ = stream.set_nodelay(true);
        Ok(Self {
            stream,
            addr: addr.into(),
            client_id: client_id.into(),
            next_correlation_id: 0,
            response_bytes_max: 256 * 1024 * 1024,
        })
    }

    /// The address this connection goes to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `request` at `version` and waits up to `timeout_ms` for the response.
    pub async fn request<R: Request>(&mut self, request: &R, version: i16, timeout_ms: u64) -> Result<R::Response, ClientError> {
        let api = ApiKey::try_from(R::KEY).map_err(|_| ClientError::BadResponse("unknown api".into()))?;
        // The timeout bounds the write too: a peer that stopped reading (a
        // paused or cut-off broker) can leave the write waiting forever.
        let exchange = async {
            let correlation_id = self.send(request, version).await?;
            let frame = wire::read_frame(&mut self.stream, self.response_bytes_max).await?;
            Ok::<_, ClientError>((correlation_id, frame))
        };
        let (correlation_id, frame) = match tokio::time::timeout(Duration::from_millis(timeout_ms), exchange).await {
            Err(_) => return Err(ClientError::Timeout { timeout_ms }),
            Ok(Err(error)) => return Err(error),
            Ok(Ok((_, None))) => return Err(wire::FrameError::Io(std::io::ErrorKind::UnexpectedEof.into()).into()),
            Ok(Ok((correlation_id, Some(frame)))) => (correlation_id, frame),
        };
        let (response_correlation_id, response) =
            codec::decode_response::<R::Response>(api, version, &frame).map_err(|e| ClientError::BadResponse(e.to_string()))?;
        if response_correlation_id != correlation_id {
            return Err(ClientError::BadResponse(format!(
                "correlation id {response_correlation_id}, expected {correlation_id}"
            )));
        }
        Ok(response)
    }

    /// Sends `request` without waiting for a response (Produce with acks=0).
    pub async fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<i32, ClientError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_string(self.client_id.clone())));
        let frame = codec::encode_request(&header, request).map_err(|e| ClientError::BadResponse(e.to_string()))?;
        wire::write_frame(&mut self.stream, &frame).await?;
        Ok(correlation_id)
    }
}
