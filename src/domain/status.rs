//! Issuance statuses and what the lifecycle allows.

use std::fmt;
use std::str::FromStr;

use super::names::{by_name, shown};

/// A status the API documents. Anything else is an anomaly, never a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// 채번준비: the virtual account number is being prepared.
    Waited,
    /// 입금대기: the virtual account awaits the deposit until its due date.
    Ready,
    /// 처리완료: deposit received, points credited.
    Done,
    /// 취소: the virtual account was cancelled.
    Cancelled,
    /// 실패: failed; never reused.
    Fail,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Self::Waited,
        Self::Ready,
        Self::Done,
        Self::Cancelled,
        Self::Fail,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waited => "WAITED",
            Self::Ready => "READY",
            Self::Done => "DONE",
            Self::Cancelled => "CANCELLED",
            Self::Fail => "FAIL",
        }
    }

    /// A terminal issuance never changes again and is never polled again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Done | Self::Cancelled | Self::Fail)
    }

    /// Whether `from -> to` is a move the documented lifecycle allows
    /// (`None` is "not seen before": any first observation is fine).
    pub fn is_expected_move(from: Option<Status>, to: Status) -> bool {
        use Status::*;
        match from {
            None => true,
            Some(Waited) => matches!(to, Ready | Fail | Done | Cancelled),
            Some(Ready) => matches!(to, Done | Cancelled | Fail),
            Some(Done | Cancelled | Fail) => false,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        by_name(&Self::ALL, s, Self::as_str).ok_or_else(|| UnknownStatus(shown(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_done_cancelled_and_fail_are_terminal() {
        let terminal: Vec<_> = Status::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, [Status::Done, Status::Cancelled, Status::Fail]);
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(status));
        }
        assert!("ready".parse::<Status>().is_err());
        assert!("".parse::<Status>().is_err());
    }

    #[test]
    fn moves_out_of_a_terminal_status_are_unexpected() {
        assert!(Status::is_expected_move(
            Some(Status::Waited),
            Status::Ready
        ));
        assert!(Status::is_expected_move(Some(Status::Ready), Status::Done));
        assert!(Status::is_expected_move(None, Status::Done));
        assert!(!Status::is_expected_move(Some(Status::Done), Status::Ready));
        assert!(!Status::is_expected_move(
            Some(Status::Ready),
            Status::Waited
        ));
        assert!(!Status::is_expected_move(
            Some(Status::Cancelled),
            Status::Done
        ));
    }
}
