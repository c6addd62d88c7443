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

/// Bytes a tar stream may spend on one entry besides its data: the 512-byte header, a PAX
/// header and its record (long names, extended attributes) and the padding of the data to the
/// next 512-byte block.
pub const TAR_OVERHEAD_PER_ENTRY: u64 = 2048;

/// Limits on a work tree read back from the sandbox, checked entry by entry before anything
/// is written to the host. They count every entry of the tar, build output the base commit
/// ignores included (the snapshot leaves that unread), so they are looser than the commit
/// snapshot's: [`READ_BACK_FACTOR`] times its total and entries (a `node_modules` or a `target/`
/// must not fail a run); the per-file limit is the snapshot's, and a larger file is never
/// written (it becomes a hole the snapshot then refuses, or ignores).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReturnLimits {
    /// Largest file whose data is written, in bytes (a larger one becomes a hole).
    pub max_file_bytes: u64,
    /// Bytes of file data written to the host, all files together.
    pub max_total_bytes: u64,
    /// Entries of any kind, the top directory (`workspace/`) included.
    pub max_entries: u64,
}

/// How much looser the read-back total and entry limits are than the commit snapshot's.
pub const READ_BACK_FACTOR: u64 = 4;

impl ReturnLimits {
    /// The read-back limits for a commit snapshot with `limits`: the same per-file limit,
    /// [`READ_BACK_FACTOR`] times its total and entries (plus the top directory the engine puts
    /// in front of the tree).
    #[must_use]
    pub fn of_snapshot(limits: &crate::git::Limits) -> ReturnLimits {
        ReturnLimits {
            max_file_bytes: limits.max_file_bytes,
            max_total_bytes: limits.max_total_bytes.saturating_mul(READ_BACK_FACTOR),
            max_entries: limits
                .max_entries
                .saturating_mul(READ_BACK_FACTOR)
                .saturating_add(1),
        }
    }

    /// The most the launcher reads back into memory: what a tree within these limits can take
    /// (its data plus [`TAR_OVERHEAD_PER_ENTRY`] per entry and the two closing blocks), never
    /// more than [`DEFAULT_WORKSPACE_RETURN_CAP`](crate::sandbox::DEFAULT_WORKSPACE_RETURN_CAP).
    /// The data of a file over the per-file limit is in the stream too, so it counts here.
    #[must_use]
    pub fn tar_cap(&self) -> u64 {
        self.max_total_bytes
            .saturating_add(self.max_entries.saturating_mul(TAR_OVERHEAD_PER_ENTRY))
            .saturating_add(1024)
            .min(crate::sandbox::DEFAULT_WORKSPACE_RETURN_CAP)
    }
}

impl Default for ReturnLimits {
    fn default() -> ReturnLimits {
        ReturnLimits::of_snapshot(&crate::git::Limits::default())
    }
}

/// Unpacks a tar read back from the sandbox into `dest` (which must exist) under the default
/// [`ReturnLimits`]. See [`unpack_with`].
pub fn unpack(tar_bytes: &[u8], dest: &Path) -> Result<u64, SandboxError> {
    unpack_with(tar_bytes, dest, &ReturnLimits::default())
}

