//! The patch as the page shows it: one block per file, each line marked added, removed,
//! context or hunk header, with line numbers, and its code lightly highlighted by a small
//! tokenizer (strings, comments, numbers and the keywords of a few common languages). Not a
//! parser: a line is highlighted on its own, so a string or comment spanning lines is not
//! followed. Big patches are cut per file and overall; `changes.patch` has the whole patch.

use serde::Serialize;

use super::text::clean;
use crate::report::diffstat;

/// Lines shown per file, and for the whole patch.
const MAX_FILE_LINES: usize = 1_500;
const MAX_TOTAL_LINES: usize = 6_000;

/// One changed file.
#[derive(Debug, Clone, Serialize)]
pub struct FileDiff {
    pub path: String,
    pub added: usize,
    pub removed: usize,
    pub binary: bool,
    pub lines: Vec<Line>,
    /// Lines of this file not shown (the per-file or overall limit).
    pub cut_lines: usize,
}

/// One line of a file's diff.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Line {
    /// `add`, `del`, `ctx`, `hunk` or `meta`.
    pub kind: &'static str,
    pub old: Option<usize>,
    pub new: Option<usize>,
    /// The leading `+`, `-` or space (empty for headers).
    pub sign: &'static str,
    pub spans: Vec<Span>,
}

/// A run of text with a highlight class (`""`: plain).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Span {
    pub c: &'static str,
    pub t: String,
}

/// The files of `patch`, in patch order.
pub fn files(patch: &str) -> Vec<FileDiff> {
    let stats = diffstat::diffstat(patch);
    let mut files: Vec<FileDiff> = Vec::new();
    let mut budget = MAX_TOTAL_LINES;
    let (mut old, mut new) = (0usize, 0usize);
    let mut lang = Lang::Plain;
    let mut in_hunk = false;
    for line in patch.lines() {
        if line.starts_with("diff --git ") {
            let stat = stats.get(files.len());
            let path = stat.map_or_else(String::new, |s| s.path.clone());
            lang = Lang::of(&path);
            files.push(FileDiff {
                path: clean(&path),
                added: stat.map_or(0, |s| s.added),
                removed: stat.map_or(0, |s| s.removed),
                binary: stat.is_some_and(|s| s.binary),
                lines: Vec::new(),
                cut_lines: 0,
            });
            in_hunk = false;
            continue;
        }
        let Some(file) = files.last_mut() else {
            continue;
        };
        if file.lines.len() >= MAX_FILE_LINES || budget == 0 {
            file.cut_lines += 1;
            continue;
        }
        budget -= 1;
        let line = clean(line);
        let shown = if let Some(header) = hunk_header(&line) {
            in_hunk = true;
            (old, new) = header;
            plain("hunk", &line)
        } else if !in_hunk {
            plain("meta", &line)
        } else if let Some(code) = line.strip_prefix('+') {
            new += 1;
            code_line("add", None, Some(new - 1), "+", code, lang)
        } else if let Some(code) = line.strip_prefix('-') {
            old += 1;
            code_line("del", Some(old - 1), None, "-", code, lang)
        } else if line.starts_with('\\') {
            plain("meta", &line)
        } else {
            let code = line.strip_prefix(' ').unwrap_or(&line);
            old += 1;
            new += 1;
            code_line("ctx", Some(old - 1), Some(new - 1), " ", code, lang)
        };
        file.lines.push(shown);
    }
    files
}

/// The start lines of `@@ -a,b +c,d @@`.
fn hunk_header(line: &str) -> Option<(usize, usize)> {
    let rest = line.strip_prefix("@@ -")?;
    let (old, rest) = rest.split_once(" +")?;
    let new = rest.split(' ').next()?;
    let start = |s: &str| s.split(',').next()?.parse::<usize>().ok();
    Some((start(old)?, start(new)?))
}

fn plain(kind: &'static str, text: &str) -> Line {
    Line {
        kind,
        old: None,
        new: None,
        sign: "",
        spans: vec![Span {
            c: "",
            t: text.to_string(),
        }],
    }
}

