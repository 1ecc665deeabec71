//! A directory on a local (or mounted) filesystem.
//!
//! Not `object_store`'s `LocalFileSystem`: backups hold whole databases, so
//! every file is created `0600` and every directory `0700` from the first
//! byte (never chmod-ed afterwards), data is fsync-ed before the rename that
//! makes it visible, and in-progress files are hidden dot-files that listing
//! skips.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind as IoKind, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use super::{
    ByteStream, ListResult, ObjectInfo, PendingUpload, PutMode, PutOptions, Sink, Upload,
    check_key, spawn_cleanup,
};
use crate::error::{Error, Result};
use crate::rt::blocking;

const READ_CHUNK: usize = 1024 * 1024;

/// A sink that stores objects as files below a root directory.
#[derive(Debug, Clone)]
pub struct LocalSink {
    root: PathBuf,
    location: String,
}

impl LocalSink {
    /// A sink rooted at `root` (created on first use).
    ///
    /// # Errors
    /// [`Error::Usage`] if the path is empty.
    pub fn new(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        if root.as_os_str().is_empty() {
            return Err(Error::usage("empty path for local sink"));
        }
        let root = if root.is_absolute() {
            root.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| Error::usage(format!("cannot resolve {}: {e}", root.display())))?
                .join(root)
        };
        let location = format!("file://{}", root.display());
        Ok(Self { root, location })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn file(&self, key: &str) -> Result<PathBuf> {
        check_key(&self.location, key)?;
        Ok(self.root.join(key))
    }

    /// The key a file below the root stands for.
    fn key_of(&self, file: &Path) -> String {
        file.strip_prefix(&self.root)
            .unwrap_or(file)
            .to_string_lossy()
            .to_string()
    }

    fn io_err(&self, what: &str, path: &Path, err: std::io::Error) -> Error {
        let message = match err.kind() {
            IoKind::PermissionDenied => format!("{what} {}: permission denied", path.display()),
            IoKind::StorageFull => format!("{what} {}: no space left on device", path.display()),
            IoKind::ReadOnlyFilesystem => {
                format!("{what} {}: read-only file system", path.display())
            }
            _ => format!("{what} {}: {err}", path.display()),
        };
        Error::Sink {
            location: self.location.clone(),
            message,
            retryable: false,
            source: Some(Box::new(err)),
        }
    }

