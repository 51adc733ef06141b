//! The zip an artifact is uploaded as: deflate (level 6, as GitHub's own client), the entry
//! names the caller gives (checked: relative, `/`-separated, no `..`, no duplicates), a fixed
//! timestamp and mode, so the same files always give the same bytes and the same hash.
//!
//! The zip is built in memory: a run's outputs (report, patch, trajectory) are megabytes, not
//! gigabytes, and the upload needs its hash before it is finalized anyway.

use std::io::Write;
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use super::ArtifactError;

/// Checks an artifact name against the characters the artifact service refuses.
pub fn check_artifact_name(name: &str) -> Result<(), ArtifactError> {
    const FORBIDDEN: &[char] = &['"', ':', '<', '>', '|', '*', '?', '\r', '\n', '\\', '/'];
    let invalid = |why: String| ArtifactError::InvalidName {
        name: name.to_string(),
        why,
    };
    if name.trim().is_empty() {
        return Err(invalid("it is empty".into()));
    }
    if let Some(c) = name.chars().find(|c| FORBIDDEN.contains(c)) {
        return Err(invalid(format!("it contains {c:?}")));
    }
    Ok(())
}

/// Checks the name of an entry inside the zip.
pub fn check_entry_name(entry: &str) -> Result<(), ArtifactError> {
    let invalid = |why: &str| ArtifactError::InvalidEntry {
        entry: entry.to_string(),
        why: why.to_string(),
    };
    if entry.is_empty() {
        return Err(invalid("it is empty"));
    }
    if entry.starts_with('/') || entry.contains('\\') || entry.contains('\0') {
        return Err(invalid("it must be a relative path with / separators"));
    }
    if entry
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(invalid("it has an empty, . or .. component"));
    }
    Ok(())
}

/// Zips `files` ((name inside the zip, path on disk)) into memory.
pub fn zip_files(files: &[(String, PathBuf)]) -> Result<Vec<u8>, ArtifactError> {
    let mut seen = std::collections::HashSet::new();
    for (entry, _) in files {
        check_entry_name(entry)?;
        if !seen.insert(entry.as_str()) {
            return Err(ArtifactError::InvalidEntry {
                entry: entry.clone(),
                why: "it is given twice".into(),
            });
        }
    }
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(6))
        .last_modified_time(DateTime::default())
        .unix_permissions(0o644)
        .large_file(false);
    let mut zip = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (entry, path) in files {
        let bytes = read(path)?;
        let options = options.large_file(bytes.len() as u64 >= u64::from(u32::MAX));
        zip.start_file(entry.as_str(), options).map_err(zip_error)?;
        zip.write_all(&bytes)
            .map_err(|e| zip_error(zip::result::ZipError::Io(e)))?;
    }
    let cursor = zip.finish().map_err(zip_error)?;
    Ok(cursor.into_inner())
}

fn read(path: &Path) -> Result<Vec<u8>, ArtifactError> {
    std::fs::read(path).map_err(|source| ArtifactError::ReadFile {
        path: path.to_path_buf(),
        source,
    })
}

fn zip_error(e: zip::result::ZipError) -> ArtifactError {
    ArtifactError::Zip(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_names_refuse_what_the_service_refuses() {
        check_artifact_name("sandcrab-run 42 (attempt 1)").unwrap();
        for bad in [
            "", "  ", "a/b", "a\\b", "a:b", "a\"b", "a<b", "a>b", "a|b", "a*b", "a?b", "a\nb",
        ] {
            assert!(check_artifact_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn entry_names_are_relative_and_clean() {
        check_entry_name("report.md").unwrap();
        check_entry_name("conversations/abc/events.jsonl").unwrap();
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "./a",
            "a\\b",
            "a/",
        ] {
            assert!(check_entry_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_same_files_give_the_same_bytes_with_a_fixed_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "hello hello hello").unwrap();
        let files = vec![("a.txt".to_string(), path)];
        let first = zip_files(&files).unwrap();
        assert_eq!(first, zip_files(&files).unwrap());
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(first)).unwrap();
        let entry = zip.by_index(0).unwrap();
        assert_eq!(entry.last_modified(), Some(DateTime::default()));
        assert_eq!(entry.compression(), CompressionMethod::Deflated);
    }

    #[test]
    fn duplicates_and_missing_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        std::fs::write(&path, "x").unwrap();
        let twice = vec![("a".to_string(), path.clone()), ("a".to_string(), path)];
        assert!(matches!(
            zip_files(&twice),
            Err(ArtifactError::InvalidEntry { .. })
        ));
        let missing = vec![("b".to_string(), dir.path().join("nope"))];
        assert!(matches!(
            zip_files(&missing),
            Err(ArtifactError::ReadFile { .. })
        ));
    }
}
