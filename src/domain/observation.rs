//! What one successful lookup said about an issuance, as the rest of the
//! program sees it (parsed and validated by the API client).

use chrono::{DateTime, Utc};

use super::status::Status;

/// What one successful lookup said about an issuance.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub status: Status,
    pub amount: Option<i64>,
    pub created_at: Option<DateTime<Utc>>,
    pub modified_at: Option<DateTime<Utc>>,
    pub vbank: Option<Vbank>,
    /// Fields that were present but unusable; recorded as the issuance's last error.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Vbank {
    pub due_at: Option<DateTime<Utc>>,
    pub account_number: Option<String>,
    pub bank_name: Option<String>,
    pub holder_name: Option<String>,
}
