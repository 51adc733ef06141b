//! A pull request's code in the runner's checkout, whatever actions/checkout left there (the
//! default branch for `issue_comment`, the detached merge commit `refs/pull/N/merge` for
//! `pull_request*`; depth 1 or full; credentials persisted or not), before the agent sees it.
//!
//! - The head is fetched from `origin` (the token goes to git through `Checkout`'s environment,
//!   never argv or a file): the PR's branch for a same-repository PR (checked out as that
//!   branch, so a push fast-forwards it), `refs/pull/N/head` for a fork (checked out detached;
//!   nothing is ever pushed there).
//! - The base branch is fetched too, and a shallow checkout is deepened (50, 100, 200 ...
//!   commits, then `--unshallow`) until the head and the base have a merge base: the diff a
//!   review must see is `merge-base..head`, as GitHub shows it.
//!
//! Any failure is an error: the agent never works on other code than the PR's. The fetch and
//! deepening ([`fetch_head_and_base`]) serve GitLab's merge requests too (`ci::gitlab::checkout`).

use super::checkout::{Checkout, GitError};
use super::event::PullRequest;

/// First depth fetched in a shallow checkout, doubled on every round.
const FIRST_DEPTH: u32 = 50;
/// Deepening rounds before fetching the whole history.
const ROUNDS: u32 = 6;

/// What was checked out.
#[derive(Debug, Clone)]
pub struct PrHead {
    /// The head commit the checkout is at.
    pub head: String,
    /// The merge base of the head and the base branch.
    pub merge_base: String,
    /// Whether the head lives in this repository (so a push to its branch is allowed).
    pub same_repo: bool,
}

/// Fetches and checks out `pr`'s head in `checkout`.
pub async fn check_out(
    checkout: &Checkout,
    pr: &PullRequest,
    repository: &str,
) -> Result<PrHead, GitError> {
    let same_repo = pr.same_repo(repository);
    if !checkout.valid_branch(&pr.head.name).await || !checkout.valid_branch(&pr.base.name).await {
        return Err(GitError {
            what: "fetch".into(),
            detail: format!(
                "'{}' or '{}' is not a valid branch name",
                pr.head.name, pr.base.name
            ),
        });
    }
    let head_ref = if same_repo {
        format!("refs/remotes/origin/{}", pr.head.name)
    } else {
        format!("refs/remotes/origin/pr/{}", pr.number)
    };
    let spec = HeadSpec {
        head_source: if same_repo {
            format!("refs/heads/{}", pr.head.name)
        } else {
            format!("refs/pull/{}/head", pr.number)
        },
        head_ref,
        base_branch: pr.base.name.clone(),
        branch: same_repo.then(|| pr.head.name.clone()),
    };
    let (head, merge_base) = fetch_head_and_base(checkout, &spec).await?;
    Ok(PrHead {
        head,
        merge_base,
        same_repo,
    })
}

/// What to fetch and check out: a head ref of the remote and a base branch.
#[derive(Debug, Clone)]
pub struct HeadSpec {
    /// The ref on the remote (`refs/heads/feature`, `refs/pull/7/head`,
    /// `refs/merge-requests/7/head`).
    pub head_source: String,
    /// Where it is kept locally (`refs/remotes/origin/...`).
    pub head_ref: String,
    /// The branch the head is compared with (validated by the caller).
    pub base_branch: String,
    /// Check the head out as this branch (so a push fast-forwards it); `None`: detached.
    pub branch: Option<String>,
}

/// Fetches `spec`'s head and base branch (deepening a shallow checkout until they have a
/// merge base) and checks the head out; returns the head commit and the merge base.
pub async fn fetch_head_and_base(
    checkout: &Checkout,
    spec: &HeadSpec,
) -> Result<(String, String), GitError> {
    let head_ref = spec.head_ref.clone();
    let base_ref = format!("refs/remotes/origin/{}", spec.base_branch);
    let refspecs = [
        format!("+{}:{head_ref}", spec.head_source),
        format!("+refs/heads/{}:{base_ref}", spec.base_branch),
    ];
    let shallow = checkout
        .git(&["rev-parse", "--is-shallow-repository"], &[], "rev-parse")
        .await?
        .trim()
        == "true";
    let depth = FIRST_DEPTH.to_string();
    fetch(
        checkout,
        &refspecs,
        shallow.then_some(&format!("--depth={depth}")),
    )
    .await?;
    let head = rev(checkout, &head_ref).await?;
    let base = rev(checkout, &base_ref).await?;
    let mut merge_base = find_merge_base(checkout, &head, &base).await;
    let mut deepen = FIRST_DEPTH;
    let mut round = 0;
    while merge_base.is_none() && shallow && round <= ROUNDS {
        let arg = if round == ROUNDS {
            "--unshallow".to_string()
        } else {
            format!("--deepen={deepen}")
        };
        fetch(checkout, &refspecs, Some(&arg)).await?;
        merge_base = find_merge_base(checkout, &head, &base).await;
        deepen *= 2;
        round += 1;
    }
    let Some(merge_base) = merge_base else {
        return Err(GitError {
            what: "merge-base".into(),
            detail: format!(
                "the head {} and the base branch {} share no history",
                short(&head),
                spec.base_branch
            ),
        });
    };
    let switch: Vec<&str> = match &spec.branch {
        Some(branch) => vec!["checkout", "--quiet", "--force", "-B", branch, &head],
        None => vec!["checkout", "--quiet", "--force", "--detach", &head],
    };
    checkout.git(&switch, &[], "checkout").await?;
    Ok((head, merge_base))
}

async fn fetch(
    checkout: &Checkout,
    refspecs: &[String],
    extra: Option<&String>,
) -> Result<(), GitError> {
    let auth = checkout.auth_env().await;
    let mut args = vec!["fetch", "--quiet", "--no-tags", "--no-recurse-submodules"];
    if let Some(extra) = extra {
        args.push(extra);
    }
    args.push(checkout.remote());
    args.extend(refspecs.iter().map(String::as_str));
    checkout.git(&args, &auth, "fetch").await.map(|_| ())
}

async fn rev(checkout: &Checkout, name: &str) -> Result<String, GitError> {
    let spec = format!("{name}^{{commit}}");
    checkout
        .git(&["rev-parse", "--verify", &spec], &[], "rev-parse")
        .await
        .map(|s| s.trim().to_string())
}

async fn find_merge_base(checkout: &Checkout, a: &str, b: &str) -> Option<String> {
    checkout
        .git(&["merge-base", a, b], &[], "merge-base")
        .await
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
