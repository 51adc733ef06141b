//! Checks that the agent-server binary is a static ELF executable: one that asks for no ELF
//! interpreter (no `PT_INTERP` program header), so it runs in any Linux image, even `scratch`.

use std::path::Path;

use crate::workspace::WorkspaceError;

const PT_INTERP: u32 = 3;

/// How to get a binary that passes [`check_static`].
pub const STATIC_BUILD_HINT: &str = "build the static agent-server with `cargo build --release \
     --target x86_64-unknown-linux-musl` (it lands in \
     target/x86_64-unknown-linux-musl/release/sandcrab) and pass that file";

/// Fails with a clear error unless `path` is a static ELF executable.
pub fn check_static(path: &Path) -> Result<(), WorkspaceError> {
    let bytes = std::fs::read(path).map_err(|e| {
        WorkspaceError::Setup(format!(
            "cannot read the sandbox binary {}: {e}; {STATIC_BUILD_HINT}",
            path.display()
        ))
    })?;
    match has_interpreter(&bytes) {
        Some(false) => Ok(()),
        Some(true) => Err(WorkspaceError::Setup(format!(
            "the sandbox binary {} is dynamically linked (it needs an ELF interpreter), so it \
             cannot run in an arbitrary image; {STATIC_BUILD_HINT}",
            path.display()
        ))),
        None => Err(WorkspaceError::Setup(format!(
            "the sandbox binary {} is not a little-endian ELF executable; {STATIC_BUILD_HINT}",
            path.display()
        ))),
    }
}

/// Whether the ELF image asks for an interpreter; `None` if it is not a readable ELF file.
pub fn has_interpreter(elf: &[u8]) -> Option<bool> {
    if elf.get(..4)? != b"\x7fELF" || *elf.get(5)? != 1 {
        return None;
    }
    let wide = match elf.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let (phoff, phentsize, phnum) = if wide {
        (
            read_u64(elf, 0x20)?,
            read_u16(elf, 0x36)?,
            read_u16(elf, 0x38)?,
        )
    } else {
        (
            read_u32(elf, 0x1c)? as u64,
            read_u16(elf, 0x2a)?,
            read_u16(elf, 0x2c)?,
        )
    };
    for i in 0..u64::from(phnum) {
        let at = usize::try_from(phoff + i * u64::from(phentsize)).ok()?;
        if read_u32(elf, at)? == PT_INTERP {
            return Some(true);
        }
    }
    Some(false)
}

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_test_binary_is_judged() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(has_interpreter(&me).is_some());
    }

    #[test]
    fn non_elf_files_are_refused() {
        assert_eq!(has_interpreter(b"#!/bin/sh\n"), None);
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("x.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let err = check_static(&script).unwrap_err().to_string();
        assert!(err.contains("x.sh") && err.contains("musl"), "{err}");
    }

    #[test]
    fn dynamic_binaries_are_refused() {
        let sh = Path::new("/bin/sh");
        if std::fs::read(sh).ok().and_then(|b| has_interpreter(&b)) == Some(true) {
            let err = check_static(sh).unwrap_err().to_string();
            assert!(err.contains("dynamically linked"), "{err}");
        }
    }
}
