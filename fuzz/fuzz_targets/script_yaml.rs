//! The scripted model's YAML (`--model scripted:FILE.yaml`): any text must parse or give an
//! error message, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sandcrab::llm::scripted::parse_script(text);
    }
});
