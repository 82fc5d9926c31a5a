//! A sysfs-shaped tree in memory for the core's reader tests: files (text or the problem
//! reading them gives), symbolic links as targets within the tree, and directories that
//! fail to list.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::device_sysfs::SysfsTree;
use crate::error::FileProblem;

#[derive(Default)]
pub(crate) struct MemTree {
    files: BTreeMap<String, Result<String, FileProblem>>,
    links: BTreeMap<String, String>,
    pub(crate) bad_dirs: BTreeMap<String, FileProblem>,
}

impl MemTree {
    pub(crate) fn file(mut self, path: &str, text: &str) -> Self {
        self.files.insert(path.to_string(), Ok(text.to_string()));
        self
    }

    /// A file that is there but reading it gives `p`.
    pub(crate) fn bad(mut self, path: &str, p: FileProblem) -> Self {
        self.files.insert(path.to_string(), Err(p));
        self
    }

    pub(crate) fn link(mut self, path: &str, to: &str) -> Self {
        self.links.insert(path.to_string(), to.to_string());
        self
    }

    /// `path` with its longest linked prefix replaced.
    fn real(&self, path: &str) -> String {
        for (from, to) in self.links.iter().rev() {
            if let Some(rest) = path.strip_prefix(from.as_str()) {
                if rest.is_empty() || rest.starts_with('/') {
                    return self.real(&format!("{to}{rest}"));
                }
            }
        }
        path.to_string()
    }
}

impl SysfsTree for MemTree {
    fn read(&mut self, path: &str) -> Result<String, FileProblem> {
        let real = self.real(path);
        self.files
            .get(&real)
            .cloned()
            .unwrap_or(Err(FileProblem::Missing))
    }

    fn list(&mut self, dir: &str) -> Result<Vec<String>, FileProblem> {
        if let Some(p) = self.bad_dirs.get(dir) {
            return Err(*p);
        }
        let real = self.real(dir);
        let prefix = if real.is_empty() {
            String::new()
        } else {
            format!("{real}/")
        };
        let mut names: Vec<String> = self
            .files
            .keys()
            .chain(self.links.keys())
            .filter_map(|p| p.strip_prefix(prefix.as_str()))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
            .collect();
        names.sort();
        names.dedup();
        if names.is_empty() {
            return Err(FileProblem::Missing);
        }
        Ok(names)
    }

    fn resolve(&mut self, path: &str) -> Result<String, FileProblem> {
        Ok(self.real(path))
    }
}
