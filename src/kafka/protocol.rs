//! The Kafka wire protocol, sans-IO: request frames (size + header + body)
//! for the APIs the producer uses, response decoding with correlation-id
//! checks, version negotiation, record-batch encoding and error-code
//! classification. Nothing here touches a socket, so all of it is tested
//! with bytes.
//!
//! Messages come from `kafka-protocol` (generated from Kafka's own message
//! definitions). With only its `client` feature, requests encode and
//! responses decode; API keys are used as `ApiKey::X as i16`.

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    InitProducerIdRequest, InitProducerIdResponse, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse, TopicName,
    create_topics_request::CreatableTopic, metadata_request::MetadataRequestTopic,
    produce_request::PartitionProduceData, produce_request::TopicProduceData,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression as WireCompression, Record as WireRecord, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType,
};

use super::config::Compression;

/// A protocol-level failure: malformed or unexpected bytes, or a broker too
/// old to talk to. The message is meant for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn perr<T>(s: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(s.into()))
}

/// Largest response frame accepted: a guard against reading garbage as a
/// length (e.g. talking Kafka to a TLS or HTTP port).
pub const MAX_FRAME: usize = 100 * 1024 * 1024;

/// Versions the producer asks for; capped where newer versions change
/// semantics we do not implement (Produce v13 names topics by id).
pub(crate) const PRODUCE_MAX: i16 = 12;
pub(crate) const PRODUCE_MIN: i16 = 3;
pub(crate) const METADATA_MAX: i16 = 12;
pub(crate) const METADATA_MIN: i16 = 1;
pub(crate) const INIT_PRODUCER_ID_MAX: i16 = 4;
pub(crate) const API_VERSIONS_MAX: i16 = 3;
pub(crate) const SASL_HANDSHAKE_MAX: i16 = 1;
pub(crate) const SASL_AUTHENTICATE_MAX: i16 = 2;
pub(crate) const CREATE_TOPICS_MAX: i16 = 7;
pub(crate) const CREATE_TOPICS_MIN: i16 = 2;

/// API versions agreed with one broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub produce: i16,
    pub metadata: i16,
    /// None: the broker cannot give producer ids (no idempotence).
    pub init_producer_id: Option<i16>,
    pub sasl_handshake: Option<i16>,
    pub sasl_authenticate: Option<i16>,
    pub create_topics: Option<i16>,
}

fn pick(keys: &[ApiRange], key: ApiKey, ours_min: i16, ours_max: i16) -> Option<i16> {
    let crate_range = key.valid_versions();
    let ours_max = ours_max.min(crate_range.max);
    let ours_min = ours_min.max(crate_range.min);
    let (_, bmin, bmax) = keys.iter().find(|(k, _, _)| *k == key as i16)?;
    let hi = ours_max.min(*bmax);
    let lo = ours_min.max(*bmin);
    (hi >= lo).then_some(hi)
}

/// Picks the highest version each side supports. A broker offering only
/// Produce < 3 (no RecordBatch v2) or no usable Metadata is refused.
pub fn negotiate(api_keys: &[ApiRange]) -> Result<Versions, ProtocolError> {
    let range_of = |k: ApiKey| {
        api_keys
            .iter()
            .find(|(key, _, _)| *key == k as i16)
            .map(|(_, a, b)| format!("{a}..{b}"))
            .unwrap_or_else(|| "none".into())
    };
    let produce = pick(api_keys, ApiKey::Produce, PRODUCE_MIN, PRODUCE_MAX).ok_or_else(|| {
        ProtocolError(format!(
            "broker supports Produce versions {} but this producer needs version {PRODUCE_MIN} or later (Kafka 0.11+)",
            range_of(ApiKey::Produce)
        ))
    })?;
    let metadata =
        pick(api_keys, ApiKey::Metadata, METADATA_MIN, METADATA_MAX).ok_or_else(|| {
            ProtocolError(format!(
                "broker supports Metadata versions {} but this producer needs {METADATA_MIN}..{METADATA_MAX}",
                range_of(ApiKey::Metadata)
            ))
        })?;
    Ok(Versions {
        produce,
        metadata,
        init_producer_id: pick(api_keys, ApiKey::InitProducerId, 0, INIT_PRODUCER_ID_MAX),
        sasl_handshake: pick(api_keys, ApiKey::SaslHandshake, 0, SASL_HANDSHAKE_MAX),
        sasl_authenticate: pick(api_keys, ApiKey::SaslAuthenticate, 0, SASL_AUTHENTICATE_MAX),
        create_topics: pick(
            api_keys,
            ApiKey::CreateTopics,
            CREATE_TOPICS_MIN,
            CREATE_TOPICS_MAX,
        ),
    })
}

