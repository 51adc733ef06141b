//! The agent's changes checked for the run's secrets before anything leaves the runner: a
//! prompt-injected agent that writes a key into a file (plain, URL-encoded or base64, also
//! base64 wrapped over several lines) must not get it committed, pushed or uploaded. Each
//! file's part of the patch is searched with the run's [`Redactor`], which knows every secret
//! and its encoded forms; the hits are named by file, never by secret.

use crate::redact::Redactor;

/// The files of `patch` (a `git diff` of the run) whose changes hold a secret.
pub fn files_with_secrets(patch: &str, redactor: &Redactor) -> Vec<String> {
    if redactor.is_empty() {
        return Vec::new();
    }
    let mut hits = Vec::new();
    for section in file_sections(patch) {
        // Added lines joined without their line breaks: base64 wrapped at 76 columns.
        let joined: String = section
            .lines()
            .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
            .map(|l| l[1..].trim())
            .collect();
        if redactor.finds(section) || redactor.finds(&joined) {
            let name = file_name(section);
            if !hits.contains(&name) {
                hits.push(name);
            }
        }
    }
    hits
}

/// The patch cut at each `diff --git` line (text before the first one is its own part).
fn file_sections(patch: &str) -> Vec<&str> {
    let mut starts: Vec<usize> = patch
        .match_indices("diff --git ")
        .map(|(i, _)| i)
        .filter(|&i| i == 0 || patch.as_bytes()[i - 1] == b'\n')
        .collect();
    if starts.first() != Some(&0) {
        starts.insert(0, 0);
    }
    starts
        .iter()
        .zip(starts.iter().skip(1).chain([&patch.len()]))
        .map(|(&a, &b)| &patch[a..b])
        .filter(|s| !s.is_empty())
        .collect()
}

/// `X` of `diff --git a/X b/X` (the new side); the header line itself when it has no ` b/`.
fn file_name(section: &str) -> String {
    let header = section.lines().next().unwrap_or_default();
    match header.rsplit_once(" b/") {
        Some((_, name)) => name.trim_matches('"').to_string(),
        None => "the patch".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    const KEY: &str = "sk-fake-llm-key-0987654321-secret";

    fn patch(files: &[(&str, &str)]) -> String {
        files
            .iter()
            .map(|(name, line)| {
                format!("diff --git a/{name} b/{name}\n--- a/{name}\n+++ b/{name}\n@@ -1 +1 @@\n-old\n+{line}\n")
            })
            .collect()
    }

    #[test]
    fn names_each_file_that_holds_a_secret_plain_or_encoded() {
        let r = Redactor::new([KEY.to_string()]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("key={KEY}"));
        let p = patch(&[
            ("clean.txt", "nothing here"),
            ("plain.txt", KEY),
            ("b64.txt", &b64),
            ("url.txt", "sk-fake-llm-key-0987654321-secret%0A"),
        ]);
        assert_eq!(
            files_with_secrets(&p, &r),
            ["plain.txt", "b64.txt", "url.txt"]
        );
        assert!(files_with_secrets(&patch(&[("a", "b")]), &r).is_empty());
    }

    #[test]
    fn base64_wrapped_over_lines_is_found() {
        let r = Redactor::new([KEY.to_string()]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("xx{KEY}{KEY}"));
        let (a, b) = b64.split_at(30);
        let p = format!(
            "diff --git a/w.txt b/w.txt\nnew file mode 100644\n--- /dev/null\n+++ b/w.txt\n@@ -0,0 +1,2 @@\n+{a}\n+{b}\n"
        );
        assert_eq!(files_with_secrets(&p, &r), ["w.txt"]);
    }
}
