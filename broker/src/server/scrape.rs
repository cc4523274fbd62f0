//! The server's shared state as telemetry's [`ScrapeSource`]: what the
//! scrape-time gauges are computed from (telemetry does not depend on the
//! server; the server plugs itself in here).

use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::groups::GroupCoordinator;
use crate::telemetry::ScrapeSource;
use crate::topics::TopicRegistry;

impl ScrapeSource for Shared {
    fn topics(&self) -> &TopicRegistry {
        &self.topics
    }

    fn groups(&self) -> &GroupCoordinator {
        &self.groups
    }

    fn connections_open(&self) -> usize {
        Shared::connections_open(self)
    }

    fn started(&self) -> std::time::Instant {
        self.started
    }

    fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }
}
