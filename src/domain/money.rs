//! Amounts of KRW as a person reads them: with thousands separators.

/// `1234567` as `"1,234,567"` (negative amounts keep their sign).
pub fn grouped(amount: i64) -> String {
    let digits = amount.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if amount < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `"1,234,567 KRW"`.
pub fn krw(amount: i64) -> String {
    format!("{} KRW", grouped(amount))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn amounts_are_grouped_by_thousands() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (70000, "70,000"),
            (1_234_567, "1,234,567"),
            (-1_000_000, "-1,000,000"),
            (i64::MIN, "-9,223,372,036,854,775,808"),
        ] {
            assert_eq!(grouped(n), text);
        }
        assert_eq!(krw(3_000_000), "3,000,000 KRW");
    }

    proptest! {
        /// Removing the separators gives the number back.
        #[test]
        fn grouping_round_trips(n in any::<i64>()) {
            prop_assert_eq!(grouped(n).replace(',', "").parse::<i64>().unwrap(), n);
        }
    }
}
