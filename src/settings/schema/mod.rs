//! What every key accepts, checked on the merged layers (defaults, file,
//! environment) *before* they are turned into typed settings, so that every
//! problem is reported at once, each with its full key path and where it was
//! set, and no value the rest of the program cannot live with gets through.
//!
//! `keys` is the table (every key, its kind and range), `values` the parser of
//! each kind (`urls` those of the URL kinds), `kinds` which parser judges which kind; this file walks the sections, finds unknown keys (with the
//! nearest known one) and says where a value was set. The `[[webhooks]]` list
//! is walked where its entries are typed (`webhook_parse`), with the same
//! table, parsers and words.
//!
//! Invariants: every field of [`super::Settings`] has exactly one entry in
//! `keys`; every range is the one the README's Configuration tables state; a
//! value accepted here deserialises.

mod keys;
mod kinds;
mod urls;
mod values;

use config::{Value, ValueKind};

use super::error::Problem;

pub(super) use keys::{KEYS, Key, sink};
pub(super) use urls::{database_url, sink_url};
pub(super) use values::human;
pub(super) use values::{choice, duration, events, instant, integer, name, text, valid_name};

/// The sections, in order.
pub(super) fn sections() -> Vec<&'static str> {
    let mut sections: Vec<&'static str> = KEYS.iter().map(|k| k.section).collect();
    sections.dedup();
    sections
}

/// Checks the merged layers against [`KEYS`]: unknown keys (with the nearest
/// known one), values of the wrong kind, values out of range. Every problem, in
/// file order of the schema, then unknown keys sorted. `webhooks` is left to
/// `webhook_parse`.
pub(super) fn check(root: &config::Map<String, Value>, env_prefix: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    let sections = sections();
    let mut names: Vec<&String> = root.keys().collect();
    names.sort();
    for name in names {
        let value = &root[name];
        if name == sink::LIST {
            continue;
        }
        if !sections.contains(&name.as_str()) {
            unknown.push(unknown_key(name.clone(), value, env_prefix, known_paths()));
            continue;
        }
        let ValueKind::Table(table) = &value.kind else {
            problems.push(problem(
                name.clone(),
                value,
                env_prefix,
                format!("must be a table (a `[{name}]` section), not a single value"),
            ));
            continue;
        };
        let mut keys: Vec<&String> = table.keys().collect();
        keys.sort();
        for key in keys {
            if !KEYS.iter().any(|k| k.section == name && k.name == key) {
                let path = format!("{name}.{key}");
                unknown.push(unknown_key(path, &table[key], env_prefix, known_paths()));
            }
        }
    }
    for k in KEYS {
        let Some(value) = root
            .get(k.section)
            .and_then(|s| match &s.kind {
                ValueKind::Table(t) => t.get(k.name),
                _ => None,
            })
            .filter(|v| !matches!(v.kind, ValueKind::Nil))
        else {
            continue;
        };
        if let Err(reason) = kinds::check(k.kind, &value.kind) {
            let path = format!("{}.{}", k.section, k.name);
            problems.push(problem(path, value, env_prefix, reason));
        }
    }
    problems.extend(unknown);
    problems
}

/// Every known key path and section name, as did-you-mean candidates.
fn known_paths() -> Vec<String> {
    KEYS.iter()
        .map(|k| format!("{}.{}", k.section, k.name))
        .chain(sections().into_iter().map(str::to_owned))
        .chain([sink::LIST.to_owned()])
        .collect()
}

/// A problem with the value at `path`, naming where it was set.
pub(super) fn problem(
    path: String,
    value: &Value,
    env_prefix: &str,
    reason: impl Into<String>,
) -> Problem {
    let origin = origin(value, &path, env_prefix);
    Problem::new(path, reason, origin.as_deref())
}

/// `path` is not a key: says so, with the nearest of `candidates` (the known
/// paths at that place) if one is close enough to be a likely typo.
pub(super) fn unknown_key(
    path: String,
    value: &Value,
    env_prefix: &str,
    candidates: Vec<String>,
) -> Problem {
    let mut reason = String::from("unknown key");
    if let Some(near) = nearest(&path, candidates) {
        reason.push_str(&format!("; did you mean `{near}`?"));
    }
    problem(path, value, env_prefix, reason)
}

/// Where a value was set: a file path, or `the environment: VAR` naming the
/// variable. (The config crate keeps the file of a value, not its line.)
pub(super) fn origin(value: &Value, path: &str, env_prefix: &str) -> Option<String> {
    match value.origin() {
        Some("the environment") => Some(format!(
            "the environment: {env_prefix}__{}",
            path.replace('.', "__").to_uppercase()
        )),
        other => other.map(file_shown),
    }
}

