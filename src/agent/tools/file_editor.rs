//! `file_editor`: views, creates and edits files (`view`, `create`, `str_replace`, `insert`,
//! `undo_edit`), with OpenHands' `FileEditorAction` / `FileEditorObservation` shapes.
//!
//! Edits keep a file's line endings (LF or CRLF) and its trailing newline (or lack of one), and
//! remember the previous content of each path so `undo_edit` can restore it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{parse_args, ToolContext, ToolOutput, TypedTool};
use crate::agent::truncate::truncate_middle;
use crate::llm::ToolSpec;

const COMMANDS: [&str; 5] = ["view", "create", "str_replace", "insert", "undo_edit"];
/// Lines of context shown around an edit.
const SNIPPET_CONTEXT: usize = 4;
/// Files larger than this are not loaded (the terminal's `head`/`sed` can page them).
const MAX_FILE_BYTES: u64 = 16 << 20;
/// Undo steps remembered per path.
const MAX_HISTORY: usize = 50;

pub struct FileEditorTool {
    ctx: ToolContext,
    /// Per path, the contents before each edit; `None` = the file did not exist.
    history: Mutex<HashMap<PathBuf, Vec<Option<Vec<u8>>>>>,
}

/// The `command` discriminator of a `FileEditorAction`. The action stays one flat struct, as
/// OpenHands' is: every field is on the wire (`null` when unset), whatever the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    View,
    Create,
    StrReplace,
    Insert,
    UndoEdit,
}

impl Command {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "view" => Some(Command::View),
            "create" => Some(Command::Create),
            "str_replace" => Some(Command::StrReplace),
            "insert" => Some(Command::Insert),
            "undo_edit" => Some(Command::UndoEdit),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Command::View => "view",
            Command::Create => "create",
            Command::StrReplace => "str_replace",
            Command::Insert => "insert",
            Command::UndoEdit => "undo_edit",
        }
    }
}

/// OpenHands' `FileEditorAction`. `C` is `String` only for the model's arguments as given,
/// before `command` is checked (so an unknown one gets the message listing the valid ones).
#[derive(Debug, Serialize, Deserialize)]
pub struct FileEditorAction<C = Command> {
    command: C,
    path: String,
    #[serde(default)]
    file_text: Option<String>,
    #[serde(default)]
    old_str: Option<String>,
    #[serde(default)]
    new_str: Option<String>,
    #[serde(default)]
    insert_line: Option<i64>,
    #[serde(default)]
    view_range: Option<Vec<i64>>,
}

/// A successful command: the text for the model and the file's contents around it.
struct Done {
    text: String,
    old_content: Option<String>,
    new_content: Option<String>,
}

impl Done {
    fn view(text: String) -> Self {
        Done {
            text,
            old_content: None,
            new_content: None,
        }
    }
}

/// A text file's contents with `\n` line endings, and whether the file used `\r\n`.
struct Text {
    body: String,
    crlf: bool,
}

impl Text {
    fn decode(raw: String) -> Self {
        let crlf_count = raw.matches("\r\n").count();
        let crlf = crlf_count > 0 && crlf_count == raw.matches('\n').count();
        let body = if crlf { raw.replace("\r\n", "\n") } else { raw };
        Text { body, crlf }
    }

    /// Brings text from the model to the file's line endings convention (`\n` in `body`).
    fn normalize(&self, s: &str) -> String {
        if self.crlf {
            s.replace("\r\n", "\n")
        } else {
            s.to_string()
        }
    }

    fn encode(&self, body: &str) -> String {
        if self.crlf {
            body.replace('\n', "\r\n")
        } else {
            body.to_string()
        }
    }
}

impl FileEditorTool {
    pub fn new(ctx: ToolContext) -> Self {
        FileEditorTool {
            ctx,
            history: Mutex::new(HashMap::new()),
        }
    }

    fn edit(&self, action: &FileEditorAction, path: &Path) -> Result<Done, String> {
        if !path.is_absolute() {
            let suggestion = self.ctx.working_dir.join(path);
            return Err(format!(
                "The path {} is not an absolute path; it should start with `/`. Maybe you meant \
                 {}?",
                path.display(),
                suggestion.display()
            ));
        }
        match action.command {
            Command::View => self.view(path, action.view_range.as_deref()),
            Command::Create => self.create(path, action.file_text.as_deref()),
            Command::StrReplace => self.str_replace(path, action),
            Command::Insert => self.insert(path, action),
            Command::UndoEdit => self.undo(path),
        }
    }

