//! What is kept of a webhook receiver's answer (the delivery log): the first
//! [`RESPONSE_LIMIT`] bytes, as text a terminal and a database can hold. The
//! receiver is not trusted: its body may be binary, huge, invalid UTF-8, or
//! full of terminal escapes. Pure.
//!
//! - at most [`RESPONSE_LIMIT`] bytes are looked at, and the text kept is never
//!   longer than that in UTF-8 (a character cut at the end is dropped);
//! - invalid UTF-8 becomes U+FFFD; so does every control character but `\n`
//!   and `\t` (NUL, ESC, DEL, C1, ...), and every bidirectional override or
//!   isolate (text that reads differently from what it is);
//! - printing it still escapes `\n` and `\t` (`events show`).

/// The most of an answer's body kept in the delivery log, in bytes.
pub const RESPONSE_LIMIT: usize = 1024;

/// The first [`RESPONSE_LIMIT`] bytes of `body`, sanitised (see the module).
pub fn response_excerpt(body: &[u8]) -> String {
    let head = &body[..body.len().min(RESPONSE_LIMIT)];
    let mut out = String::with_capacity(head.len());
    for c in String::from_utf8_lossy(head).chars() {
        let c = if unsafe_char(c) { '\u{FFFD}' } else { c };
        if out.len() + c.len_utf8() > RESPONSE_LIMIT {
            break;
        }
        out.push(c);
    }
    out
}

fn unsafe_char(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

/// `text` on one line for a terminal: `\n`, `\t`, `\\` and any control
/// character escaped (text from the database may come from another program).
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            c if unsafe_char(c) => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_body_is_kept_short_and_harmless() {
        let mut body = b"ok\x1b[2J\x00\x07\r\n\tline\xff\xfe \xe2\x80\xae".to_vec();
        body.extend(std::iter::repeat_n(b'x', 1 << 20));
        let kept = response_excerpt(&body);
        assert!(kept.len() <= RESPONSE_LIMIT, "{}", kept.len());
        assert!(kept.starts_with(
            "ok\u{FFFD}[2J\u{FFFD}\u{FFFD}\u{FFFD}\n\tline\u{FFFD}\u{FFFD} \u{FFFD}x"
        ));
        assert!(
            !kept
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
        );
    }

    #[test]
    fn a_character_cut_at_the_limit_is_dropped_not_split() {
        let body = "가".repeat(1000); // 3 bytes each
        let kept = response_excerpt(body.as_bytes());
        assert_eq!(kept, "가".repeat(341));
        // Replacement characters never push it past the limit either.
        let kept = response_excerpt(&[0u8; 4096]);
        assert!(kept.len() <= RESPONSE_LIMIT);
        assert_eq!(kept.chars().count(), RESPONSE_LIMIT / 3);
    }

    #[test]
    fn one_line_escapes_what_a_terminal_would_obey() {
        assert_eq!(
            one_line("a\nb\tc\\d\u{1b}[31m\u{202e}"),
            "a\\nb\\tc\\\\d\\u{1b}[31m\\u{202e}"
        );
    }
}
