//! The test kit every integration test shares:
//!
//! - [`api`]: a scripted Bunjang API on loopback that verifies each request's JWT;
//! - [`cadence`]: READY answers with a chosen start of READY, for cadence tests;
//! - [`config`]: one builder for the daemon's settings, in-process or as a TOML file;
//! - [`daemon`]: the `issuance-watcher` binary as a child process, with a clean
//!   environment and its stderr in a file;
//! - [`metrics`]: a daemon's `/metrics` read over its HTTP listener;
//! - [`prometheus`]: a real Prometheus server on loopback, scraping and alerting;
//! - [`receiver`]: a webhook receiver on loopback that verifies signatures
//!   with the reference library and can fail, hang, throttle, refuse or go away;
//! - [`secrets`]: the one check that no form of a secret or token leaked;
//! - [`running`]: the watcher loop in-process, with database read helpers;
//! - [`wait`]: the one way tests wait (`wait_for`, `eventually` and their
//!   blocking twins): a deadline, and a failure saying what was awaited and
//!   what was last seen;
//! - [`sim_client`]: a client of the simulator that signs its requests;
//! - [`charging`]: a simulator for charges, a scripted charge endpoint, request rows;
//! - [`schema`]: the published JSON Schema of events, and the check of a body or row against it.
//!
//! Not every helper is used by every suite yet, hence the `dead_code` allowance.
#![allow(dead_code, unused_imports)]

pub mod api;
pub mod cadence;
pub mod charging;
pub mod config;
pub mod daemon;
pub mod db;
pub mod engine;
pub mod metrics;
pub mod postgres;
pub mod prometheus;
pub mod receiver;
pub mod running;
pub mod schema;
pub mod secrets;
/// The simulator crate's own test client, shared rather than copied.
#[path = "../../../crates/sim/tests/sim/client.rs"]
pub mod sim_client;
pub mod site;
/// The simulator crate's waiting helpers, shared as the client is.
#[path = "../../../crates/sim/tests/sim/wait.rs"]
pub mod wait;
pub mod webdriver;

pub use api::{Reply, Request, ScriptedApi, Stream};
pub use config::{ACCESS_KEY, SECRET_B64, TestSettings, settings};
pub use daemon::{BIN, Daemon, cli};
pub use receiver::{Mode, PREVIOUS_WEBHOOK_SECRET, Receiver, WEBHOOK_SECRET};
pub use running::{Running, eventually, row};
pub use secrets::{DB_PASSWORD, assert_no_secret, assert_no_secret_bytes};
