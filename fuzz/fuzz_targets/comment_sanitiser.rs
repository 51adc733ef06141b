//! The comment sanitiser (`report::inert`): any text, never a panic; the output reads the same
//! as the input once the invisible characters are taken out; and text without code fences
//! keeps no live syntax: no tag, comment or autolink start, no link or image, no reference
//! definition, no mention, no autolinked URL.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandcrab::report::inert::inert;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains(['\u{200B}', '\u{200D}']) {
        let _ = inert(text, Some("github.com"));
        return;
    }
    let out = inert(text, None);
    assert_eq!(out.replace(['\u{200B}', '\u{200D}'], ""), text);
    if text.contains(['`', '~']) {
        return;
    }
    let bytes = out.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let next = bytes.get(i + 1).copied().unwrap_or(b' ');
        match b {
            b'<' => assert!(!(next.is_ascii_alphabetic() || b"!/?".contains(&next)), "live tag: {out:?}"),
            b']' => assert!(next != b'(' && next != b':', "live link: {out:?}"),
            b'@' => assert!(!next.is_ascii_alphanumeric(), "live mention: {out:?}"),
            _ => {}
        }
    }
    // GFM autolinks `http://`, `https://`, `ftp://`, `www.` at the start, after whitespace or
    // after one of `*_~(`.
    let lower = out.to_ascii_lowercase();
    for start in ["http://", "https://", "ftp://", "www."] {
        for (at, _) in lower.match_indices(start) {
            let before = lower[..at].chars().next_back();
            assert!(
                before.is_some_and(|c| !c.is_whitespace() && !"*_~(".contains(c)),
                "live URL: {out:?}"
            );
        }
    }
});
