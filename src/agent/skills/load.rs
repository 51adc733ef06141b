//! Reads a repository's instruction files, skills, hook file and MCP files, as OpenHands 1.58's
//! `load_project_skills` finds them, from one place: a git commit (the trusted ref of a pull
//! request run: `git ls-tree` and `git cat-file` through the hardened runner git, so no
//! repository hook, filter or checkout of the head is involved) or the working tree.
//!
//! - Top-level `AGENTS.md`/`AGENT.md` ("agents"), `CLAUDE.md` ("claude"), `GEMINI.md`
//!   ("gemini"), `.cursorrules` ("cursorrules"), case-insensitive: always on.
//! - The same names in subfolders: path rules `agents:<dir>` on `<dir>/**`.
//! - `.agents/skills/`, `.openhands/skills/`, `.openhands/microagents/` (first wins on a
//!   name): `<name>/SKILL.md` folders (AgentSkills) and `*.md` files with frontmatter
//!   (`triggers`, `paths`, `inputs`; none: always on, like `repo.md`).
//! - `.openhands/hooks.json`, `.mcp.json`, `.openhands/mcp.json`: kept as raw text for the
//!   hook and MCP modules.
//!
//! The instruction text is capped at [`MAX_INSTRUCTION_BYTES`] in total (Codex's
//! `project_doc_max_bytes`): the file crossing the cap is cut, later ones are left out, and
//! both are named in the log.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{AgentContext, Skill, Trigger};

/// The cap on all instruction and skill text handed to the agent (32 KiB, as Codex).
pub const MAX_INSTRUCTION_BYTES: usize = 32 * 1024;
/// Files larger than this are not read at all.
const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// OpenHands' `MAX_DESCRIPTION_LENGTH`.
const MAX_DESCRIPTION_CHARS: usize = 1024;

const SKILL_DIRS: [&str; 3] = [
    ".agents/skills",
    ".openhands/skills",
    ".openhands/microagents",
];
/// The hook file OpenHands reads from the working dir.
pub const HOOKS_FILE: &str = ".openhands/hooks.json";
/// MCP configuration files (Claude's and OpenHands'), handed on raw.
pub const MCP_FILES: [&str; 2] = [".mcp.json", ".openhands/mcp.json"];

/// Which version of the repository's instruction files, skills, hooks and MCP files a run
/// uses (`--instructions-from`, input `instructions-from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InstructionsFrom {
    /// A trusted commit: the pull request's base, else the commit checked out (`HEAD`).
    Base,
    /// The files as they are in the working tree (a pull request's head).
    Head,
    /// None: the agent gets no repository instructions, skills or hooks.
    None,
}

/// Where the files are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The files of this commit (a full sha or any revision git resolves).
    Rev(String),
    /// The repository folder as it is now.
    WorkTree,
    /// Nothing is loaded (`instructions-from: none`).
    Nothing,
}

/// What was loaded.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub context: AgentContext,
    /// The hook file's text, if the repository has one.
    pub hooks: Option<String>,
    /// MCP configuration files found: (path, raw text), for the MCP module to parse.
    pub mcp: Vec<(String, String)>,
    /// The instruction and skill files the agent gets, in load order.
    pub files: Vec<String>,
    /// Files cut or left out by the size cap.
    pub over_cap: Vec<String>,
    /// Where they came from, for the log: "commit 1a2b3c4", "the working tree".
    pub origin: String,
}

impl Loaded {
    /// One line for the job log naming every file loaded.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.files.is_empty() {
            parts.push("no instruction files".to_string());
        } else {
            parts.push(format!("instructions {}", self.files.join(", ")));
        }
        if self.hooks.is_some() {
            parts.push(format!("hooks {HOOKS_FILE}"));
        }
        for (path, _) in &self.mcp {
            parts.push(format!("MCP config {path}"));
        }
        let mut line = format!("from {}: {}", self.origin, parts.join("; "));
        if !self.over_cap.is_empty() {
            line.push_str(&format!(
                " (over the {} KiB cap, cut or left out: {})",
                MAX_INSTRUCTION_BYTES / 1024,
                self.over_cap.join(", ")
            ));
        }
        line
    }
}

