//! Running it: how the daemon is seen and supervised from outside. Logs
//! ([`telemetry`]), Prometheus [`metrics`], the [`progress`] facts the watcher
//! publishes and the [`health`] judged from them (with the webhook
//! [`sinks`]' state), the database [`snapshot`]
//! behind `STATUS=` lines and gauges, the [`http`] listener, the systemd
//! [`notify`] protocol, and the background [`tasks`] that tie them together.
//!
//! Depends on the vocabulary, settings, the API's answers and the store's
//! results; never on the watcher, which reports into it.

pub mod health;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod progress;
pub mod sinks;
pub mod snapshot;
pub mod stale;
pub mod tasks;
pub mod telemetry;
