//! `[[webhooks]]` from the merged layers to typed sinks, in one pass that
//! reports every problem of every entry, in the words and with the key table
//! (`schema::sink`, ranges included) of every other key: `webhooks[1].url`,
//! where it was set, what is expected; an unknown key with the nearest known
//! one. Rules between an entry's keys (a secret for a signed sink and none for
//! a Slack one, `backoff_max` ≥ `backoff_first`) and between entries (unique
//! names) are reported in the same list.

use std::collections::HashMap;
use std::time::Duration;

use config::{Map, Value, ValueKind};
use serde::{Deserialize, Deserializer};
use sha2::Digest as _;

mod signing;

use super::error::Problem;
use super::schema::{self, Key, sink};
use super::webhooks::WebhookSettings;
use crate::domain::EventType;

/// The value of each optional key left out, as the example file states them.
mod defaults {
    use std::time::Duration;

    pub const TIMEOUT: Duration = Duration::from_secs(15);
    pub const BACKOFF_FIRST: Duration = Duration::from_secs(5);
    pub const BACKOFF_MAX: Duration = Duration::from_secs(6 * 3600);
    pub const RETRY_HORIZON: Duration = Duration::from_secs(3 * 24 * 3600);
    pub const UNHEALTHY_AFTER: Duration = Duration::from_secs(15 * 60);
    pub const CONCURRENCY: u64 = 8;
    pub const LEASE: Duration = Duration::from_secs(15);
    pub const ATTEMPTS_RETENTION: Duration = super::super::webhooks::DEFAULT_ATTEMPTS_RETENTION;
}

/// The sinks of `list` (the merged `webhooks` value, if any), or every problem
/// with them.
pub(super) fn parse(
    list: Option<&Value>,
    env_prefix: &str,
) -> (Vec<WebhookSettings>, Vec<Problem>) {
    let Some(list) = list.filter(|v| !matches!(v.kind, ValueKind::Nil)) else {
        return (Vec::new(), Vec::new());
    };
    let ValueKind::Array(entries) = &list.kind else {
        let reason = "must be a list of tables: one `[[webhooks]]` table per sink";
        return (
            Vec::new(),
            vec![schema::problem(
                sink::LIST.to_owned(),
                list,
                env_prefix,
                reason,
            )],
        );
    };
    let mut sinks = Vec::new();
    let mut problems = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (index, value) in entries.iter().enumerate() {
        match entry(index, value, env_prefix) {
            Ok(sink) => {
                if let Some(first) = names.insert(sink.name.clone(), index) {
                    problems.push(Problem::new(
                        format!("webhooks[{index}].name"),
                        format!(
                            "{:?} is used by webhooks[{first}] too: each sink needs its own name",
                            sink.name
                        ),
                        sink.origin.as_deref(),
                    ));
                }
                sinks.push(sink);
            }
            Err(mut found) => problems.append(&mut found),
        }
    }
    (sinks, problems)
}