/// Encodes one request frame: i32 size, then header and body.
pub fn encode_request<T: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &T,
) -> Result<Vec<u8>, ProtocolError> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
    let mut buf = BytesMut::with_capacity(256);
    buf.extend_from_slice(&[0, 0, 0, 0]);
    header
        .encode(&mut buf, key.request_header_version(version))
        .map_err(|e| ProtocolError(format!("encoding {key:?} v{version} header: {e}")))?;
    body.encode(&mut buf, version)
        .map_err(|e| ProtocolError(format!("encoding {key:?} v{version} request: {e}")))?;
    let size = i32::try_from(buf.len() - 4)
        .map_err(|_| ProtocolError(format!("{key:?} request too large")))?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.to_vec())
}

/// Reads the size prefix of a frame; rejects nonsense lengths.
pub fn frame_len(prefix: [u8; 4]) -> Result<usize, ProtocolError> {
    let n = i32::from_be_bytes(prefix);
    if n < 4 || n as usize > MAX_FRAME {
        return perr(format!(
            "broker sent an invalid frame length {n} (is this a Kafka port, and is TLS set correctly?)"
        ));
    }
    Ok(n as usize)
}

/// Decodes a response frame (without its size prefix), checking the
/// correlation id. Decoding errors become a `ProtocolError`, never a panic.
pub fn decode_response<T: Decodable>(
    key: ApiKey,
    version: i16,
    expected_correlation_id: i32,
    frame: Bytes,
) -> Result<T, ProtocolError> {
    let mut buf = frame;
    let header = ResponseHeader::decode(&mut buf, key.response_header_version(version))
        .map_err(|e| ProtocolError(format!("malformed {key:?} response header: {e}")))?;
    if header.correlation_id != expected_correlation_id {
        return perr(format!(
            "{key:?} response has correlation id {} but {} was expected",
            header.correlation_id, expected_correlation_id
        ));
    }
    // The decoders return errors for short or bad input; the unwind guard
    // is for anything they did not foresee (the release profile unwinds),
    // e.g. "capacity overflow" from an absurd array count on 32-bit ARM.
    // Absurd array counts are refused by the patched vendor/kafka-protocol
    // (0.18 passes them to Vec::with_capacity; a failed allocation aborts).
    // panics::catch: contained, so the hook does not end the run for it.
    let decoded = crate::panics::catch(|| T::decode(&mut buf, version));
    match decoded {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => perr(format!("malformed {key:?} v{version} response: {e}")),
        Err(_) => perr(format!(
            "malformed {key:?} v{version} response (decoder panicked)"
        )),
    }
}

// ---------------------------------------------------------------- requests

