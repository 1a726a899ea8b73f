//! The deadline flags a READY issuance can carry (rows of `flags`).
//! When each applies is the watcher's decision (its `flags` rules).

use std::time::Duration;

/// A flag kind; its text is part of the database interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlagKind {
    /// READY and the vbank due date is within a rung of `flags.due_soon_lead`.
    DueSoon,
    /// Still READY after the vbank due date.
    Overdue,
}

impl FlagKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DueSoon => "DUE_SOON",
            Self::Overdue => "OVERDUE",
        }
    }
}

/// One flag that applies: its kind and, for DUE_SOON, the rung of the lead
/// ladder it is raised for. Each (kind, lead) is raised once per issuance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flag {
    pub kind: FlagKind,
    /// The rung (DUE_SOON); zero for OVERDUE.
    pub lead: Duration,
}

impl Flag {
    pub fn due_soon(lead: Duration) -> Self {
        Self {
            kind: FlagKind::DueSoon,
            lead,
        }
    }

    pub fn overdue() -> Self {
        Self {
            kind: FlagKind::Overdue,
            lead: Duration::ZERO,
        }
    }

    /// The rung as stored (`flags.lead_ms`).
    pub fn lead_ms(self) -> i64 {
        i64::try_from(self.lead.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A rung as people write it and as events carry it (`lead`): the largest
/// whole unit of hours, minutes, seconds or milliseconds (`24h`, `90m`, `1500ms`),
/// the same text the schema's trigger writes.
pub fn format_lead(lead: Duration) -> String {
    let ms = lead.as_millis();
    match ms {
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leads_are_written_in_their_largest_whole_unit() {
        let text = |ms| format_lead(Duration::from_millis(ms));
        assert_eq!(text(86_400_000), "24h");
        assert_eq!(text(5_400_000), "90m");
        assert_eq!(text(30_000), "30s");
        assert_eq!(text(1500), "1500ms");
    }
}