/// Loads from `source` in the repository at `repo`.
pub fn load(repo: &Path, source: &Source) -> Result<Loaded> {
    let tree: Box<dyn Tree> = match source {
        Source::Nothing => {
            return Ok(Loaded {
                origin: "nowhere (instructions-from: none)".into(),
                ..Loaded::default()
            })
        }
        Source::Rev(rev) => Box::new(GitTree::open(repo, rev)?),
        Source::WorkTree => Box::new(WorkTree::open(repo)),
    };
    let mut loaded = from_tree(tree.as_ref())?;
    loaded.origin = tree.origin();
    Ok(loaded)
}

/// A set of repository files: their paths (relative, `/`-separated) and contents.
trait Tree {
    fn paths(&self) -> &[String];
    /// The file's text; `None` when it is too large, not UTF-8 or unreadable.
    fn read(&self, path: &str) -> Option<String>;
    fn origin(&self) -> String;
}

/// The blobs of a commit, read with the hardened runner git.
struct GitTree {
    repo: PathBuf,
    rev: String,
    /// (path, object id, size)
    blobs: Vec<(String, String, u64)>,
    paths: Vec<String>,
}

impl GitTree {
    fn open(repo: &Path, rev: &str) -> Result<Self> {
        if rev.starts_with('-') {
            bail!("'{rev}' is not a revision");
        }
        let out = crate::runner_git::command(repo)
            .args(["ls-tree", "-r", "-z", "--long", "--full-tree", rev])
            .output()
            .context("cannot run git")?;
        if !out.status.success() {
            bail!(
                "git ls-tree {rev} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let mut blobs = Vec::new();
        for entry in out.stdout.split(|b| *b == 0).filter(|e| !e.is_empty()) {
            let entry = String::from_utf8_lossy(entry);
            let Some((meta, path)) = entry.split_once('\t') else {
                continue;
            };
            let fields: Vec<&str> = meta.split_whitespace().collect();
            // <mode> <type> <object> <size>; symlinks (120000) and submodules are skipped.
            if let [mode, "blob", object, size] = fields[..] {
                if mode.starts_with("100") {
                    let size = size.parse().unwrap_or(u64::MAX);
                    blobs.push((path.to_string(), object.to_string(), size));
                }
            }
        }
        let paths = blobs.iter().map(|(p, _, _)| p.clone()).collect();
        Ok(GitTree {
            repo: repo.to_path_buf(),
            rev: rev.to_string(),
            blobs,
            paths,
        })
    }
}

impl Tree for GitTree {
    fn paths(&self) -> &[String] {
        &self.paths
    }

    fn read(&self, path: &str) -> Option<String> {
        let (_, object, size) = self.blobs.iter().find(|(p, _, _)| p == path)?;
        if *size > MAX_FILE_BYTES {
            return None;
        }
        let out = crate::runner_git::command(&self.repo)
            .args(["cat-file", "blob", object])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).ok())
            .flatten()
    }

    fn origin(&self) -> String {
        let short: String = self.rev.chars().take(12).collect();
        format!("commit {short}")
    }
}

/// The working tree: git's view of it (tracked and untracked, not ignored), else a walk.
struct WorkTree {
    root: PathBuf,
    paths: Vec<String>,
    seen_real: std::cell::RefCell<HashSet<PathBuf>>,
}

impl WorkTree {
    fn open(root: &Path) -> Self {
        let listed = crate::runner_git::command(root)
            .args([
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| {
                o.stdout
                    .split(|b| *b == 0)
                    .filter(|p| !p.is_empty())
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect::<Vec<_>>()
            });
        let mut paths = listed.unwrap_or_else(|| walk(root));
        paths.sort();
        paths.dedup();
        WorkTree {
            root: root.to_path_buf(),
            paths,
            seen_real: Default::default(),
        }
    }
}

/// Files under `root` (relative), skipping hidden folders other than the skill folders and
/// `node_modules`; at most 20 000 entries.
fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&rel)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = rel.join(&name);
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                let wanted = !name.starts_with('.') || name == ".agents" || name == ".openhands";
                if wanted && name != "node_modules" {
                    stack.push(path);
                }
            } else {
                out.push(path.to_string_lossy().into_owned());
            }
            if out.len() > 20_000 {
                return out;
            }
        }
    }
    out
}

impl Tree for WorkTree {
    fn paths(&self) -> &[String] {
        &self.paths
    }

    fn read(&self, path: &str) -> Option<String> {
        let full = self.root.join(path);
        // A symlink must stay inside the repository, and a file is read once (CLAUDE.md →
        // AGENTS.md loads as one).
        let real = full.canonicalize().ok()?;
        let root = self.root.canonicalize().ok()?;
        if !real.starts_with(&root) || !self.seen_real.borrow_mut().insert(real.clone()) {
            return None;
        }
        if std::fs::metadata(&real).ok()?.len() > MAX_FILE_BYTES {
            return None;
        }
        std::fs::read_to_string(real).ok()
    }