    fn view(&self, path: &Path, range: Option<&[i64]>) -> Result<Done, String> {
        if path.is_dir() {
            if range.is_some() {
                return Err(
                    "The `view_range` parameter is not allowed when `path` points to a \
                            directory."
                        .into(),
                );
            }
            let listing = view_dir(path);
            return Ok(Done::view(truncate_middle(
                &listing,
                self.ctx.max_output_chars,
            )));
        }
        let text = read_text(path)?;
        let lines = split_lines(&text.body);
        let (start, end) = resolve_range(range, lines.len())?;
        let numbered = number_lines(&lines[start - 1..end], start);
        let shown = truncate_middle(&numbered, self.ctx.max_output_chars);
        let mut out = format!(
            "Here's the result of running `cat -n` on {}:\n{shown}\n",
            path.display()
        );
        if shown.len() != numbered.len() {
            out.push_str("[The file is too long to show in full; use `view_range` to see the cut part, or grep it with the terminal.]\n");
        }
        Ok(Done::view(out))
    }

    fn create(&self, path: &Path, file_text: Option<&str>) -> Result<Done, String> {
        let file_text = file_text.ok_or_else(|| missing("file_text", "create"))?;
        if path.exists() {
            return Err(format!(
                "File already exists at: {}. Cannot overwrite files using command `create`; use \
                 `str_replace` to edit it.",
                path.display()
            ));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("Could not create the directory {}: {e}", parent.display()))?;
        }
        write(path, file_text.as_bytes())?;
        self.remember(path, None);
        Ok(Done {
            text: format!("File created successfully at: {}", path.display()),
            old_content: None,
            new_content: Some(file_text.to_string()),
        })
    }

    fn str_replace(&self, path: &Path, action: &FileEditorAction) -> Result<Done, String> {
        let old_str = action
            .old_str
            .as_deref()
            .ok_or_else(|| missing("old_str", "str_replace"))?;
        if old_str.is_empty() {
            return Err(
                "`old_str` must not be empty; to add text, use the `insert` command.".into(),
            );
        }
        let (raw, text) = read_editable(path)?;
        let old = text.normalize(old_str);
        let new = text.normalize(action.new_str.as_deref().unwrap_or(""));
        if old == new {
            return Err(
                "No replacement was performed: `new_str` and `old_str` must be different.".into(),
            );
        }
        let at = unique_occurrence(&text.body, &old, path)?;
        let body = format!("{}{new}{}", &text.body[..at], &text.body[at + old.len()..]);
        let first = line_of(&text.body, at);
        let last = first + new.strip_suffix('\n').unwrap_or(&new).matches('\n').count();
        let new_content = self.commit(path, raw.clone(), &text, &body)?;
        let snippet = snippet(&body, first, last);
        Ok(Done {
            text: format!(
                "The file {p} has been edited. Here's the result of running `cat -n` on a snippet \
                 of {p}:\n{snippet}\nReview the changes and make sure they are as expected. Edit \
                 the file again if necessary.",
                p = path.display()
            ),
            old_content: Some(raw),
            new_content: Some(new_content),
        })
    }

    fn insert(&self, path: &Path, action: &FileEditorAction) -> Result<Done, String> {
        let line = action
            .insert_line
            .ok_or_else(|| missing("insert_line", "insert"))?;
        let new_str = action
            .new_str
            .as_deref()
            .ok_or_else(|| missing("new_str", "insert"))?;
        let (raw, text) = read_editable(path)?;
        let mut lines = split_lines(&text.body);
        let count = lines.len();
        let at = usize::try_from(line)
            .ok()
            .filter(|&l| l <= count)
            .ok_or_else(|| {
                format!(
                    "Invalid `insert_line` parameter: {line}. It should be within the range of \
                 allowed values: [0, {count}]"
                )
            })?;
        let new = text.normalize(new_str);
        let new = new.strip_suffix('\n').unwrap_or(&new);
        let added: Vec<&str> = new.split('\n').collect();
        let added_count = added.len();
        lines.splice(at..at, added);
        let trailing = text.body.is_empty() || text.body.ends_with('\n');
        let body = lines.join("\n") + if trailing { "\n" } else { "" };
        let new_content = self.commit(path, raw.clone(), &text, &body)?;
        let snippet = snippet(&body, at + 1, at + added_count);
        Ok(Done {
            text: format!(
                "The file {} has been edited. Here's the result of running `cat -n` on a snippet \
                 of the edited file:\n{snippet}\nReview the changes and make sure they are as \
                 expected (correct indentation, no duplicate lines, etc). Edit the file again if \
                 necessary.",
                path.display()
            ),
            old_content: Some(raw),
            new_content: Some(new_content),
        })
    }

    fn undo(&self, path: &Path) -> Result<Done, String> {
        let previous = self
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(path)
            .and_then(|steps| steps.pop())
            .ok_or_else(|| format!("No edit history found for {}.", path.display()))?;
        let current = std::fs::read(path)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        let Some(bytes) = previous else {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("Could not delete {}: {e}", path.display())),
            }
            return Ok(Done {
                text: format!(
                    "Undid the creation of {}: the file did not exist before, so it has been \
                     deleted.",
                    path.display()
                ),
                old_content: current,
                new_content: None,
            });
        };
        write(path, &bytes)?;
        let restored = String::from_utf8_lossy(&bytes).into_owned();
        let text = Text::decode(restored.clone());
        let numbered = number_lines(&split_lines(&text.body), 1);
        Ok(Done {
            text: format!(
                "Last edit to {} undone successfully. Here's the result of running `cat -n` on \
                 it:\n{}\n",
                path.display(),
                truncate_middle(&numbered, self.ctx.max_output_chars)
            ),
            old_content: current,
            new_content: Some(restored),
        })
    }

    /// Writes the edited `body` (in the file's line endings) and records `raw` for undo.
    fn commit(&self, path: &Path, raw: String, text: &Text, body: &str) -> Result<String, String> {
        let content = text.encode(body);
        write(path, content.as_bytes())?;
        self.remember(path, Some(raw.into_bytes()));
        Ok(content)
    }

    fn remember(&self, path: &Path, previous: Option<Vec<u8>>) {
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let steps = history.entry(path.to_path_buf()).or_default();
        if steps.len() >= MAX_HISTORY {
            steps.remove(0);
        }
        steps.push(previous);
    }

    fn observation(
        &self,
        action: &FileEditorAction,
        prev_exist: bool,
        result: Result<Done, String>,
    ) -> ToolOutput {
        let (text, is_error, old, new) = match result {
            Ok(done) => (done.text, false, done.old_content, done.new_content),
            Err(msg) => (msg, true, None, None),
        };
        let extra = json!({
            "command": action.command,
            "path": action.path,
            "prev_exist": prev_exist,
            "old_content": old,
            "new_content": new,
        });
        ToolOutput::new("FileEditorObservation", text, is_error, extra)
    }
}

