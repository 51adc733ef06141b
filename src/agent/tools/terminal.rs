//! `terminal`: runs commands in one persistent shell session (so `cd` and `export` carry over),
//! with OpenHands' `TerminalAction` / `TerminalObservation` shapes.
//!
//! A command that outlives its time limit keeps running: the model can wait for more output
//! (empty command), feed it input (`is_input: true`), or interrupt it (`C-c`).

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::shell::{Limits, Outcome, ShellConfig, ShellSession};
use super::{parse_args, ToolContext, ToolOutput, TypedTool};
use crate::agent::truncate::{one_line, truncate_middle};
use crate::llm::ToolSpec;

/// Default soft limit: return when a command printed nothing new for this long.
const DEFAULT_NO_CHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Without an explicit `timeout`, a wait never lasts longer than this (a command that prints
/// forever would otherwise never hand control back).
const MAX_SOFT_WAIT: Duration = Duration::from_secs(600);
/// How long a command gets to stop after `C-c` before the session is killed.
const INTERRUPT_GRACE: Duration = Duration::from_secs(2);
/// Upper bound for a `timeout` given by the model.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

const KIND_OBS: &str = "TerminalObservation";

pub struct TerminalTool {
    ctx: ToolContext,
    shell: ShellConfig,
    no_change_timeout: Duration,
    username: String,
    hostname: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    session: Option<ShellSession>,
    /// The shell's working directory after the last finished command.
    cwd: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TerminalAction {
    command: String,
    #[serde(default)]
    is_input: bool,
    #[serde(default)]
    timeout: Option<f64>,
    #[serde(default)]
    reset: bool,
}

/// What one call produced, before it becomes an observation.
struct Reply {
    text: String,
    is_error: bool,
    exit_code: Option<i32>,
    timeout: bool,
}

impl Reply {
    fn error(text: impl Into<String>) -> Self {
        Reply {
            text: text.into(),
            is_error: true,
            exit_code: None,
            timeout: false,
        }
    }

    fn prefixed(mut self, note: Option<String>) -> Self {
        if let Some(note) = note {
            self.text = format!("{note}\n{}", self.text);
        }
        self
    }
}

enum Key {
    Interrupt,
    Unsupported,
    Text,
}

impl TerminalTool {
    pub fn new(ctx: ToolContext) -> Self {
        let mut shell = ShellConfig::detect();
        shell.env = ctx.env.clone();
        shell.env_remove = ctx.env_remove.clone();
        TerminalTool {
            ctx,
            shell,
            no_change_timeout: DEFAULT_NO_CHANGE_TIMEOUT,
            username: username(),
            hostname: hostname(),
            state: Mutex::new(State::default()),
        }
    }

    /// Sets the soft limit (no new output for this long) used when no `timeout` is given.
    pub fn with_no_change_timeout(mut self, d: Duration) -> Self {
        self.no_change_timeout = d;
        self
    }

    /// Uses this shell (`/bin/sh`, `/bin/busybox`) instead of `bash` from PATH.
    pub fn with_shell(mut self, program: impl Into<PathBuf>) -> Self {
        let env = std::mem::take(&mut self.shell.env);
        let env_remove = std::mem::take(&mut self.shell.env_remove);
        self.shell = ShellConfig::with_program(program);
        self.shell.env = env;
        self.shell.env_remove = env_remove;
        self
    }

    async fn dispatch(&self, st: &mut State, action: &TerminalAction) -> Reply {
        if action.reset {
            return self.reset(st, action).await;
        }
        let running = st.session.as_ref().is_some_and(|s| s.is_running());
        let empty = action.command.trim().is_empty();
        match (action.is_input, running) {
            (true, false) => Reply::error(
                "No command is running, so there is nothing to send input to. To run a \
                 command, send it with `is_input` false.",
            ),
            (true, true) => self.input(st, action).await,
            (false, true) if empty => self.wait(st, action).await,
            (false, true) => Reply::error(
                "A previous command is still running; this command was not executed. Send an \
                 empty command to wait for more output, send `C-c` with `is_input` true to \
                 interrupt it, or send input for it with `is_input` true.",
            ),
            (false, false) if empty => Reply::error(
                "No command is running, so there is no output to wait for. Send a non-empty \
                 command.",
            ),
            (false, false) => self.run(st, action).await,
        }
    }

    async fn run(&self, st: &mut State, action: &TerminalAction) -> Reply {
        let note = match self.ensure_session(st).await {
            Ok(note) => note,
            Err(reply) => return reply,
        };
        let sent = match st.session.as_mut() {
            Some(session) => session.run(&action.command).await,
            None => return Reply::error("the shell session is not available"),
        };
        if let Err(e) = sent {
            st.session = None;
            st.cwd = None;
            return Reply::error(format!(
                "Could not send the command to the shell ({e}); the session was closed and a \
                 new one will be started for the next command."
            ));
        }
        self.wait(st, action).await.prefixed(note)
    }

    /// Starts a shell when there is none (or the last one exited); says so when it replaces one.
    async fn ensure_session(&self, st: &mut State) -> Result<Option<String>, Reply> {
        let closed = st.session.as_ref().map(|s| s.is_closed());
        if closed == Some(false) {
            return Ok(None);
        }
        if let Some(old) = st.session.take() {
            old.close().await;
        }
        st.cwd = None;
        st.session = Some(self.spawn(&self.ctx.working_dir).await?);
        Ok(closed.map(|_| {
            format!(
                "[The previous shell had exited; a new session was started in {}.]",
                self.ctx.working_dir.display()
            )
        }))
    }

    async fn spawn(&self, cwd: &std::path::Path) -> Result<ShellSession, Reply> {
        ShellSession::spawn(&self.shell, cwd).await.map_err(|e| {
            Reply::error(format!(
                "Could not start the shell `{}` in {}: {e}",
                self.shell.program.display(),
                cwd.display()
            ))
        })
    }

    async fn input(&self, st: &mut State, action: &TerminalAction) -> Reply {
        match classify_key(&action.command) {
            Key::Interrupt => self.interrupt(st).await,
            Key::Unsupported => Reply::error(format!(
                "`{}` is not supported with this terminal; use `C-c` (with `is_input` true) to \
                 interrupt the running command.",
                action.command.trim()
            )),
            Key::Text => {
                let Some(session) = st.session.as_mut() else {
                    return Reply::error("the shell session is not available");
                };
                let text = action.command.strip_suffix('\n').unwrap_or(&action.command);
                if let Err(e) = session.send_input(text).await {
                    return Reply::error(format!("Could not write to the shell's stdin: {e}"));
                }
                self.wait(st, action).await
            }
        }
    }

    /// Sends SIGINT to the running command; kills the session if it does not stop in time.
    async fn interrupt(&self, st: &mut State) -> Reply {
        let Some(session) = st.session.as_mut() else {
            return Reply::error("the shell session is not available");
        };
        session.signal(libc::SIGINT);
        let limits = Limits {
            hard: Some(INTERRUPT_GRACE),
            no_change: None,
        };
        match session.wait(limits).await {
            Outcome::TimedOut { output, .. } => self.kill_and_respawn(st, &output).await,
            outcome => self.conclude(st, outcome, None),
        }
    }

    async fn kill_and_respawn(&self, st: &mut State, output: &[u8]) -> Reply {
        if let Some(old) = st.session.take() {
            old.close().await;
        }
        let cwd = st
            .cwd
            .clone()
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(|| self.ctx.working_dir.clone());
        let fresh = self.spawn(&cwd).await;
        let note = format!(
            "[The command did not stop within {} seconds after C-c, so it was killed together \
             with the shell. A fresh shell session was started in {}; environment variables set \
             earlier are lost.]",
            INTERRUPT_GRACE.as_secs(),
            cwd.display()
        );
        match fresh {
            Ok(session) => st.session = Some(session),
            Err(reply) => return reply,
        }
        st.cwd = Some(cwd.display().to_string());
        Reply {
            text: join(&self.render(output), &note),
            is_error: false,
            exit_code: Some(-1),
            timeout: false,
        }
    }

    async fn wait(&self, st: &mut State, action: &TerminalAction) -> Reply {
        let Some(session) = st.session.as_mut() else {
            return Reply::error("the shell session is not available");
        };
        let limits = self.limits(action.timeout);
        let outcome = session.wait(limits).await;
        self.conclude(st, outcome, action.timeout)
    }

    fn limits(&self, timeout: Option<f64>) -> Limits {
        match timeout {
            Some(secs) => Limits {
                hard: Some(
                    Duration::try_from_secs_f64(secs).map_or(MAX_TIMEOUT, |d| d.min(MAX_TIMEOUT)),
                ),
                no_change: None,
            },
            None => Limits {
                hard: Some(MAX_SOFT_WAIT),
                no_change: Some(self.no_change_timeout),
            },
        }
    }

    fn conclude(&self, st: &mut State, outcome: Outcome, timeout: Option<f64>) -> Reply {
        match outcome {
            Outcome::Done {
                output,
                exit_code,
                cwd,
            } => {
                let footer = format!(
                    "[Current working directory: {cwd}]\n[Command finished with exit code {exit_code}]"
                );
                st.cwd = Some(cwd);
                finished(join(&self.render(&output), &footer), Some(exit_code), false)
            }
            Outcome::TimedOut { output, hard } => {
                let note = self.timeout_note(hard, timeout);
                finished(join(&self.render(&output), &note), Some(-1), true)
            }
            Outcome::Exited { output, code } => {
                st.session = None;
                st.cwd = None;
                let note = format!(
                    "[The shell exited{}. A new shell session will be started in {} for the next \
                     command; environment variables and the working directory are reset.]",
                    code.map(|c| format!(" with code {c}")).unwrap_or_default(),
                    self.ctx.working_dir.display()
                );
                finished(join(&self.render(&output), &note), code, false)
            }
        }
    }

    fn timeout_note(&self, hard: bool, timeout: Option<f64>) -> String {
        let why = match (hard, timeout) {
            (true, Some(t)) => format!("did not finish within the timeout of {t} seconds"),
            (true, None) => format!("did not finish within {} seconds", MAX_SOFT_WAIT.as_secs()),
            (false, _) => format!(
                "has produced no new output for {} seconds",
                self.no_change_timeout.as_secs_f64()
            ),
        };
        format!(
            "[The command {why} and is still running. Send an empty command to wait for more \
             output, send text with `is_input` true to answer a prompt, send `C-c` with \
             `is_input` true to interrupt it, or set `timeout` (seconds) when running a long \
             command.]"
        )
    }

    /// The command's output as text for the model: lossy UTF-8, truncated, no trailing newline.
    fn render(&self, output: &[u8]) -> String {
        let text = String::from_utf8_lossy(output);
        let text = text.trim_end_matches('\n');
        truncate_middle(text, self.ctx.max_output_chars)
    }

    async fn reset(&self, st: &mut State, action: &TerminalAction) -> Reply {
        if let Some(old) = st.session.take() {
            old.close().await;
        }
        st.cwd = None;
        match self.spawn(&self.ctx.working_dir).await {
            Ok(session) => st.session = Some(session),
            Err(reply) => return reply,
        }
        let note = format!(
            "[The terminal session has been reset: a new shell was started in {}. Running \
             commands, environment variables and the working directory from before are gone.]",
            self.ctx.working_dir.display()
        );
        if action.command.trim().is_empty() {
            return finished(note, None, false);
        }
        self.run(st, action).await.prefixed(Some(note))
    }

    fn observation(&self, command: &str, reply: Reply, st: &State) -> ToolOutput {
        let working_dir = st
            .cwd
            .clone()
            .unwrap_or_else(|| self.ctx.working_dir.display().to_string());
        let pid = st.session.as_ref().map_or(-1, |s| i64::from(s.pid()));
        let metadata = json!({
            "exit_code": reply.exit_code.unwrap_or(-1),
            "pid": pid,
            "username": self.username,
            "hostname": self.hostname,
            "working_dir": working_dir,
            "py_interpreter_path": null,
            "prefix": "",
            "suffix": "",
        });
        let extra = json!({
            "command": command,
            "exit_code": reply.exit_code,
            "timeout": reply.timeout,
            "metadata": metadata,
            "full_output_save_dir": null,
        });
        ToolOutput::new(KIND_OBS, reply.text, reply.is_error, extra)
    }
}

fn finished(text: String, exit_code: Option<i32>, timeout: bool) -> Reply {
    Reply {
        text,
        is_error: false,
        exit_code,
        timeout,
    }
}

fn join(output: &str, footer: &str) -> String {
    if output.is_empty() {
        footer.to_string()
    } else {
        format!("{output}\n{footer}")
    }
}

fn classify_key(input: &str) -> Key {
    let key = input.trim().to_ascii_lowercase();
    let key = ["ctrl+", "ctrl-", "^"]
        .iter()
        .find_map(|p| key.strip_prefix(p))
        .map_or(key.clone(), |rest| format!("c-{rest}"));
    match key.as_str() {
        "c-c" => Key::Interrupt,
        "c-d" | "c-z" => Key::Unsupported,
        _ => Key::Text,
    }
}

fn username() -> String {
    if let Ok(user) = std::env::var("USER") {
        return user;
    }
    // SAFETY: getpwuid returns null or a pointer to a static record we copy at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            return libc::geteuid().to_string();
        }
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[async_trait]
impl TypedTool for TerminalTool {
    type Action = TerminalAction;
    const NAME: &'static str = "terminal";
    const ACTION_KIND: &'static str = "TerminalAction";
    const OBSERVATION_KIND: &'static str = "TerminalObservation";

    fn tool_spec(&self) -> ToolSpec {
        ToolSpec {
            name: "terminal".into(),
            description: DESCRIPTION.into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "command": {
                        "type": "string",
                        "description": "The shell command to run. Can be empty to wait for more \
                            output of a running command. With `is_input` true: text sent to the \
                            running command's stdin, or `C-c` to interrupt it."
                    },
                    "is_input": {
                        "type": "boolean",
                        "description": "If true, `command` is input for the running command \
                            (or `C-c`) rather than a new command. Default: false."
                    },
                    "timeout": {
                        "type": "number",
                        "description": "Optional hard time limit in seconds. Without it, the call \
                            returns once the command has printed nothing new for a while; set it \
                            for long commands that print little (builds, test suites)."
                    },
                    "reset": {
                        "type": "boolean",
                        "description": "If true, kill the shell and start a new session (all \
                            state such as environment variables and the working directory is \
                            lost), then run `command` if it is not empty. Use only when the \
                            terminal is unresponsive. Default: false."
                    }
                },
                "required": ["command"]
            }),
        }
    }

    fn parse(&self, arguments: &Value) -> Result<TerminalAction, String> {
        let action: TerminalAction = parse_args(Self::NAME, arguments)?;
        if let Some(t) = action.timeout {
            if !t.is_finite() || t <= 0.0 {
                return Err(format!(
                    "invalid arguments for tool 'terminal': `timeout` must be a positive number \
                     of seconds, got {t}"
                ));
            }
        }
        if action.reset && action.is_input {
            return Err(
                "invalid arguments for tool 'terminal': `reset` cannot be combined \
                        with `is_input` true"
                    .into(),
            );
        }
        Ok(action)
    }

    async fn run(&self, action: TerminalAction) -> ToolOutput {
        let mut st = self.state.lock().await;
        let reply = self.dispatch(&mut st, &action).await;
        self.observation(&action.command, reply, &st)
    }

    async fn invalid(&self, action: &Value, reason: String) -> ToolOutput {
        let command = action["command"].as_str().unwrap_or_default();
        let st = self.state.lock().await;
        let reply = Reply::error(format!("invalid terminal action: {reason}"));
        self.observation(command, reply, &st)
    }

    fn summary(action: &TerminalAction) -> String {
        let line = one_line(&action.command, 120);
        if action.is_input {
            return format!("input: {line}");
        }
        match (action.reset, line.is_empty()) {
            (true, true) => "reset".into(),
            (true, false) => format!("reset; {line}"),
            (false, true) => "(wait for output)".into(),
            (false, false) => line,
        }
    }

    async fn release(&self) {
        let mut st = self.state.lock().await;
        if let Some(session) = st.session.take() {
            session.close().await;
        }
    }
}

