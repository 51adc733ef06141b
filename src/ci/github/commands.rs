//! GitHub Actions workflow commands (`::add-mask::`, `::group::`, `::error::`,
//! `::stop-commands::`), written to stderr, the stream the agent's progress goes to (the
//! runner reads commands from both), and the `GITHUB_OUTPUT` / `GITHUB_STEP_SUMMARY` files.

use std::io::Write;
use std::path::Path;

/// The step summary limit ("supports content up to a size of 1024k").
pub const SUMMARY_LIMIT: usize = 1024 * 1024;

fn emit(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
    let _ = err.flush();
}

/// `%`, CR and LF escaped, as the runner expects in command data.
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Masks every secret (each line of a multi-line one) before anything else is printed.
pub fn add_masks(secrets: &[String]) {
    for secret in secrets {
        for line in secret.lines().map(str::trim).filter(|l| l.len() >= 4) {
            emit(&format!("::add-mask::{}", escape_data(line)));
        }
    }
}

pub fn group(title: &str) {
    emit(&format!("::group::{}", escape_data(title)));
}

pub fn end_group() {
    emit("::endgroup::");
}

/// An error annotation.
pub fn error(message: &str) {
    emit(&format!("::error title=sandcrab::{}", escape_data(message)));
}

/// Turns workflow commands off until `resume` is called with the same guard, so echoed agent
/// output cannot issue commands. The token is random and never shown to the agent.
pub struct StopCommands {
    token: String,
}

impl StopCommands {
    pub fn start() -> Self {
        let token = format!("sandcrab-{}", uuid::Uuid::new_v4().simple());
        emit(&format!("::stop-commands::{token}"));
        StopCommands { token }
    }

    pub fn resume(self) {
        emit(&format!("::{}::", self.token));
    }
}

/// Appends `name=value` pairs to the `GITHUB_OUTPUT` file, each in the multi-line form with a
/// random delimiter that the value cannot contain.
pub fn write_outputs(path: &Path, outputs: &[(&str, String)]) -> std::io::Result<()> {
    let mut text = String::new();
    for (name, value) in outputs {
        let delimiter = loop {
            let d = format!("ghadelimiter_{}", uuid::Uuid::new_v4());
            if !value.contains(&d) {
                break d;
            }
        };
        text.push_str(&format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"));
    }
    append(path, &text)
}

/// Appends the report to the `GITHUB_STEP_SUMMARY` file, cut to the 1 MiB limit.
pub fn write_summary(path: &Path, markdown: &str) -> std::io::Result<()> {
    let note = "\n\n… cut at the step-summary limit; the whole report is `report.md`.\n";
    let text = if markdown.len() > SUMMARY_LIMIT {
        let mut at = SUMMARY_LIMIT - note.len();
        while !markdown.is_char_boundary(at) {
            at -= 1;
        }
        format!("{}{note}", &markdown[..at])
    } else {
        markdown.to_string()
    };
    append(path, &text)
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_escaped() {
        assert_eq!(escape_data("50%\r\nok"), "50%25%0D%0Aok");
    }

    #[test]
    fn outputs_are_multiline_safe() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::write(&path, "earlier=1\n").unwrap();
        write_outputs(&path, &[("a", "x\ny=2".into()), ("b", String::new())]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "earlier=1");
        let delim = lines[1].strip_prefix("a<<").unwrap();
        assert!(delim.starts_with("ghadelimiter_"));
        assert_eq!(&lines[2..5], &["x", "y=2", delim]);
        assert!(lines[5].starts_with("b<<"));
    }

    #[test]
    fn the_summary_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary");
        write_summary(&path, &"ü".repeat(SUMMARY_LIMIT)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.len() <= SUMMARY_LIMIT && text.ends_with("`report.md`.\n"));
    }
}