pub fn api_versions_request(version: i16) -> ApiVersionsRequest {
    let r = ApiVersionsRequest::default();
    if version >= 3 {
        r.with_client_software_name(StrBytes::from_static_str("latency-logger"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")))
    } else {
        r
    }
}

/// The ApiVersions version to try first; brokers answer an unsupported one
/// with UNSUPPORTED_VERSION and a v0 body, after which v0 is used.
pub const API_VERSIONS_FIRST: i16 = API_VERSIONS_MAX;

/// (api key, min version, max version) as a broker advertises it.
pub type ApiRange = (i16, i16, i16);

/// An ApiVersions reply: the broker's ranges, or "ask again in v0".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiVersionsReply {
    Ranges(Vec<ApiRange>),
    UnsupportedVersion,
}

/// Decodes an ApiVersions reply. An UNSUPPORTED_VERSION reply (sent in v0
/// by brokers older than our request) tells the caller to retry with v0.
pub fn decode_api_versions(
    version: i16,
    correlation_id: i32,
    frame: Bytes,
) -> Result<ApiVersionsReply, ProtocolError> {
    let parsed: Result<ApiVersionsResponse, ProtocolError> =
        decode_response(ApiKey::ApiVersions, version, correlation_id, frame.clone());
    let resp = match parsed {
        Ok(r) => r,
        // The broker may have answered in v0 because it does not know ours.
        Err(e) if version > 0 => {
            match decode_response::<ApiVersionsResponse>(
                ApiKey::ApiVersions,
                0,
                correlation_id,
                frame,
            ) {
                Ok(r)
                    if response_error(r.error_code) == Some(ResponseError::UnsupportedVersion) =>
                {
                    return Ok(ApiVersionsReply::UnsupportedVersion);
                }
                _ => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    if response_error(resp.error_code) == Some(ResponseError::UnsupportedVersion) && version > 0 {
        return Ok(ApiVersionsReply::UnsupportedVersion);
    }
    if response_error(resp.error_code).is_some() {
        return perr(format!(
            "ApiVersions failed: {}",
            code_name(resp.error_code)
        ));
    }
    Ok(ApiVersionsReply::Ranges(
        resp.api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect(),
    ))
}

pub fn sasl_handshake_request(mechanism: &str) -> SaslHandshakeRequest {
    SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.to_string()))
}

pub fn sasl_authenticate_request(bytes: Vec<u8>) -> SaslAuthenticateRequest {
    SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes))
}

/// Metadata for one topic. The auto-create flag exists from v4 on; older
/// versions always let the broker's own setting decide.
pub fn metadata_request(topic: &str, allow_auto_create: bool, version: i16) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_string(topic.to_string())),
        ))]))
        .with_allow_auto_topic_creation(allow_auto_create || version < 4)
}

/// A broker's address as advertised in Metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub addr: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub id: i32,
    /// -1 when there is no leader right now.
    pub leader: i32,
    pub error: Option<ResponseError>,
}

/// What the producer needs from a Metadata reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMeta {
    pub brokers: Vec<BrokerInfo>,
    pub topic_error: Option<ResponseError>,
    /// Sorted by id, contiguous from 0 when the topic exists.
    pub partitions: Vec<PartitionInfo>,
}

pub fn parse_metadata(resp: &MetadataResponse, topic: &str) -> Result<ClusterMeta, ProtocolError> {
    let brokers = resp
        .brokers
        .iter()
        .map(|b| BrokerInfo {
            id: b.node_id.0,
            addr: format!("{}:{}", b.host.as_str(), b.port),
        })
        .collect();
    let t = resp
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic))
        .ok_or_else(|| {
            ProtocolError(format!("Metadata response does not mention topic {topic}"))
        })?;
    let mut partitions: Vec<PartitionInfo> = t
        .partitions
        .iter()
        .map(|p| PartitionInfo {
            id: p.partition_index,
            leader: p.leader_id.0,
            error: response_error(p.error_code),
        })
        .collect();
    partitions.sort_by_key(|p| p.id);
    if response_error(t.error_code).is_none() {
        for (i, p) in partitions.iter().enumerate() {
            if p.id != i as i32 {
                return perr(format!(
                    "Metadata for topic {topic} lists partitions that are not 0..{}",
                    partitions.len()
                ));
            }
        }
    }
    Ok(ClusterMeta {
        brokers,
        topic_error: response_error(t.error_code),
        partitions,
    })
}

pub fn create_topics_request(topic: &str, partitions: i32, timeout_ms: i32) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_num_partitions(partitions)
                .with_replication_factor(-1),
        ])
        .with_timeout_ms(timeout_ms)
}

pub fn init_producer_id_request(timeout_ms: i32) -> InitProducerIdRequest {
    InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(kafka_protocol::messages::ProducerId(-1))
        .with_producer_epoch(-1)
}

/// One record as the caller gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub timestamp_ms: i64,
}

/// Producer identity stamped into a batch; `NONE` when not idempotent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdentity {
    pub id: i64,
    pub epoch: i16,
}

impl ProducerIdentity {
    pub const NONE: ProducerIdentity = ProducerIdentity { id: -1, epoch: -1 };
    pub fn is_some(&self) -> bool {
        self.id >= 0
    }
}