/// A configuration file as the user can find it. The config crate names a
/// file relative to the working directory (`../.tmpX/my.toml`), which reads
/// as a different file from where the user is; the resolved path does not.
fn file_shown(origin: &str) -> String {
    let path = std::path::Path::new(origin);
    if path.is_relative()
        && let Ok(resolved) = std::fs::canonicalize(path)
    {
        return resolved.display().to_string();
    }
    origin.to_owned()
}

/// Where `section.name` was set, if it was set anywhere but the built-in defaults.
pub(super) fn origin_of(
    root: &config::Map<String, Value>,
    section: &str,
    name: &str,
    env_prefix: &str,
) -> Option<String> {
    let ValueKind::Table(table) = &root.get(section)?.kind else {
        return None;
    };
    origin(table.get(name)?, &format!("{section}.{name}"), env_prefix)
}

/// The candidate closest to `path`, if any is close enough to be a likely
/// typo: the whole path, or the key name alone anywhere (`api.interval` →
/// `poll.interval`). On a tie the candidate listed first wins.
fn nearest(path: &str, candidates: Vec<String>) -> Option<String> {
    const CLOSE_ENOUGH: f64 = 0.8;
    let best = candidates
        .into_iter()
        .map(|known| {
            let whole = strsim::jaro_winkler(path, &known);
            let by_name = match (path.rsplit_once('.'), known.rsplit_once('.')) {
                (Some((_, a)), Some((_, b))) if a == b => 0.95,
                _ => 0.0,
            };
            (whole.max(by_name), known)
        })
        .reduce(|best, next| if next.0 > best.0 { next } else { best })?;
    (best.0 >= CLOSE_ENOUGH && best.1 != path).then_some(best.1)
}

#[cfg(test)]
mod tests {
    use super::keys::Kind;
    use super::*;

    #[test]
    fn typos_find_the_key_meant() {
        let near = |path: &str| nearest(path, known_paths());
        assert_eq!(near("poll.intervall").as_deref(), Some("poll.interval"));
        assert_eq!(near("api.interval").as_deref(), Some("poll.interval"));
        assert_eq!(near("pol").as_deref(), Some("poll"));
        assert_eq!(near("webhook").as_deref(), Some("webhooks"));
        assert_eq!(near("zzz.qqqq"), None);
    }

    /// The README's Configuration table states each key's default and range:
    /// they must be the ones the code uses (a sink key's default is the one
    /// the example file's commented `[[webhooks]]` entry shows).
    #[test]
    fn the_readme_states_every_key_with_its_default_and_range() {
        let readme = include_str!("../../../README.md");
        let defaults: toml::Table = toml::from_str(super::super::DEFAULTS_TOML).unwrap();
        let example_sink: String = super::super::DEFAULTS_TOML
            .lines()
            .skip_while(|l| *l != "# [[webhooks]]")
            .skip(1)
            .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or(l)))
            .collect();
        let example_sink: toml::Table = toml::from_str(&example_sink).unwrap();
        let keys = KEYS.iter().map(|k| {
            (
                format!("{}.{}", k.section, k.name),
                k,
                defaults.get(k.section).and_then(|s| s.get(k.name)),
            )
        });
        let sink_keys = sink::KEYS.iter().map(|k| {
            let default = match k.name {
                // The example's own values, not defaults.
                "url" | "secret_file" | "name" => None,
                name => example_sink.get(name),
            };
            (format!("webhooks[N].{}", k.name), k, default)
        });
        for (path, k, default) in keys.chain(sink_keys) {
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{path}` |")))
                .unwrap_or_else(|| panic!("README has no row for {path}"));
            if let Kind::Duration { min, max } | Kind::Ladder { min, max } = k.kind {
                let range = format!("| {} – {}", human(min), human(max));
                assert!(
                    row.contains(&range),
                    "{path}: README says {row}, code {range}"
                );
            }
            if let Kind::Integer { min, max } = k.kind {
                let range = format!("| {min} – {max}");
                assert!(
                    row.contains(&range),
                    "{path}: README says {row}, code {range}"
                );
            }
            if let Some(value) = default.filter(|v| !v.is_array()) {
                let shown = match value {
                    toml::Value::String(s) if s.is_empty() => "`\"\"`".to_owned(),
                    toml::Value::String(s) => format!("`{s}`"),
                    toml::Value::Float(f) => format!("`{f}`"),
                    other => format!("`{other}`"),
                };
                assert!(
                    row.contains(&format!("| {shown}")),
                    "{path}: default {shown} not in README row {row}"
                );
            }
        }
    }
}
