//! Produce and InitProducerId. A produce runs in the connection's ordered
//! pipeline, as skiff's does: for each partition in request order, its one
//! Kafka batch becomes a skiff magic-2 batch by a header rewrite
//! (`skiff_protocol::kafka_batch`: its records section is kept as sent),
//! authorized and resolved
//! exactly as a skiff produce (the same rule, topic lookup and timestamp
//! check), and queued on its log; then the request's order is fixed and it
//! waits for every partition's group commit. Every acknowledged batch is
//! durable under the broker's `fsync` mode whatever `acks` says (0, 1 and
//! -1 differ only in whether an answer is sent); acks = 0 gets none.
//!
//! Idempotent producers: the batch keeps its producer id, epoch and base
//! sequence, so the log's per-producer checks apply unchanged: a retried
//! batch is answered with its original offsets, a gap with
//! OUT_OF_ORDER_SEQUENCE_NUMBER. Transactions are not served: a
//! transactional produce or InitProducerId gets
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which clients treat as fatal
//! at once.

use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    InitProducerIdRequest, ProduceRequest, ProduceResponse, ProducerId,
};
use skiff_protocol::ErrorCode;
use skiff_protocol::messages::{ApiKey as SkiffApi, ProduceRequest as SkiffProduce};

use super::{kstr, ktopic};
use crate::kafka::api::{KafkaApi, Reply};
use crate::kafka::errors;
use crate::kafka::records::{self, TranslateError};
use crate::server::api::{Ctx, Handler, Runs};
use crate::server::failure::Failure;
use crate::server::handlers::blocking;
use crate::server::handlers::produce::{self, Durable};

/// A partition's failure, as Kafka reports it.
struct PartitionError {
    code: i16,
    message: String,
}

impl From<Failure> for PartitionError {
    fn from(f: Failure) -> Self {
        Self {
            code: errors::topic_code(&f),
            message: f.message,
        }
    }
}