/// Encodes a RecordBatch v2. `base_sequence` is -1 when not idempotent.
/// The same inputs always give the same bytes, so a retry resends exactly
/// the batch the broker may already have (it then answers
/// DUPLICATE_SEQUENCE_NUMBER instead of writing it twice).
pub fn encode_batch(
    records: &[Record],
    compression: Compression,
    pid: ProducerIdentity,
    base_sequence: i32,
) -> Result<Bytes, ProtocolError> {
    let wire: Vec<WireRecord> = records
        .iter()
        .enumerate()
        .map(|(i, r)| WireRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid.id,
            producer_epoch: pid.epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // Always base + i, even for base -1: the encoder starts a new
            // batch whenever offset - sequence changes, and brokers take
            // exactly one batch per partition (Produce v3+).
            sequence: base_sequence.wrapping_add(i as i32),
            timestamp: r.timestamp_ms,
            key: Some(Bytes::copy_from_slice(&r.key)),
            value: Some(Bytes::copy_from_slice(&r.value)),
            headers: Default::default(),
        })
        .collect();
    let compression = match compression {
        Compression::None => WireCompression::None,
        Compression::Gzip => WireCompression::Gzip,
        Compression::Snappy => WireCompression::Snappy,
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &wire,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .map_err(|e| ProtocolError(format!("encoding record batch: {e}")))?;
    Ok(buf.freeze())
}

/// Rough encoded size of one record in a batch, for the batch size limit.
pub fn record_size_estimate(r: &Record) -> usize {
    // varint lengths, attributes, deltas: ~ 20 bytes of overhead at most.
    r.key.len() + r.value.len() + 20
}

pub fn produce_request(
    topic: &str,
    acks: i16,
    timeout_ms: i32,
    batches: Vec<(i32, Bytes)>,
) -> ProduceRequest {
    let partition_data = batches
        .into_iter()
        .map(|(p, b)| {
            PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(b))
        })
        .collect();
    ProduceRequest::default()
        .with_transactional_id(None)
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(partition_data),
        ])
}

/// One partition's outcome in a Produce reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionResult {
    pub partition: i32,
    pub error: Option<ResponseError>,
    pub base_offset: i64,
    pub error_message: Option<String>,
}

pub fn parse_produce(resp: &ProduceResponse, topic: &str) -> Vec<PartitionResult> {
    resp.responses
        .iter()
        .filter(|t| t.name.0.as_str() == topic)
        .flat_map(|t| t.partition_responses.iter())
        .map(|p| PartitionResult {
            partition: p.index,
            error: response_error(p.error_code),
            base_offset: p.base_offset,
            error_message: p
                .error_message
                .as_ref()
                .map(|m| crate::redact::value(m.as_str())),
        })
        .collect()
}

// ---------------------------------------------------------------- errors

/// A broker's error code, typed; `None` for 0 (no error).
pub fn response_error(code: i16) -> Option<ResponseError> {
    ResponseError::try_from_code(code)
}

/// A broker answered a request with an error code: what callers match on
/// (never on the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerError {
    pub api: ApiKey,
    pub error: ResponseError,
    /// The broker's own words, or what we know besides the code.
    pub detail: Option<String>,
}

impl BrokerError {
    fn new(api: ApiKey, error: ResponseError, detail: Option<String>) -> Self {
        BrokerError { api, error, detail }
    }

    /// Ok for 0, else a `BrokerError` for `api`.
    fn check(api: ApiKey, code: i16, detail: Option<&StrBytes>) -> Result<(), BrokerError> {
        match response_error(code) {
            None => Ok(()),
            Some(e) => Err(BrokerError::new(
                api,
                e,
                detail
                    .map(|m| crate::redact::value(m.as_str()))
                    .filter(|m| !m.is_empty()),
            )),
        }
    }
}

impl std::fmt::Display for BrokerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.api, error_name(self.error))?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

/// One request type the producer sends: its API key, the version agreed
/// with a broker, and the error code its reply carries (if it has one for
/// the whole request). `Conn::call` does the rest.
pub trait Request: Encodable {
    type Response: Decodable;
    const KEY: ApiKey;
    /// None: the broker does not offer this API.
    fn version(v: &Versions) -> Option<i16>;
    /// The reply's request-wide error, typed. Per-partition errors (Produce)
    /// are the caller's to sort.
    fn check(resp: &Self::Response) -> Result<(), BrokerError>;
}