    fn make_dirs(&self, dir: &Path) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| self.io_err("cannot create directory", dir, e))
    }

    /// Create `dir` and its missing parents; return the ones this call
    /// created below the root, deepest first, so a failed write can remove
    /// them again.
    fn make_dirs_tracked(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let mut missing = Vec::new();
        let mut d = dir;
        while d != self.root && d.starts_with(&self.root) && fs::symlink_metadata(d).is_err() {
            missing.push(d.to_path_buf());
            match d.parent() {
                Some(p) => d = p,
                None => break,
            }
        }
        self.make_dirs(dir)?;
        Ok(missing)
    }

    /// Remove `dirs` (deepest first) while they are empty; never the root.
    /// A directory another writer has put something into stays.
    fn remove_empty_dirs(&self, dirs: &[PathBuf]) {
        for d in dirs {
            if d == &self.root || !d.starts_with(&self.root) || fs::remove_dir(d).is_err() {
                break;
            }
        }
    }

    /// Remove the directories above `file` that are now empty, up to (never
    /// including) the root.
    fn remove_emptied_parents(&self, file: &Path) {
        let mut dir = file.parent();
        while let Some(d) = dir {
            if d == self.root || !d.starts_with(&self.root) || fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }

    fn temp_for(&self, file: &Path) -> PathBuf {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object");
        let tag: u64 = rand::random();
        file.with_file_name(format!(".{name}.{tag:016x}.partial"))
    }

    /// Create the hidden partial file for `file`, and the directories it
    /// needs (returned, deepest first, for cleanup on failure).
    fn create_temp(&self, file: &Path) -> Result<(PathBuf, File, Vec<PathBuf>)> {
        let parent = file.parent().unwrap_or(&self.root);
        let mut created = self.make_dirs_tracked(parent)?;
        let tmp = self.temp_for(file);
        let open = || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
        };
        let f = match open() {
            Ok(f) => Ok(f),
            // A concurrent failed write removed the (then empty) directory
            // between our mkdir and open: make it again, once.
            Err(e) if e.kind() == IoKind::NotFound => match self.make_dirs_tracked(parent) {
                Ok(more) => {
                    created.extend(more);
                    open()
                }
                Err(err) => {
                    self.remove_empty_dirs(&created);
                    return Err(err);
                }
            },
            Err(e) => Err(e),
        };
        match f {
            Ok(f) => Ok((tmp, f, created)),
            Err(e) => {
                self.remove_empty_dirs(&created);
                Err(self.io_err("cannot create", &tmp, e))
            }
        }
    }

    /// The key a hidden partial file stands for, if `name` is one
    /// (`.<name>.<16 hex digits>.partial`).
    fn partial_target(name: &str) -> Option<&str> {
        let inner = name.strip_prefix('.')?.strip_suffix(".partial")?;
        let (target, tag) = inner.rsplit_once('.')?;
        let is_tag = tag.len() == 16 && tag.bytes().all(|b| b.is_ascii_hexdigit());
        (is_tag && !target.is_empty()).then_some(target)
    }

    /// Collect the partial files below `dir`.
    fn walk_partials(&self, dir: &Path, out: &mut Vec<PendingUpload>) -> Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            // Nothing can be below a missing directory or a file.
            Err(e) if matches!(e.kind(), IoKind::NotFound | IoKind::NotADirectory) => {
                return Ok(());
            }
            Err(e) => return Err(self.io_err("cannot list", dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| self.io_err("cannot list", dir, e))?;
            let path = entry.path();
            let meta = match entry.metadata() {
                Ok(m) => m,
                // Completed or removed since the directory was read.
                Err(e) if e.kind() == IoKind::NotFound => continue,
                Err(e) => return Err(self.io_err("cannot stat", &path, e)),
            };
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if meta.is_dir() {
                if !name.starts_with('.') {
                    self.walk_partials(&path, out)?;
                }
            } else if meta.is_file()
                && let Some(target) = Self::partial_target(&name)
            {
                out.push(PendingUpload {
                    key: self.key_of(&path.with_file_name(target)),
                    id: self.key_of(&path),
                    started: meta
                        .modified()
                        .map(Into::into)
                        .unwrap_or_else(|_| Utc::now()),
                });
            }
        }
        Ok(())
    }

    /// Make `tmp` visible as `file`: fsync data, rename (or link, for
    /// create-only), fsync the directory.
    fn publish(&self, tmp: &Path, file: &Path, f: File, create_only: bool) -> Result<String> {
        let result = (|| {
            f.sync_all()
                .map_err(|e| self.io_err("cannot sync", tmp, e))?;
            // The inode and times move with the rename (or link).
            let version = f
                .metadata()
                .map(|m| version_of(&m))
                .map_err(|e| self.io_err("cannot stat", tmp, e))?;
            drop(f);
            if create_only {
                fs::hard_link(tmp, file).map_err(|e| {
                    if e.kind() == IoKind::AlreadyExists {
                        Error::AlreadyExists {
                            location: self.location.clone(),
                            key: self.key_of(file),
                        }
                    } else {
                        self.io_err("cannot link", file, e)
                    }
                })?;
                let _ = fs::remove_file(tmp);
            } else {
                fs::rename(tmp, file).map_err(|e| self.io_err("cannot rename into", file, e))?;
            }
            if let Some(parent) = file.parent()
                && let Ok(d) = File::open(parent)
            {
                let _ = d.sync_all();
            }
            Ok(version)
        })();
        if result.is_err() {
            let _ = fs::remove_file(tmp);
        }
        result
    }

    /// The object a file stands for.
    fn info(&self, file: &Path, meta: &fs::Metadata) -> ObjectInfo {
        ObjectInfo {
            key: self.key_of(file),
            size: meta.len(),
            last_modified: meta
                .modified()
                .map(Into::into)
                .unwrap_or_else(|_| Utc::now()),
            version: Some(version_of(meta)),
        }
    }

    /// One directory's visible entries: its files as objects, and its
    /// subdirectories. Dot-files and dot-directories (in-progress uploads,
    /// foreign files) are skipped. A missing directory, or a file, has none.
    fn read_level(&self, dir: &Path) -> Result<(Vec<ObjectInfo>, Vec<PathBuf>)> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if matches!(e.kind(), IoKind::NotFound | IoKind::NotADirectory) => {
                return Ok((Vec::new(), Vec::new()));
            }
            Err(e) => return Err(self.io_err("cannot list", dir, e)),
        };
        let (mut files, mut dirs) = (Vec::new(), Vec::new());
        for entry in entries {
            let entry = entry.map_err(|e| self.io_err("cannot list", dir, e))?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue; // in-progress uploads and foreign dot-files
            }
            let path = entry.path();
            let meta = entry
                .metadata()
                .map_err(|e| self.io_err("cannot stat", &path, e))?;
            if meta.is_dir() {
                dirs.push(path);
            } else if meta.is_file() {
                files.push(self.info(&path, &meta));
            }
        }
        Ok((files, dirs))
    }

    /// Whether any visible object lies below `dir` (it is a common prefix).
    fn has_objects(&self, dir: &Path) -> Result<bool> {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let (files, dirs) = self.read_level(&d)?;
            if !files.is_empty() {
                return Ok(true);
            }
            stack.extend(dirs);
        }
        Ok(false)
    }

    /// A root that is a file is a wrong sink, not an empty one.
    fn check_root_is_dir(&self) -> Result<()> {
        if self.root.exists() && !self.root.is_dir() {
            return Err(Error::sink_err(
                &self.location,
                format!("{} exists and is not a directory", self.root.display()),
            ));
        }
        Ok(())
    }

    /// The first step of a listing below `prefix`: the objects it finds at
    /// once, and the directories left to walk.
    fn list_start(&self, prefix: &str) -> Result<(Vec<ObjectInfo>, Vec<PathBuf>)> {
        if !prefix.is_empty() {
            check_key(&self.location, prefix)?;
        }
        self.check_root_is_dir()?;
        let start = self.root.join(prefix);
        match fs::metadata(&start) {
            // A prefix that names a file lists that file (unless hidden).
            Ok(m) if m.is_file() => {
                let hidden = start
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                Ok((
                    if hidden {
                        Vec::new()
                    } else {
                        vec![self.info(&start, &m)]
                    },
                    Vec::new(),
                ))
            }
            _ => Ok((Vec::new(), vec![start])),
        }
    }

    /// Make `file` hold what `tmp` holds, as `mode` says, under the lock of
    /// the directory for `Overwrite` and `Update`; return the new version.
    fn publish_locked(&self, tmp: &Path, file: &Path, f: File, mode: &PutMode) -> Result<String> {
        let parent = file.parent().unwrap_or(&self.root);
        let dir = File::open(parent).map_err(|e| self.io_err("cannot open", parent, e))?;
        dir.lock()
            .map_err(|e| self.io_err("cannot lock", parent, e))?;
        let current = match fs::metadata(file) {
            Ok(m) if m.is_file() => Some(m),
            _ => None,
        };
        if let PutMode::Update { version } = mode
            && current.as_ref().map(version_of).as_ref() != Some(version)
        {
            return Err(Error::Precondition {
                location: self.location.clone(),
                key: self.key_of(file),
            });
        }
        // Versions include the modification time: make it move forward even
        // when the clock has not ticked since the last write (coarse
        // timestamps), so no later version can repeat an earlier one.
        let now = std::time::SystemTime::now();
        let after = current
            .and_then(|m| m.modified().ok())
            .map(|t| t + std::time::Duration::from_nanos(1));
        let mtime = after.map_or(now, |a| a.max(now));
        f.set_modified(mtime)
            .map_err(|e| self.io_err("cannot set the time of", tmp, e))?;
        self.publish(tmp, file, f, false)
        // `dir` is closed here, which releases the lock.
    }
}

