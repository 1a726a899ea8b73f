//! What a webhook sink, and each delivery not yet made to it, really is,
//! decided from stored facts and the configuration. Pure: `status` and
//! `events --failed` show these words, and an operator acts on them, so a
//! delivery that no worker will ever attempt again must never read as
//! "retrying".
//!
//! A sink is *removed* when the database knows it (`sinks`) but the
//! configuration has no `[[webhooks]]` of that name: no worker runs for it, so
//! its open deliveries stay open forever unless an operator discards them
//! (`events discard --sink NAME`) or sends the events to a configured sink.

use std::fmt;

use serde::Serialize;

/// How a sink is doing, most urgent first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkHealth {
    /// In the database, not in the configuration: nothing is sent to it.
    Removed,
    /// Its receiver answered 410 Gone: nothing is sent until an operator
    /// clears `sinks.disabled_at`.
    Disabled { since: String, reason: String },
    /// Every attempt since `since` failed (it is still being retried).
    Failing { since: String },
    /// Configured, but no daemon has started it yet (no `sinks` row).
    NotStarted,
    /// Its last attempt was answered with a 2xx (or none has failed).
    Ok,
}

impl SinkHealth {
    /// The sink's health from its configuration and its stored row.
    ///
    /// `row`: `None` when the database has no `sinks` row for it; else its
    /// `disabled_at` / `disabled_reason` and `failing_since`.
    pub fn judge(configured: bool, row: Option<SinkRowFacts<'_>>) -> Self {
        let Some(row) = row else {
            // Not in the database: only a configured sink can be shown at all.
            return if configured {
                Self::NotStarted
            } else {
                Self::Removed
            };
        };
        if !configured {
            return Self::Removed;
        }
        if let Some(since) = row.disabled_at {
            return Self::Disabled {
                since: since.to_owned(),
                reason: row.disabled_reason.unwrap_or("disabled").to_owned(),
            };
        }
        match row.failing_since {
            Some(since) => Self::Failing {
                since: since.to_owned(),
            },
            None => Self::Ok,
        }
    }

    /// The one word scripts compare (`--json`'s `health`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Removed => "removed",
            Self::Disabled { .. } => "disabled",
            Self::Failing { .. } => "failing",
            Self::NotStarted => "not_started",
            Self::Ok => "ok",
        }
    }

    /// Whether a person should look at it (the attention section of `status`).
    pub fn needs_attention(&self) -> bool {
        matches!(
            self,
            Self::Removed | Self::Disabled { .. } | Self::Failing { .. }
        )
    }
}

/// The stored facts of a sink [`SinkHealth::judge`] reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct SinkRowFacts<'a> {
    pub disabled_at: Option<&'a str>,
    pub disabled_reason: Option<&'a str>,
    pub failing_since: Option<&'a str>,
}

/// What an undelivered delivery is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Its sink is no longer configured: never attempted again (discard it,
    /// or redeliver the event to a configured sink).
    SinkRemoved,
    /// The retry horizon passed: no more attempts unless redelivered.
    GivenUp,
    /// Its sink is disabled (410): it waits until the sink is enabled again.
    SinkDisabled,
    /// It will be attempted again at its `next_attempt_at`.
    Retrying,
}