impl From<TranslateError> for PartitionError {
    fn from(e: TranslateError) -> Self {
        use skiff_protocol::compression::CompressionError;
        let code = match &e {
            TranslateError::Magic(_) => errors::UNSUPPORTED_VERSION,
            TranslateError::Transactional(_) => errors::INVALID_RECORD,
            TranslateError::Compression(CompressionError::TooLarge { .. }) => {
                errors::MESSAGE_TOO_LARGE
            }
            _ => errors::CORRUPT_MESSAGE,
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

fn failed(code: i16, message: impl Into<String>) -> PartitionError {
    PartitionError {
        code,
        message: message.into(),
    }
}

/// One partition of a produce request on its way.
struct Slot {
    topic: usize,
    partition: i32,
    bytes: u64,
    state: Result<Durable, PartitionError>,
}

/// Needs `produce` on each topic (per partition, as skiff's produce).
impl KafkaApi for ProduceRequest {
    const RUNS: Runs = Runs::InOrder;
    const SKIFF_API: SkiffApi = SkiffApi::Produce;

    async fn handle(self, version: i16, ctx: Ctx) -> Reply<ProduceResponse> {
        let started = Instant::now();
        let silent = self.acks == 0;
        let refusal = if self.transactional_id.is_some() {
            Some(failed(
                errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                "transactions are not supported by skiff",
            ))
        } else if ![0, 1, -1].contains(&self.acks) {
            Some(failed(
                errors::INVALID_REQUIRED_ACKS,
                format!("acks {} is not 0, 1 or -1", self.acks),
            ))
        } else {
            None
        };
        let names: Vec<String> = self
            .topic_data
            .iter()
            .map(|t| t.name.0.as_str().to_owned())
            .collect();
        let mut slots = Vec::new();
        for (topic, data) in self.topic_data.into_iter().enumerate() {
            for p in data.partition_data {
                let bytes = p.records.as_ref().map_or(0, |r| r.len() as u64);
                let state = match &refusal {
                    Some(r) => Err(failed(r.code, r.message.clone())),
                    None => queue(&ctx, &names[topic], p.index, p.records).await,
                };
                slots.push(Slot {
                    topic,
                    partition: p.index,
                    bytes,
                    state,
                });
            }
        }
        // Every batch is queued on its log: the next request may start.
        ctx.order_fixed();
        let t = ctx.telemetry();
        let mut responses: Vec<TopicProduceResponse> = names
            .iter()
            .map(|n| TopicProduceResponse::default().with_name(ktopic(n.clone())))
            .collect();
        for slot in slots {
            let result = match slot.state {
                Ok(durable) => durable.await.map_err(PartitionError::from),
                Err(e) => Err(e),
            };
            let mut answer = PartitionProduceResponse::default().with_index(slot.partition);
            match result {
                Ok(info) => {
                    t.produced(
                        &t.topic(&names[slot.topic]),
                        info.last_offset - info.base_offset + 1,
                        slot.bytes,
                        started.elapsed(),
                    );
                    answer = answer.with_base_offset(info.base_offset as i64);
                }
                Err(e) => {
                    t.failed(true, started.elapsed());
                    tracing::debug!(topic = %names[slot.topic], partition = slot.partition, code = e.code, message = %e.message, "kafka produce refused");
                    answer = answer.with_error_code(e.code).with_base_offset(-1);
                    if version >= 8 {
                        answer = answer.with_error_message(Some(kstr(e.message)));
                    }
                }
            }
            responses[slot.topic].partition_responses.push(answer);
        }
        if silent {
            return Reply::Silent;
        }
        Reply::Respond(ProduceResponse::default().with_responses(responses))
    }
}

/// Translates, authorizes, resolves and queues one partition's batch.
async fn queue(
    ctx: &Ctx,
    topic: &str,
    partition: i32,
    records: Option<Bytes>,
) -> Result<Durable, PartitionError> {
    let records = records.ok_or_else(|| failed(errors::INVALID_REQUEST, "no records"))?;
    let partition = u32::try_from(partition).map_err(|_| {
        failed(
            errors::UNKNOWN_TOPIC_OR_PARTITION,
            format!("partition {partition} does not exist"),
        )
    })?;
    let batches = records::split_batches(&records)?;
    let [batch] = <[Bytes; 1]>::try_from(batches).map_err(|b| {
        failed(
            errors::INVALID_RECORD,
            format!(
                "a produce request carries exactly one record batch per partition, not {}",
                b.len()
            ),
        )
    })?;
    // A header rewrite and one copy: the records are walked (and inflated)
    // by the log's check, on the blocking pool when they are compressed.
    let translated = records::kafka_to_skiff(&batch)?;
    let request = SkiffProduce {
        topic: topic.to_owned(),
        partition,
        batch: translated,
    };
    let may_create = Handler::authorize(&request, ctx)?;
    let (_, durable) = produce::queue(ctx, request, may_create).await?;
    Ok(durable)
}

/// Hands out a new idempotent-producer id (epoch 0, as skiff's own: ids are
/// never reused). Needs any authenticated user (Kafka's IDEMPOTENT_WRITE).
impl KafkaApi for InitProducerIdRequest {
    const RUNS: Runs = Runs::Task;
    const SKIFF_API: SkiffApi = SkiffApi::InitProducerId;

    async fn handle(self, _version: i16, ctx: Ctx) -> Reply<InitProducerIdResponse> {
        let refused = |code| {
            Reply::Respond(
                InitProducerIdResponse::default()
                    .with_error_code(code)
                    .with_producer_id(ProducerId(-1)),
            )
        };
        if self
            .transactional_id
            .as_ref()
            .is_some_and(|id| !id.0.is_empty())
        {
            return refused(errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
        }
        if let Err(f) = ctx.authorizer().any_user() {
            return refused(errors::code_of(f.code, true));
        }
        let allocated = blocking(move || {
            ctx.producer_ids()
                .allocate()
                .map_err(|e| Failure::new(ErrorCode::StorageError, e.to_string()))
        })
        .await;
        match allocated {
            Ok(id) => Reply::Respond(
                InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(id as i64))
                    .with_producer_epoch(0),
            ),
            Err(f) => refused(errors::code_of(f.code, true)),
        }
    }
}
