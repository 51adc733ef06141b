//! The run's secrets and their redaction. [`Secrets`] is the one set of secret values a run
//! knows (the model key, the GitHub and session tokens, sandbox service keys, secret variables
//! and any the user names), built once from the configuration and handed to every redactor and
//! scanner. [`Redactor`] replaces each secret by `<secret-hidden>` in events, logs, reports and
//! artifacts before they are written anywhere, and finds it also when it is encoded: URL-encoded,
//! and base64 (standard and URL-safe alphabets, at each of the three byte alignments, as the
//! GitHub runner's masker does), so `base64("x-access-token:" + token)` is caught too.

use base64::Engine as _;
use serde_json::Value;

pub const HIDDEN: &str = "<secret-hidden>";

/// Values shorter than this are not redacted (they would mangle ordinary text).
const MIN_SECRET_LEN: usize = 4;

/// Encoded forms shorter than this are not looked for (too likely to occur by chance).
const MIN_ENCODED_LEN: usize = 8;

/// Lines of a multi-line secret (a PEM key) at least this long are secrets on their own, so a
/// log that prints part of the key hides it too (as the GitHub runner masks each line).
const MIN_SECRET_LINE_LEN: usize = 16;

/// `value` and, when it spans lines, each of its long lines (also when the line breaks are
/// written as a literal `\n`, as keys pasted into one-line secrets are).
pub fn with_lines(value: &str) -> Vec<String> {
    let mut all = vec![value.to_string()];
    let unescaped = value.replace("\\n", "\n");
    all.extend(
        unescaped
            .lines()
            .map(str::trim)
            .filter(|l| l.len() >= MIN_SECRET_LINE_LEN && !l.starts_with("-----"))
            .map(str::to_string),
    );
    all
}

/// The secret values of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets(Vec<String>);

impl Secrets {
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut s = Secrets(Vec::new());
        s.extend(values);
        s
    }

    pub fn iter(&self) -> std::slice::Iter<'_, String> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.clone()
    }

    /// A redactor for these secrets.
    pub fn redactor(&self) -> Redactor {
        Redactor::new(self.0.iter().cloned())
    }
}

impl Extend<String> for Secrets {
    fn extend<I: IntoIterator<Item = String>>(&mut self, values: I) {
        for v in values {
            if !v.is_empty() && !self.0.contains(&v) {
                self.0.push(v);
            }
        }
    }
}

impl<'a> IntoIterator for &'a Secrets {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Hides the secrets of a run, plain or encoded.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
    /// Every form looked for: the secrets and their encodings, longest first.
    needles: Vec<String>,
    /// The needles base64 line-wrapping can split (base64 alphabet, long enough to look for).
    wrappable: Vec<String>,
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .collect();
        secrets.sort();
        secrets.dedup();
        let mut needles: Vec<String> = secrets.iter().flat_map(|s| encoded_forms(s)).collect();
        // Longest first, so a secret containing another is hidden whole.
        needles.sort_by_key(|s| std::cmp::Reverse(s.len()));
        needles.dedup();
        let wrappable = needles
            .iter()
            .filter(|n| n.len() >= MIN_ENCODED_LEN && n.bytes().all(base64ish))
            .cloned()
            .collect();
        Redactor {
            secrets,
            needles,
            wrappable,
        }
    }

    /// Adds secrets (short ones are ignored, as in `new`).
    pub fn add(&mut self, secrets: impl IntoIterator<Item = String>) {
        let all = std::mem::take(&mut self.secrets).into_iter().chain(secrets);
        *self = Redactor::new(all);
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Whether `text` holds a secret, plain or encoded (also base64 wrapped over lines).
    pub fn finds(&self, text: &str) -> bool {
        self.needles.iter().any(|n| text.contains(n.as_str()))
            || !self.wrapped_spans(text).is_empty()
    }

    /// `text` with every secret hidden.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), HIDDEN);
            }
        }
        let spans = self.wrapped_spans(&out);
        for (start, end) in spans.into_iter().rev() {
            out.replace_range(start..end, HIDDEN);
        }
        out
    }

    /// Byte ranges of `text` that hold an encoded secret split by line breaks, as `base64`
    /// wraps at 76 columns and PEM at 64: the breaks between two base64 characters are taken
    /// out, the encoded forms looked for in what is left, and each hit mapped back to the span
    /// it covers (breaks included). Sorted, not overlapping.
    fn wrapped_spans(&self, text: &str) -> Vec<(usize, usize)> {
        let bytes = text.as_bytes();
        if self.wrappable.is_empty() || !bytes.contains(&b'\n') {
            return Vec::new();
        }
        let mut joined = Vec::with_capacity(bytes.len());
        let mut origin = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if matches!(bytes[i], b'\r' | b'\n') && i > 0 && base64ish(bytes[i - 1]) {
                let mut j = i;
                while j < bytes.len() && j - i < 2 && matches!(bytes[j], b'\r' | b'\n') {
                    j += 1;
                }
                if j < bytes.len() && base64ish(bytes[j]) {
                    i = j;
                    continue;
                }
            }
            joined.push(bytes[i]);
            origin.push(i);
            i += 1;
        }
        if joined.len() == bytes.len() {
            return Vec::new();
        }
        let mut spans = Vec::new();
        for needle in self.wrappable.iter().map(String::as_bytes) {
            let mut from = 0;
            while let Some(at) = find(&joined[from..], needle) {
                let (start, last) = (from + at, from + at + needle.len() - 1);
                let span = (origin[start], origin[last] + 1);
                // Only what crosses a break: the rest was hidden by the plain pass.
                if span.1 - span.0 > needle.len() {
                    spans.push(span);
                }
                from = start + 1;
            }
        }
        spans.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::new();
        for (start, end) in spans {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }

    /// Hides secrets in every string (and key) of a JSON value. Returns whether anything changed.
    pub fn redact_json(&self, value: &mut Value) -> bool {
        match value {
            Value::String(s) => {
                let red = self.redact(s);
                let changed = red != *s;
                *s = red;
                changed
            }
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |acc, v| self.redact_json(v) | acc),
            Value::Object(map) => {
                let mut changed = false;
                let old = std::mem::take(map);
                for (k, mut v) in old {
                    changed |= self.redact_json(&mut v);
                    let key = self.redact(&k);
                    changed |= key != k;
                    map.insert(key, v);
                }
                changed
            }
            _ => false,
        }
    }
}

