//! The signing keys of one `[[webhooks]]` entry: its secret (inline or from
//! a file, exactly one), and during a rotation the previous secret with the
//! instant it stops signing; or none of them for a Slack sink, which is
//! unsigned. Inline secrets are decoded here, so a malformed one is reported
//! with the entry's other problems (never echoed).

use std::path::PathBuf;
use std::sync::Arc;

use super::Entry;
use crate::settings::schema::{self, Key, sink};
use crate::settings::webhook_secret::WebhookSecret;
use crate::settings::webhooks::{PreviousSecret, SinkKind, SinkSecret};

impl Entry<'_> {
    /// Signed with `secret` or `secret_file` (exactly one), and during a
    /// rotation `previous_secret` or `previous_secret_file` (at most one) with
    /// `previous_until`; or a Slack sink with none of them.
    pub(super) fn kind(&mut self, slack: bool) -> Option<SinkKind> {
        if slack {
            for key in [
                sink::SECRET,
                sink::SECRET_FILE,
                sink::PREVIOUS_SECRET,
                sink::PREVIOUS_SECRET_FILE,
                sink::PREVIOUS_UNTIL,
            ] {
                if self.value(key).is_some() {
                    let reason = format!(
                        "a format = \"slack\" sink is unsigned: remove {}",
                        match key.name {
                            "secret" | "secret_file" => "secret and secret_file",
                            _ => "previous_secret, previous_secret_file and previous_until",
                        }
                    );
                    self.rule(key, reason);
                }
            }
            return Some(SinkKind::Slack);
        }
        let current = self.secret(sink::SECRET, sink::SECRET_FILE, true);
        let previous = self.previous();
        Some(SinkKind::Standard {
            secret: current?,
            previous: previous?,
        })
    }

    /// The previous secret of a rotation: `Some(None)` when there is none,
    /// `None` after a problem.
    fn previous(&mut self) -> Option<Option<PreviousSecret>> {
        let has_secret = self.value(sink::PREVIOUS_SECRET).is_some()
            || self.value(sink::PREVIOUS_SECRET_FILE).is_some();
        let has_until = self.value(sink::PREVIOUS_UNTIL).is_some();
        let until = self.read(sink::PREVIOUS_UNTIL, schema::instant);
        if !has_secret {
            if has_until {
                self.rule(
                    sink::PREVIOUS_UNTIL,
                    "is set without previous_secret or previous_secret_file: \
                     nothing to accept until then (remove it once a rotation is over)",
                );
                return None;
            }
            return Some(None);
        }
        let secret = self.secret(sink::PREVIOUS_SECRET, sink::PREVIOUS_SECRET_FILE, false);
        if !has_until {
            self.missing(
                sink::PREVIOUS_UNTIL,
                "is required with previous_secret or previous_secret_file: \
                 the RFC 3339 instant the previous secret stops signing",
            );
        }
        Some(Some(PreviousSecret {
            secret: secret?,
            until: until?,
        }))
    }

    /// The secret of `inline` or `file` (exactly one; `required` says whether
    /// neither is a problem), decoded if inline.
    fn secret(&mut self, inline: Key, file: Key, required: bool) -> Option<SinkSecret> {
        let has_secret = self.value(inline).is_some();
        let has_file = self.value(file).is_some();
        if has_secret && has_file {
            let reason = format!("set {} or {}, not both", inline.name, file.name);
            self.rule(file, reason);
            return None;
        }
        if !has_secret && !has_file {
            if required {
                self.missing(
                    inline,
                    "is required for a signed sink (or secret_file; format = \"slack\" is unsigned)",
                );
            }
            return None;
        }
        Some(match has_secret {
            true => SinkSecret::Inline(Arc::new(self.read(inline, |v| {
                let text = schema::text(inline.kind, v)?;
                WebhookSecret::parse(&text).map_err(str::to_owned)
            })?)),
            false => SinkSecret::File(PathBuf::from(
                self.read(file, |v| schema::text(file.kind, v))?,
            )),
        })
    }
}
