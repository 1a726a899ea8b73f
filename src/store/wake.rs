//! Wake-ups: a hint that another program (or another daemon) inserted rows a
//! loop waits for, so that it looks now instead of at its next re-check.
//!
//! On PostgreSQL the schema's triggers `NOTIFY` on every commit that inserts
//! issuances, charge requests or events (`migrations/postgres/*_wake_ups.sql`),
//! and the store `LISTEN`s on a connection of its own (`postgres/listen.rs`).
//! A notification sent while that connection was down is lost, so every
//! (re)connect, and every loss of the connection, wakes every topic once: the
//! loops read again, which catches up on whatever they missed. On SQLite
//! nothing fires, and the loops keep re-checking every `poll.idle_recheck`.
//!
//! A wake-up is only ever a reason to look: what is due is read from the
//! tables, so a spurious one costs one read and a lost one the re-check.

use tokio::sync::watch;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// Rows inserted into `issuances` (the watcher's claims).
    Issuances,
    /// Rows inserted into `charge_requests` (the charge sender).
    Charges,
    /// Rows inserted into `events` (the delivery workers).
    Events,
}

impl Topic {
    pub const ALL: [Topic; 3] = [Topic::Issuances, Topic::Charges, Topic::Events];

    /// The notification's payload for this topic (the migration's trigger arguments).
    pub fn payload(self) -> &'static str {
        match self {
            Topic::Issuances => "issuances",
            Topic::Charges => "charges",
            Topic::Events => "events",
        }
    }
}

/// Where wake-ups are published: one counter per topic.
#[derive(Debug)]
pub(crate) struct Hub {
    topics: [watch::Sender<u64>; 3],
}

impl Hub {
    pub(crate) fn new() -> Self {
        Self {
            topics: std::array::from_fn(|_| watch::Sender::new(0)),
        }
    }

    fn index(topic: Topic) -> usize {
        match topic {
            Topic::Issuances => 0,
            Topic::Charges => 1,
            Topic::Events => 2,
        }
    }

    /// Wakes whoever waits on `topic`.
    pub(crate) fn wake(&self, topic: Topic) {
        self.topics[Self::index(topic)].send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Wakes every topic: after a (re)connect, a lost connection, or a
    /// notification this binary does not know.
    pub(crate) fn wake_all(&self) {
        for topic in Topic::ALL {
            self.wake(topic);
        }
    }

    /// Wakes the topic a notification's `payload` names (all for an unknown one).
    pub(crate) fn notified(&self, payload: &str) {
        match Topic::ALL.into_iter().find(|t| t.payload() == payload) {
            Some(topic) => self.wake(topic),
            None => self.wake_all(),
        }
    }

    pub(crate) fn subscribe(&self, topic: Topic) -> WakeUp {
        WakeUp {
            receiver: Some(self.topics[Self::index(topic)].subscribe()),
        }
    }
}

/// One waiter's wake-ups on one topic. Remembers what it has seen: a wake-up
/// that came while its owner was busy is not lost, [`WakeUp::changed`]
/// resolves at once for it.
#[derive(Debug)]
pub struct WakeUp {
    receiver: Option<watch::Receiver<u64>>,
}

impl WakeUp {
    /// One that never fires (SQLite: the loops' re-checks stay).
    pub fn never() -> Self {
        Self { receiver: None }
    }

    /// Resolves when the topic was woken since this last resolved (or since
    /// it was made). Cancel-safe: usable as a branch of `select!`.
    pub async fn changed(&mut self) {
        if let Some(receiver) = &mut self.receiver {
            if receiver.changed().await.is_ok() {
                return;
            }
            // The source is gone (the store closed): nothing fires any more.
            self.receiver = None;
        }
        std::future::pending::<()>().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_wake_up_while_busy_is_kept_and_topics_are_separate() {
        let hub = Hub::new();
        let mut issuances = hub.subscribe(Topic::Issuances);
        let mut events = hub.subscribe(Topic::Events);
        hub.notified("issuances");
        let soon = Duration::from_millis(50);
        assert!(
            tokio::time::timeout(soon, issuances.changed())
                .await
                .is_ok()
        );
        assert!(
            tokio::time::timeout(soon, issuances.changed())
                .await
                .is_err()
        );
        assert!(tokio::time::timeout(soon, events.changed()).await.is_err());
        hub.notified("something new");
        assert!(tokio::time::timeout(soon, events.changed()).await.is_ok());
        assert!(
            tokio::time::timeout(soon, issuances.changed())
                .await
                .is_ok()
        );
        let mut never = WakeUp::never();
        assert!(tokio::time::timeout(soon, never.changed()).await.is_err());
    }
}