impl DeliveryState {
    /// Decides from the sink's configuration and state and the delivery's.
    ///
    /// A removed sink outranks everything (nothing runs for it); a given-up
    /// delivery stays given up when its disabled sink is enabled again, so
    /// that outranks the sink being disabled.
    pub fn judge(sink_configured: bool, sink_disabled: bool, given_up: bool) -> Self {
        if !sink_configured {
            Self::SinkRemoved
        } else if given_up {
            Self::GivenUp
        } else if sink_disabled {
            Self::SinkDisabled
        } else {
            Self::Retrying
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SinkRemoved => "sink_removed",
            Self::GivenUp => "given_up",
            Self::SinkDisabled => "sink_disabled",
            Self::Retrying => "retrying",
        }
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a sink failing since `failing_since` (`None`: not failing) is
/// to be disabled at `now` under `disable_after` (`None`: never): when it has
/// failed continuously for at least that long. A sink already disabled is
/// not disabled again (once, with one `sink.disabled` event).
pub fn disable_due(
    failing_since: Option<chrono::DateTime<chrono::Utc>>,
    already_disabled: bool,
    disable_after: Option<std::time::Duration>,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    match (failing_since, disable_after) {
        (Some(since), Some(after)) if !already_disabled => {
            crate::domain::time::after(since, after) <= now
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(disabled: Option<&'a str>, failing: Option<&'a str>) -> Option<SinkRowFacts<'a>> {
        Some(SinkRowFacts {
            disabled_at: disabled,
            disabled_reason: disabled.map(|_| "the receiver answered 410 Gone"),
            failing_since: failing,
        })
    }

    #[test]
    fn a_sink_is_removed_before_disabled_before_failing() {
        let at = "2026-12-05T10:00:00.000Z";
        let t = Some(at);
        assert_eq!(SinkHealth::judge(false, row(t, t)), SinkHealth::Removed);
        assert_eq!(SinkHealth::judge(false, None), SinkHealth::Removed);
        assert_eq!(
            SinkHealth::judge(true, row(t, t)).as_str(),
            "disabled",
            "a disabled sink's last attempts failed too: disabled is what to act on"
        );
        assert_eq!(
            SinkHealth::judge(true, row(None, t)),
            SinkHealth::Failing {
                since: at.to_owned()
            }
        );
        assert_eq!(SinkHealth::judge(true, row(None, None)), SinkHealth::Ok);
        assert_eq!(SinkHealth::judge(true, None), SinkHealth::NotStarted);
    }

    #[test]
    fn only_ok_and_not_started_sinks_need_no_attention() {
        let t = Some("2026-12-05T10:00:00.000Z");
        let attention: Vec<bool> = [
            SinkHealth::judge(false, row(None, None)),
            SinkHealth::judge(true, row(t, None)),
            SinkHealth::judge(true, row(None, t)),
            SinkHealth::judge(true, None),
            SinkHealth::judge(true, row(None, None)),
        ]
        .iter()
        .map(SinkHealth::needs_attention)
        .collect();
        assert_eq!(attention, [true, true, true, false, false]);
    }

    #[test]
    fn a_delivery_no_worker_will_attempt_never_reads_as_retrying() {
        use DeliveryState::*;
        // (configured, disabled, given up) -> state
        let cases = [
            ((false, false, false), SinkRemoved),
            ((false, true, true), SinkRemoved),
            ((true, true, true), GivenUp),
            ((true, false, true), GivenUp),
            ((true, true, false), SinkDisabled),
            ((true, false, false), Retrying),
        ];
        for ((configured, disabled, given_up), state) in cases {
            assert_eq!(
                DeliveryState::judge(configured, disabled, given_up),
                state,
                "{configured} {disabled} {given_up}"
            );
        }
        assert_eq!(
            serde_json::to_value(SinkRemoved).unwrap(),
            serde_json::json!("sink_removed")
        );
    }

    #[test]
    fn a_sink_is_disabled_once_it_has_failed_for_disable_after() {
        use chrono::TimeZone as _;
        let since = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let five_days = Some(std::time::Duration::from_secs(5 * 86400));
        let at = |secs: i64| since + chrono::Duration::seconds(secs);
        assert!(!disable_due(
            Some(since),
            false,
            five_days,
            at(5 * 86400 - 1)
        ));
        assert!(disable_due(Some(since), false, five_days, at(5 * 86400)));
        assert!(disable_due(Some(since), false, five_days, at(9 * 86400)));
        assert!(
            !disable_due(Some(since), true, five_days, at(9 * 86400)),
            "once"
        );
        assert!(
            !disable_due(None, false, five_days, at(9 * 86400)),
            "not failing"
        );
        assert!(
            !disable_due(Some(since), false, None, at(900 * 86400)),
            "off"
        );
    }
}
