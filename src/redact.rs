//! Secret redaction: every known secret value is replaced by `<secret-hidden>` in events,
//! logs, reports and artifacts before they are written anywhere.

use serde_json::Value;

pub const HIDDEN: &str = "<secret-hidden>";

/// Values shorter than this are not redacted (they would mangle ordinary text).
const MIN_SECRET_LEN: usize = 4;

/// The secrets of a run.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .collect();
        // Longest first, so a secret containing another is hidden whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// Adds secrets (short ones are ignored, as in `new`).
    pub fn add(&mut self, secrets: impl IntoIterator<Item = String>) {
        let all = std::mem::take(&mut self.secrets).into_iter().chain(secrets);
        *self = Redactor::new(all);
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret hidden.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), HIDDEN);
            }
        }
        out
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
