//! The repository's `.git/config` as the sandbox gets it: without credentials. On a CI
//! runner, actions/checkout persists the job token as `http.https://github.com/.extraheader`;
//! tokens also hide in `url.<base>.insteadOf` rewrites, credential helpers and remote URLs
//! with a user:password part. None of that may reach the agent.
//!
//! Dropped: every `extraheader` key, every `[credential ...]` section, `[url ...]` sections
//! whose base carries credentials, and the user:password of remote URLs.

/// `text` (a git config file) without credentials.
pub fn strip_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut section = Section::default();
    let mut skipping_value = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if skipping_value {
            skipping_value = continues(trimmed);
            continue;
        }
        if trimmed.starts_with('[') {
            section = Section::parse(trimmed);
            if !section.dropped() {
                out.push_str(line);
            }
            continue;
        }
        if section.dropped() {
            continue;
        }
        let key = trimmed
            .split(['=', ' ', '\t'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if key == "extraheader" {
            skipping_value = continues(trimmed);
            continue;
        }
        if section.name == "remote" && (key == "url" || key == "pushurl") {
            out.push_str(&without_userinfo(line));
            continue;
        }
        out.push_str(line);
    }
    out
}

/// A value continued on the next line (a trailing backslash).
fn continues(line: &str) -> bool {
    line.ends_with('\\')
}

#[derive(Default)]
struct Section {
    /// Lowercased section name: `http`, `credential`, `url`, `remote`...
    name: String,
    /// The quoted subsection, as written.
    sub: String,
}

impl Section {
    /// `[name "sub"]` or `[name.sub]` (a header may have a key after it on the line; rare,
    /// and then the whole line is judged by its section).
    fn parse(header: &str) -> Self {
        let inner = header
            .trim_start_matches('[')
            .split(']')
            .next()
            .unwrap_or("");
        let (name, sub) = match inner.split_once(['"', ' ', '.']) {
            Some((name, rest)) => (name, rest.trim().trim_matches('"')),
            None => (inner, ""),
        };
        Section {
            name: name.trim().to_ascii_lowercase(),
            sub: sub.to_string(),
        }
    }

    fn dropped(&self) -> bool {
        match self.name.as_str() {
            "credential" => true,
            "url" => has_userinfo(&self.sub),
            _ => false,
        }
    }
}

/// Whether a URL has a `user[:password]@` part.
fn has_userinfo(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(_, rest)| rest.split('/').next().unwrap_or("").contains('@'))
}

/// The config line with `scheme://user:pass@host` turned into `scheme://host`.
fn without_userinfo(line: &str) -> String {
    let Some(start) = line.find("://").map(|i| i + 3) else {
        return line.to_string();
    };
    let authority_end = line[start..]
        .find(['/', '\n', '"', ' '])
        .map_or(line.len(), |i| start + i);
    match line[start..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &line[..start], &line[start + at + 1..]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What actions/checkout and common setups leave in `.git/config`.
    pub const CHECKOUT_CONFIG: &str = "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\
[remote \"origin\"]\n\turl = https://x-access-token:ghs_SECRET1@github.com/o/r\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n\
[http \"https://github.com/\"]\n\textraheader = AUTHORIZATION: basic eC1hY2Nlc3MtdG9rZW46Z2hzX1NFQ1JFVDI=\n\
[url \"https://oauth2:glpat-SECRET3@gitlab.com/\"]\n\tinsteadOf = https://gitlab.com/\n\
[url \"git@github.com:\"]\n\tinsteadOf = https://github.com/\n\
[credential]\n\thelper = store --file /home/runner/.git-credentials\n\
[credential \"https://example.com\"]\n\tusername = bot\n\
[http]\n\tExtraHeader = Authorization: bearer SECRET4 \\\n\t  continued\n\tsslVerify = true\n\
[branch \"main\"]\n\tremote = origin\n";

    #[test]
    fn credentials_are_removed_and_the_rest_kept() {
        let out = strip_credentials(CHECKOUT_CONFIG);
        for secret in [
            "SECRET1",
            "eC1hY2Nlc3",
            "SECRET3",
            "SECRET4",
            "continued",
            "helper",
            "username",
        ] {
            assert!(!out.contains(secret), "{secret} in\n{out}");
        }
        assert_eq!(
            out,
            "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\
[remote \"origin\"]\n\turl = https://github.com/o/r\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n\
[http \"https://github.com/\"]\n\
[url \"git@github.com:\"]\n\tinsteadOf = https://github.com/\n\
[http]\n\tsslVerify = true\n\
[branch \"main\"]\n\tremote = origin\n"
        );
    }

    #[test]
    fn a_clean_config_is_unchanged() {
        let clean =
            "[core]\n\tbare = false\n[remote \"origin\"]\n\turl = https://github.com/o/r.git\n";
        assert_eq!(strip_credentials(clean), clean);
    }
}
