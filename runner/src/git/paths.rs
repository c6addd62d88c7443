//! Which file names Paddock commits: pure checks against `.git` look-alikes and traversal.
//!
//! A name that one file system reads as `.git` (case folding on macOS and Windows, NTFS
//! trailing dots and spaces, NTFS short names, HFS+ ignorable code points) would plant
//! repository metadata in the checkout of whoever reviews the branch. Git refuses such
//! names when it checks them out; Paddock refuses them before they enter a commit.

/// The kind of a name that passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// An ordinary name.
    Normal,
    /// Exactly `.git`: repository metadata the agent created. Never read, never committed.
    DotGit,
}

/// Longest single name accepted (Linux `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;

/// Checks one path component as read from a directory or a tree.
///
/// `Err` carries the rule that refused it.
pub fn check_name(name: &[u8]) -> Result<NameKind, &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name == b"." || name == b".." {
        return Err("`.` or `..` as a name");
    }
    if name.len() > MAX_NAME_BYTES {
        return Err("name longer than 255 bytes");
    }
    let Ok(text) = std::str::from_utf8(name) else {
        return Err("name is not UTF-8");
    };
    if text.contains(['/', '\\']) {
        return Err("name contains a path separator");
    }
    if text.chars().any(char::is_control) {
        return Err("name contains a control character");
    }
    if name == b".git" {
        return Ok(NameKind::DotGit);
    }
    if is_ntfs_dotgit(text) || is_hfs_equal(text, ".git") {
        return Err("name that some file systems read as `.git`");
    }
    Ok(NameKind::Normal)
}

/// True for names that are `.gitmodules`, `.gitattributes`, `.gitignore` or `.mailmap` on
/// some file system. Git reads these from the tree, never through a symbolic link, and
/// `git fsck` (which forges run on push) refuses them as links.
pub fn is_git_special_file(name: &str) -> bool {
    const SPECIAL: [(&str, &str); 4] = [
        // (name, NTFS short-name hash prefix git uses)
        (".gitmodules", "gi7eba"),
        (".gitattributes", "gi7d29"),
        (".gitignore", "gi250a"),
        (".mailmap", "maba30"),
    ];
    SPECIAL.iter().any(|(full, hashed)| {
        is_hfs_equal(name, full) || is_ntfs_equal(name, full) || is_ntfs_short(name, full, hashed)
    })
}

/// Code points HFS+ ignores when it compares names (git's `next_hfs_char`).
fn hfs_ignorable(c: char) -> bool {
    matches!(c, '\u{200c}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{206a}'..='\u{206f}' | '\u{feff}')
}

/// `name` equals `target` (ASCII, lower case) once HFS+ ignorables are dropped and ASCII case
/// is folded.
fn is_hfs_equal(name: &str, target: &str) -> bool {
    let mut folded = name
        .chars()
        .filter(|c| !hfs_ignorable(*c))
        .map(|c| c.to_ascii_lowercase());
    let mut want = target.chars();
    loop {
        match (folded.next(), want.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// NTFS ignores trailing dots and spaces and reads `name:stream` as `name`.
fn ntfs_strip(name: &str) -> &str {
    let base = name.split(':').next().unwrap_or(name);
    base.trim_end_matches(['.', ' '])
}

fn is_ntfs_equal(name: &str, target: &str) -> bool {
    ntfs_strip(name).eq_ignore_ascii_case(target)
}

/// `.git` on NTFS: `.git` or its short name `git~1`, with trailing dots/spaces or a stream.
fn is_ntfs_dotgit(name: &str) -> bool {
    let base = ntfs_strip(name);
    base.eq_ignore_ascii_case(".git") || base.eq_ignore_ascii_case("git~1")
}

/// NTFS 8.3 short names of `full`: the first six characters without the dot, `~` and a digit
/// 1-4, or git's hashed prefix with `~` and any digit.
fn is_ntfs_short(name: &str, full: &str, hashed: &str) -> bool {
    let base = ntfs_strip(name).to_ascii_lowercase();
    let Some((stem, digit)) = base.split_once('~') else {
        return false;
    };
    if digit.len() != 1 || !digit.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let six: String = full.trim_start_matches('.').chars().take(6).collect();
    (stem == six && matches!(digit, "1" | "2" | "3" | "4")) || stem == hashed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass() {
        for n in [
            "src",
            "main.rs",
            ".github",
            ".gitignore",
            ".gitkeep",
            "git",
            ".git2",
            "a.git",
            "git~2",
            "é.txt",
            "foo:bar",
        ] {
            assert_eq!(check_name(n.as_bytes()), Ok(NameKind::Normal), "{n}");
        }
    }

    #[test]
    fn exact_dot_git_is_metadata() {
        assert_eq!(check_name(b".git"), Ok(NameKind::DotGit));
    }

    #[test]
    fn dot_git_lookalikes_are_refused() {
        for n in [
            ".GIT",
            ".Git",
            ".git.",
            ".git ",
            ".git. . ",
            "git~1",
            "GIT~1",
            ".git::$INDEX_ALLOCATION",
            ".g\u{200c}it",
            "\u{feff}.GIT",
            ".gi\u{206a}t",
        ] {
            assert!(check_name(n.as_bytes()).is_err(), "{n:?} must be refused");
        }
    }

    #[test]
    fn traversal_and_odd_bytes_are_refused() {
        for n in [
            &b""[..],
            b".",
            b"..",
            b"a/b",
            b"a\\b",
            b"new\nline",
            b"esc\x1b[31m",
            b"\xff\xfe",
            b"del\x7f",
        ] {
            assert!(check_name(n).is_err(), "{n:?} must be refused");
        }
        assert!(check_name(&[b'a'; 256]).is_err());
        assert!(check_name(&[b'a'; 255]).is_ok());
    }

    #[test]
    fn git_special_files_in_all_spellings() {
        for n in [
            ".gitmodules",
            ".GITMODULES",
            ".gitmodules.",
            ".gitmodules ",
            "gitmod~1",
            "GI7EBA~9",
            ".git\u{200d}modules",
            ".gitattributes",
            "gitatt~2",
            ".gitignore",
            ".mailmap",
        ] {
            assert!(is_git_special_file(n), "{n:?}");
        }
        for n in [
            "gitmodules",
            ".gitmodules2",
            "gitmod~5",
            "readme",
            ".github",
        ] {
            assert!(!is_git_special_file(n), "{n:?}");
        }
    }
}