fn unknown_command(command: &str) -> String {
    format!(
        "invalid arguments for tool 'file_editor': unknown command `{command}`; the valid \
         commands are: {}",
        COMMANDS.join(", ")
    )
}

fn missing(param: &str, command: &str) -> String {
    format!("Parameter `{param}` is required for command: {command}.")
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("Could not write {}: {e}", path.display()))
}

/// Reads a UTF-8 text file, with messages for the model when it is not one.
fn read_text(path: &Path) -> Result<Text, String> {
    read_editable(path).map(|(_, text)| text)
}

/// Like [`read_text`], also returning the raw contents.
fn read_editable(path: &Path) -> Result<(String, Text), String> {
    let p = path.display();
    let meta = std::fs::metadata(path)
        .map_err(|_| format!("The path {p} does not exist. Please provide a valid path."))?;
    if meta.is_dir() {
        return Err(format!(
            "The path {p} is a directory; only the `view` command works on directories."
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "The file {p} is too large ({} bytes) for this tool; inspect it with the terminal \
             (`head`, `sed -n`, `grep`).",
            meta.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("Could not read {p}: {e}"))?;
    if bytes.contains(&0) {
        return Err(format!(
            "The file {p} appears to be binary; this tool only handles text files."
        ));
    }
    let raw = String::from_utf8(bytes).map_err(|_| {
        format!("The file {p} is not valid UTF-8 text; this tool only handles UTF-8 text files.")
    })?;
    Ok((raw.clone(), Text::decode(raw)))
}

/// The lines of `body` (a final `\n` ends the last line rather than starting an empty one).
fn split_lines(body: &str) -> Vec<&str> {
    if body.is_empty() {
        return Vec::new();
    }
    body.strip_suffix('\n')
        .unwrap_or(body)
        .split('\n')
        .collect()
}

fn number_lines(lines: &[&str], first: usize) -> String {
    let numbered: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| format!("{:>6}\t{line}", i + first))
        .collect();
    numbered.join("\n")
}

/// The 1-based line on which byte `at` of `body` lies.
fn line_of(body: &str, at: usize) -> usize {
    body[..at].matches('\n').count() + 1
}

/// Lines `first..=last` of `body` with some context around them, numbered.
fn snippet(body: &str, first: usize, last: usize) -> String {
    let lines = split_lines(body);
    let start = first.saturating_sub(SNIPPET_CONTEXT).max(1);
    let end = (last + SNIPPET_CONTEXT).min(lines.len());
    if start > end {
        return String::new();
    }
    number_lines(&lines[start - 1..end], start)
}

/// The byte offset of the only occurrence of `old` in `body`, else a message for the model.
fn unique_occurrence(body: &str, old: &str, path: &Path) -> Result<usize, String> {
    let found: Vec<usize> = body.match_indices(old).map(|(at, _)| at).collect();
    match found.as_slice() {
        [at] => Ok(*at),
        [] => Err(format!(
            "No replacement was performed, old_str did not appear verbatim in {}.",
            path.display()
        )),
        many => {
            let lines: Vec<usize> = many.iter().map(|&at| line_of(body, at)).collect();
            Err(format!(
                "No replacement was performed. Multiple occurrences of old_str in lines {lines:?}. \
                 Please ensure it is unique."
            ))
        }
    }
}

/// Turns `view_range` into 1-based inclusive bounds within `count` lines.
fn resolve_range(range: Option<&[i64]>, count: usize) -> Result<(usize, usize), String> {
    let Some(range) = range else {
        return Ok((1, count));
    };
    let (start, end) = match range {
        [start, end] => (*start, *end),
        _ => return Err("Invalid `view_range`: it should be a list of two integers.".into()),
    };
    let n = count as i64;
    if start < 1 || start > n {
        return Err(format!(
            "Invalid `view_range` parameter: [{start}, {end}]. Its first element `{start}` should \
             be within the range of lines of the file: [1, {n}]."
        ));
    }
    let end = if end == -1 { n } else { end };
    if end < start {
        return Err(format!(
            "Invalid `view_range` parameter: [{start}, {end}]. Its second element `{end}` should \
             be -1 or larger than or equal to its first element `{start}`."
        ));
    }
    if end > n {
        return Err(format!(
            "Invalid `view_range` parameter: [{start}, {end}]. Its second element `{end}` should \
             be smaller than or equal to the number of lines in the file: `{n}`."
        ));
    }
    Ok((start as usize, end as usize))
}

/// Lists files and directories up to 2 levels deep, hidden ones excluded, sorted.
fn view_dir(root: &Path) -> String {
    let mut entries = Vec::new();
    collect_entries(root, 2, &mut entries);
    entries.sort();
    let mut out = format!(
        "Here's the files and directories up to 2 levels deep in {}, excluding hidden items:\n{}/\n",
        root.display(),
        root.display().to_string().trim_end_matches('/')
    );
    for (path, is_dir) in entries {
        out.push_str(&path.display().to_string());
        out.push_str(if is_dir { "/\n" } else { "\n" });
    }
    out
}

fn collect_entries(dir: &Path, depth: usize, out: &mut Vec<(PathBuf, bool)>) {
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in read.flatten() {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        out.push((entry.path(), is_dir));
        if is_dir && depth > 1 {
            collect_entries(&entry.path(), depth - 1, out);
        }
    }
}

#[async_trait]
impl TypedTool for FileEditorTool {
    type Action = FileEditorAction;
    const NAME: &'static str = "file_editor";
    const ACTION_KIND: &'static str = "FileEditorAction";
    const OBSERVATION_KIND: &'static str = "FileEditorObservation";

    fn tool_spec(&self) -> ToolSpec {
        ToolSpec {
            name: "file_editor".into(),
            description: DESCRIPTION.into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "command": {
                        "type": "string",
                        "enum": COMMANDS,
                        "description": "The command to run: `view`, `create`, `str_replace`, \
                            `insert` or `undo_edit`."
                    },
                    "path": {
                        "type": "string",
                        "description": "Absolute path to the file or directory, e.g. \
                            `/workspace/file.py` or `/workspace`."
                    },
                    "file_text": {
                        "type": "string",
                        "description": "Required for `create`: the content of the new file."
                    },
                    "old_str": {
                        "type": "string",
                        "description": "Required for `str_replace`: the exact text to replace; it \
                            must occur exactly once in the file, whitespace included."
                    },
                    "new_str": {
                        "type": "string",
                        "description": "For `str_replace`: the replacement (empty to delete). \
                            Required for `insert`: the text to insert."
                    },
                    "insert_line": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Required for `insert`: `new_str` goes after this line \
                            (0 inserts at the top of the file)."
                    },
                    "view_range": {
                        "type": "array",
                        "items": {"type": "integer"},
                        "description": "Optional for `view` of a file: [start, end], 1-based and \
                            inclusive; end -1 means to the end of the file."
                    }
                },
                "required": ["command", "path"]
            }),
        }
    }

    fn parse(&self, arguments: &Value) -> Result<FileEditorAction, String> {
        let action: FileEditorAction<String> = parse_args(Self::NAME, arguments)?;
        let Some(command) = Command::parse(&action.command) else {
            return Err(unknown_command(&action.command));
        };
        if action.insert_line.is_some_and(|l| l < 0) {
            return Err(
                "invalid arguments for tool 'file_editor': `insert_line` must be 0 or \
                        greater"
                    .into(),
            );
        }
        if action.view_range.as_ref().is_some_and(|r| r.len() != 2) {
            return Err(
                "invalid arguments for tool 'file_editor': `view_range` must be a list \
                        of two integers [start, end]"
                    .into(),
            );
        }
        Ok(FileEditorAction {
            command,
            path: action.path,
            file_text: action.file_text,
            old_str: action.old_str,
            new_str: action.new_str,
            insert_line: action.insert_line,
            view_range: action.view_range,
        })
    }

    async fn run(&self, action: FileEditorAction) -> ToolOutput {
        let path = PathBuf::from(&action.path);
        let prev_exist = path.is_absolute() && path.exists();
        let result = self.edit(&action, &path);
        self.observation(&action, prev_exist, result)
    }

    fn summary(action: &FileEditorAction) -> String {
        format!("{} {}", action.command.as_str(), action.path)
    }
}