/// The version token of a local file: its inode, modification time and
/// size. A write makes a new file (a rename), so every write changes it.
fn version_of(meta: &fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "{:x}-{}.{:09}-{:x}",
        meta.ino(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.size()
    )
}

#[async_trait]
impl Sink for LocalSink {
    fn location(&self) -> &str {
        &self.location
    }

    async fn check(&self) -> Result<()> {
        let this = self.clone();
        blocking(move || {
            if this.root.exists() && !this.root.is_dir() {
                return Err(Error::sink_err(
                    &this.location,
                    format!("{} exists and is not a directory", this.root.display()),
                ));
            }
            this.make_dirs(&this.root)?;
            let probe = this
                .root
                .join(format!(".lifeboat-probe-{:016x}", rand::random::<u64>()));
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&probe)
                .map_err(|e| this.io_err("cannot write to", &this.root, e))?;
            let _ = fs::remove_file(&probe);
            Ok(())
        })
        .await
    }

    async fn put(&self, key: &str, data: Bytes, opts: PutOptions) -> Result<()> {
        self.put_versioned(key, data, opts).await.map(|_| ())
    }

    async fn put_versioned(
        &self,
        key: &str,
        data: Bytes,
        opts: PutOptions,
    ) -> Result<Option<String>> {
        let file = self.file(key)?;
        let this = self.clone();
        blocking(move || {
            let (tmp, mut f, created) = this.create_temp(&file)?;
            let result = match crate::rt::write_in_pieces(&mut f, &data) {
                Ok(()) => match &opts.mode {
                    PutMode::Create => this.publish(&tmp, &file, f, true),
                    mode => this.publish_locked(&tmp, &file, f, mode),
                },
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    Err(this.io_err("cannot write", &tmp, e))
                }
            };
            if result.is_err() {
                // A failed put leaves neither its partial file nor empty
                // directories behind.
                let _ = fs::remove_file(&tmp);
                this.remove_empty_dirs(&created);
            }
            result.map(Some)
        })
        .await
    }

    async fn upload(&self, key: &str) -> Result<Box<dyn Upload>> {
        let file = self.file(key)?;
        let this = self.clone();
        // If this future is dropped while the blocking task runs, the task
        // still creates the file: its result, dropped unclaimed, removes it.
        let created = {
            let file = file.clone();
            blocking(move || {
                this.create_temp(&file).map(|(tmp, f, dirs)| Unclaimed {
                    sink: this.clone(),
                    parts: Some((tmp, f, dirs)),
                })
            })
            .await?
        };
        let (tmp, f, created_dirs) = created.claim();
        Ok(Box::new(LocalUpload {
            sink: self.clone(),
            file,
            tmp,
            handle: Some(f),
            created_dirs,
            publishing: None,
            done: false,
        }))
    }

    async fn get(&self, key: &str) -> Result<ByteStream> {
        let file = self.file(key)?;
        let f = match File::open(&file) {
            Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => f,
            Ok(_) => {
                return Err(Error::NotFound {
                    location: self.location.clone(),
                    key: key.to_string(),
                });
            }
            Err(e) if e.kind() == IoKind::NotFound => {
                return Err(Error::NotFound {
                    location: self.location.clone(),
                    key: key.to_string(),
                });
            }
            Err(e) => return Err(self.io_err("cannot open", &file, e)),
        };
        let this = self.clone();
        let stream = futures::stream::unfold(Some((f, this, file)), |state| async move {
            let (mut f, this, file) = state?;
            let res = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; READ_CHUNK];
                let n = f.read(&mut buf);
                (f, buf, n)
            })
            .await;
            match res {
                Ok((f, mut buf, Ok(n))) if n > 0 => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some((f, this, file))))
                }
                Ok((_, _, Ok(_))) => None,
                Ok((_, _, Err(e))) => Some((Err(this.io_err("cannot read", &file, e)), None)),
                Err(e) => Some((
                    Err(Error::sink_err(
                        &this.location,
                        format!("worker failed: {e}"),
                    )),
                    None,
                )),
            }
        });
        Ok(stream.boxed())
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo> {
        let file = self.file(key)?;
        match fs::metadata(&file) {
            Ok(m) if m.is_file() => Ok(ObjectInfo {
                key: key.to_string(),
                ..self.info(&file, &m)
            }),
            Ok(_) => Err(Error::NotFound {
                location: self.location.clone(),
                key: key.to_string(),
            }),
            Err(e) if e.kind() == IoKind::NotFound => Err(Error::NotFound {
                location: self.location.clone(),
                key: key.to_string(),
            }),
            Err(e) => Err(self.io_err("cannot stat", &file, e)),
        }
    }

    fn list_stream(&self, prefix: &str) -> BoxStream<'_, Result<ObjectInfo>> {
        // One directory per step, depth first; `None` before the first.
        let prefix = prefix.trim_matches('/').to_string();
        futures::stream::try_unfold(None, move |state: Option<Vec<PathBuf>>| {
            let (this, prefix) = (self.clone(), prefix.clone());
            async move {
                type Step = Option<(Vec<ObjectInfo>, Vec<PathBuf>)>;
                blocking(move || -> Result<Step> {
                    let mut stack = match state {
                        None => {
                            let (found, dirs) = this.list_start(&prefix)?;
                            if !found.is_empty() || dirs.is_empty() {
                                return Ok(Some((found, dirs)));
                            }
                            dirs
                        }
                        Some(stack) => stack,
                    };
                    // Read directories until one has files or none are left.
                    while let Some(dir) = stack.pop() {
                        let (files, dirs) = this.read_level(&dir)?;
                        stack.extend(dirs);
                        if !files.is_empty() {
                            return Ok(Some((files, stack)));
                        }
                    }
                    Ok(None)
                })
                .await
                .map(|step| step.map(|(files, stack)| (files, Some(stack))))
            }
        })
        .map_ok(|files| futures::stream::iter(files.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: &str) -> Result<ListResult> {
        let prefix = prefix.trim_matches('/').to_string();
        if !prefix.is_empty() {
            check_key(&self.location, &prefix)?;
        }
        let this = self.clone();
        blocking(move || {
            this.check_root_is_dir()?;
            let (mut objects, dirs) = this.read_level(&this.root.join(&prefix))?;
            let mut common_prefixes = Vec::new();
            for d in dirs {
                if this.has_objects(&d)? {
                    common_prefixes.push(this.key_of(&d));
                }
            }
            objects.sort_by(|a, b| a.key.cmp(&b.key));
            common_prefixes.sort();
            Ok(ListResult {
                common_prefixes,
                objects,
            })
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let file = self.file(key)?;
        let this = self.clone();
        blocking(move || {
            match fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == IoKind::NotFound => return Ok(()),
                Err(e) => return Err(this.io_err("cannot delete", &file, e)),
            }
            this.remove_emptied_parents(&file);
            Ok(())
        })
        .await
    }

    async fn list_pending(&self, prefix: &str) -> Result<Vec<PendingUpload>> {
        let prefix = prefix.trim_matches('/').to_string();
        if !prefix.is_empty() {
            check_key(&self.location, &prefix)?;
        }
        let this = self.clone();
        blocking(move || {
            let mut out = Vec::new();
            this.walk_partials(&this.root.join(&prefix), &mut out)?;
            Ok(out)
        })
        .await
    }

    async fn abort_pending(&self, upload: &PendingUpload) -> Result<()> {
        let file = self.file(&upload.key)?;
        // Only ever the partial file of that very key: a crafted id must not
        // reach any other file.
        let tmp = self.file(&upload.id)?;
        let valid = tmp.parent() == file.parent()
            && tmp
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(Self::partial_target)
                .is_some_and(|t| Some(std::ffi::OsStr::new(t)) == file.file_name());
        if !valid {
            return Err(Error::sink_err(
                &self.location,
                format!(
                    "{:?} is not a pending upload of {:?} in this sink",
                    upload.id, upload.key
                ),
            ));
        }
        let this = self.clone();
        blocking(move || {
            match fs::remove_file(&tmp) {
                Ok(()) => {}
                Err(e) if e.kind() == IoKind::NotFound => return Ok(()),
                Err(e) => return Err(this.io_err("cannot remove", &tmp, e)),
            }
            this.remove_emptied_parents(&tmp);
            Ok(())
        })
        .await
    }
}

/// A partial file (and the directories made for it) that nobody has taken
/// yet: removed on drop unless [`claim`](Self::claim)ed.
struct Unclaimed {
    sink: LocalSink,
    parts: Option<(PathBuf, File, Vec<PathBuf>)>,
}

impl Unclaimed {
    fn claim(mut self) -> (PathBuf, File, Vec<PathBuf>) {
        self.parts.take().expect("claimed once")
    }
}

impl Drop for Unclaimed {
    fn drop(&mut self) {
        if let Some((tmp, f, dirs)) = self.parts.take() {
            drop(f);
            let _ = fs::remove_file(&tmp);
            self.sink.remove_empty_dirs(&dirs);
        }
    }
}

struct LocalUpload {
    sink: LocalSink,
    file: PathBuf,
    tmp: PathBuf,
    /// `None` once the upload failed or its completion started.
    handle: Option<File>,
    /// Directories made for this upload, deepest first: removed again if it
    /// does not complete.
    created_dirs: Vec<PathBuf>,
    /// The blocking task that syncs and renames the file into place, while
    /// `complete` runs.
    publishing: Option<tokio::task::JoinHandle<Result<()>>>,
    /// Completed: nothing to clean up.
    done: bool,
}

#[async_trait]
impl Upload for LocalUpload {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        let Some(mut f) = self.handle.take() else {
            return Err(Error::sink_err(
                &self.sink.location,
                "upload already failed",
            ));
        };
        let (f, res) = tokio::task::spawn_blocking(move || {
            let res = crate::rt::write_in_pieces(&mut f, &data);
            (f, res)
        })
        .await
        .map_err(|e| Error::sink_err(&self.sink.location, format!("worker failed: {e}")))?;
        res.map_err(|e| self.sink.io_err("cannot write", &self.tmp, e))?;
        self.handle = Some(f);
        Ok(())
    }

    async fn complete(mut self: Box<Self>) -> Result<()> {
        let Some(f) = self.handle.take() else {
            return Err(Error::sink_err(
                &self.sink.location,
                "upload already failed",
            ));
        };
        let (sink, tmp, file) = (self.sink.clone(), self.tmp.clone(), self.file.clone());
        // Kept in `self` while it runs: if this future is dropped, `Drop`
        // waits for the task and undoes what it did.
        let task = self.publishing.insert(tokio::task::spawn_blocking(move || {
            sink.publish(&tmp, &file, f, false).map(|_| ())
        }));
        let result = match task.await {
            Ok(r) => r,
            Err(e) => Err(Error::sink_err(
                &self.sink.location,
                format!("worker failed: {e}"),
            )),
        };
        self.publishing = None;
        self.done = result.is_ok();
        // On failure, `Drop` removes the partial file and the directories.
        result
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.handle.take();
        let _ = fs::remove_file(&self.tmp);
        self.sink.remove_empty_dirs(&self.created_dirs);
        self.done = true;
        Ok(())
    }
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Abandoned (cancelled, failed) uploads leave nothing behind: no
        // partial file, no directory made for them.
        let (sink, tmp, file) = (self.sink.clone(), self.tmp.clone(), self.file.clone());
        let dirs = std::mem::take(&mut self.created_dirs);
        if let Some(task) = self.publishing.take() {
            // `complete` was dropped while the rename may be happening: once
            // it is over, remove what it published, which nobody committed.
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                spawn_cleanup(&handle, async move {
                    let published = matches!(task.await, Ok(Ok(())));
                    let _ = tokio::task::spawn_blocking(move || {
                        if published {
                            let _ = fs::remove_file(&file);
                        }
                        let _ = fs::remove_file(&tmp);
                        sink.remove_empty_dirs(&dirs);
                    })
                    .await;
                });
                return;
            }
        }
        let _ = fs::remove_file(&tmp);
        sink.remove_empty_dirs(&dirs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::SinkExt;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn files_are_private_from_the_first_byte() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LocalSink::new(dir.path().join("b")).unwrap();
        sink.put("a/x", Bytes::from_static(b"1"), PutOptions::default())
            .await
            .unwrap();
        let mut up = sink.upload("a/y").await.unwrap();
        up.write(Bytes::from_static(b"2")).await.unwrap();
        // The hidden in-progress file is already 0600.
        let partial: Vec<_> = fs::read_dir(dir.path().join("b/a"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .ends_with(".partial")
            })
            .collect();
        assert_eq!(partial.len(), 1);
        assert_eq!(
            fs::metadata(&partial[0]).unwrap().permissions().mode() & 0o777,
            0o600
        );
        up.complete().await.unwrap();
        for f in ["b/a/x", "b/a/y"] {
            let mode = fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        let mode = fs::metadata(dir.path().join("b/a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn failed_and_abandoned_writes_leave_no_empty_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("b");
        let sink = LocalSink::new(&root).unwrap();
        // A directory that was there before stays, even when empty.
        fs::create_dir_all(root.join("kept")).unwrap();

        let mut up = sink.upload("kept/new/deeper/x").await.unwrap();
        up.write(Bytes::from_static(b"1")).await.unwrap();
        up.abort().await.unwrap();
        assert_eq!(entries(&root.join("kept")), Vec::<String>::new());

        let mut up = sink.upload("a/b/c/data").await.unwrap();
        up.write(Bytes::from_static(b"2")).await.unwrap();
        drop(up);
        assert_eq!(
            entries(&root),
            ["kept"],
            "a dropped upload left directories"
        );

        // The partial file's name (".<name>.<tag>.partial") is 26 bytes
        // longer than the key's: a 240-byte name can be a key but not a
        // partial file, so these fail after their directories were made.
        let long = "n".repeat(240);
        let err = sink
            .put(
                &format!("p/q/{long}"),
                Bytes::from_static(b"3"),
                PutOptions::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Sink);
        assert!(err.to_string().contains("cannot create"), "{err}");
        let err = match sink.upload(&format!("u/v/{long}")).await {
            Ok(_) => panic!("an upload to an impossible name started"),
            Err(e) => e,
        };
        assert_eq!(err.kind(), crate::ErrorKind::Sink);
        assert_eq!(entries(&root), ["kept"], "a failed write left directories");

        // A failed complete (the key is taken by a directory) leaves nothing
        // it made either.
        fs::create_dir_all(root.join("kept/taken/inside")).unwrap();
        let mut up = sink.upload("kept/taken").await.unwrap();
        up.write(Bytes::from_static(b"4")).await.unwrap();
        up.complete().await.unwrap_err();
        assert_eq!(entries(&root.join("kept")), ["taken"]);
        assert_eq!(entries(&root.join("kept/taken")), ["inside"]);
    }

    #[tokio::test]
    async fn the_root_is_never_removed_even_if_an_upload_made_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("fresh");
        let sink = LocalSink::new(&root).unwrap();
        let up = sink.upload("x/y").await.unwrap();
        up.abort().await.unwrap();
        assert!(root.is_dir());
        assert_eq!(entries(&root), Vec::<String>::new());
        let up = sink.upload("z").await.unwrap();
        drop(up);
        assert!(root.is_dir());
    }

    #[tokio::test]
    async fn partial_files_are_pending_uploads_and_only_they_can_be_aborted() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LocalSink::new(dir.path()).unwrap();
        sink.put("app/x", Bytes::from_static(b"kept"), PutOptions::default())
            .await
            .unwrap();
        // Foreign dot-files are not pending uploads.
        fs::write(dir.path().join("app/.hidden"), b"").unwrap();
        fs::write(dir.path().join("app/.x.nothex!!nothex!.partial"), b"").unwrap();
        let mut up = sink.upload("app/deep/data.bin").await.unwrap();
        up.write(Bytes::from_static(b"half")).await.unwrap();
        std::mem::forget(up);
        up_put_partial_via_put(&sink).await;

        let pending = sink.list_pending("app").await.unwrap();
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert_eq!(sink.list_pending("app/x").await.unwrap(), vec![], "a file");
        assert_eq!(sink.list_pending("nothing").await.unwrap(), vec![]);
        let p = &pending[0];
        assert_eq!(p.key, "app/deep/data.bin");
        assert!(p.id.starts_with("app/deep/.data.bin.") && p.id.ends_with(".partial"));

        // An id that is not the partial file of that key is refused.
        for (key, id) in [
            ("app/x", "app/x"),
            ("app/deep/data.bin", "app/.hidden"),
            ("app/other", p.id.as_str()),
            ("app/deep/data.bin", "app/deep/../x"),
        ] {
            let bad = PendingUpload {
                key: key.into(),
                id: id.into(),
                started: p.started,
            };
            let err = sink.abort_pending(&bad).await.unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Sink, "{key} {id}");
        }
        assert_eq!(sink.get_bytes("app/x").await.unwrap(), "kept");

        sink.abort_pending(p).await.unwrap();
        assert!(sink.list_pending("").await.unwrap().is_empty());
        assert!(
            !dir.path().join("app/deep").exists(),
            "emptied directory stays"
        );
        sink.abort_pending(p).await.unwrap();
    }

    /// A put interrupted between writing and renaming leaves the same kind
    /// of partial file; here the test makes one by hand, in `put`'s format,
    /// in a directory of its own (a root-level key).
    async fn up_put_partial_via_put(sink: &LocalSink) {
        let tmp = sink.temp_for(&sink.root().join("top.json"));
        fs::write(&tmp, b"{").unwrap();
        let pending = sink.list_pending("").await.unwrap();
        let top: Vec<_> = pending.iter().filter(|p| p.key == "top.json").collect();
        assert_eq!(top.len(), 1, "{pending:?}");
        sink.abort_pending(top[0]).await.unwrap();
        assert!(!tmp.exists());
    }
}
