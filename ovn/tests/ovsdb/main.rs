//! nauti-ovn against real ovsdb-server processes (and, for the cases a real server cannot be
//! made to produce, a scripted peer). One binary, one module per topic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bad_input;
mod load_balancer;
mod monitor;
mod plumbing;
mod reconnect;
mod router;
mod tls;
mod transact;
mod typed;

use std::path::Path;
use std::time::Duration;

use nauti_ovn::{Client, ClientConfig, Endpoint};
use nauti_testbed::TestDir;
use nauti_testbed::ovn::{NB_SCHEMA, OvsdbServer, RunDir, VSWITCH_SCHEMA};

/// A standalone ovsdb-server on a fresh database; fields drop server first, folders last.
pub struct Fixture {
    pub server: OvsdbServer,
    pub run: RunDir,
    pub dir: TestDir,
}

pub fn mk_server(test: &str, schema: &str) -> Fixture {
    let dir = TestDir::new(test).unwrap();
    let run = RunDir::new("novt").unwrap();
    let server = OvsdbServer::start(
        "db",
        Path::new(schema),
        run.path(),
        None,
        &dir.log("ovsdb-server"),
    )
    .unwrap();
    Fixture { server, run, dir }
}

pub fn mk_nb(test: &str) -> Fixture {
    mk_server(test, NB_SCHEMA)
}

pub fn mk_vswitch(test: &str) -> Fixture {
    mk_server(test, VSWITCH_SCHEMA)
}

/// Test settings: fast reconnects and timeouts so failures show quickly.
pub fn mk_config(remote: &str) -> ClientConfig {
    let mut config = ClientConfig::new(Endpoint::parse(remote).unwrap());
    config.backoff_min = Duration::from_millis(20);
    config.backoff_max = Duration::from_millis(200);
    config.request_timeout = Duration::from_secs(10);
    config.connect_timeout = Duration::from_secs(5);
    config
}

pub async fn mk_client(remote: &str) -> Client {
    Client::connect(mk_config(remote)).await.unwrap()
}