const DESCRIPTION: &str = "Runs a shell command in a persistent terminal session: the working \
directory, environment variables and shell state carry over between calls. stdout and stderr \
are returned together, with the exit code and the current working directory.\n\
* One command at a time; chain commands with `&&` or `;`.\n\
* Long-running commands: run them in the background (`cmd > out.log 2>&1 &`) or set `timeout`. \
If a command has printed nothing new for a while, the call returns with what was printed so \
far while the command keeps running: then send an empty command to wait for more output, \
input with `is_input` true, or `C-c` with `is_input` true to interrupt it.\n\
* Interactive programs: answer prompts with `is_input` true; prefer non-interactive flags \
(`-y`, `--no-pager`).\n\
* Very long outputs are truncated in the middle; redirect them to a file and inspect it with \
`head`, `tail` or `grep`.";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::tools::Tool;
    use std::path::Path;
    use std::time::Instant;

    fn tool(dir: &Path) -> TerminalTool {
        TerminalTool::new(ToolContext::new(dir)).with_no_change_timeout(Duration::from_millis(300))
    }

    async fn call(tool: &TerminalTool, args: Value) -> ToolOutput {
        let action = tool.parse_action(&args).expect("valid arguments");
        tool.execute(&action).await
    }

    async fn cmd(tool: &TerminalTool, command: &str) -> ToolOutput {
        call(tool, json!({ "command": command })).await
    }

    async fn key(tool: &TerminalTool, input: &str) -> ToolOutput {
        call(tool, json!({ "command": input, "is_input": true })).await
    }

    fn exit_code(out: &ToolOutput) -> Option<i64> {
        out.observation["exit_code"].as_i64()
    }

    fn real(dir: &Path) -> String {
        dir.canonicalize().unwrap().display().to_string()
    }

    /// cd/export persistence, exit codes, stderr, syntax errors and C-c, for any shell.
    async fn check_shell_basics(tool: &TerminalTool, dir: &Path) {
        std::fs::create_dir(dir.join("sub")).unwrap();
        let out = cmd(tool, "cd sub && export FOO='a b'").await;
        assert_eq!(exit_code(&out), Some(0), "{}", out.text);
        let out = cmd(tool, "pwd; echo \"[$FOO]\"; echo oops >&2; (exit 7)").await;
        let sub = real(&dir.join("sub"));
        assert!(
            out.text.starts_with(&format!("{sub}\n[a b]\noops\n")),
            "{}",
            out.text
        );
        assert!(
            out.text.ends_with("[Command finished with exit code 7]"),
            "{}",
            out.text
        );
        assert!(!out.is_error);
        assert_eq!(exit_code(&out), Some(7));
        assert_eq!(out.observation["metadata"]["working_dir"], json!(sub));
        assert_eq!(out.observation["metadata"]["exit_code"], json!(7));

        let started = Instant::now();
        let out = cmd(tool, "echo \"unterminated").await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_ne!(exit_code(&out), Some(0), "{}", out.text);
        assert!(!out.observation["timeout"].as_bool().unwrap());

        let out = cmd(tool, "sleep 100").await;
        assert_eq!(out.observation["timeout"], json!(true));
        let out = key(tool, "C-c").await;
        assert_ne!(exit_code(&out), Some(-1), "{}", out.text);
        let out = cmd(tool, "echo \"still $FOO\"; pwd").await;
        assert!(
            out.text.starts_with(&format!("still a b\n{sub}\n")),
            "{}",
            out.text
        );
        tool.close().await;
    }

    #[tokio::test]
    async fn bash_basics() {
        let dir = tempfile::tempdir().unwrap();
        check_shell_basics(&tool(dir.path()), dir.path()).await;
    }

    #[tokio::test]
    async fn sh_basics() {
        let dir = tempfile::tempdir().unwrap();
        let t = tool(dir.path()).with_shell("/bin/sh");
        check_shell_basics(&t, dir.path()).await;
    }

    #[tokio::test]
    async fn busybox_basics() {
        if !Path::new("/bin/busybox").exists() {
            eprintln!("skipped: no /bin/busybox");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let t = tool(dir.path()).with_shell("/bin/busybox");
        check_shell_basics(&t, dir.path()).await;
    }

    #[tokio::test]
    async fn env_is_filtered_and_extended() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = ToolContext::new(dir.path());
        ctx.env = vec![("SC_ADDED".into(), "yes".into())];
        ctx.env_remove = vec!["PATH_SC_NONE".into(), "HOME".into()];
        let t = TerminalTool::new(ctx);
        let out = cmd(&t, "echo \"$SC_ADDED|${HOME-unset}|$PAGER|$TERM\"").await;
        assert!(out.text.starts_with("yes|unset|cat|dumb\n"), "{}", out.text);
        t.close().await;
    }

    #[tokio::test]
    async fn big_output_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let t = tool(dir.path());
        let out = cmd(&t, "head -c 1000000 /dev/zero | tr '\\0' x; echo; echo END").await;
        assert!(out.text.len() < 31_000, "{}", out.text.len());
        assert!(out.text.contains("characters truncated"));
        assert!(out.text.contains("END\n[Current working directory"));
        assert_eq!(exit_code(&out), Some(0));
        t.close().await;
    }

    #[tokio::test]
    async fn soft_timeout_resets_on_output_and_keeps_cwd_after_ctrl_c() {
        let dir = tempfile::tempdir().unwrap();
        let t = tool(dir.path());
        let out = cmd(&t, "for i in 1 2 3; do echo $i; sleep 0.2; done").await;
        assert_eq!(exit_code(&out), Some(0), "{}", out.text);
        assert!(out.text.starts_with("1\n2\n3\n"));

        std::fs::create_dir(dir.path().join("d")).unwrap();
        let out = cmd(&t, "cd d; echo before; sleep 100").await;
        assert_eq!(out.observation["timeout"], json!(true));
        assert_eq!(exit_code(&out), Some(-1));
        assert!(out
            .text
            .starts_with("before\n[The command has produced no new output"));
        assert!(out.text.contains("C-c"));

        let out = cmd(&t, "echo other").await;
        assert!(
            out.is_error && out.text.contains("still running"),
            "{}",
            out.text
        );
        let out = key(&t, "C-d").await;
        assert!(
            out.is_error && out.text.contains("not supported"),
            "{}",
            out.text
        );

        let started = Instant::now();
        let out = key(&t, "C-c").await;
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(exit_code(&out), Some(130), "{}", out.text);
        let out = cmd(&t, "pwd").await;
        assert!(
            out.text.starts_with(&real(&dir.path().join("d"))),
            "{}",
            out.text
        );
        t.close().await;
    }

    #[tokio::test]
    async fn hard_timeout_then_wait_again() {
        let dir = tempfile::tempdir().unwrap();
        let t = tool(dir.path()).with_no_change_timeout(Duration::from_millis(100));
        let started = Instant::now();
        let out = call(
            &t,
            json!({"command": "sleep 0.6; echo done", "timeout": 0.3}),
        )
        .await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(550));
        assert_eq!(out.observation["timeout"], json!(true));
        assert!(out.text.contains("timeout of 0.3 seconds"), "{}", out.text);
        // The explicit timeout disables the (shorter) soft limit.
        let out = call(&t, json!({"command": "", "timeout": 2})).await;
        assert!(out.text.starts_with("done\n"), "{}", out.text);
        assert_eq!(exit_code(&out), Some(0));
        t.close().await;
    }

    #[tokio::test]
    async fn input_feeds_a_running_command() {
        let dir = tempfile::tempdir().unwrap();
        let t = tool(dir.path());
        let out = key(&t, "hello").await;
        assert!(out.is_error && out.text.contains("No command is running"));
        let out = cmd(&t, "").await;
        assert!(out.is_error);
        let out = cmd(&t, "read x; echo \"got $x\"").await;
        assert_eq!(out.observation["timeout"], json!(true));
        let out = key(&t, "hello world").await;
        assert!(out.text.starts_with("got hello world\n"), "{}", out.text);
        assert_eq!(exit_code(&out), Some(0));
        t.close().await;
    }

    #[tokio::test]
    async fn exit_restarts_the_shell() {
        let dir = tempfile::tempdir().unwrap();
        let t = tool(dir.path());
        cmd(&t, "export FOO=1; cd /").await;
        let out = cmd(&t, "echo bye; exit 3").await;
        assert!(
            out.text.starts_with("bye\n[The shell exited with code 3."),
            "{}",
            out.text
        );
        assert_eq!(exit_code(&out), Some(3));
        let out = cmd(&t, "echo \"[$FOO]\"; pwd").await;
        assert!(
            out.text.starts_with(&format!("[]\n{}\n", real(dir.path()))),
            "{}",
            out.text
        );
        t.close().await;
    }

    #[tokio::test]
    async fn exit_with_a_background_job_holding_the_pipe() {
        let dir = tempfile::tempdir().unwrap();
        let t = tool(dir.path()).with_no_change_timeout(Duration::from_secs(5));
        let started = Instant::now();
        let out = cmd(&t, "sleep 1000 & echo $!; exit 5").await;
        assert!(started.elapsed() < Duration::from_secs(2), "{}", out.text);
        assert_eq!(exit_code(&out), Some(5), "{}", out.text);
        let pid: i32 = out.text.lines().next().unwrap().parse().unwrap();
        assert!(wait_gone(pid).await, "background job {pid} survived");
        let out = cmd(&t, "echo again").await;
        assert!(out.text.starts_with("again\n"), "{}", out.text);
        t.close().await;
    }

    #[tokio::test]
    async fn multi_line_commands_and_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let t = tool(dir.path());
        let out = cmd(&t, "cat <<'EOF'\nit's $HOME\nEOF\nprintf 'no newline'").await;
        assert!(
            out.text.starts_with("it's $HOME\nno newline\n[Current"),
            "{}",
            out.text
        );
        let out = cmd(&t, "if true; then\n  echo yes\nfi # comment").await;
        assert!(out.text.starts_with("yes\n"), "{}", out.text);
        t.close().await;
    }

    #[tokio::test]
    async fn reset_starts_a_new_session() {
        let dir = tempfile::tempdir().unwrap();
        let t = tool(dir.path());
        cmd(&t, "export FOO=1; cd /").await;
        cmd(&t, "sleep 100").await;
        let out = call(
            &t,
            json!({"command": "echo \"[$FOO]\"; pwd", "reset": true}),
        )
        .await;
        assert!(
            out.text.starts_with("[The terminal session has been reset"),
            "{}",
            out.text
        );
        assert!(
            out.text.contains(&format!("[]\n{}\n", real(dir.path()))),
            "{}",
            out.text
        );
        assert_eq!(exit_code(&out), Some(0));
        t.close().await;
    }

    #[tokio::test]
    async fn ctrl_c_that_is_ignored_kills_the_session() {
        let dir = tempfile::tempdir().unwrap();
        let t = tool(dir.path());
        let out = cmd(&t, "trap '' INT; sleep 100").await;
        assert_eq!(out.observation["timeout"], json!(true));
        let out = key(&t, "C-c").await;
        assert!(out.text.contains("was killed"), "{}", out.text);
        let out = cmd(&t, "echo alive").await;
        assert!(out.text.starts_with("alive\n"), "{}", out.text);
        t.close().await;
    }

    fn gone(pid: i32) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        if unsafe { libc::kill(pid, 0) } != 0 {
            return true;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        state.is_empty() || state.starts_with('Z')
    }

    async fn wait_gone(pid: i32) -> bool {
        for _ in 0..100 {
            if gone(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    async fn background_pid(t: &TerminalTool) -> i32 {
        let out = cmd(t, "sleep 1000 & echo $!").await;
        let pid: i32 = out.text.lines().next().unwrap().trim().parse().unwrap();
        assert!(!gone(pid));
        pid
    }

    #[tokio::test]
    async fn close_and_drop_kill_children() {
        let dir = tempfile::tempdir().unwrap();
        let t = tool(dir.path());
        let pid = background_pid(&t).await;
        t.close().await;
        assert!(wait_gone(pid).await, "child {pid} survived close");

        let t = tool(dir.path());
        let pid = background_pid(&t).await;
        drop(t);
        assert!(wait_gone(pid).await, "child {pid} survived drop");
    }

    #[test]
    fn parse_fills_defaults_and_validates() {
        let t = TerminalTool::new(ToolContext::new("/tmp"));
        let action = t.parse_action(&json!({"command": "ls"})).unwrap();
        assert_eq!(
            action,
            json!({"kind": "TerminalAction", "command": "ls", "is_input": false,
                   "timeout": null, "reset": false})
        );
        assert!(t.parse_action(&json!({"is_input": true})).is_err());
        assert!(t
            .parse_action(&json!({"command": "ls", "timeout": -1}))
            .is_err());
        let both = json!({"command": "x", "reset": true, "is_input": true});
        assert!(t.parse_action(&both).is_err());
    }

    #[test]
    fn summaries_and_keys() {
        let t = TerminalTool::new(ToolContext::new("/tmp"));
        assert_eq!(t.summarize(&json!({"command": "ls -la"})), "ls -la");
        assert_eq!(
            t.summarize(&json!({"command": "C-c", "is_input": true})),
            "input: C-c"
        );
        assert!(
            t.summarize(&json!({"command": "x".repeat(300)}))
                .chars()
                .count()
                <= 121
        );
        assert!(matches!(classify_key("C-c"), Key::Interrupt));
        assert!(matches!(classify_key("ctrl+c"), Key::Interrupt));
        assert!(matches!(classify_key("C-z"), Key::Unsupported));
        assert!(matches!(classify_key("c"), Key::Text));
        assert!(matches!(classify_key("yes"), Key::Text));
    }

    #[tokio::test]
    async fn observation_shape() {
        let dir = tempfile::tempdir().unwrap();
        let t = tool(dir.path());
        let out = cmd(&t, "echo hi").await;
        let obs = &out.observation;
        assert_eq!(obs["kind"], json!("TerminalObservation"));
        assert_eq!(obs["command"], json!("echo hi"));
        assert_eq!(obs["content"][0]["text"], json!(out.text));
        assert_eq!(obs["full_output_save_dir"], Value::Null);
        assert_eq!(obs["metadata"]["py_interpreter_path"], Value::Null);
        assert!(obs["metadata"]["pid"].as_i64().unwrap() > 0);
        assert_eq!(
            out.text,
            format!(
                "hi\n[Current working directory: {}]\n[Command finished with exit code 0]",
                real(dir.path())
            )
        );
        t.close().await;
    }

    /// Run with `cargo test --lib terminal::tests::round_trip_timing -- --ignored --nocapture`.
    #[tokio::test]
    #[ignore]
    async fn round_trip_timing() {
        let dir = tempfile::tempdir().unwrap();
        let t = tool(dir.path());
        for _ in 0..20 {
            cmd(&t, "echo hi").await;
        }
        let n = 1000;
        let started = Instant::now();
        for _ in 0..n {
            cmd(&t, "echo hi").await;
        }
        println!("echo hi round trip: {:?}", started.elapsed() / n);
        t.close().await;
    }

    #[tokio::test]
    async fn bad_arguments_keep_their_messages_and_stored_actions_run_typed() {
        let dir = tempfile::tempdir().unwrap();
        let t = tool(dir.path());
        let parse = |args: Value| t.parse_action(&args).unwrap_err();
        assert_eq!(
            parse(json!({"command": "ls", "timeout": -2})),
            "invalid arguments for tool 'terminal': `timeout` must be a positive number of \
             seconds, got -2"
        );
        assert_eq!(
            parse(json!({"command": "ls", "reset": true, "is_input": true})),
            "invalid arguments for tool 'terminal': `reset` cannot be combined with `is_input` \
             true"
        );
        assert_eq!(
            parse(json!({"is_input": true})),
            "invalid arguments for tool 'terminal': missing field `command`"
        );
        let action = t.parse_action(&json!({"command": "echo hi"})).unwrap();
        assert_eq!(
            action,
            json!({"kind": "TerminalAction", "command": "echo hi", "is_input": false,
                   "timeout": null, "reset": false})
        );
        assert_eq!(t.summarize(&action), "echo hi");
        let out = t
            .execute(&json!({"command": "echo hi", "reset": "yes"}))
            .await;
        assert!(out.is_error && out.observation["kind"] == "TerminalObservation");
        assert!(
            out.text.starts_with("invalid terminal action: "),
            "{}",
            out.text
        );
        assert_eq!(t.summarize(&json!({"command": 3})), "");
    }
}
