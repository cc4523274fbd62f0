//! Shared harness for the CLI tests: an embedded broker on 127.0.0.1:0 in a
//! temporary directory, and the real `skiff` binary pointed at it.

#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use skiff_broker::{Broker, BrokerConfig, BrokerHandle};

/// A broker running on its own runtime, shut down on drop.
pub struct TestBroker {
    runtime: tokio::runtime::Runtime,
    handle: Option<BrokerHandle>,
    pub addr: String,
    /// The Kafka listener's address, when the config turned it on.
    pub kafka_addr: Option<String>,
    /// The metrics endpoint's address, when the config turned it on.
    pub metrics_addr: Option<String>,
    _dir: tempfile::TempDir,
}

impl TestBroker {
    pub fn start() -> TestBroker {
        TestBroker::start_with(|_| {})
    }

    /// A broker whose config `adjust` changes first (e.g. to turn TLS on).
    pub fn start_with(adjust: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut config = BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().expect("addr"),
            ..BrokerConfig::default()
        };
        adjust(&mut config);
        let handle = runtime
            .block_on(Broker::start(config))
            .expect("broker starts");
        let addr = handle.local_addr().to_string();
        let kafka_addr = handle.kafka_addr().map(|a| a.to_string());
        let metrics_addr = handle.metrics_addr().map(|a| a.to_string());
        TestBroker {
            runtime,
            handle: Some(handle),
            addr,
            kafka_addr,
            metrics_addr,
            _dir: dir,
        }
    }

    pub fn skiff(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
        cmd.env("SKIFF_BROKER", &self.addr).args(args);
        cmd
    }

    pub fn run(&self, args: &[&str], stdin: &str) -> Output {
        self.run_env(args, stdin, &[])
    }

    /// Runs `skiff` with `stdin` and extra environment variables.
    pub fn run_env(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
        let mut cmd = self.skiff(args);
        cmd.envs(env.iter().copied());
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("skiff runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("skiff finishes")
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = self.runtime.block_on(handle.shutdown());
        }
    }
}
