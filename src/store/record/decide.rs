//! What a poll's result means, decided without the database: both engines
//! write what these functions decide, so the two cannot disagree on it.

use crate::domain::status::Status;
use crate::store::TransitionRecorded;

/// The transition from the stored status `previous` (the one the observation
/// was written over) to the observed `to`; none if they are the same. A move
/// the status machine does not expect (backwards, or from a stored status
/// this binary does not know) is still recorded, with its anomaly.
pub(in crate::store) fn transition(
    id: &str,
    previous: Option<String>,
    to: Status,
) -> Option<TransitionRecorded> {
    if previous.as_deref() == Some(to.as_str()) {
        return None;
    }
    let anomaly = match previous.as_deref().map(str::parse::<Status>) {
        Some(Err(_)) => Some(format!(
            "unexpected move from unknown stored status to {to}"
        )),
        Some(Ok(from)) if !Status::is_expected_move(Some(from), to) => {
            Some(format!("unexpected move {from} -> {to}"))
        }
        _ => None,
    };
    Some(TransitionRecorded {
        issuance_id: id.to_owned(),
        from: previous,
        to,
        anomaly,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transition_is_a_change_of_the_stored_status() {
        assert_eq!(transition("1", Some("READY".into()), Status::Ready), None);
        let first = transition("1", None, Status::Waited).unwrap();
        assert_eq!(
            (first.from, first.to, first.anomaly),
            (None, Status::Waited, None)
        );
        let unknown = transition("1", Some("ready".into()), Status::Ready).unwrap();
        assert_eq!(
            unknown.anomaly.as_deref(),
            Some("unexpected move from unknown stored status to READY")
        );
        let backward = transition("1", Some("DONE".into()), Status::Ready).unwrap();
        assert_eq!(
            backward.anomaly.as_deref(),
            Some("unexpected move DONE -> READY")
        );
        let expected = transition("1", Some("WAITED".into()), Status::Ready).unwrap();
        assert_eq!(expected.anomaly, None);
    }
}
