//! The agent's changes checked for the run's secrets before anything leaves the runner: a
//! prompt-injected agent that writes a key into a file (plain, URL-encoded or base64, also
//! base64 wrapped over several lines, or inside a binary file) must not get it committed, pushed
//! or uploaded. Each file's part of the patch is searched with the run's [`Redactor`], which
//! knows every secret and its encoded forms; a binary file's part (git's `GIT binary patch`:
//! base85 lines of zlib data) is decoded and inflated first. The hits are named by file, never
//! by secret.

use std::io::Read as _;

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
        let binary = String::from_utf8_lossy(&binary_payloads(section)).into_owned();
        if redactor.finds(section) || redactor.finds(&joined) || redactor.finds(&binary) {
            let name = file_name(section);
            if !hits.contains(&name) {
                hits.push(name);
            }
        }
    }
    hits
}

/// The bytes of every `literal`/`delta` block of a `GIT binary patch` in `section`, inflated
/// (a delta's inserted bytes are its new content). A block that does not decode adds nothing:
/// the text scan still runs over it.
fn binary_payloads(section: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if !(line.starts_with("literal ") || line.starts_with("delta ")) {
            continue;
        }
        let mut deflated = Vec::new();
        for data in lines.by_ref().take_while(|l| !l.is_empty()) {
            match base85_line(data) {
                Some(bytes) => deflated.extend(bytes),
                None => break,
            }
        }
        let mut inflated = Vec::new();
        let reader = flate2::read::ZlibDecoder::new(&deflated[..]);
        // Bounded: a patch of a huge file must not make the scan allocate without limit.
        if reader.take(64 << 20).read_to_end(&mut inflated).is_ok() {
            out.extend(inflated);
        }
    }
    out
}

/// One line of git's base85: a length character (`A`-`Z` 1-26, `a`-`z` 27-52 bytes), then
/// groups of five characters, each four bytes big-endian.
fn base85_line(line: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] =
        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~";
    let (first, rest) = line.as_bytes().split_first()?;
    let len = match first {
        b'A'..=b'Z' => (first - b'A' + 1) as usize,
        b'a'..=b'z' => (first - b'a' + 27) as usize,
        _ => return None,
    };
    let mut bytes = Vec::with_capacity(rest.len() / 5 * 4);
    for group in rest.chunks(5) {
        if group.len() != 5 {
            return None;
        }
        let mut value: u64 = 0;
        for &c in group {
            let digit = ALPHABET.iter().position(|&a| a == c)? as u64;
            value = value * 85 + digit;
        }
        let value = u32::try_from(value).ok()?;
        bytes.extend(value.to_be_bytes());
    }
    (bytes.len() >= len).then(|| bytes[..len].to_vec())
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

    #[test]
    fn a_secret_inside_a_binary_file_is_found_in_gits_binary_patch() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        git(&["init", "-q"]);
        let mut data = vec![0u8, 159, 146, 150, 0, 1, 2];
        data.extend(format!("token={KEY}").as_bytes());
        data.extend([0u8; 64]);
        std::fs::write(dir.path().join("blob.bin"), &data).unwrap();
        std::fs::write(dir.path().join("clean.bin"), [0u8, 1, 2, 3, 0, 255]).unwrap();
        git(&["add", "-A"]);
        let patch = git(&["diff", "--cached", "--binary"]);
        assert!(patch.contains("GIT binary patch"), "{patch}");
        assert!(!patch.contains(KEY), "the key is not visible as text");
        let r = Redactor::new([KEY.to_string()]);
        assert_eq!(files_with_secrets(&patch, &r), ["blob.bin"]);
    }
}
