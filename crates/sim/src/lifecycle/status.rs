//! An issuance status as the API spells it, known or not.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An issuance status as the API spells it; `Other` carries anything forced
/// through `/_sim` verbatim, so clients can be tested against unknown statuses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Status {
    Waited,
    Ready,
    Done,
    Cancelled,
    Fail,
    Other(Arc<str>),
}

impl Status {
    pub fn as_str(&self) -> &str {
        match self {
            Status::Waited => "WAITED",
            Status::Ready => "READY",
            Status::Done => "DONE",
            Status::Cancelled => "CANCELLED",
            Status::Fail => "FAIL",
            Status::Other(s) => s,
        }
    }

    /// Any string is a status; the five documented ones map to their variants.
    pub fn parse(s: &str) -> Status {
        match s {
            "WAITED" => Status::Waited,
            "READY" => Status::Ready,
            "DONE" => Status::Done,
            "CANCELLED" => Status::Cancelled,
            "FAIL" => Status::Fail,
            other => Status::Other(Arc::from(other)),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Status::parse(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_statuses_round_trip_verbatim() {
        let s = Status::parse("WEIRD");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"WEIRD\"");
        assert_eq!(
            serde_json::from_str::<Status>("\"DONE\"").unwrap(),
            Status::Done
        );
    }
}