const DESCRIPTION: &str = "Views, creates and edits plain-text files.\n\
* `view`: a file with line numbers (like `cat -n`; `view_range` for a part), or a directory's \
files and subdirectories up to 2 levels deep (hidden items excluded).\n\
* `create`: a new file with `file_text`; never overwrites an existing path.\n\
* `str_replace`: replaces `old_str` with `new_str`. `old_str` must match EXACTLY ONE place in \
the file, whitespace and indentation included; add surrounding lines to make it unique.\n\
* `insert`: inserts `new_str` after line `insert_line` (0 = at the top).\n\
* `undo_edit`: reverts the last edit made to `path` with this tool.\n\
Paths must be absolute. Long outputs are truncated in the middle.";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::tools::Tool;

    struct Fixture {
        dir: tempfile::TempDir,
        tool: FileEditorTool,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let tool = FileEditorTool::new(ToolContext::new(dir.path()));
        Fixture { dir, tool }
    }

    impl Fixture {
        fn path(&self, name: &str) -> String {
            self.dir.path().join(name).display().to_string()
        }

        fn file(&self, name: &str, content: &str) -> String {
            let path = self.path(name);
            std::fs::write(&path, content).unwrap();
            path
        }

        fn read(&self, name: &str) -> String {
            std::fs::read_to_string(self.path(name)).unwrap()
        }

        async fn call(&self, args: Value) -> ToolOutput {
            let action = self.tool.parse_action(&args).expect("valid arguments");
            self.tool.execute(&action).await
        }
    }

    fn ok(out: &ToolOutput) -> &str {
        assert!(!out.is_error, "unexpected error: {}", out.text);
        &out.text
    }

    fn err(out: &ToolOutput) -> &str {
        assert!(out.is_error, "expected an error, got: {}", out.text);
        &out.text
    }

    #[tokio::test]
    async fn view_file_numbers_lines() {
        let f = fixture();
        let path = f.file("a.txt", "one\ntwo\n\nfour");
        let out = f.call(json!({"command": "view", "path": path})).await;
        let expected = format!(
            "Here's the result of running `cat -n` on {path}:\n     1\tone\n     2\ttwo\n     3\t\n     4\tfour\n"
        );
        assert_eq!(ok(&out), expected);
        assert_eq!(out.observation["kind"], json!("FileEditorObservation"));
        assert_eq!(out.observation["prev_exist"], json!(true));
        assert_eq!(out.observation["old_content"], Value::Null);
        assert_eq!(out.observation["new_content"], Value::Null);
    }

    #[tokio::test]
    async fn view_range_and_its_errors() {
        let f = fixture();
        let path = f.file("a.txt", "l1\nl2\nl3\nl4\n");
        let view =
            |range: Value| f.call(json!({"command": "view", "path": path, "view_range": range}));
        let out = view(json!([2, 3])).await;
        assert!(
            ok(&out).ends_with(":\n     2\tl2\n     3\tl3\n"),
            "{}",
            out.text
        );
        let out = view(json!([3, -1])).await;
        assert!(
            ok(&out).ends_with(":\n     3\tl3\n     4\tl4\n"),
            "{}",
            out.text
        );
        assert!(err(&view(json!([0, 2])).await).contains("first element `0`"));
        assert!(err(&view(json!([5, -1])).await).contains("[1, 4]"));
        assert!(err(&view(json!([2, 9])).await).contains("second element `9`"));
        assert!(err(&view(json!([3, 2])).await).contains("larger than or equal"));
        let bad = json!({"command": "view", "path": path, "view_range": [1]});
        assert!(f.tool.parse_action(&bad).is_err());
    }

    #[tokio::test]
    async fn view_rejects_binary_non_utf8_and_missing_files() {
        let f = fixture();
        let bin = f.path("b.bin");
        std::fs::write(&bin, [0x7f, b'E', b'L', b'F', 0, 1]).unwrap();
        let out = f.call(json!({"command": "view", "path": bin})).await;
        assert!(err(&out).contains("binary"));
        let latin = f.path("l.txt");
        std::fs::write(&latin, b"caf\xe9\n").unwrap();
        let out = f.call(json!({"command": "view", "path": latin})).await;
        assert!(err(&out).contains("not valid UTF-8"));
        let out = f
            .call(json!({"command": "view", "path": f.path("nope")}))
            .await;
        assert!(err(&out).contains("does not exist"));
        assert_eq!(out.observation["prev_exist"], json!(false));
    }

    #[tokio::test]
    async fn view_truncates_large_files() {
        let f = fixture();
        let path = f.file("big.txt", &"some line of text\n".repeat(10_000));
        let out = f.call(json!({"command": "view", "path": path})).await;
        assert!(ok(&out).len() < 31_000);
        assert!(out.text.contains("characters truncated"));
        assert!(out.text.contains("view_range"));
    }

    #[tokio::test]
    async fn view_directory_two_levels_without_hidden() {
        let f = fixture();
        let root = f.dir.path();
        std::fs::create_dir_all(root.join("src/deep/deeper")).unwrap();
        std::fs::create_dir_all(root.join(".git/objects")).unwrap();
        std::fs::write(root.join("src/deep/too_deep.rs"), "").unwrap();
        std::fs::write(root.join("src/main.rs"), "").unwrap();
        std::fs::write(root.join("src/.hidden"), "").unwrap();
        std::fs::write(root.join("README.md"), "").unwrap();
        let out = f.call(json!({"command": "view", "path": root})).await;
        let r = root.display();
        let expected = format!(
            "Here's the files and directories up to 2 levels deep in {r}, excluding hidden items:\n\
             {r}/\n{r}/README.md\n{r}/src/\n{r}/src/deep/\n{r}/src/main.rs\n"
        );
        assert_eq!(ok(&out), expected);
    }

    #[tokio::test]
    async fn relative_path_suggests_absolute_one() {
        let f = fixture();
        let out = f.call(json!({"command": "view", "path": "src/x.rs"})).await;
        let suggestion = f.dir.path().join("src/x.rs").display().to_string();
        assert!(
            err(&out).contains(&format!("Maybe you meant {suggestion}?")),
            "{}",
            out.text
        );
    }

    #[tokio::test]
    async fn create_makes_parents_and_never_overwrites() {
        let f = fixture();
        let path = f.path("new/dir/f.py");
        let out = f
            .call(json!({"command": "create", "path": path, "file_text": "print(1)\n"}))
            .await;
        assert_eq!(ok(&out), format!("File created successfully at: {path}"));
        assert_eq!(f.read("new/dir/f.py"), "print(1)\n");
        assert_eq!(out.observation["prev_exist"], json!(false));
        assert_eq!(out.observation["new_content"], json!("print(1)\n"));
        let out = f
            .call(json!({"command": "create", "path": path, "file_text": "x"}))
            .await;
        assert!(err(&out).contains("already exists"));
        assert_eq!(f.read("new/dir/f.py"), "print(1)\n");
        let out = f
            .call(json!({"command": "create", "path": f.path("g")}))
            .await;
        assert_eq!(
            err(&out),
            "Parameter `file_text` is required for command: create."
        );
    }

    #[tokio::test]
    async fn str_replace_edits_and_shows_a_snippet() {
        let f = fixture();
        let body: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let path = f.file("a.txt", &body);
        let args = json!({"command": "str_replace", "path": path, "old_str": "line 10\n",
                          "new_str": "ten\nTEN\n"});
        let out = f.call(args).await;
        let text = ok(&out);
        assert!(text.starts_with(&format!("The file {path} has been edited.")));
        assert!(text.contains("     6\tline 6\n"), "{text}");
        assert!(text.contains("    10\tten\n    11\tTEN\n"), "{text}");
        assert!(text.contains("    15\tline 14\n"), "{text}");
        assert!(
            !text.contains("line 5\n") && !text.contains("line 15"),
            "{text}"
        );
        assert!(text.contains("Review the changes"));
        let expected = body.replace("line 10\n", "ten\nTEN\n");
        assert_eq!(f.read("a.txt"), expected);
        assert_eq!(out.observation["old_content"], json!(body));
        assert_eq!(out.observation["new_content"], json!(expected));
    }

    #[tokio::test]
    async fn str_replace_errors() {
        let f = fixture();
        let path = f.file("a.txt", "a = 1\nb = 2\na = 1\n");
        let call = |args: Value| f.call(args);
        let out = call(json!({"command": "str_replace", "path": path, "old_str": "zzz"})).await;
        assert_eq!(
            err(&out),
            format!("No replacement was performed, old_str did not appear verbatim in {path}.")
        );
        let out = call(json!({"command": "str_replace", "path": path, "old_str": "a = 1"})).await;
        assert!(err(&out).contains("lines [1, 3]"), "{}", out.text);
        let out = call(json!({"command": "str_replace", "path": path})).await;
        assert_eq!(
            err(&out),
            "Parameter `old_str` is required for command: str_replace."
        );
        let out = call(json!({"command": "str_replace", "path": path, "old_str": ""})).await;
        assert!(err(&out).contains("must not be empty"));
        let missing = f.path("missing.txt");
        let out = call(json!({"command": "str_replace", "path": missing, "old_str": "x"})).await;
        assert!(err(&out).contains("does not exist"));
        assert_eq!(f.read("a.txt"), "a = 1\nb = 2\na = 1\n");
    }

    #[tokio::test]
    async fn str_replace_keeps_crlf_and_missing_final_newline() {
        let f = fixture();
        let path = f.file("w.txt", "one\r\ntwo\r\nthree");
        let args = json!({"command": "str_replace", "path": path, "old_str": "one\ntwo",
                          "new_str": "1\n2"});
        ok(&f.call(args).await);
        assert_eq!(f.read("w.txt"), "1\r\n2\r\nthree");
        let args = json!({"command": "str_replace", "path": path, "old_str": "three"});
        ok(&f.call(args).await);
        assert_eq!(f.read("w.txt"), "1\r\n2\r\n");
    }

    #[tokio::test]
    async fn insert_at_top_middle_and_end() {
        let f = fixture();
        let path = f.file("a.txt", "a\nb");
        let insert = |line: i64, text: &str| {
            f.call(json!({"command": "insert", "path": path, "insert_line": line, "new_str": text}))
        };
        let out = insert(0, "top\n").await;
        assert!(
            ok(&out).contains("     1\ttop\n     2\ta\n     3\tb"),
            "{}",
            out.text
        );
        assert!(out.text.contains("Review the changes"));
        assert_eq!(f.read("a.txt"), "top\na\nb");
        ok(&insert(2, "x\ny").await);
        assert_eq!(f.read("a.txt"), "top\na\nx\ny\nb");
        ok(&insert(5, "end").await);
        assert_eq!(f.read("a.txt"), "top\na\nx\ny\nb\nend");
        let out = insert(7, "z").await;
        assert_eq!(
            err(&out),
            "Invalid `insert_line` parameter: 7. It should be within the range of allowed values: [0, 6]"
        );
        let crlf = f.file("c.txt", "a\r\nb\r\n");
        let args = json!({"command": "insert", "path": crlf, "insert_line": 1, "new_str": "m"});
        ok(&f.call(args).await);
        assert_eq!(f.read("c.txt"), "a\r\nm\r\nb\r\n");
    }

    #[tokio::test]
    async fn insert_requires_its_parameters() {
        let f = fixture();
        let path = f.file("a.txt", "a\n");
        let out = f
            .call(json!({"command": "insert", "path": path, "new_str": "x"}))
            .await;
        assert_eq!(
            err(&out),
            "Parameter `insert_line` is required for command: insert."
        );
        let out = f
            .call(json!({"command": "insert", "path": path, "insert_line": 0}))
            .await;
        assert_eq!(
            err(&out),
            "Parameter `new_str` is required for command: insert."
        );
        let bad = json!({"command": "insert", "path": path, "insert_line": -1, "new_str": "x"});
        assert!(f.tool.parse_action(&bad).is_err());
        let empty = f.file("e.txt", "");
        let args = json!({"command": "insert", "path": empty, "insert_line": 0, "new_str": "x"});
        ok(&f.call(args).await);
        assert_eq!(f.read("e.txt"), "x\n");
    }

    #[tokio::test]
    async fn undo_restores_each_step_then_removes_created_file() {
        let f = fixture();
        let path = f.path("u.txt");
        let undo = || f.call(json!({"command": "undo_edit", "path": path}));
        let out = undo().await;
        assert_eq!(err(&out), format!("No edit history found for {path}."));
        ok(&f
            .call(json!({"command": "create", "path": path, "file_text": "v1\n"}))
            .await);
        let edit =
            json!({"command": "str_replace", "path": path, "old_str": "v1", "new_str": "v2"});
        ok(&f.call(edit).await);
        let edit = json!({"command": "insert", "path": path, "insert_line": 1, "new_str": "v3"});
        ok(&f.call(edit).await);
        assert_eq!(f.read("u.txt"), "v2\nv3\n");
        let out = undo().await;
        assert!(ok(&out).contains("undone successfully"));
        assert!(out.text.contains("     1\tv2"));
        assert_eq!(out.observation["new_content"], json!("v2\n"));
        assert_eq!(f.read("u.txt"), "v2\n");
        ok(&undo().await);
        assert_eq!(f.read("u.txt"), "v1\n");
        assert!(ok(&undo().await).contains("has been deleted"));
        assert!(!Path::new(&path).exists());
        err(&undo().await);
    }

    #[test]
    fn parse_fills_nulls_and_rejects_unknown_commands() {
        let f = fixture();
        let action = f
            .tool
            .parse_action(&json!({"command": "view", "path": "/x"}))
            .unwrap();
        assert_eq!(
            action,
            json!({"kind": "FileEditorAction", "command": "view", "path": "/x", "file_text": null,
                   "old_str": null, "new_str": null, "insert_line": null, "view_range": null})
        );
        let e = f
            .tool
            .parse_action(&json!({"command": "delete", "path": "/x"}))
            .unwrap_err();
        assert!(
            e.contains("view, create, str_replace, insert, undo_edit"),
            "{e}"
        );
        let summary = f
            .tool
            .summarize(&json!({"command": "str_replace", "path": "/w/a.rs"}));
        assert_eq!(summary, "str_replace /w/a.rs");
    }

    #[tokio::test]
    async fn bad_arguments_keep_their_messages_and_stored_actions_run_typed() {
        let f = fixture();
        let parse = |args: Value| f.tool.parse_action(&args).unwrap_err();
        assert_eq!(
            parse(json!({"command": "delete", "path": "/x"})),
            "invalid arguments for tool 'file_editor': unknown command `delete`; the valid \
             commands are: view, create, str_replace, insert, undo_edit"
        );
        assert_eq!(
            parse(json!({"command": "insert", "path": "/x", "insert_line": -1})),
            "invalid arguments for tool 'file_editor': `insert_line` must be 0 or greater"
        );
        assert_eq!(
            parse(json!({"command": "view", "path": "/x", "view_range": [1]})),
            "invalid arguments for tool 'file_editor': `view_range` must be a list of two \
             integers [start, end]"
        );
        assert_eq!(
            parse(json!({"command": "view"})),
            "invalid arguments for tool 'file_editor': missing field `path`"
        );
        let path = f.file("a.txt", "one\n");
        let action = f
            .tool
            .parse_action(
                &json!({"command": "str_replace", "path": path, "old_str": "one",
                                  "new_str": "two"}),
            )
            .unwrap();
        assert_eq!(action["command"], "str_replace");
        assert_eq!(action["kind"], "FileEditorAction");
        assert!(!f.tool.execute(&action).await.is_error);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        let mut stored = action.clone();
        stored["command"] = json!("delete");
        let out = f.tool.execute(&stored).await;
        assert!(out.is_error && out.observation["kind"] == "FileEditorObservation");
        assert!(
            out.text
                .starts_with("invalid file_editor action: unknown variant `delete`"),
            "{}",
            out.text
        );
    }
}
