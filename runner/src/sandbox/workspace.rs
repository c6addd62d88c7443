//! The work tree as a tar stream: packed from a host directory, unpacked from the sandbox.
//!
//! The host never mounts the agent's files. What comes back is data: only directories, regular
//! files and symlinks are accepted, every path must stay under the destination (a symlink the
//! agent planted is never followed), and set-id bits and ownership are dropped.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use tar::{Builder, EntryType, Header};

use super::error::SandboxError;

fn err(what: impl std::fmt::Display) -> SandboxError {
    SandboxError::Workspace(what.to_string())
}

/// Packs `dir` (directories, regular files and symlinks; symlinks are stored, never followed) into
/// a tar stream whose entries are relative to `dir`. Sockets, fifos and devices are refused.
pub fn pack_dir(dir: &Path) -> Result<Bytes, SandboxError> {
    let mut builder = Builder::new(Vec::new());
    builder.follow_symlinks(false);
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let full = dir.join(&rel);
        let mut entries: Vec<_> = fs::read_dir(&full)
            .map_err(|e| err(format!("read {}: {e}", full.display())))?
            .collect::<Result<_, _>>()
            .map_err(|e| err(format!("read {}: {e}", full.display())))?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let path = entry.path();
            let name = rel.join(entry.file_name());
            let meta = fs::symlink_metadata(&path)
                .map_err(|e| err(format!("stat {}: {e}", path.display())))?;
            let ft = meta.file_type();
            let mode = meta.permissions().mode() & 0o777;
            let mut header = Header::new_gnu();
            header.set_mode(mode);
            header.set_mtime(
                meta.modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs()),
            );
            if ft.is_dir() {
                header.set_entry_type(EntryType::Directory);
                header.set_size(0);
                builder
                    .append_data(&mut header, &name, std::io::empty())
                    .map_err(|e| err(format!("pack {}: {e}", name.display())))?;
                stack.push(name);
            } else if ft.is_file() {
                header.set_entry_type(EntryType::Regular);
                header.set_size(meta.len());
                let file = fs::File::open(&path)
                    .map_err(|e| err(format!("open {}: {e}", path.display())))?;
                builder
                    .append_data(&mut header, &name, file.take(meta.len()))
                    .map_err(|e| err(format!("pack {}: {e}", name.display())))?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&path)
                    .map_err(|e| err(format!("readlink {}: {e}", path.display())))?;
                header.set_entry_type(EntryType::Symlink);
                header.set_size(0);
                builder
                    .append_link(&mut header, &name, &target)
                    .map_err(|e| err(format!("pack {}: {e}", name.display())))?;
            } else {
                return Err(err(format!(
                    "{} is not a directory, regular file or symlink",
                    name.display()
                )));
            }
        }
    }
    builder
        .into_inner()
        .map(Bytes::from)
        .map_err(|e| err(format!("finish tar: {e}")))
}

