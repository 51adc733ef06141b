//! Output truncation: huge tool outputs keep their head and tail, with a marker in between, so
//! the model sees how a command started and how it ended.

/// OpenHands caps tool observations at 30 000 characters; so do we.
pub const DEFAULT_MAX_OUTPUT_CHARS: usize = 30_000;

/// Returns `text` unchanged when it fits in `max_chars`, else its head and tail with a line
/// saying how much was cut. Cuts on char boundaries; never panics.
pub fn truncate_middle(text: &str, max_chars: usize) -> String {
    let total = text.chars().count();
    if total <= max_chars {
        return text.to_string();
    }
    let head_len = max_chars / 2;
    let tail_len = max_chars - head_len;
    let cut = total - head_len - tail_len;
    let head: String = text.chars().take(head_len).collect();
    let tail: String = text.chars().skip(total - tail_len).collect();
    format!("{head}\n[... {cut} characters truncated ...]\n{tail}")
}

/// Shortens `text` to one line of at most `max_chars` characters, for progress logs.
pub fn one_line(text: &str, max_chars: usize) -> String {
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let more_lines = text.lines().filter(|l| !l.trim().is_empty()).count() > 1;
    let mut out: String = first.chars().take(max_chars).collect();
    if first.chars().count() > max_chars || more_lines {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_untouched() {
        assert_eq!(truncate_middle("hello", 10), "hello");
    }

    #[test]
    fn long_text_keeps_head_and_tail() {
        let text = "a".repeat(50) + &"b".repeat(50);
        let out = truncate_middle(&text, 20);
        assert!(out.starts_with(&"a".repeat(10)));
        assert!(out.ends_with(&"b".repeat(10)));
        assert!(out.contains("[... 80 characters truncated ...]"));
    }

    #[test]
    fn multibyte_text_is_cut_on_char_boundaries() {
        let text = "é".repeat(100);
        let out = truncate_middle(&text, 11);
        assert!(out.contains("89 characters truncated"));
    }

    #[test]
    fn one_line_takes_first_non_empty_line() {
        assert_eq!(one_line("\n  first\nsecond", 80), "first…");
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line("abc", 3), "abc");
    }
}
