//! [`StaticFiles`]: a folder of plain files (a web page and its scripts) served over HTTP on
//! the WebSocket port, read into memory once, so answering a request touches no disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Files read at most from a folder.
pub const MAX_STATIC_FILES: usize = 1000;
/// Bytes read at most from a folder, all files together: 64 MiB.
pub const MAX_STATIC_BYTES: usize = 64 << 20;

/// Plain files served on `GET`/`HEAD` for their path (`/index.html` for `/`, and for a folder
/// path ending in `/` its `index.html`), with a content type from the file's extension. A
/// WebSocket upgrade on the same path still goes to the Krmx endpoint, so a page and its
/// server share one origin.
///
/// ```
/// use krmx_driver::{StaticFiles, TransportConfig};
/// let files = StaticFiles::from_files([("/index.html", b"<h1>lobby</h1>".to_vec())]);
/// assert_eq!(files.len(), 1);
/// let transport = TransportConfig::default().static_files(files);
/// ```
#[derive(Debug, Clone, Default)]
pub struct StaticFiles {
    files: Arc<HashMap<String, StaticFile>>,
}

/// One file: its content type and bytes.
#[derive(Debug, Clone)]
pub(crate) struct StaticFile {
    pub(crate) content_type: &'static str,
    pub(crate) bytes: Arc<[u8]>,
}

/// Why a folder could not be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StaticFilesError {
    /// The folder or a file in it could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// What could not be read.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The folder holds more than [`MAX_STATIC_FILES`] files or [`MAX_STATIC_BYTES`] bytes.
    #[error(
        "{path} is too large to serve: more than {MAX_STATIC_FILES} files or {MAX_STATIC_BYTES} bytes"
    )]
    TooLarge {
        /// The folder.
        path: PathBuf,
    },
}

impl StaticFiles {
    /// Reads every file under `dir` (sub-folders included; names starting with `.` and
    /// symbolic links skipped), each served at its path relative to `dir`.
    ///
    /// # Errors
    /// [`StaticFilesError::Read`] or [`StaticFilesError::TooLarge`].
    pub fn load(dir: &Path) -> Result<Self, StaticFilesError> {
        let mut files = HashMap::new();
        let mut total = 0;
        let mut pending = vec![(dir.to_path_buf(), String::new())];
        let read_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StaticFilesError::Read { path, source }
        };
        while let Some((folder, prefix)) = pending.pop() {
            for entry in std::fs::read_dir(&folder).map_err(read_error(&folder))? {
                let entry = entry.map_err(read_error(&folder))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with('.') {
                    continue;
                }
                let path = entry.path();
                let kind = entry.file_type().map_err(read_error(&path))?;
                let url = format!("{prefix}/{name}");
                if kind.is_dir() {
                    pending.push((path, url));
                } else if kind.is_file() {
                    let bytes = std::fs::read(&path).map_err(read_error(&path))?;
                    total += bytes.len();
                    if files.len() >= MAX_STATIC_FILES || total > MAX_STATIC_BYTES {
                        return Err(StaticFilesError::TooLarge {
                            path: dir.to_path_buf(),
                        });
                    }
                    files.insert(url, StaticFile::new(name, bytes));
                }
            }
        }
        Ok(Self {
            files: Arc::new(files),
        })
    }

    /// Files given by path (`/index.html`, `/js/app.js`; a missing leading `/` is added) and
    /// bytes: pages built into an application.
    pub fn from_files<P: AsRef<str>>(files: impl IntoIterator<Item = (P, Vec<u8>)>) -> Self {
        let files = files
            .into_iter()
            .map(|(path, bytes)| {
                let path = path.as_ref();
                let url = if path.starts_with('/') {
                    path.to_owned()
                } else {
                    format!("/{path}")
                };
                let name = url.rsplit('/').next().unwrap_or_default().to_owned();
                (url, StaticFile::new(&name, bytes))
            })
            .collect();
        Self {
            files: Arc::new(files),
        }
    }

    /// How many files there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The file for a request path (query already dropped): percent-escapes decoded, a folder
    /// path's `index.html`.
    pub(crate) fn get(&self, path: &str) -> Option<&StaticFile> {
        let path = percent_decode(path)?;
        if path.ends_with('/') {
            return self.files.get(&format!("{path}index.html"));
        }
        self.files.get(&path)
    }
}

impl StaticFile {
    fn new(name: &str, bytes: Vec<u8>) -> Self {
        Self {
            content_type: content_type(name),
            bytes: bytes.into(),
        }
    }
}

/// The content type of a file name, by its extension.
fn content_type(name: &str) -> &'static str {
    let extension = name.rsplit_once('.').map_or("", |(_, ext)| ext);
    match extension.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "txt" | "md" => "text/plain; charset=utf-8",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// `%xx` escapes decoded; `None` for a broken escape or bytes that are not UTF-8.
fn percent_decode(path: &str) -> Option<String> {
    if !path.contains('%') {
        return Some(path.to_owned());
    }
    let mut bytes = Vec::with_capacity(path.len());
    let mut rest = path.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = tail.get(2..)?;
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_find_their_files_and_folders_their_index() {
        let files = StaticFiles::from_files([
            ("index.html", b"home".to_vec()),
            ("/js/app.js", b"app".to_vec()),
            ("/a b.txt", b"spaced".to_vec()),
        ]);
        assert_eq!(&*files.get("/").unwrap().bytes, b"home");
        assert_eq!(
            files.get("/index.html").unwrap().content_type,
            "text/html; charset=utf-8"
        );
        assert_eq!(
            files.get("/js/app.js").unwrap().content_type,
            "text/javascript; charset=utf-8"
        );
        assert_eq!(&*files.get("/a%20b.txt").unwrap().bytes, b"spaced");
        for missing in ["/js/", "/js", "/../index.html", "/%zz", "/%", "/js/app.js/"] {
            assert!(files.get(missing).is_none(), "{missing}");
        }
    }

    #[test]
    fn a_folder_is_read_with_its_sub_folders_and_without_hidden_files() {
        let dir = std::env::temp_dir().join(format!("krmx-static-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("css")).unwrap();
        std::fs::write(dir.join("index.html"), "<p>hi</p>").unwrap();
        std::fs::write(dir.join("css/site.css"), "p{}").unwrap();
        std::fs::write(dir.join(".secret"), "no").unwrap();
        let files = StaticFiles::load(&dir).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(&*files.get("/css/site.css").unwrap().bytes, b"p{}");
        assert!(files.get("/.secret").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            StaticFiles::load(&dir),
            Err(StaticFilesError::Read { .. })
        ));
    }
}