/// Rewrites a work-tree tar for upload: every entry owned by `uid:uid`, set-id and sticky bits
/// dropped, and anything but directories, regular files and symlinks with relative, `..`-free
/// paths refused (Docker extracts as root; a device node or a hard link to a host path must never
/// reach it).
pub fn for_upload(tar_bytes: &[u8], uid: u32) -> Result<Bytes, SandboxError> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut builder = Builder::new(Vec::with_capacity(tar_bytes.len()));
    let mut symlinks: HashSet<PathBuf> = HashSet::new();
    for entry in archive
        .entries()
        .map_err(|e| err(format!("read tar: {e}")))?
    {
        let mut entry = entry.map_err(|e| err(format!("read tar: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| err(format!("entry path: {e}")))?
            .into_owned();
        if !path_is_relative_and_inside(&path) {
            return Err(err(format!(
                "entry {} leaves the workspace",
                path.display()
            )));
        }
        // Docker extracts with the container's root as `/`: an entry beneath an earlier
        // symlink would be written wherever the link points inside the container.
        let normal: PathBuf = path
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        if normal.ancestors().skip(1).any(|a| symlinks.contains(a)) {
            return Err(err(format!(
                "entry {} lies beneath a symlink of the same archive",
                path.display()
            )));
        }
        let kind = entry.header().entry_type();
        if kind == EntryType::Symlink {
            symlinks.insert(normal.clone());
        } else {
            symlinks.remove(&normal);
        }
        let mut header = Header::new_gnu();
        header.set_mode(entry.header().mode().unwrap_or(0o644) & 0o777);
        header.set_mtime(entry.header().mtime().unwrap_or(0));
        header.set_uid(u64::from(uid));
        header.set_gid(u64::from(uid));
        match kind {
            EntryType::Directory => {
                header.set_entry_type(EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, &path, std::io::empty())
            }
            EntryType::Regular | EntryType::Continuous => {
                header.set_entry_type(EntryType::Regular);
                header.set_size(entry.size());
                builder.append_data(&mut header, &path, &mut entry)
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| err(format!("link of {}: {e}", path.display())))?
                    .ok_or_else(|| err(format!("symlink {} without target", path.display())))?
                    .into_owned();
                header.set_entry_type(EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, &path, &target)
            }
            other => {
                return Err(err(format!(
                    "entry {} has refused type {other:?}",
                    path.display()
                )));
            }
        }
        .map_err(|e| err(format!("repack {}: {e}", path.display())))?;
    }
    builder
        .into_inner()
        .map(Bytes::from)
        .map_err(|e| err(format!("finish tar: {e}")))
}

fn path_is_relative_and_inside(path: &Path) -> bool {
    path.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Unpacks a tar read back from the sandbox into `dest` (which must exist). Entries keep their
/// path (Docker names them `workspace/...`); returns the number of entries written.
pub fn unpack(tar_bytes: &[u8], dest: &Path) -> Result<u64, SandboxError> {
    let mut archive = tar::Archive::new(tar_bytes);
    archive.set_preserve_permissions(false);
    archive.set_preserve_ownerships(false);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(false);
    let mut count = 0u64;
    for entry in archive
        .entries()
        .map_err(|e| err(format!("read tar: {e}")))?
    {
        let mut entry = entry.map_err(|e| err(format!("read tar: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| err(format!("entry path: {e}")))?
            .into_owned();
        if !path_is_relative_and_inside(&path) {
            return Err(err(format!(
                "entry {} leaves the destination",
                path.display()
            )));
        }
        match entry.header().entry_type() {
            EntryType::Directory | EntryType::Regular | EntryType::Symlink => {}
            other => {
                return Err(err(format!(
                    "entry {} has refused type {other:?}",
                    path.display()
                )));
            }
        }
        // Drop set-id and sticky bits.
        entry.set_mask(0o7000);
        let written = entry
            .unpack_in(dest)
            .map_err(|e| err(format!("unpack {}: {e}", path.display())))?;
        if !written {
            return Err(err(format!(
                "entry {} leaves the destination",
                path.display()
            )));
        }
        count = count.saturating_add(1);
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_unpack_round_trip_keeps_symlinks_as_links() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir(src.path().join("sub")).unwrap();
        fs::write(src.path().join("sub/a.txt"), b"hello").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.path().join("link")).unwrap();
        let tar = pack_dir(src.path()).unwrap();
        let dest = tempfile::tempdir().unwrap();
        assert_eq!(unpack(&tar, dest.path()).unwrap(), 3);
        assert_eq!(fs::read(dest.path().join("sub/a.txt")).unwrap(), b"hello");
        assert_eq!(
            fs::read_link(dest.path().join("link")).unwrap(),
            Path::new("/etc/passwd")
        );
    }

    #[test]
    fn upload_tars_are_owned_by_the_run_uid_and_refuse_devices_links_and_escapes() {
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("f"), b"x").unwrap();
        std::os::unix::fs::symlink("../../etc", src.path().join("l")).unwrap();
        let tar = for_upload(&pack_dir(src.path()).unwrap(), 10_007).unwrap();
        let mut a = tar::Archive::new(&tar[..]);
        let mut n = 0;
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            assert_eq!(e.header().uid().unwrap(), 10_007);
            assert_eq!(e.header().gid().unwrap(), 10_007);
            n += 1;
        }
        assert_eq!(n, 2, "the file and the symlink (kept as data)");
        let one = |ty: EntryType, path: &str| {
            let mut b = Builder::new(Vec::new());
            let mut h = Header::new_gnu();
            h.set_entry_type(ty);
            h.set_size(0);
            h.set_mode(0o644);
            if matches!(ty, EntryType::Link | EntryType::Symlink) {
                b.append_link(&mut h, path, "/etc/shadow").unwrap();
            } else {
                b.append_data(&mut h, path, std::io::empty()).unwrap();
            }
            b.into_inner().unwrap()
        };
        for ty in [
            EntryType::Char,
            EntryType::Block,
            EntryType::Fifo,
            EntryType::Link,
        ] {
            assert!(for_upload(&one(ty, "x"), 10_001).is_err(), "{ty:?}");
        }
        let mut raw = one(EntryType::Regular, "x");
        raw[..4].copy_from_slice(b"../x");
        assert!(for_upload(&raw, 10_001).is_err(), "parent escape");
        assert!(for_upload(&one(EntryType::Regular, "ok/x"), 10_001).is_ok());
        // A file beneath a symlink of the same archive (`l -> /etc`, then `l/passwd`).
        let mut b = Builder::new(Vec::new());
        for (ty, path) in [
            (EntryType::Symlink, "./l"),
            (EntryType::Regular, "l/passwd"),
        ] {
            let mut h = Header::new_gnu();
            h.set_entry_type(ty);
            h.set_size(0);
            h.set_mode(0o644);
            if ty == EntryType::Symlink {
                b.append_link(&mut h, path, "/etc").unwrap();
            } else {
                b.append_data(&mut h, path, std::io::empty()).unwrap();
            }
        }
        assert!(for_upload(&b.into_inner().unwrap(), 10_001).is_err());
        assert!(for_upload(&one(EntryType::Symlink, "ok/l"), 10_001).is_ok());
    }

    #[test]
    fn a_file_written_through_a_planted_symlink_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        let mut b = Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, "workspace/esc", outside.path())
            .unwrap();
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, "workspace/esc/pwned", &b"bad"[..])
            .unwrap();
        let tar = b.into_inner().unwrap();
        let dest = tempfile::tempdir().unwrap();
        assert!(unpack(&tar, dest.path()).is_err());
        assert!(
            !outside.path().join("pwned").exists(),
            "nothing written outside"
        );
    }

    #[test]
    fn devices_and_hard_links_are_refused_but_plain_files_pass() {
        for ty in [
            EntryType::Char,
            EntryType::Block,
            EntryType::Fifo,
            EntryType::Link,
        ] {
            let mut b = Builder::new(Vec::new());
            let mut h = Header::new_gnu();
            h.set_entry_type(ty);
            h.set_size(0);
            h.set_mode(0o644);
            if ty == EntryType::Link {
                b.append_link(&mut h, "workspace/x", "/etc/shadow").unwrap();
            } else {
                b.append_data(&mut h, "workspace/x", std::io::empty())
                    .unwrap();
            }
            let tar = b.into_inner().unwrap();
            let dest = tempfile::tempdir().unwrap();
            assert!(unpack(&tar, dest.path()).is_err(), "{ty:?}");
        }
        let mut b = Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_size(2);
        h.set_mode(0o4755);
        b.append_data(&mut h, "workspace/ok", &b"ok"[..]).unwrap();
        let dest = tempfile::tempdir().unwrap();
        unpack(&b.into_inner().unwrap(), dest.path()).unwrap();
        let mode = fs::metadata(dest.path().join("workspace/ok"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7000, 0, "set-id bits dropped");
    }
}