/// One entry (the `index`th), or every problem with it.
fn entry(index: usize, value: &Value, env_prefix: &str) -> Result<WebhookSettings, Vec<Problem>> {
    let ValueKind::Table(table) = &value.kind else {
        let path = format!("webhooks[{index}]");
        let reason =
            "must be a table of keys (`[[webhooks]]` then `url = ...`), not a single value";
        return Err(vec![schema::problem(path, value, env_prefix, reason)]);
    };
    let mut e = Entry {
        index,
        table,
        whole: value,
        env_prefix,
        problems: Vec::new(),
    };
    let url_text = e.read(sink::URL, |v| schema::text(sink::URL.kind, v));
    let url = e.read(sink::URL, schema::sink_url);
    if url_text.is_none() {
        e.missing(sink::URL, "is required: the address events are POSTed to");
    }
    let name = e.read(sink::NAME, schema::name);
    let events = e.read(sink::EVENTS, schema::events);
    let slack = e.read(sink::FORMAT, |v| schema::choice(sink::FORMAT.kind, v)) == Some("slack");
    let kind = e.kind(slack);
    let timeout = e.duration(sink::TIMEOUT, defaults::TIMEOUT);
    let backoff_first = e.duration(sink::BACKOFF_FIRST, defaults::BACKOFF_FIRST);
    let backoff_max = e.duration(sink::BACKOFF_MAX, defaults::BACKOFF_MAX);
    let retry_horizon = e.duration(sink::RETRY_HORIZON, defaults::RETRY_HORIZON);
    let unhealthy_after = e.duration(sink::UNHEALTHY_AFTER, defaults::UNHEALTHY_AFTER);
    let disable_after = e.read(sink::DISABLE_AFTER, |v| {
        schema::duration(sink::DISABLE_AFTER.kind, v)
    });
    let attempts_retention = e.duration(sink::ATTEMPTS_RETENTION, defaults::ATTEMPTS_RETENTION);
    let lease = e.duration(sink::LEASE, defaults::LEASE);
    let concurrency = e
        .read(sink::CONCURRENCY, |v| {
            schema::integer(sink::CONCURRENCY.kind, v)
        })
        .unwrap_or(defaults::CONCURRENCY);
    if backoff_max < backoff_first {
        e.rule(sink::BACKOFF_MAX, "must not be shorter than backoff_first");
    }
    let name = match (name, &url_text, &url) {
        (Some(name), _, _) => Some(name),
        (None, Some(text), Some(url)) => Some(derived_name(text, url)),
        _ => None,
    };
    if let Some(name) = name.as_deref().filter(|n| !schema::valid_name(n)) {
        let reason = format!(
            "the name made from the URL's host, {name:?}, is not {}: set `name`",
            "1 to 64 letters, digits, '-', '_' or '.'"
        );
        e.missing(sink::NAME, reason);
    }
    e.unknown_keys();
    let origin = schema::origin(value, &format!("webhooks[{index}]"), env_prefix);
    match (e.problems.is_empty(), name, url, kind) {
        (true, Some(name), Some(url), Some(kind)) => Ok(WebhookSettings {
            name,
            url,
            kind,
            events: events.unwrap_or_else(|| EventType::ALL.to_vec()),
            timeout,
            retry_horizon,
            unhealthy_after,
            disable_after,
            attempts_retention,
            concurrency: usize::try_from(concurrency).unwrap_or(usize::MAX),
            backoff_first,
            backoff_max,
            lease,
            origin,
        }),
        _ => Err(e.problems),
    }
}

/// `<host>-<8 hex of the SHA-256 of the URL as written>`: stable for as long
/// as the configured text is.
fn derived_name(text: &str, url: &reqwest::Url) -> String {
    let hash = sha2::Sha256::digest(text.as_bytes());
    let short: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{short}", url.host_str().unwrap_or("webhook"))
}

/// One entry being read: each key through its table entry, every problem kept.
struct Entry<'a> {
    index: usize,
    table: &'a Map<String, Value>,
    /// The entry itself, whose origin stands for that of keys left out.
    whole: &'a Value,
    env_prefix: &'a str,
    problems: Vec<Problem>,
}

impl<'a> Entry<'a> {
    fn path(&self, name: &str) -> String {
        format!("webhooks[{}].{name}", self.index)
    }

    /// The value of `key` as `parse` reads it; `None` if it is not set or (a
    /// problem recorded) not what `key` accepts.
    fn read<T>(
        &mut self,
        key: Key,
        parse: impl FnOnce(&ValueKind) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.value(key)?;
        parse(&value.kind)
            .map_err(|reason| {
                let problem = schema::problem(self.path(key.name), value, self.env_prefix, reason);
                self.problems.push(problem);
            })
            .ok()
    }

    fn value(&self, key: Key) -> Option<&'a Value> {
        self.table
            .get(key.name)
            .filter(|v| !matches!(v.kind, ValueKind::Nil))
    }

    fn duration(&mut self, key: Key, default: Duration) -> Duration {
        self.read(key, |v| schema::duration(key.kind, v))
            .unwrap_or(default)
    }

    /// A rule between keys broken at `key` (which is set).
    fn rule(&mut self, key: Key, reason: impl Into<String>) {
        let value = self.value(key).unwrap_or(self.whole);
        let problem = schema::problem(self.path(key.name), value, self.env_prefix, reason);
        self.problems.push(problem);
    }

    /// A problem with `key`, which may be left out (then the entry is where).
    fn missing(&mut self, key: Key, reason: impl Into<String>) {
        self.rule(key, reason);
    }

    /// Keys no entry has, each with the nearest known one.
    fn unknown_keys(&mut self) {
        let mut names: Vec<&String> = self.table.keys().collect();
        names.sort();
        for name in names {
            if sink::KEYS.iter().any(|k| k.name == name) {
                continue;
            }
            let candidates = sink::KEYS.iter().map(|k| self.path(k.name)).collect();
            let problem = schema::unknown_key(
                self.path(name),
                &self.table[name],
                self.env_prefix,
                candidates,
            );
            self.problems.push(problem);
        }
    }
}

