//! ApiVersions: the table's ranges (`api.rs`), nothing else. Its response
//! header is always v0; an unserved version is answered with
//! UNSUPPORTED_VERSION and the ranges in the v0 form (see `api::dispatch`).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use skiff_protocol::messages::ApiKey as SkiffApi;

use crate::kafka::api::{KafkaApi, Reply, SERVED};
use crate::kafka::errors;
use crate::server::api::{Ctx, Runs};

fn ranges() -> Vec<ApiVersion> {
    SERVED
        .iter()
        .map(|s| {
            ApiVersion::default()
                .with_api_key(s.api as i16)
                .with_min_version(s.min)
                .with_max_version(s.max)
        })
        .collect()
}

/// The answer to an ApiVersions request at a version this broker does not
/// serve (encoded at v0).
pub(crate) fn unsupported() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(errors::UNSUPPORTED_VERSION)
        .with_api_keys(ranges())
}

/// Needs nothing: clients ask before anything else (and before SASL).
impl KafkaApi for ApiVersionsRequest {
    const RUNS: Runs = Runs::Inline;
    const SKIFF_API: SkiffApi = SkiffApi::Status;

    async fn handle(self, _version: i16, _ctx: Ctx) -> Reply<ApiVersionsResponse> {
        Reply::Respond(ApiVersionsResponse::default().with_api_keys(ranges()))
    }
}
