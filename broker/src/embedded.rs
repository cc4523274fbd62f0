//! One-line embedded brokers for users' own tests: [`Broker::start_temp`]
//! starts a broker on 127.0.0.1, port 0, in a fresh temporary directory
//! that the returned [`TempBroker`] owns and removes when dropped.
//!
//! Invariant: the directory outlives the broker. [`TempBroker::shutdown`]
//! stops the broker cleanly before the directory goes; a `TempBroker`
//! dropped without it cancels the broker's tasks first, then removes the
//! directory.

use std::net::SocketAddr;
use std::path::Path;

use crate::{Broker, BrokerConfig, BrokerError, BrokerHandle};

/// A broker running in a temporary directory (see the module docs).
#[derive(Debug)]
pub struct TempBroker {
    // Declared before `dir`: fields drop in order, the broker first.
    handle: Option<BrokerHandle>,
    dir: tempfile::TempDir,
}

impl Broker {
    /// Starts a broker for a test: 127.0.0.1 on a free port, a new
    /// temporary data directory, every other setting at its default.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), skiff_broker::BrokerError> {
    /// let broker = skiff_broker::Broker::start_temp().await?;
    /// let addr = broker.local_addr(); // connect a client here
    /// # let _ = addr;
    /// broker.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub async fn start_temp() -> Result<TempBroker, BrokerError> {
        Self::start_temp_with(BrokerConfig::default()).await
    }

    /// Like [`start_temp`](Self::start_temp) with other settings from
    /// `config`; its `data_dir` and `listen` are replaced.
    pub async fn start_temp_with(config: BrokerConfig) -> Result<TempBroker, BrokerError> {
        let dir = tempfile::Builder::new()
            .prefix("skiff-test-")
            .tempdir()
            .map_err(|source| BrokerError::DataDir {
                path: std::env::temp_dir(),
                source,
            })?;
        let handle = Broker::start(BrokerConfig {
            data_dir: dir.path().to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..config
        })
        .await?;
        Ok(TempBroker {
            handle: Some(handle),
            dir,
        })
    }
}

impl TempBroker {
    /// The running broker.
    // `handle` is `Some` from construction until `shutdown`, which consumes
    // `self`, takes it; `Drop` is the only other reader.
    #[allow(clippy::expect_used)]
    pub fn handle(&self) -> &BrokerHandle {
        self.handle
            .as_ref()
            .expect("the handle is only taken by shutdown, which consumes self")
    }

    /// The client address (127.0.0.1 and the port picked).
    pub fn local_addr(&self) -> SocketAddr {
        self.handle().local_addr()
    }

    /// The temporary data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the broker cleanly, then removes its directory.
    pub async fn shutdown(mut self) -> Result<(), BrokerError> {
        match self.handle.take() {
            Some(handle) => handle.shutdown().await,
            None => Ok(()),
        }
    }
}

impl Drop for TempBroker {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            handle.cancel();
        }
    }
}