fn code_line(
    kind: &'static str,
    old: Option<usize>,
    new: Option<usize>,
    sign: &'static str,
    code: &str,
    lang: Lang,
) -> Line {
    Line {
        kind,
        old,
        new,
        sign,
        spans: highlight(code, lang),
    }
}

/// The languages the tokenizer knows: their line comment and keywords.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Lang {
    Plain,
    Rust,
    Python,
    Shell,
    CLike,
    Js,
    Go,
}

impl Lang {
    pub fn of(path: &str) -> Lang {
        let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
        match ext {
            "rs" => Lang::Rust,
            "py" => Lang::Python,
            "sh" | "bash" | "zsh" => Lang::Shell,
            "c" | "h" | "cc" | "cpp" | "hpp" | "java" | "cs" | "kt" | "swift" => Lang::CLike,
            "js" | "jsx" | "ts" | "tsx" | "mjs" | "cjs" => Lang::Js,
            "go" => Lang::Go,
            _ => Lang::Plain,
        }
    }

    fn comment(self) -> Option<&'static str> {
        match self {
            Lang::Plain => None,
            Lang::Python | Lang::Shell => Some("#"),
            _ => Some("//"),
        }
    }

    fn keywords(self) -> &'static [&'static str] {
        match self {
            Lang::Plain => &[],
            Lang::Rust => &[
                "as", "async", "await", "break", "const", "continue", "crate", "else", "enum",
                "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move",
                "mut", "pub", "ref", "return", "self", "Self", "static", "struct", "super",
                "trait", "true", "type", "unsafe", "use", "where", "while",
            ],
            Lang::Python => &[
                "and", "as", "assert", "async", "await", "break", "class", "continue", "def",
                "del", "elif", "else", "except", "False", "finally", "for", "from", "global", "if",
                "import", "in", "is", "lambda", "None", "not", "or", "pass", "raise", "return",
                "True", "try", "while", "with", "yield",
            ],
            Lang::Shell => &[
                "case", "do", "done", "elif", "else", "esac", "exit", "export", "fi", "for",
                "function", "if", "in", "local", "return", "set", "then", "until", "while",
            ],
            Lang::CLike => &[
                "break",
                "case",
                "char",
                "class",
                "const",
                "continue",
                "default",
                "do",
                "double",
                "else",
                "enum",
                "extern",
                "false",
                "float",
                "for",
                "if",
                "int",
                "long",
                "new",
                "null",
                "private",
                "protected",
                "public",
                "return",
                "static",
                "struct",
                "switch",
                "this",
                "true",
                "typedef",
                "void",
                "while",
            ],
            Lang::Js => &[
                "async",
                "await",
                "break",
                "case",
                "catch",
                "class",
                "const",
                "continue",
                "default",
                "else",
                "export",
                "false",
                "for",
                "from",
                "function",
                "if",
                "import",
                "let",
                "new",
                "null",
                "return",
                "switch",
                "this",
                "throw",
                "true",
                "try",
                "typeof",
                "undefined",
                "var",
                "while",
            ],
            Lang::Go => &[
                "break",
                "case",
                "chan",
                "const",
                "continue",
                "default",
                "defer",
                "else",
                "false",
                "for",
                "func",
                "go",
                "if",
                "import",
                "interface",
                "map",
                "nil",
                "package",
                "range",
                "return",
                "select",
                "struct",
                "switch",
                "true",
                "type",
                "var",
            ],
        }
    }
}

