//! What actions/checkout@v4 leaves in `GITHUB_WORKSPACE`, step for step: `git init`,
//! `git remote add origin`, the auth header, `git fetch --no-tags --depth=1 origin
//! +SHA:refs/remotes/...` (every branch without depth with `fetch-depth: 0`), checkout; for
//! `pull_request*` events the detached merge commit of `refs/pull/N/merge`, for
//! `issue_comment`, `issues`, `workflow_dispatch` and `schedule` the default branch. With
//! `persist-credentials: true` (its default) the header stays in `.git/config` as
//! `http.<server>/.extraheader AUTHORIZATION: basic base64(x-access-token:TOKEN)`.

use std::path::Path;

use base64::Engine;

/// What the workflow's event checks out.
#[derive(Clone, Copy, Debug)]
pub enum Ref<'a> {
    /// The default branch (`issue_comment`, `issues`, `workflow_dispatch`, `schedule`).
    Default(&'a str),
    /// `refs/pull/N/merge`, detached (`pull_request*`).
    Merge(u64),
}

#[derive(Clone, Copy, Debug)]
pub struct Options<'a> {
    pub what: Ref<'a>,
    /// `fetch-depth` (0: all history).
    pub depth: u32,
    pub persist_credentials: bool,
}

/// The `AUTHORIZATION` header value actions/checkout uses.
pub fn auth_header(token: &str) -> String {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
    format!("AUTHORIZATION: basic {basic}")
}

/// Checks out `remote` (`{server}/OWNER/NAME.git`) into the empty `dir` as actions/checkout does.
pub fn actions_checkout(dir: &Path, server: &str, remote: &str, token: &str, opts: Options<'_>) {
    let git = |args: &[&str]| super::git(dir, args);
    git(&["init", "-q"]);
    git(&["remote", "add", "origin", remote]);
    let key = format!("http.{}/.extraheader", server.trim_end_matches('/'));
    git(&["config", "--local", &key, &auth_header(token)]);
    let (source, local) = match opts.what {
        Ref::Default(branch) => (
            format!("refs/heads/{branch}"),
            format!("refs/remotes/origin/{branch}"),
        ),
        Ref::Merge(n) => (
            format!("refs/pull/{n}/merge"),
            format!("refs/remotes/pull/{n}/merge"),
        ),
    };
    let spec = format!("+{source}:{local}");
    if opts.depth == 0 {
        git(&[
            "-c",
            "protocol.version=2",
            "fetch",
            "-q",
            "--prune",
            "--no-recurse-submodules",
            "origin",
            "+refs/heads/*:refs/remotes/origin/*",
            "+refs/tags/*:refs/tags/*",
            &spec,
        ]);
    } else {
        let depth = format!("--depth={}", opts.depth);
        git(&[
            "-c",
            "protocol.version=2",
            "fetch",
            "-q",
            "--no-tags",
            "--prune",
            "--no-recurse-submodules",
            &depth,
            "origin",
            &spec,
        ]);
    }
    match opts.what {
        Ref::Default(branch) => git(&["checkout", "-q", "--force", "-B", branch, &local]),
        Ref::Merge(_) => git(&["checkout", "-q", "--force", &local]),
    };
    if !opts.persist_credentials {
        git(&["config", "--local", "--unset-all", &key]);
    }
}
