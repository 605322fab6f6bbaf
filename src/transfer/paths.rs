//! Safe paths, on both sides. The server maps a request to a file strictly
//! inside the served directory (after symlinks are resolved); the client
//! accepts only plain names from a server, so nothing lands outside the
//! destination.

use std::io;
use std::path::{Component, Path, PathBuf};

use super::proto::ErrorCode;

/// Why a request path was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The protocol error code.
    pub code: ErrorCode,
    /// A short reason for the log and the client.
    pub reason: String,
}

fn forbid(reason: impl Into<String>) -> Refusal {
    Refusal {
        code: ErrorCode::Forbidden,
        reason: reason.into(),
    }
}

/// The served directory.
#[derive(Debug, Clone)]
pub struct Root {
    /// Canonical (symlink-free, absolute) path of the directory.
    canon: PathBuf,
    /// Serve dotfiles too (`--hidden`).
    hidden: bool,
}

impl Root {
    /// Opens `dir` as a served root.
    ///
    /// # Errors
    /// When `dir` does not exist or is not a directory.
    pub fn new(dir: &Path, hidden: bool) -> io::Result<Root> {
        let canon = dir.canonicalize()?;
        if !canon.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a directory",
            ));
        }
        Ok(Root { canon, hidden })
    }

    /// The canonical served directory.
    pub fn path(&self) -> &Path {
        &self.canon
    }

    /// Maps a request to a path inside the root. `""` is the root itself.
    /// Symlinks are resolved and the result must still be inside the root.
    ///
    /// # Errors
    /// A [`Refusal`]: forbidden (`..`, absolute, `//`, backslash, NUL,
    /// hidden, outside the root) or not found.
    pub fn resolve(&self, request: &str) -> Result<PathBuf, Refusal> {
        let rel = check_request(request, self.hidden)?;
        let joined = self.canon.join(rel);
        let real = match joined.canonicalize() {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Refusal {
                    code: ErrorCode::NotFound,
                    reason: "no such file".into(),
                })
            }
            Err(_) => return Err(forbid("cannot be resolved")),
        };
        if !real.starts_with(&self.canon) {
            return Err(forbid("leads outside the served directory"));
        }
        if !self.hidden {
            let inside = real.strip_prefix(&self.canon).unwrap_or(&real);
            if inside
                .components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
            {
                return Err(forbid("hidden file (the server needs --hidden)"));
            }
        }
        Ok(real)
    }
}

/// Checks the text of a request path and returns it as a relative path.
fn check_request(request: &str, hidden: bool) -> Result<PathBuf, Refusal> {
    if request.contains('\0') {
        return Err(forbid("contains a NUL byte"));
    }
    if request.contains('\\') {
        return Err(forbid("contains a backslash"));
    }
    if request.starts_with('/') {
        return Err(forbid("is an absolute path"));
    }
    let trimmed = request.strip_suffix('/').unwrap_or(request);
    if trimmed.is_empty() {
        return Ok(PathBuf::new());
    }
    let mut out = PathBuf::new();
    for part in trimmed.split('/') {
        match part {
            "" => return Err(forbid("contains an empty path component (//)")),
            "." | ".." => return Err(forbid("contains . or ..")),
            p if p.starts_with('.') && !hidden => {
                return Err(forbid("hidden file (the server needs --hidden)"))
            }
            // NAME_MAX: no file has a longer name component.
            p if p.len() > 255 => return Err(forbid("has a name longer than 255 bytes")),
            p => out.push(p),
        }
    }
    // Belt and braces: whatever the text was, only plain names remain.
    if out.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(forbid("is not a plain relative path"));
    }
    Ok(out)
}

/// Whether a name from a server is one plain path component that is safe
/// to create under a destination directory.
pub fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\\')
        && !name.contains('\0')
}

/// The last component of a request path, to save a download under.
pub fn base_name(request: &str) -> Option<&str> {
    let name = request
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    safe_name(name).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzz/path_jail: a name past NAME_MAX came back as
    /// "cannot be resolved" from the kernel; it is refused by rule now.
    #[test]
    fn names_longer_than_name_max_are_refused() {
        let long = format!("d/{}", "x".repeat(256));
        let r = check_request(&long, false).unwrap_err();
        assert!(r.reason.contains("255 bytes"), "{r:?}");
        assert!(check_request(&"x".repeat(255), false).is_ok());
    }

    #[test]
    fn request_text_rules() {
        for bad in [
            "../etc/passwd",
            "a/../../b",
            "/etc/passwd",
            "a//b",
            "a\\b",
            "a\0b",
            "./a",
            ".hidden",
            "dir/.git/config",
        ] {
            assert!(check_request(bad, false).is_err(), "{bad:?}");
        }
        assert_eq!(
            check_request("dir/file.txt", false).unwrap(),
            PathBuf::from("dir/file.txt")
        );
        assert_eq!(check_request("", false).unwrap(), PathBuf::new());
        assert_eq!(check_request("sub/", false).unwrap(), PathBuf::from("sub"));
        assert!(check_request(".hidden", true).is_ok());
        // Percent-encoding is not decoded: it is just an odd (missing) name.
        assert_eq!(
            check_request("%2e%2e/x", false).unwrap(),
            PathBuf::from("%2e%2e/x")
        );
    }

    #[test]
    fn client_side_names() {
        for bad in ["", ".", "..", "a/b", "../x", "/abs", "a\\b", "nul\0"] {
            assert!(!safe_name(bad), "{bad:?}");
        }
        assert!(safe_name("接收文件.txt"));
        assert_eq!(base_name("dir/sub/file.bin"), Some("file.bin"));
        assert_eq!(base_name("dir/"), Some("dir"));
        assert_eq!(base_name(".."), None);
    }
}