impl Request for MetadataRequest {
    type Response = MetadataResponse;
    const KEY: ApiKey = ApiKey::Metadata;
    fn version(v: &Versions) -> Option<i16> {
        Some(v.metadata)
    }
    // Topic errors are data here (a missing topic may be created).
    fn check(_: &MetadataResponse) -> Result<(), BrokerError> {
        Ok(())
    }
}

impl Request for ProduceRequest {
    type Response = ProduceResponse;
    const KEY: ApiKey = ApiKey::Produce;
    fn version(v: &Versions) -> Option<i16> {
        Some(v.produce)
    }
    fn check(_: &ProduceResponse) -> Result<(), BrokerError> {
        Ok(())
    }
}

impl Request for InitProducerIdRequest {
    type Response = InitProducerIdResponse;
    const KEY: ApiKey = ApiKey::InitProducerId;
    fn version(v: &Versions) -> Option<i16> {
        v.init_producer_id
    }
    fn check(resp: &InitProducerIdResponse) -> Result<(), BrokerError> {
        BrokerError::check(Self::KEY, resp.error_code, None)
    }
}

impl Request for CreateTopicsRequest {
    type Response = CreateTopicsResponse;
    const KEY: ApiKey = ApiKey::CreateTopics;
    fn version(v: &Versions) -> Option<i16> {
        v.create_topics
    }
    /// Ok if created or already there (the request names one topic).
    fn check(resp: &CreateTopicsResponse) -> Result<(), BrokerError> {
        for t in &resp.topics {
            match response_error(t.error_code) {
                None | Some(ResponseError::TopicAlreadyExists) => {}
                Some(e) => {
                    let detail = t
                        .error_message
                        .as_ref()
                        .map(|m| crate::redact::value(m.as_str()));
                    return Err(BrokerError::new(Self::KEY, e, detail));
                }
            }
        }
        Ok(())
    }
}

impl Request for SaslHandshakeRequest {
    type Response = SaslHandshakeResponse;
    const KEY: ApiKey = ApiKey::SaslHandshake;
    fn version(v: &Versions) -> Option<i16> {
        v.sasl_handshake
    }
    /// The detail lists the mechanisms the broker does enable.
    fn check(resp: &SaslHandshakeResponse) -> Result<(), BrokerError> {
        let offered: Vec<String> = resp
            .mechanisms
            .iter()
            .map(|m| crate::redact::value(m.as_str()))
            .collect();
        BrokerError::check(Self::KEY, resp.error_code, None).map_err(|mut e| {
            e.detail = Some(format!("the broker offers: {}", offered.join(", ")));
            e
        })
    }
}

impl Request for SaslAuthenticateRequest {
    type Response = SaslAuthenticateResponse;
    const KEY: ApiKey = ApiKey::SaslAuthenticate;
    fn version(v: &Versions) -> Option<i16> {
        v.sasl_authenticate
    }
    fn check(resp: &SaslAuthenticateResponse) -> Result<(), BrokerError> {
        BrokerError::check(Self::KEY, resp.error_code, resp.error_message.as_ref())
    }
}

/// What to do about a broker error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again later, after refreshing metadata.
    Retriable,
    /// Retrying will not help: give up on the batch / refuse to start.
    Fatal,
    /// The broker already has this batch (idempotent retry): treat as delivered.
    Duplicate,
    /// The producer id / sequence state is off: get a new producer id, then retry.
    ResetProducer,
}

/// Classifies a broker error from Produce, Metadata or InitProducerId.
pub fn classify(e: ResponseError) -> ErrorClass {
    use ResponseError as E;
    match e {
        // BROKER_NOT_AVAILABLE is transient in practice, though not marked so.
        E::NotLeaderOrFollower
        | E::LeaderNotAvailable
        | E::UnknownTopicOrPartition
        | E::RequestTimedOut
        | E::NotEnoughReplicas
        | E::NotEnoughReplicasAfterAppend
        | E::NetworkException
        | E::KafkaStorageError
        | E::NotController
        | E::FencedLeaderEpoch
        | E::UnknownLeaderEpoch
        | E::ThrottlingQuotaExceeded
        | E::BrokerNotAvailable
        | E::CoordinatorLoadInProgress
        | E::CoordinatorNotAvailable
        | E::NotCoordinator => ErrorClass::Retriable,
        E::DuplicateSequenceNumber => ErrorClass::Duplicate,
        E::OutOfOrderSequenceNumber | E::InvalidProducerEpoch | E::UnknownProducerId => {
            ErrorClass::ResetProducer
        }
        e if e.is_retriable() => ErrorClass::Retriable,
        _ => ErrorClass::Fatal,
    }
}

