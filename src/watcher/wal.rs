//! When to warn about the write-ahead log's size: a pure decision over the
//! size seen and whether a warning is out. Once past the threshold it warns
//! once, and warns again only after the log has shrunk below half of it (a
//! checkpoint could fold it back), so a stuck reader is reported once, not
//! every few seconds.

/// What to do about the WAL's size now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WalCheck {
    /// Past the threshold, not warned yet: warn.
    Warn,
    /// Warned before, and back below half the threshold: warn again next time.
    Rearm,
    /// Nothing to do.
    Quiet,
}

/// `warned`: a warning is out; `bytes`: the WAL's size; `threshold`: the
/// configured limit (0 turns the warning off).
pub(super) fn check(warned: bool, bytes: u64, threshold: u64) -> WalCheck {
    if threshold == 0 {
        WalCheck::Quiet
    } else if !warned && bytes > threshold {
        WalCheck::Warn
    } else if warned && bytes < threshold / 2 {
        WalCheck::Rearm
    } else {
        WalCheck::Quiet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_once_past_the_threshold_and_again_only_after_shrinking() {
        assert_eq!(check(false, 100, 200), WalCheck::Quiet);
        assert_eq!(check(false, 201, 200), WalCheck::Warn);
        assert_eq!(check(true, 5_000, 200), WalCheck::Quiet);
        assert_eq!(check(true, 150, 200), WalCheck::Quiet);
        assert_eq!(check(true, 99, 200), WalCheck::Rearm);
        assert_eq!(check(false, u64::MAX, 0), WalCheck::Quiet, "0 is off");
    }
}
