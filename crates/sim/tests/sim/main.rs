//! The simulator's own tests, over real HTTP: one binary, one module per part
//! of the simulated API, and the signed client (`client`) and the waiting
//! helpers (`wait`) that the watcher's tests share.

// Shared with the watcher's tests, which use parts these do not.
#[allow(dead_code)]
mod client;
// The one way tests wait, shared with the watcher's tests too.
#[allow(dead_code)]
mod wait;

mod auth;
mod control;
mod faults;
mod lifecycle;
mod lookup;
mod scale;
