//! The simulator's own tests, over real HTTP: one binary, one module per part
//! of the simulated API, and the signed client (`client`) that the watcher's
//! tests share.

// Shared with the watcher's tests, which use parts these do not.
#[allow(dead_code)]
mod client;

mod auth;
mod control;
mod faults;
mod lifecycle;
mod lookup;
mod scale;
