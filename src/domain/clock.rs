//! The business clock: time that can run faster than the wall clock, so that
//! a day-long lifecycle plays out in seconds. It lives in its own crate
//! (`crates/clock`) because the simulator runs on the same clock: the demo and
//! the tests hand the simulator's clock to the watcher.

pub use business_clock::Clock;
