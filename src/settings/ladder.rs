//! `flags.due_soon_lead`: one duration (`"6h"`) or a ladder of them
//! (`["24h", "3h", "30m"]`). Each rung raises its own DUE_SOON flag and event,
//! once per issuance.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The rungs, longest first, without duplicates; never empty, never zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadLadder(Vec<Duration>);

impl LeadLadder {
    /// A ladder from any rungs; `None` if there is none or one is zero.
    pub fn new(mut rungs: Vec<Duration>) -> Option<Self> {
        if rungs.is_empty() || rungs.iter().any(Duration::is_zero) {
            return None;
        }
        rungs.sort_unstable_by(|a, b| b.cmp(a));
        rungs.dedup();
        Some(Self(rungs))
    }

    pub fn single(lead: Duration) -> Self {
        Self::new(vec![lead]).unwrap_or_else(|| Self(vec![Duration::from_secs(1)]))
    }

    /// Longest first.
    pub fn rungs(&self) -> &[Duration] {
        &self.0
    }

    /// The first rung to apply (the longest lead).
    pub fn longest(&self) -> Duration {
        self.0[0]
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for LeadLadder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const EXPECTED: &str =
            "expected a duration such as \"6h\" or a list such as [\"24h\", \"3h\", \"30m\"]";
        let texts =
            match OneOrMany::deserialize(d).map_err(|_| serde::de::Error::custom(EXPECTED))? {
                OneOrMany::One(text) => vec![text],
                OneOrMany::Many(texts) => texts,
            };
        let rungs = texts
            .iter()
            .map(|t| {
                humantime::parse_duration(t.trim())
                    .map_err(|e| serde::de::Error::custom(format!("{t:?}: {e} ({EXPECTED})")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(rungs).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "needs at least one rung, each longer than zero ({EXPECTED})"
            ))
        })
    }
}

impl Serialize for LeadLadder {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let texts: Vec<String> = self
            .0
            .iter()
            .map(|d| crate::domain::flag::format_lead(*d))
            .collect();
        match texts.as_slice() {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize)]
    struct Flags {
        due_soon_lead: LeadLadder,
    }

    fn parse(toml_text: &str) -> Result<LeadLadder, String> {
        toml::from_str::<Flags>(toml_text)
            .map(|f| f.due_soon_lead)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn one_duration_or_a_list_longest_first() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(parse(r#"due_soon_lead = "6h""#).unwrap().rungs(), [h(6)]);
        let ladder = parse(r#"due_soon_lead = ["30m", "24h", "3h", "3h"]"#).unwrap();
        assert_eq!(ladder.rungs(), [h(24), h(3), Duration::from_secs(1800)]);
        assert_eq!(ladder.longest(), h(24));
    }

    #[test]
    fn empty_zero_and_malformed_ladders_are_refused_with_the_expected_shape() {
        for bad in [
            r#"due_soon_lead = []"#,
            r#"due_soon_lead = ["0s"]"#,
            r#"due_soon_lead = ["soon"]"#,
            r#"due_soon_lead = 6"#,
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("such as \"6h\""), "{bad}: {err}");
        }
    }

    #[test]
    fn renders_back_as_it_was_written() {
        for text in [
            r#"due_soon_lead = "6h""#,
            r#"due_soon_lead = ["24h", "3h", "30m"]"#,
        ] {
            let flags: Flags = toml::from_str(text).unwrap();
            assert_eq!(toml::to_string(&flags).unwrap().trim(), text);
        }
    }
}