/// "NOT_LEADER_OR_FOLLOWER (6)": the name Kafka's docs and logs use.
pub fn error_name(e: ResponseError) -> String {
    let code = e.code();
    match e {
        ResponseError::Unknown(c) => format!("UNKNOWN_ERROR_CODE ({c})"),
        e => {
            let camel = format!("{e:?}");
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, ch) in camel.chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(ch.to_ascii_uppercase());
            }
            format!("{out} ({code})")
        }
    }
}

/// As `error_name`, for a code that may be 0.
pub fn code_name(code: i16) -> String {
    response_error(code).map_or_else(|| "NONE (0)".into(), error_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    fn be16(v: &mut Vec<u8>, x: i16) {
        v.extend_from_slice(&x.to_be_bytes());
    }
    fn be32(v: &mut Vec<u8>, x: i32) {
        v.extend_from_slice(&x.to_be_bytes());
    }
    fn be64(v: &mut Vec<u8>, x: i64) {
        v.extend_from_slice(&x.to_be_bytes());
    }
    fn string(v: &mut Vec<u8>, s: &str) {
        be16(v, s.len() as i16);
        v.extend_from_slice(s.as_bytes());
    }

    #[test]
    fn encodes_a_metadata_request_frame() {
        let frame = encode_request(
            ApiKey::Metadata,
            1,
            7,
            "cid",
            &metadata_request("t", false, 1),
        )
        .unwrap();
        // size | key=3 | version=1 | corr=7 | client id "cid" | topics [ "t" ]
        let mut want = Vec::new();
        be16(&mut want, 3);
        be16(&mut want, 1);
        be32(&mut want, 7);
        string(&mut want, "cid");
        be32(&mut want, 1);
        string(&mut want, "t");
        let mut full = (want.len() as i32).to_be_bytes().to_vec();
        full.extend_from_slice(&want);
        assert_eq!(frame, full);
    }

    #[test]
    fn decodes_a_hand_built_api_versions_v0_reply() {
        let mut v = Vec::new();
        be32(&mut v, 42); // correlation id
        be16(&mut v, 0); // error
        be32(&mut v, 3); // 3 api keys
        for (k, lo, hi) in [(0i16, 0i16, 9i16), (3, 0, 12), (22, 0, 4)] {
            be16(&mut v, k);
            be16(&mut v, lo);
            be16(&mut v, hi);
        }
        let ApiVersionsReply::Ranges(keys) =
            decode_api_versions(0, 42, Bytes::from(v.clone())).unwrap()
        else {
            panic!("expected ranges");
        };
        assert_eq!(keys, vec![(0, 0, 9), (3, 0, 12), (22, 0, 4)]);
        let ver = negotiate(&keys).unwrap();
        assert_eq!(ver.produce, 9);
        assert_eq!(ver.metadata, 12);
        assert_eq!(ver.init_producer_id, Some(4));
        assert_eq!(ver.sasl_handshake, None);
        // Wrong correlation id is an error, not a mix-up.
        let e = decode_api_versions(0, 43, Bytes::from(v)).unwrap_err();
        assert!(e.0.contains("correlation"), "{e}");
    }

    #[test]
    fn unsupported_api_versions_version_asks_for_v0() {
        let mut v = Vec::new();
        be32(&mut v, 1);
        be16(&mut v, 35);
        be32(&mut v, 1);
        for x in [18i16, 0, 2] {
            be16(&mut v, x);
        }
        assert_eq!(
            decode_api_versions(3, 1, Bytes::from(v)).unwrap(),
            ApiVersionsReply::UnsupportedVersion
        );
    }

    #[test]
    fn refuses_old_brokers() {
        let e = negotiate(&[(0, 0, 2), (3, 0, 5)]).unwrap_err();
        assert!(e.0.contains("Produce versions 0..2"), "{e}");
        let e = negotiate(&[(0, 0, 9)]).unwrap_err();
        assert!(e.0.contains("Metadata versions none"), "{e}");
    }

    #[test]
    fn decodes_a_hand_built_produce_v3_reply() {
        let mut v = Vec::new();
        be32(&mut v, 9); // correlation id
        be32(&mut v, 1); // topics
        string(&mut v, "monitoring");
        be32(&mut v, 2); // partitions
        be32(&mut v, 0);
        be16(&mut v, 0);
        be64(&mut v, 100); // base offset
        be64(&mut v, -1); // log append time
        be32(&mut v, 1);
        be16(&mut v, 6); // NOT_LEADER_OR_FOLLOWER
        be64(&mut v, -1);
        be64(&mut v, -1);
        be32(&mut v, 0); // throttle
        let r: ProduceResponse =
            decode_response(ApiKey::Produce, 3, 9, Bytes::from(v.clone())).unwrap();
        let parts = parse_produce(&r, "monitoring");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].base_offset, 100);
        assert_eq!(parts[1].error, Some(ResponseError::NotLeaderOrFollower));
        assert_eq!(parts[0].error, None);
        assert_eq!(
            classify(ResponseError::NotLeaderOrFollower),
            ErrorClass::Retriable
        );
        // Truncated replies are errors, not panics.
        for cut in 0..v.len() {
            let _ = decode_response::<ProduceResponse>(
                ApiKey::Produce,
                3,
                9,
                Bytes::copy_from_slice(&v[..cut]),
            );
        }
        assert!(
            decode_response::<ProduceResponse>(
                ApiKey::Produce,
                3,
                9,
                Bytes::from(v[..20].to_vec())
            )
            .is_err()
        );
    }

    #[test]
    fn decodes_a_hand_built_metadata_v1_reply() {
        let mut v = Vec::new();
        be32(&mut v, 5);
        be32(&mut v, 1); // brokers
        be32(&mut v, 1);
        string(&mut v, "localhost");
        be32(&mut v, 9092);
        be16(&mut v, -1); // rack null
        be32(&mut v, 1); // controller
        be32(&mut v, 1); // topics
        be16(&mut v, 0);
        string(&mut v, "t");
        v.push(0); // is_internal
        be32(&mut v, 2); // partitions, out of order on purpose
        for p in [1, 0] {
            be16(&mut v, 0);
            be32(&mut v, p);
            be32(&mut v, 1); // leader
            be32(&mut v, 1);
            be32(&mut v, 1); // replicas
            be32(&mut v, 1);
            be32(&mut v, 1); // isr
        }
        let r: MetadataResponse = decode_response(ApiKey::Metadata, 1, 5, Bytes::from(v)).unwrap();
        let m = parse_metadata(&r, "t").unwrap();
        assert_eq!(
            m.brokers,
            vec![BrokerInfo {
                id: 1,
                addr: "localhost:9092".into()
            }]
        );
        assert_eq!(m.partitions.len(), 2);
        assert_eq!(m.partitions[0].id, 0);
        assert!(parse_metadata(&r, "other").is_err());
    }

    #[test]
    fn absurd_array_count_is_an_error_not_an_abort() {
        // Metadata v1: correlation id 5, then a broker count of 2^31-1.
        let mut v = Vec::new();
        be32(&mut v, 5);
        be32(&mut v, i32::MAX);
        let e = decode_response::<MetadataResponse>(ApiKey::Metadata, 1, 5, Bytes::from(v))
            .unwrap_err();
        assert!(e.0.contains("malformed Metadata"), "{e}");
    }

    #[test]
    fn frame_length_guard() {
        assert!(frame_len(0x1603_0100u32.to_be_bytes()).is_err());
        assert!(frame_len((-1i32).to_be_bytes()).is_err());
        assert!(frame_len(((MAX_FRAME + 1) as i32).to_be_bytes()).is_err());
        assert_eq!(frame_len(10i32.to_be_bytes()).unwrap(), 10);
        // "HTTP" read as a length is far too large.
        assert!(frame_len(*b"HTTP").is_err());
    }

    #[test]
    fn batch_round_trip_with_sequence() {
        let recs: Vec<Record> = (0..3)
            .map(|i| Record {
                key: format!("k{i}").into_bytes(),
                value: vec![i as u8; 10],
                timestamp_ms: 1_700_000_000_000 + i,
            })
            .collect();
        for c in [Compression::None, Compression::Gzip, Compression::Snappy] {
            let pid = ProducerIdentity { id: 77, epoch: 2 };
            let b = encode_batch(&recs, c, pid, 10).unwrap();
            // Deterministic: a retry resends the very same bytes.
            assert_eq!(b, encode_batch(&recs, c, pid, 10).unwrap());
            let mut bb = b.clone();
            let set = RecordBatchDecoder::decode(&mut bb).unwrap();
            assert_eq!(set.records.len(), 3);
            assert_eq!(set.records[0].producer_id, 77);
            assert_eq!(set.records[0].sequence, 10);
            assert_eq!(set.records[2].sequence, 12);
            assert_eq!(set.records[1].timestamp, 1_700_000_000_001);
            assert_eq!(set.records[2].key.as_deref(), Some(&b"k2"[..]));
        }
    }

    #[test]
    fn one_batch_with_or_without_sequences() {
        let recs: Vec<Record> = (0..5)
            .map(|i| Record {
                key: vec![i],
                value: vec![i],
                timestamp_ms: 0,
            })
            .collect();
        for (pid, base) in [
            (ProducerIdentity::NONE, -1),
            (ProducerIdentity { id: 1, epoch: 0 }, 7),
        ] {
            let mut b = encode_batch(&recs, Compression::None, pid, base).unwrap();
            let info = RecordBatchDecoder::decode_batch_info(&mut b).unwrap();
            assert_eq!(info.len(), 1, "exactly one batch");
            assert_eq!(info[0].record_count, 5);
            assert_eq!(info[0].base_sequence, base);
            assert_eq!(info[0].producer_id, pid.id);
        }
    }

    #[test]
    fn error_classes_and_names() {
        let c = |code| classify(response_error(code).unwrap());
        for retriable in [6, 5, 3, 7, 19, 20, 13, 41, 8, 14] {
            assert_eq!(c(retriable), ErrorClass::Retriable, "{retriable}");
        }
        assert_eq!(c(29), ErrorClass::Fatal);
        assert_eq!(c(58), ErrorClass::Fatal);
        assert_eq!(c(10), ErrorClass::Fatal);
        assert_eq!(c(46), ErrorClass::Duplicate);
        assert_eq!(c(45), ErrorClass::ResetProducer);
        assert_eq!(c(999), ErrorClass::Fatal);
        assert_eq!(
            error_name(ResponseError::NotLeaderOrFollower),
            "NOT_LEADER_OR_FOLLOWER (6)"
        );
        assert_eq!(code_name(29), "TOPIC_AUTHORIZATION_FAILED (29)");
        assert_eq!(code_name(999), "UNKNOWN_ERROR_CODE (999)");
        assert_eq!(code_name(0), "NONE (0)");
    }

    #[test]
    fn request_checks_type_the_error_code() {
        use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
        let topic = |code| {
            CreatableTopicResult::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_error_code(code)
        };
        let ok = CreateTopicsResponse::default().with_topics(vec![topic(36)]);
        assert_eq!(CreateTopicsRequest::check(&ok), Ok(()));
        let refused = CreateTopicsResponse::default().with_topics(vec![topic(41)]);
        let e = CreateTopicsRequest::check(&refused).unwrap_err();
        assert_eq!(
            (e.api, e.error),
            (ApiKey::CreateTopics, ResponseError::NotController)
        );
        let busy = InitProducerIdResponse::default().with_error_code(14);
        assert_eq!(
            InitProducerIdRequest::check(&busy).map_err(|e| e.error),
            Err(ResponseError::CoordinatorLoadInProgress)
        );
        let sasl = SaslHandshakeResponse::default()
            .with_error_code(33)
            .with_mechanisms(vec![StrBytes::from_static_str("PLAIN")]);
        let e = SaslHandshakeRequest::check(&sasl).unwrap_err();
        assert_eq!(e.error, ResponseError::UnsupportedSaslMechanism);
        assert_eq!(e.detail.as_deref(), Some("the broker offers: PLAIN"));
    }
}
