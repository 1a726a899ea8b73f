//! When a polled balance raises `balance.low`: a pure decision, so that the
//! event comes once per crossing of the threshold, never once per poll.

/// Whether `current` is a new fall below `threshold`: it is below, and the
/// previous balance (the last one recorded, across restarts) was not, or
/// there was none. A threshold of 0 (or less) never fires: a balance cannot
/// be below it.
pub fn crossed_below(previous: Option<i64>, current: i64, threshold: i64) -> bool {
    threshold > 0 && current < threshold && previous.is_none_or(|p| p >= threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_crossing_not_once_per_poll() {
        let polls = [900, 600, 400, 300, 450, 700, 100, 100, 500, 499];
        let mut previous = None;
        let fired: Vec<i64> = polls
            .into_iter()
            .filter(|&b| {
                let fire = crossed_below(previous, b, 500);
                previous = Some(b);
                fire
            })
            .collect();
        assert_eq!(fired, [400, 100, 499]);
    }

    #[test]
    fn the_first_balance_seen_below_fires_and_zero_never_does() {
        assert!(crossed_below(None, 10, 500));
        assert!(
            !crossed_below(None, 500, 500),
            "at the threshold is not below it"
        );
        assert!(!crossed_below(None, 0, 0));
        assert!(!crossed_below(Some(10), -5, 0));
    }
}