/// A character of base64 (either alphabet) or its padding.
fn base64ish(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+/-_=".contains(&b)
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The secret and the forms it takes when encoded: URL-encoded, and the part of its base64
/// that does not depend on the bytes around it, at each byte alignment, in both alphabets.
fn encoded_forms(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_string()];
    let url: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    forms.push(url.replace('+', "%20"));
    forms.push(url);
    let bytes = secret.as_bytes();
    for offset in 0..3 {
        let mut padded = vec![0u8; offset];
        padded.extend_from_slice(bytes);
        let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&padded);
        // Character i covers bits 6i..6i+6: keep those inside the secret's bits.
        let start = (8 * offset).div_ceil(6);
        let end = (8 * (offset + bytes.len())) / 6;
        if end > start && end - start >= MIN_ENCODED_LEN {
            let core = &encoded[start..end];
            forms.push(core.to_string());
            forms.push(core.replace('+', "-").replace('/', "_"));
        }
    }
    forms.retain(|f| f.len() >= MIN_SECRET_LEN);
    forms
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hides_every_occurrence_longest_first() {
        let r = Redactor::new([
            "sk-abc".to_string(),
            "sk-abcdef".to_string(),
            "ab".to_string(),
        ]);
        assert_eq!(
            r.redact("key sk-abcdef and sk-abc, ab"),
            "key <secret-hidden> and <secret-hidden>, ab"
        );
    }

    #[test]
    fn encoded_secrets_are_found_at_every_alignment() {
        let token = "ghs_FAKEtoken1234567890abcdefXYZ";
        let r = Redactor::new([token.to_string()]);
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let url_safe = |s: &str| base64::engine::general_purpose::URL_SAFE.encode(s);
        for prefix in ["", "x", "xy", "x-access-token:", "basic "] {
            for encoded in [
                b64(&format!("{prefix}{token}")),
                url_safe(&format!("{prefix}{token}!?")),
            ] {
                let text = format!("AUTHORIZATION: basic {encoded}\n");
                assert!(r.finds(&text), "{prefix:?}: {text}");
                assert!(!r.redact(&text).contains(&encoded), "{text}");
            }
        }
        let key = "sk-a/b+c d&e=f";
        let r = Redactor::new([key.to_string()]);
        assert!(r.finds("https://x/?k=sk-a%2Fb%2Bc+d%26e%3Df"));
        assert!(r.finds("https://x/?k=sk-a%2Fb%2Bc%20d%26e%3Df"));
        assert!(!r.finds("an ordinary sentence with sk- in it"));
    }

    #[test]
    fn base64_wrapped_over_lines_is_hidden_whole() {
        let token = "ghs_FAKEtoken1234567890abcdefXYZ";
        let r = Redactor::new([token.to_string()]);
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{}{token} and more text after it", "x".repeat(40)));
        for width in [76, 64, 20] {
            for eol in ["\n", "\r\n"] {
                let wrapped: Vec<&str> = encoded
                    .as_bytes()
                    .chunks(width)
                    .map(|c| std::str::from_utf8(c).unwrap())
                    .collect();
                let text = format!("$ base64 secret.txt\n{}\n$ ", wrapped.join(eol));
                assert!(r.finds(&text), "{width} {eol:?}");
                let red = r.redact(&text);
                assert!(red.contains(HIDDEN), "{red}");
                let rejoined: String = red.split(HIDDEN).collect::<Vec<_>>().join("");
                let joined: String = rejoined.chars().filter(|c| !c.is_whitespace()).collect();
                assert!(!Redactor::new([token.to_string()]).finds(&joined), "{red}");
                assert!(
                    red.starts_with("$ base64 secret.txt\n") && red.ends_with("\n$ "),
                    "{red}"
                );
            }
        }
        // Ordinary wrapped text is left alone.
        let prose = "line one\nline two\nsk-not-a-secret\n";
        assert_eq!(r.redact(prose), prose);
    }

    #[test]
    fn one_secret_set_dedups_and_builds_the_redactor() {
        let mut s = Secrets::new(["a-secret".to_string(), String::new()]);
        s.extend(["a-secret".to_string(), "another".to_string()]);
        assert_eq!(s.to_vec(), ["a-secret", "another"]);
        assert_eq!(
            s.redactor().redact("another a-secret"),
            "<secret-hidden> <secret-hidden>"
        );
    }

    #[test]
    fn redacts_nested_json() {
        let r = Redactor::new(["hunter22".to_string()]);
        let mut v = json!({"a": ["x hunter22 y", {"hunter22": 1}], "n": 3});
        assert!(r.redact_json(&mut v));
        assert_eq!(
            v,
            json!({"a": ["x <secret-hidden> y", {"<secret-hidden>": 1}], "n": 3})
        );
    }
}
