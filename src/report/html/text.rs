//! Text as the page shows it: terminal escapes and control characters removed, bidirectional
//! overrides made visible (they could make code read differently from what it is), and long
//! outputs folded to their head and tail. Escaping for HTML is the template engine's job.

use serde::Serialize;

/// Lines kept at each end of a folded text.
const FOLD_LINES: usize = 20;
/// Characters kept at each end of a folded text (for outputs with few, very long lines).
const FOLD_CHARS: usize = 2_500;

/// `text` without ANSI escape sequences and control characters (newlines and tabs stay), with
/// bidirectional controls shown as `⟨U+202E⟩`.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            // C1 CSI: the same as ESC [.
            '\u{9b}' => skip_csi(&mut chars),
            '\n' | '\t' => out.push(c),
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' => {
                out.push_str(&format!("⟨U+{:04X}⟩", c as u32));
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        Some('[') => skip_csi(chars),
        // OSC, DCS, SOS, PM, APC: up to BEL or ST (ESC \).
        Some(']' | 'P' | 'X' | '^' | '_') => {
            while let Some(c) = chars.next() {
                if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                    break;
                }
            }
        }
        // Character-set designations take one more character.
        Some('(' | ')' | '*' | '+' | '#') => {
            chars.next();
        }
        _ => {}
    }
}

/// Parameters and intermediates up to the final byte (`@` to `~`).
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if ('@'..='~').contains(&c) {
            break;
        }
    }
}

/// A text cut to its head and tail when long; the page shows `head`, a line saying how much
/// was left out, then `tail`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Folded {
    pub head: String,
    pub tail: String,
    /// Lines left out between head and tail (0: nothing was).
    pub omitted_lines: usize,
    /// Characters left out between head and tail.
    pub omitted_chars: usize,
    pub lines: usize,
}

impl Folded {
    pub fn is_empty(&self) -> bool {
        self.head.is_empty() && self.tail.is_empty()
    }
}

/// `text` cleaned (see [`clean`]) and folded when it has more than twice [`FOLD_LINES`] lines
/// or [`FOLD_CHARS`] characters.
pub fn fold(text: &str) -> Folded {
    let text = clean(text.trim_end());
    let lines: Vec<&str> = text.split('\n').collect();
    let chars = text.chars().count();
    if lines.len() <= 2 * FOLD_LINES + 1 && chars <= 2 * FOLD_CHARS {
        return Folded {
            lines: lines.len(),
            head: text,
            ..Folded::default()
        };
    }
    let (head, tail) = if lines.len() > 2 * FOLD_LINES + 1 {
        (
            lines[..FOLD_LINES].join("\n"),
            lines[lines.len() - FOLD_LINES..].join("\n"),
        )
    } else {
        (text.clone(), text.clone())
    };
    let head: String = head.chars().take(FOLD_CHARS).collect();
    let tail_chars = tail.chars().count();
    let tail: String = tail
        .chars()
        .skip(tail_chars.saturating_sub(FOLD_CHARS))
        .collect();
    let kept_lines = head.split('\n').count() + tail.split('\n').count();
    Folded {
        omitted_lines: lines.len().saturating_sub(kept_lines),
        omitted_chars: chars.saturating_sub(head.chars().count() + tail.chars().count()),
        lines: lines.len(),
        head,
        tail,
    }
}

/// A one-line preview of `text`, at most `max` characters.
pub fn preview(text: &str, max: usize) -> String {
    crate::agent::truncate::one_line(&clean(text), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_and_controls_go_bidi_controls_show() {
        let text = "\u{1b}[31mred\u{1b}[0m \u{1b}]8;;https://evil.example\u{7}link\u{1b}]8;;\u{1b}\\ \u{9b}2Jx\u{0}\u{8}y\r\nz\rw\tq \u{202e}cba";
        assert_eq!(clean(text), "red link xy\nz\nw\tq ⟨U+202E⟩cba");
    }

    #[test]
    fn long_text_keeps_head_and_tail() {
        let text: String = (0..200).map(|i| format!("line {i}\n")).collect();
        let f = fold(&text);
        assert!(f.head.starts_with("line 0\n") && f.head.ends_with("line 19"));
        assert!(f.tail.starts_with("line 180\n") && f.tail.ends_with("line 199"));
        assert_eq!((f.omitted_lines, f.lines), (160, 200));
        let short = fold("a\nb\n");
        assert_eq!((short.head.as_str(), short.omitted_lines), ("a\nb", 0));
        // One enormous line: cut by characters.
        let wide = fold(&"x".repeat(100_000));
        assert_eq!(wide.head.len() + wide.tail.len(), 2 * FOLD_CHARS);
        assert_eq!(wide.omitted_chars, 100_000 - 2 * FOLD_CHARS);
    }
}
