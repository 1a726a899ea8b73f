//! The watcher's integration tests: one binary, one module per suite, one kit
//! (`common`), so the test build links once (matklad, "Delete Cargo Integration
//! Tests"). Run one suite by its module path, e.g. `cargo test --test it webhooks::`;
//! the long reliability runs are `#[ignore]`d and selected the same way:
//! `cargo test --test it -- --ignored crash_safety:: upstream_faults:: concurrent_writers::`.
//! The simulator's own tests live in `crates/sim/tests/`.

mod common;
mod reliability;
mod support;

mod architecture;
mod balance;
mod cadence;
mod charge_events;
mod charge_safety;
mod charges;
mod check_config;
mod cli;
mod cli_newcomer;
mod concurrent_writers;
mod crash_safety;
mod dashboard;
mod dashboard_browser;
mod database_access;
mod delivery_log;
mod demo;
mod event_schema;
mod hostile_input;
mod kit;
mod leases;
mod migrations;
mod notify;
mod observe;
mod operating_faults;
mod operator_kit;
mod postgres_schema;
mod prometheus;
mod redirects;
mod secret_leaks;
mod several_daemons;
mod shared_rate;
mod simulator_clock;
mod sink_holders;
mod sinks;
mod status;
mod store_contract;
mod systemd_unit;
mod top_up;
mod try_it_locally;
mod upstream_faults;
mod wake_ups;
mod watcher;
mod webhook_operations;
mod webhook_rotation;
mod webhook_scheduling;
mod webhooks;
