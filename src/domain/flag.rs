//! The deadline flags a READY issuance can carry (rows of `flags.kind`).
//! When each applies is the watcher's decision (its `flags` rules).

/// A flag kind; its text is part of the database interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlagKind {
    /// READY and the vbank due date is within `flags.due_soon_lead`.
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
