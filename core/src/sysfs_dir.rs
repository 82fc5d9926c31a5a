//! A sysfs-shaped directory tree read with std's file calls (the live `/sys` or a captured
//! copy), for the core's strict readers ([`crate::device_sysfs::SysfsTree`]).

use std::fs;
use std::io;
use std::path::PathBuf;
use std::string::String;
use std::vec::Vec;

use crate::device_sysfs::SysfsTree;
use crate::errno::Errno;
use crate::error::FileProblem;

/// A directory tree below `root`; links are resolved relative to the root's real path, and
/// a link that leads out of the tree is [`FileProblem::Inconsistent`].
#[derive(Clone, Debug)]
pub struct SysfsDir {
    root: PathBuf,
    canonical: Option<PathBuf>,
}

impl SysfsDir {
    /// The tree below `root` (nothing is read yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        SysfsDir {
            root: root.into(),
            canonical: None,
        }
    }

    /// The tree below `root`, which must exist (its real path is read now).
    ///
    /// # Errors
    /// What resolving `root` gave ([`FileProblem::Missing`], ...).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, FileProblem> {
        let mut t = Self::new(root);
        t.canonical()?;
        Ok(t)
    }

    /// The root's real path, read once.
    fn canonical(&mut self) -> Result<&PathBuf, FileProblem> {
        if self.canonical.is_none() {
            self.canonical = Some(fs::canonicalize(&self.root).map_err(|e| problem(&e))?);
        }
        Ok(self.canonical.as_ref().expect("set above"))
    }
}

/// What an I/O error says about a file.
pub fn problem(e: &io::Error) -> FileProblem {
    match e.raw_os_error() {
        _ if e.kind() == io::ErrorKind::NotFound => FileProblem::Missing,
        Some(raw) => FileProblem::Unreadable(Errno::from_raw(raw)),
        None => FileProblem::Unreadable(Errno::EIO),
    }
}

impl SysfsTree for SysfsDir {
    fn read(&mut self, path: &str) -> Result<String, FileProblem> {
        let bytes = fs::read(self.root.join(path)).map_err(|e| problem(&e))?;
        String::from_utf8(bytes).map_err(|_| FileProblem::NotText)
    }

    fn list(&mut self, dir: &str) -> Result<Vec<String>, FileProblem> {
        fs::read_dir(self.root.join(dir))
            .map_err(|e| problem(&e))?
            .map(|e| {
                let name = e.map_err(|e| problem(&e))?.file_name();
                name.into_string().map_err(|_| FileProblem::NotText)
            })
            .collect()
    }

    fn resolve(&mut self, path: &str) -> Result<String, FileProblem> {
        let real = fs::canonicalize(self.root.join(path)).map_err(|e| problem(&e))?;
        let inside = real
            .strip_prefix(self.canonical()?)
            .map_err(|_| FileProblem::Inconsistent("a link leads out of the tree"))?;
        let parts: Option<Vec<&str>> = inside.iter().map(|c| c.to_str()).collect();
        parts.map(|p| p.join("/")).ok_or(FileProblem::NotText)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lists_and_resolves_inside_the_tree_only() {
        let dir =
            std::env::temp_dir().join(std::format!("numaperf-sysfs-dir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("a/b")).unwrap();
        fs::write(dir.join("a/b/f"), "x\n").unwrap();
        let mut t = SysfsDir::new(&dir);
        assert_eq!(t.read("a/b/f").unwrap(), "x\n");
        assert_eq!(t.read("a/none"), Err(FileProblem::Missing));
        assert_eq!(t.list("a").unwrap(), ["b"]);
        assert_eq!(t.resolve("a/b/f").unwrap(), "a/b/f");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("b", dir.join("a/l")).unwrap();
            std::os::unix::fs::symlink("/", dir.join("a/out")).unwrap();
            assert_eq!(t.resolve("a/l/f").unwrap(), "a/b/f");
            assert!(matches!(
                t.resolve("a/out"),
                Err(FileProblem::Inconsistent(_))
            ));
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
