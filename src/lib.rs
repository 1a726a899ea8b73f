//! issuance-watcher: watches Bunjang point issuances until they settle.
#![forbid(unsafe_code)]

pub mod clock;