/// One entry from any serde format (the test kit writes sinks as TOML), by
/// the same rules as at load; problems joined into the error.
impl<'de> Deserialize<'de> for WebhookSettings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        entry(0, &value, "").map_err(|problems| {
            let text: Vec<String> = problems.iter().map(Problem::to_string).collect();
            serde::de::Error::custom(text.join("; "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::webhooks::Signing;
    use super::*;

    /// Base64 of 32 bytes `0..32`.
    const WHSEC: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    /// The `[[webhooks]]` of `text`, or every problem, one per line.
    fn parse_toml(text: &str) -> Result<Vec<WebhookSettings>, String> {
        let root = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .unwrap();
        let root = config::Source::collect(&root).unwrap();
        match parse(root.get(sink::LIST), "") {
            (sinks, problems) if problems.is_empty() => Ok(sinks),
            (_, problems) => Err(problems
                .iter()
                .map(|p| format!("{p}\n"))
                .collect::<String>()),
        }
    }

    fn one(entry: &str) -> Result<WebhookSettings, String> {
        parse_toml(&format!("[[webhooks]]\n{entry}\n")).map(|mut sinks| sinks.remove(0))
    }

    #[test]
    fn a_signed_sink_with_defaults_is_typed() {
        let sink = one(&format!(
            "url = \"https://shop.example/hooks?token=abc\"\nsecret = \"{WHSEC}\""
        ))
        .unwrap();
        assert_eq!(sink.url.host_str(), Some("shop.example"));
        assert_eq!(sink.events, EventType::ALL);
        assert_eq!(sink.timeout, defaults::TIMEOUT);
        assert_eq!(sink.concurrency, 8);
        assert!(sink.name.starts_with("shop.example-"), "{}", sink.name);
        let Signing::Standard { secret, source, .. } = sink.signing(0, None).unwrap() else {
            panic!("a signed sink");
        };
        assert_eq!(secret.expose(), (0u8..32).collect::<Vec<_>>());
        assert_eq!(source, "webhooks[0].secret");
        let shown = format!("{sink:?} {}", toml::to_string(&sink).unwrap());
        assert!(
            !shown.contains(WHSEC) && !shown.contains("token=abc"),
            "{shown}"
        );
        assert!(shown.contains("[REDACTED]"), "{shown}");
    }

    #[test]
    fn the_derived_name_hashes_the_url_as_written() {
        // Sinks named by default keep their rows only if this never changes.
        let sink = one(&format!(
            "url = \"https://x.example\"\nsecret = \"{WHSEC}\""
        ))
        .unwrap();
        let hash = sha2::Sha256::digest(b"https://x.example");
        let short: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sink.name, format!("x.example-{short}"));
        assert_eq!(sink.url.as_str(), "https://x.example/");
    }

    #[test]
    fn every_problem_of_an_entry_is_reported_with_its_key() {
        let err = one(
            "url = \"not a url\"\nevents = [\"issuance.paid\", \"balance.low\"]\n\
             evnts = 1\ntimeout = \"1h\"\nconcurrency = 0\nformat = \"teams\"\n\
             secret = \"whsec_%%%secretvalue\"",
        )
        .unwrap_err();
        for expected in [
            "`webhooks[0].url`: is not a URL",
            "`webhooks[0].events`: unknown event type \"issuance.paid\"",
            "`webhooks[0].evnts`: unknown key; did you mean `webhooks[0].events`?",
            "`webhooks[0].timeout`: \"1h\" is out of range: must be from 1ms to 5m",
            "`webhooks[0].concurrency`: 0 is out of range: must be from 1 to 256",
            "`webhooks[0].format`: expected \"standard\" or \"slack\", got \"teams\"",
            "`webhooks[0].secret`: is not `whsec_` followed by Base64",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
        assert!(!err.contains("secretvalue"), "{err}");
    }

    #[test]
    fn rules_between_keys_and_entries_are_reported_together() {
        let err = parse_toml(&format!(
            "[[webhooks]]\nurl = \"https://x/\"\n\
             [[webhooks]]\nname = \"a\"\nurl = \"https://y/\"\nsecret = \"{WHSEC}\"\nsecret_file = \"/s\"\n\
             [[webhooks]]\nname = \"b\"\nurl = \"https://hooks.slack.com/services/T/B/X\"\nformat = \"slack\"\nsecret = \"{WHSEC}\"\n\
             [[webhooks]]\nname = \"c\"\nsecret = \"{WHSEC}\"\nbackoff_first = \"1h\"\nbackoff_max = \"1m\"\n\
             [[webhooks]]\nname = \"d\"\nurl = \"https://z/\"\nsecret = \"{WHSEC}\"\n\
             [[webhooks]]\nname = \"d\"\nurl = \"https://w/\"\nsecret = \"{WHSEC}\"\n"
        ))
        .unwrap_err();
        for expected in [
            "`webhooks[0].secret`: is required for a signed sink",
            "`webhooks[1].secret_file`: set secret or secret_file, not both",
            "`webhooks[2].secret`: a format = \"slack\" sink is unsigned",
            "`webhooks[3].url`: is required",
            "`webhooks[3].backoff_max`: must not be shorter than backoff_first",
            "`webhooks[5].name`: \"d\" is used by webhooks[4] too",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
        assert_eq!(err.lines().count(), 6, "{err}");
    }

    #[test]
    fn a_url_with_a_user_or_password_is_refused_without_showing_it() {
        for url in [
            "https://hookuser:hunter2pass@shop.example/hooks",
            "https://hookuser@shop.example/hooks",
            "ftp://hookuser:hunter2pass@shop.example/",
        ] {
            let err = one(&format!("url = {url:?}\nsecret = \"{WHSEC}\"")).unwrap_err();
            assert!(
                err.contains("`webhooks[0].url`: must not carry a user name or password"),
                "{url}: {err}"
            );
            assert!(
                !err.contains("hunter2pass") && !err.contains("hookuser"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_slack_url_is_a_secret_and_a_secret_file_is_found_among_credentials() {
        let slack =
            one("url = \"https://hooks.slack.com/services/T0/B0/SECRETPART\"\nformat = \"slack\"")
                .unwrap();
        let shown = format!("{slack:?} {}", toml::to_string(&slack).unwrap());
        assert!(!shown.contains("SECRETPART"), "{shown}");
        assert!(matches!(slack.signing(0, None), Ok(Signing::Slack)));

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hook_secret"), format!("{WHSEC}\n")).unwrap();
        let filed =
            one("url = \"https://x/\"\nsecret_file = \"/etc/issuance-watcher/hook_secret\"")
                .unwrap();
        let err = filed.signing(3, None).unwrap_err().to_string();
        assert!(err.contains("`webhooks[3].secret_file`"), "{err}");
        let Ok(Signing::Standard { source, .. }) = filed.signing(3, Some(dir.path())) else {
            panic!("found among the credentials");
        };
        assert!(source.contains("systemd credential"), "{source}");
    }

    #[test]
    fn a_sink_reads_back_from_what_check_config_shows() {
        let sink = one(&format!(
            "name = \"shop\"\nurl = \"https://shop.example/h\"\nsecret = \"{WHSEC}\"\n\
             events = [\"balance.low\"]\ntimeout = \"2s\"\nconcurrency = 3"
        ))
        .unwrap();
        let mut shown: toml::Table = toml::from_str(&toml::to_string(&sink).unwrap()).unwrap();
        shown.insert("secret".into(), WHSEC.into());
        let again: WebhookSettings = shown.try_into().unwrap();
        assert_eq!(format!("{again:?}"), format!("{sink:?}"));
        assert_eq!(
            (again.events, again.timeout, again.concurrency),
            (vec![EventType::BalanceLow], Duration::from_secs(2), 3)
        );
    }

    /// Base64 of 32 bytes `32..64`: another key.
    const OLD: &str = "whsec_ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    #[test]
    fn a_rotation_holds_the_previous_secret_until_its_instant_and_never_shows_it() {
        let sink = one(&format!(
            "url = \"https://x/\"\nsecret = \"{WHSEC}\"\nprevious_secret = \"{OLD}\"\n\
             previous_until = \"2026-12-06T09:00:00+09:00\""
        ))
        .unwrap();
        let Signing::Standard {
            secret,
            previous: Some(previous),
            ..
        } = sink.signing(2, None).unwrap()
        else {
            panic!("a rotating sink");
        };
        assert_eq!(secret.expose(), (0u8..32).collect::<Vec<_>>());
        assert_eq!(previous.secret.expose(), (32u8..64).collect::<Vec<_>>());
        assert_eq!(previous.source, "webhooks[2].previous_secret");
        assert_eq!(previous.until.to_rfc3339(), "2026-12-06T00:00:00+00:00");
        let shown = format!("{sink:?} {}", toml::to_string(&sink).unwrap());
        assert!(!shown.contains(OLD) && !shown.contains(WHSEC), "{shown}");
        assert!(
            shown.contains("previous_secret = \"[REDACTED]\"")
                && shown.contains("previous_until = \"2026-12-06T00:00:00+00:00\""),
            "{shown}"
        );

        // A file, unquoted TOML date-time, found among the credentials.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("old_secret"), format!("{OLD}\n")).unwrap();
        let filed = one(&format!(
            "url = \"https://x/\"\nsecret = \"{WHSEC}\"\n\
             previous_secret_file = \"/etc/issuance-watcher/old_secret\"\n\
             previous_until = 2026-12-06T09:00:00+09:00"
        ))
        .unwrap();
        let err = filed.signing(1, None).unwrap_err().to_string();
        assert!(err.contains("`webhooks[1].previous_secret_file`"), "{err}");
        let Ok(Signing::Standard {
            previous: Some(previous),
            ..
        }) = filed.signing(1, Some(dir.path()))
        else {
            panic!("found among the credentials");
        };
        assert!(
            previous.source.contains("systemd credential")
                && previous.source.contains("webhooks[1].previous_secret_file"),
            "{}",
            previous.source
        );
        let shown = toml::to_string(&filed).unwrap();
        assert!(
            shown.contains("previous_secret_file = \"/etc/issuance-watcher/old_secret\""),
            "{shown}"
        );
    }

    #[test]
    fn a_previous_secret_equal_to_the_current_one_is_refused_unshown() {
        let sink = one(&format!(
            "url = \"https://x/\"\nsecret = \"{WHSEC}\"\nprevious_secret = \"{WHSEC}\"\n\
             previous_until = \"2026-12-06T09:00:00+09:00\""
        ))
        .unwrap();
        let err = sink.signing(0, None).unwrap_err().to_string();
        assert!(
            err.contains("`webhooks[0].previous_secret`: is the same secret as the current one"),
            "{err}"
        );
        assert!(!err.contains(WHSEC), "{err}");
    }

    #[test]
    fn a_previous_secret_needs_its_instant_and_a_signed_sink() {
        let until = "previous_until = \"2026-12-06T09:00:00+09:00\"";
        let err = parse_toml(&format!(
            "[[webhooks]]\nurl = \"https://a/\"\nsecret = \"{WHSEC}\"\nprevious_secret = \"{OLD}\"\n\
             [[webhooks]]\nurl = \"https://b/\"\nsecret = \"{WHSEC}\"\n{until}\n\
             [[webhooks]]\nurl = \"https://c/\"\nsecret = \"{WHSEC}\"\nprevious_secret = \"{OLD}\"\nprevious_secret_file = \"/s\"\n{until}\n\
             [[webhooks]]\nurl = \"https://hooks.slack.com/services/T/B/X\"\nformat = \"slack\"\nprevious_secret = \"{OLD}\"\n{until}\n\
             [[webhooks]]\nurl = \"https://e/\"\nsecret = \"{WHSEC}\"\nprevious_secret = \"{OLD}\"\nprevious_until = \"2026-12-06 09:00\"\n"
        ))
        .unwrap_err();
        for expected in [
            "`webhooks[0].previous_until`: is required with previous_secret or previous_secret_file",
            "`webhooks[1].previous_until`: is set without previous_secret or previous_secret_file",
            "`webhooks[2].previous_secret_file`: set previous_secret or previous_secret_file, not both",
            "`webhooks[3].previous_secret`: a format = \"slack\" sink is unsigned",
            "`webhooks[3].previous_until`: a format = \"slack\" sink is unsigned",
            "`webhooks[4].previous_until`: expected an RFC 3339 instant with its offset",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
        assert_eq!(err.lines().count(), 6, "{err}");
        assert!(!err.contains(OLD), "{err}");
    }

    /// The example file shows an entry with the defaults of the optional keys
    /// (commented out): uncommented, it must state exactly these defaults.
    #[test]
    fn the_example_file_states_the_defaults() {
        let example = super::super::DEFAULTS_TOML;
        let entry: String = example
            .lines()
            .skip_while(|l| *l != "# [[webhooks]]")
            .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or(l)))
            .collect();
        let full = parse_toml(&entry).unwrap().remove(0);
        let url = full.url.as_str();
        let secret_file = "/etc/issuance-watcher/webhook_secret";
        let bare = one(&format!(
            "url = {url:?}\nsecret_file = {secret_file:?}\nname = \"shop\""
        ))
        .unwrap();
        assert_eq!(
            toml::to_string(&full).unwrap(),
            toml::to_string(&bare).unwrap()
        );
        for key in sink::KEYS {
            assert!(
                entry.contains(&format!("{} = ", key.name)),
                "the example entry does not show `{}`",
                key.name
            );
        }
    }
}