/// Unpacks a tar read back from the sandbox into `dest` (which must exist). Entries keep their
/// path (Docker names them `workspace/...`); returns the number of entries written.
///
/// Every entry is checked against `limits` before anything of it is written:
/// * a regular file larger than `max_file_bytes` is not written: it becomes an empty file of
///   the same length (a hole, no data on disk). The commit snapshot refuses it by its size,
///   naming the path, unless the base commit's `.gitignore` leaves it out unread (build
///   output), exactly as if it had been written;
/// * the file that takes the bytes written past `max_total_bytes`, the entry past
///   `max_entries`, and an entry claiming more bytes than the archive holds stop the unpacking
///   with an error.
///
/// On error `dest` may hold the entries written before; the caller discards it.
pub fn unpack_with(
    tar_bytes: &[u8],
    dest: &Path,
    limits: &ReturnLimits,
) -> Result<u64, SandboxError> {
    let mut archive = tar::Archive::new(tar_bytes);
    archive.set_preserve_permissions(false);
    archive.set_preserve_ownerships(false);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(false);
    let archive_len = u64::try_from(tar_bytes.len()).unwrap_or(u64::MAX);
    let mut count = 0u64;
    let mut total = 0u64;
    for entry in archive
        .entries()
        .map_err(|e| err(format!("read tar: {e}")))?
    {
        let mut entry = entry.map_err(|e| err(format!("read tar: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| err(format!("entry path: {e}")))?
            .into_owned();
        if count >= limits.max_entries {
            return Err(err(format!(
                "the work tree has more than {} entries",
                limits.max_entries
            )));
        }
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
        // The size the reader would copy (a PAX `size` record included), checked before a
        // byte of the entry reaches the host.
        let size = entry.size();
        if size > archive_len {
            return Err(err(format!(
                "entry {} claims {size} bytes, more than the archive holds",
                path.display()
            )));
        }
        if size > limits.max_file_bytes {
            if entry.header().entry_type() != EntryType::Regular {
                return Err(err(format!(
                    "entry {} is a {:?} with {size} bytes of data",
                    path.display(),
                    entry.header().entry_type()
                )));
            }
            hole(&path, size, dest)?;
            count = count.saturating_add(1);
            continue;
        }
        total = total.saturating_add(size);
        if total > limits.max_total_bytes {
            return Err(err(format!(
                "the work tree is over the limit of {} bytes in all (at entry {})",
                limits.max_total_bytes,
                path.display()
            )));
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

/// Writes `path` under `dest` as an empty regular file, through the same path checks as any
/// entry (`unpack_in` of a one-entry archive), then sets its length to `size` without writing
/// data: a hole, which takes no space on the host's disk.
fn hole(path: &Path, size: u64, dest: &Path) -> Result<(), SandboxError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut header = Header::new_gnu();
    header.set_entry_type(EntryType::Regular);
    header.set_size(0);
    header.set_mode(0o600);
    let mut b = Builder::new(Vec::new());
    b.append_data(&mut header, path, std::io::empty())
        .map_err(|e| err(format!("unpack {}: {e}", path.display())))?;
    let one = b
        .into_inner()
        .map_err(|e| err(format!("unpack {}: {e}", path.display())))?;
    let mut archive = tar::Archive::new(&one[..]);
    archive.set_preserve_permissions(false);
    archive.set_preserve_ownerships(false);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(false);
    let mut entry = archive
        .entries()
        .map_err(|e| err(format!("unpack {}: {e}", path.display())))?
        .next()
        .ok_or_else(|| err(format!("unpack {}: empty archive", path.display())))?
        .map_err(|e| err(format!("unpack {}: {e}", path.display())))?;
    let written = entry
        .unpack_in(dest)
        .map_err(|e| err(format!("unpack {}: {e}", path.display())))?;
    if !written {
        return Err(err(format!(
            "entry {} leaves the destination",
            path.display()
        )));
    }
    // `unpack_in` created it (never over an existing entry) inside `dest`.
    let file = fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(dest.join(path))
        .map_err(|e| err(format!("open {}: {e}", path.display())))?;
    file.set_len(size)
        .map_err(|e| err(format!("size {}: {e}", path.display())))
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

    /// A tar of `workspace/` and one regular file per `(name, size)`, zeros as data.
    fn tree_tar(files: &[(&str, u64)]) -> Vec<u8> {
        let mut b = Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Directory);
        h.set_size(0);
        h.set_mode(0o755);
        b.append_data(&mut h, "workspace/", std::io::empty())
            .unwrap();
        for (name, size) in files {
            let mut h = Header::new_gnu();
            h.set_entry_type(EntryType::Regular);
            h.set_size(*size);
            h.set_mode(0o644);
            b.append_data(
                &mut h,
                format!("workspace/{name}"),
                std::io::repeat(0).take(*size),
            )
            .unwrap();
        }
        b.into_inner().unwrap()
    }

    fn small_limits() -> ReturnLimits {
        ReturnLimits {
            max_file_bytes: 10,
            max_total_bytes: 25,
            max_entries: 4,
        }
    }

    #[test]
    fn an_entry_over_the_per_file_limit_lands_as_a_hole_without_its_data() {
        use std::os::unix::fs::MetadataExt;
        // Under the default limits: one byte over the snapshot's 10 MiB per file.
        let limit = ReturnLimits::default().max_file_bytes;
        let dest = tempfile::tempdir().unwrap();
        let tar = tree_tar(&[("ok", 10), ("z", limit + 1)]);
        assert_eq!(unpack(&tar, dest.path()).unwrap(), 3);
        let z = fs::symlink_metadata(dest.path().join("workspace/z")).unwrap();
        assert!(z.is_file());
        assert_eq!(z.len(), limit + 1, "the commit snapshot sees the size");
        assert_eq!(z.blocks(), 0, "no data reached the disk");
        // At the limit, the data is written.
        let dest = tempfile::tempdir().unwrap();
        let tar = tree_tar(&[("ok", 10), ("z", 10)]);
        unpack_with(&tar, dest.path(), &small_limits()).unwrap();
        assert!(
            fs::metadata(dest.path().join("workspace/z"))
                .unwrap()
                .blocks()
                > 0
        );

        // A hole takes the same path checks as any entry: not through a planted symlink.
        let outside = tempfile::tempdir().unwrap();
        let tar = through_planted_symlink(outside.path(), "big", &[0u8; 11]);
        let dest = tempfile::tempdir().unwrap();
        assert!(unpack_with(&tar, dest.path(), &small_limits()).is_err());
        assert!(!outside.path().join("big").exists());
    }

    #[test]
    fn an_entry_claiming_more_than_the_archive_holds_is_refused_on_its_header() {
        // A header announcing a 1 GiB file (a sparse `truncate -s 1G`) with no data behind it
        // is refused before anything of it is written.
        let mut raw = tree_tar(&[("first", 1)]);
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_size(1 << 30);
        h.set_mode(0o644);
        h.set_path("workspace/huge").unwrap();
        h.set_cksum();
        raw.truncate(raw.len() - 1024);
        raw.extend_from_slice(h.as_bytes());
        raw.extend_from_slice(&[0u8; 4096]);
        let dest = tempfile::tempdir().unwrap();
        let e = unpack(&raw, dest.path()).unwrap_err();
        assert!(e.to_string().contains("more than the archive holds"), "{e}");
        assert!(!dest.path().join("workspace/huge").exists());
        assert!(dest.path().join("workspace/first").exists());
    }

    #[test]
    fn a_tree_over_the_total_stops_at_the_entry_that_passes_it() {
        let dest = tempfile::tempdir().unwrap();
        let tar = tree_tar(&[("a", 10), ("b", 10), ("c", 6)]);
        let e = unpack_with(&tar, dest.path(), &small_limits()).unwrap_err();
        assert!(e.to_string().contains("in all"), "{e}");
        assert!(dest.path().join("workspace/b").exists());
        assert!(!dest.path().join("workspace/c").exists(), "not written");
    }

    #[test]
    fn a_tree_with_too_many_entries_is_refused() {
        let dest = tempfile::tempdir().unwrap();
        let tar = tree_tar(&[("a", 1), ("b", 1), ("c", 1), ("d", 1)]);
        let e = unpack_with(&tar, dest.path(), &small_limits()).unwrap_err();
        assert!(e.to_string().contains("more than 4 entries"), "{e}");
        assert!(!dest.path().join("workspace/d").exists());
    }

    #[test]
    fn a_tree_exactly_at_every_limit_unpacks() {
        let dest = tempfile::tempdir().unwrap();
        let tar = tree_tar(&[("a", 10), ("b", 10), ("c", 5)]);
        assert_eq!(unpack_with(&tar, dest.path(), &small_limits()).unwrap(), 4);
        assert_eq!(fs::read(dest.path().join("workspace/c")).unwrap(), [0; 5]);
        // And a normal tree under the defaults.
        let dest = tempfile::tempdir().unwrap();
        let tar = tree_tar(&[("src.rs", 4096), ("README.md", 100), ("empty", 0)]);
        assert_eq!(unpack(&tar, dest.path()).unwrap(), 4);
    }

    #[test]
    fn the_tar_cap_holds_a_full_tree_and_never_exceeds_the_old_cap() {
        let d = ReturnLimits::default();
        assert!(d.max_total_bytes >= 512 * 1024 * 1024);
        assert!(d.max_entries > 100_000, "a node_modules fits");
        assert_eq!(
            d.tar_cap(),
            super::super::launcher::DEFAULT_WORKSPACE_RETURN_CAP
        );
        // A tree at the entry and byte limits, with long names, packs within the cap.
        let limits = ReturnLimits {
            max_file_bytes: 1000,
            max_total_bytes: 99 * 1000,
            max_entries: 100,
        };
        let src = tempfile::tempdir().unwrap();
        let ws = src.path().join("workspace");
        fs::create_dir(&ws).unwrap();
        for i in 0..99 {
            fs::write(ws.join(format!("{i:0>200}")), [b'x'; 1000]).unwrap();
        }
        let tar = pack_dir(src.path()).unwrap();
        assert!(
            u64::try_from(tar.len()).unwrap() <= limits.tar_cap(),
            "{} > {}",
            tar.len(),
            limits.tar_cap()
        );
        let dest = tempfile::tempdir().unwrap();
        assert_eq!(unpack_with(&tar, dest.path(), &limits).unwrap(), 100);
    }

    /// A tar that plants `workspace/esc` → `outside`, then writes `data` to `workspace/esc/name`.
    fn through_planted_symlink(outside: &Path, name: &str, data: &[u8]) -> Vec<u8> {
        let mut b = Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, "workspace/esc", outside).unwrap();
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_size(u64::try_from(data.len()).unwrap());
        h.set_mode(0o644);
        b.append_data(&mut h, format!("workspace/esc/{name}"), data)
            .unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn a_file_written_through_a_planted_symlink_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        let tar = through_planted_symlink(outside.path(), "pwned", b"bad");
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
