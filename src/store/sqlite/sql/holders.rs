//! Which daemon holds each sink (`holders.rs`).

/// Sink ?1's holder and whether its hold ran out by ?2.
pub(in crate::store) const HOLDER: &str =
    "SELECT holder, coalesce(hold_expires_at <= ?2, 1) FROM sinks WHERE name = ?1";

/// Sink ?1 is held by ?2 until ?3, with a new fence (returned).
pub(in crate::store) const TAKE_SINK: &str =
    "UPDATE sinks SET holder = ?2, holder_fence = holder_fence + 1, hold_expires_at = ?3
     WHERE name = ?1 RETURNING holder_fence";

/// Sink ?1's hold by ?2 with fence ?3 runs until ?4 (no row: lost).
pub(in crate::store) const RENEW_SINK: &str =
    "UPDATE sinks SET hold_expires_at = ?4 WHERE name = ?1 AND holder = ?2 AND holder_fence = ?3";

/// Sink ?1's hold by ?2 with fence ?3 ends.
pub(in crate::store) const RELEASE_SINK: &str =
    "UPDATE sinks SET holder = NULL, hold_expires_at = NULL
     WHERE name = ?1 AND holder = ?2 AND holder_fence = ?3";

/// Whether ?2 holds sink ?1 with fence ?3 (no row: not registered).
pub(in crate::store) const HELD: &str =
    "SELECT coalesce(holder = ?2 AND holder_fence = ?3, 0) FROM sinks WHERE name = ?1";

/// The dead daemon ?1 holds no sink any more.
pub(in crate::store) const FREE_SINKS_OF: &str =
    "UPDATE sinks SET holder = NULL, hold_expires_at = NULL WHERE holder = ?1";

/// Every sink's holder, by name.
pub(in crate::store) const SINK_HOLDERS: &str =
    "SELECT name AS sink, holder, hold_expires_at FROM sinks ORDER BY name";