    fn origin(&self) -> String {
        "the working tree".into()
    }
}

/// OpenHands' `PATH_TO_THIRD_PARTY_SKILL_NAME`.
fn third_party_name(file_name: &str) -> Option<&'static str> {
    match file_name.to_ascii_lowercase().as_str() {
        "agents.md" | "agent.md" => Some("agents"),
        "claude.md" => Some("claude"),
        "gemini.md" => Some("gemini"),
        ".cursorrules" => Some("cursorrules"),
        _ => None,
    }
}

fn from_tree(tree: &dyn Tree) -> Result<Loaded> {
    let mut loaded = Loaded::default();
    let mut skills: Vec<Skill> = Vec::new();
    let mut names: HashSet<String> = HashSet::new();
    let mut add = |skill: Skill, skills: &mut Vec<Skill>| {
        if names.insert(skill.name.clone()) {
            skills.push(skill);
        }
    };
    let in_skill_dir = |p: &str| SKILL_DIRS.iter().any(|d| p.starts_with(&format!("{d}/")));
    // 1. Top-level third-party files, in OpenHands' order of names.
    let mut top: Vec<&String> = tree.paths().iter().filter(|p| !p.contains('/')).collect();
    top.sort_by_key(|p| p.to_ascii_lowercase());
    for path in top {
        if let Some(name) = third_party_name(path) {
            if let Some(text) = tree.read(path) {
                add(Skill::always(name, text, path), &mut skills);
            }
        }
    }
    // 2. Nested ones: path rules on their folder.
    let mut nested: Vec<(&str, &str)> = tree
        .paths()
        .iter()
        .filter(|p| !in_skill_dir(p))
        .filter_map(|p| p.rsplit_once('/'))
        .filter(|(_, file)| third_party_name(file).is_some())
        .collect();
    nested.sort();
    for (dir, file) in nested {
        let path = format!("{dir}/{file}");
        let Some(text) = tree.read(&path) else {
            continue;
        };
        let name = third_party_name(file).unwrap_or("agents");
        let mut rule = Skill::always(&format!("{name}:{dir}"), text, &path);
        rule.trigger = Some(Trigger::Path {
            paths: vec![format!("{dir}/**")],
        });
        add(rule, &mut skills);
    }
    // 3. Skill folders, first wins on a name.
    for dir in SKILL_DIRS {
        let prefix = format!("{dir}/");
        let under: Vec<&str> = tree
            .paths()
            .iter()
            .filter_map(|p| p.strip_prefix(&prefix))
            .collect();
        let skill_dirs: Vec<&str> = under
            .iter()
            .filter_map(|rel| rel.split_once('/'))
            .filter(|(_, file)| file.eq_ignore_ascii_case("SKILL.md"))
            .map(|(sub, _)| sub)
            .collect();
        for sub in &skill_dirs {
            let path = format!("{prefix}{sub}/SKILL.md");
            let path = tree
                .paths()
                .iter()
                .find(|p| p.eq_ignore_ascii_case(&path))
                .cloned()
                .unwrap_or(path);
            if let Some(text) = tree.read(&path) {
                add(agent_skill(sub, &text, &path), &mut skills);
            }
        }
        for rel in &under {
            let in_agent_skill = skill_dirs
                .iter()
                .any(|sub| rel.starts_with(&format!("{sub}/")));
            let file = rel.rsplit('/').next().unwrap_or(rel);
            if in_agent_skill || !rel.ends_with(".md") || file.eq_ignore_ascii_case("README.md") {
                continue;
            }
            let path = format!("{prefix}{rel}");
            if let Some(text) = tree.read(&path) {
                let stem = rel.trim_end_matches(".md");
                add(legacy_skill(stem, &text, &path), &mut skills);
            }
        }
    }
    loaded.hooks = tree.read(HOOKS_FILE);
    for path in MCP_FILES {
        if let Some(text) = tree.read(path) {
            loaded.mcp.push((path.to_string(), text));
        }
    }
    cap(&mut skills, &mut loaded.over_cap);
    loaded.files = skills.iter().filter_map(|s| s.source.clone()).collect();
    loaded.context.skills = skills;
    Ok(loaded)
}

