//! Tools around the daemon that need no credentials: the [`demo`] (the whole
//! job in a minute against the simulator) and [`verify`], the oracle that
//! compares a recorded history with the simulator's ground truth.

pub mod demo;
pub mod verify;