/// `code` as spans: `s` strings, `c` comments, `n` numbers, `k` keywords, `""` the rest.
pub fn highlight(code: &str, lang: Lang) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    let push = |spans: &mut Vec<Span>, c: &'static str, t: &str| match spans.last_mut() {
        Some(last) if last.c == c => last.t.push_str(t),
        _ => spans.push(Span { c, t: t.into() }),
    };
    if lang == Lang::Plain {
        push(&mut spans, "", code);
        return spans;
    }
    let keywords = lang.keywords();
    let comment = lang.comment();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let c = rest.chars().next().unwrap_or_default();
        if comment.is_some_and(|m| rest.starts_with(m)) {
            push(&mut spans, "c", rest);
            break;
        }
        if c == '"' || c == '\'' || c == '`' {
            let len = string_len(rest, c);
            push(&mut spans, "s", &rest[..len]);
            i += len;
        } else if c.is_ascii_digit() {
            let len = rest
                .find(|x: char| !(x.is_ascii_alphanumeric() || x == '.' || x == '_'))
                .unwrap_or(rest.len());
            push(&mut spans, "n", &rest[..len]);
            i += len;
        } else if c.is_alphabetic() || c == '_' {
            let len = rest
                .find(|x: char| !(x.is_alphanumeric() || x == '_'))
                .unwrap_or(rest.len());
            let word = &rest[..len];
            push(
                &mut spans,
                if keywords.contains(&word) { "k" } else { "" },
                word,
            );
            i += len;
        } else {
            push(&mut spans, "", &rest[..c.len_utf8()]);
            i += c.len_utf8();
        }
    }
    spans
}

/// Bytes of the string literal at the start of `text` (quote `q`), up to its closing quote or
/// the end of the line; a backslash escapes the next character.
fn string_len(text: &str, q: char) -> usize {
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == q {
            return i + c.len_utf8();
        }
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATCH: &str = "diff --git a/calc.sh b/calc.sh\nindex 1..2 100644\n--- a/calc.sh\n+++ b/calc.sh\n@@ -3,3 +3,3 @@ sub() {\n ctx line\n-  echo $(( $1 + $2 ))\n+  echo $(( $1 - $2 )) # fixed\n last\n\\ No newline at end of file\ndiff --git a/img.png b/img.png\nBinary files a/img.png and b/img.png differ\n";

    #[test]
    fn files_lines_and_numbers() {
        let files = files(PATCH);
        assert_eq!(files.len(), 2);
        let f = &files[0];
        assert_eq!((f.path.as_str(), f.added, f.removed), ("calc.sh", 1, 1));
        let kinds: Vec<&str> = f.lines.iter().map(|l| l.kind).collect();
        assert_eq!(
            kinds,
            ["meta", "meta", "meta", "hunk", "ctx", "del", "add", "ctx", "meta"]
        );
        let numbers: Vec<(Option<usize>, Option<usize>)> =
            f.lines[4..8].iter().map(|l| (l.old, l.new)).collect();
        assert_eq!(
            numbers,
            [
                (Some(3), Some(3)),
                (Some(4), None),
                (None, Some(4)),
                (Some(5), Some(5))
            ]
        );
        let added = &f.lines[6];
        assert_eq!(added.spans.last().unwrap().c, "c");
        assert_eq!(added.spans.last().unwrap().t, "# fixed");
        assert!(files[1].binary);
    }

    #[test]
    fn tokenizer_marks_strings_keywords_numbers_comments() {
        let spans = highlight(r#"let s = "a \" // b"; // c 1"#, Lang::Rust);
        let classes: Vec<(&str, &str)> = spans.iter().map(|s| (s.c, s.t.as_str())).collect();
        assert_eq!(
            classes,
            [
                ("k", "let"),
                ("", " s = "),
                ("s", r#""a \" // b""#),
                ("", "; "),
                ("c", "// c 1")
            ]
        );
        assert_eq!(highlight("x = 42", Lang::Python)[1].c, "n");
        // Unknown languages and odd text come back whole.
        assert_eq!(highlight("<b>é 'x", Lang::Plain).len(), 1);
        let odd: String = highlight("é'unterminated", Lang::Js)
            .iter()
            .map(|s| s.t.as_str())
            .collect();
        assert_eq!(odd, "é'unterminated");
    }

    #[test]
    fn big_files_are_cut() {
        let mut patch = String::from("diff --git a/x.txt b/x.txt\n@@ -0,0 +1,3000 @@\n");
        for i in 0..3000 {
            patch.push_str(&format!("+{i}\n"));
        }
        let files = files(&patch);
        assert_eq!(files[0].lines.len(), MAX_FILE_LINES);
        assert_eq!(files[0].cut_lines, 3001 - MAX_FILE_LINES);
    }
}