/// Keeps the total content within [`MAX_INSTRUCTION_BYTES`].
fn cap(skills: &mut Vec<Skill>, over: &mut Vec<String>) {
    let mut left = MAX_INSTRUCTION_BYTES;
    let mut kept = Vec::with_capacity(skills.len());
    for mut skill in skills.drain(..) {
        let source = skill.source.clone().unwrap_or_else(|| skill.name.clone());
        if left == 0 {
            over.push(source);
            continue;
        }
        if skill.content.len() > left {
            let mut end = left;
            while !skill.content.is_char_boundary(end) {
                end -= 1;
            }
            skill.content.truncate(end);
            skill.content.push_str(&format!(
                "\n[... cut here: repository instructions are capped at {} KiB in total]",
                MAX_INSTRUCTION_BYTES / 1024
            ));
            over.push(source);
            left = 0;
        } else {
            left -= skill.content.len();
        }
        kept.push(skill);
    }
    *skills = kept;
}

/// Splits `---\n<yaml>\n---\n<body>`; no frontmatter gives an empty map.
fn frontmatter(text: &str) -> (serde_yaml::Mapping, String) {
    let stripped = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"));
    if let Some(rest) = stripped {
        if let Some(end) = rest.find("\n---") {
            let yaml = &rest[..end];
            let body = rest[end + 4..].trim_start_matches(['\r', '\n']);
            if let Ok(serde_yaml::Value::Mapping(map)) = serde_yaml::from_str(yaml) {
                return (map, body.to_string());
            }
        }
    }
    (serde_yaml::Mapping::new(), text.to_string())
}

fn strings(map: &serde_yaml::Mapping, key: &str) -> Vec<String> {
    match map.get(key) {
        Some(serde_yaml::Value::Sequence(items)) => items
            .iter()
            .filter_map(|v| match v {
                serde_yaml::Value::String(s) => Some(s.clone()),
                serde_yaml::Value::Mapping(m) => {
                    m.get("name").and_then(|n| n.as_str()).map(String::from)
                }
                _ => None,
            })
            .collect(),
        Some(serde_yaml::Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn text_field(map: &serde_yaml::Mapping, key: &str) -> Option<String> {
    map.get(key).and_then(|v| v.as_str()).map(String::from)
}

fn flag(map: &serde_yaml::Mapping, keys: &[&str]) -> bool {
    keys.iter()
        .any(|k| map.get(*k).and_then(|v| v.as_bool()) == Some(true))
}

/// A legacy `*.md` skill: its trigger from `triggers`, `paths` or `inputs`; none: always on.
fn legacy_skill(stem: &str, text: &str, path: &str) -> Skill {
    let (meta, body) = frontmatter(text);
    let name = text_field(&meta, "name").unwrap_or_else(|| stem.to_string());
    let triggers = strings(&meta, "triggers");
    let paths = strings(&meta, "paths");
    let trigger = if !paths.is_empty() {
        Some(Trigger::Path { paths })
    } else if !strings(&meta, "inputs").is_empty() {
        Some(Trigger::Task {
            triggers: if triggers.is_empty() {
                vec![format!("/{name}")]
            } else {
                triggers
            },
        })
    } else if !triggers.is_empty() {
        Some(Trigger::Keyword { keywords: triggers })
    } else {
        None
    };
    Skill {
        name,
        content: body,
        trigger,
        source: Some(path.to_string()),
        description: text_field(&meta, "description").map(|d| cut(&d, MAX_DESCRIPTION_CHARS)),
        is_agentskills_format: false,
        disable_model_invocation: flag(
            &meta,
            &["disable-model-invocation", "disable_model_invocation"],
        ),
    }
}

/// An AgentSkills `SKILL.md`: listed by name and description, read through `invoke_skill`.
fn agent_skill(dir_name: &str, text: &str, path: &str) -> Skill {
    let (meta, body) = frontmatter(text);
    let triggers = strings(&meta, "triggers");
    Skill {
        name: text_field(&meta, "name").unwrap_or_else(|| dir_name.to_string()),
        content: body,
        trigger: (!triggers.is_empty()).then_some(Trigger::Keyword { keywords: triggers }),
        source: Some(path.to_string()),
        description: text_field(&meta, "description").map(|d| cut(&d, MAX_DESCRIPTION_CHARS)),
        is_agentskills_format: true,
        disable_model_invocation: flag(
            &meta,
            &["disable-model-invocation", "disable_model_invocation"],
        ),
    }
}

fn cut(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
