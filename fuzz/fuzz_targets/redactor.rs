//! The redactor and the patch scan: the first line is a secret, the rest the text. Nothing may
//! panic; a secret (sharing no character with the `<secret-hidden>` marker, which could rebuild
//! it) is gone from the redacted text and from a redacted JSON string; the scan names a file
//! whose added line holds the secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandcrab::redact::{Redactor, Secrets, HIDDEN};
use sandcrab::run::secret_scan::files_with_secrets;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (secret, rest) = text.split_once('\n').unwrap_or((text, ""));
    let secrets = Secrets::new([secret.to_string()]);
    let redactor: Redactor = secrets.redactor();
    let red = redactor.redact(rest);
    let mut json = serde_json::json!({ rest: [rest, {"k": rest}] });
    redactor.redact_json(&mut json);
    let _ = files_with_secrets(rest, &redactor);
    let plain = secret.len() >= 4 && !secret.chars().any(|c| HIDDEN.contains(c));
    if plain {
        assert!(!red.contains(secret), "the secret survived redaction");
        if secret.chars().all(|c| c.is_ascii_alphanumeric()) {
            assert!(!json.to_string().contains(secret), "the secret survived in JSON");
        }
        assert!(!redactor.finds(&red) || red.contains(HIDDEN));
        let patch = format!("diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -0,0 +1 @@\n+{}{secret}\n", rest.replace('\n', " "));
        assert_eq!(files_with_secrets(&patch, &redactor), ["f"]);
    }
});
