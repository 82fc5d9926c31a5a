//! This process's memory cgroup and the tightest limit of it and its ancestors, read from
//! `/proc/self/cgroup` and the hierarchy's files. The mounts (`/proc/self/mountinfo`) are
//! read once; every later reading runs on stack buffers (the capacity check's path).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use numaperf_core::cgroup::{
    levels, parse_cgroup_mounts, parse_limit, parse_proc_cgroup, parse_stat_file_pages,
    parse_usage, relative_to_mount, unescape_mount_path, CgroupVersion, MemoryLimit,
};
use numaperf_core::{FileProblem, MemoryCgroup, NumaError, SysfsFile};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::topology::read_once;

/// A mounted hierarchy that can hold the memory controller.
struct Hierarchy {
    version: CgroupVersion,
    /// The cgroup shown at the mount point, unescaped (`/` unless a subtree is mounted).
    root: String,
    /// The mount point, opened (`O_PATH`).
    dir: OwnedFd,
}

/// Reads the memory cgroup of the process.
pub(crate) struct CgroupReader {
    mountinfo: PathBuf,
    proc_cgroup: PathBuf,
    /// The unified and the v1 memory hierarchy, found at first use.
    mounts: OnceLock<Result<[Option<Hierarchy>; 2], NumaError>>,
    /// The last reading (`None` before the first).
    last: Mutex<Option<Option<MemoryLimit>>>,
}

const MOUNTINFO: SysfsFile = SysfsFile::root("/proc/self/mountinfo");
const PROC_CGROUP: SysfsFile = SysfsFile::root("/proc/self/cgroup");
/// A level's counters, for its page cache.
const STAT: &str = "memory.stat";

impl CgroupReader {
    /// The live process's files.
    pub(crate) fn live() -> Self {
        Self::with_files("/proc/self/mountinfo", "/proc/self/cgroup")
    }

    /// Another mount table and cgroup file (tests point them at a fake tree).
    pub(crate) fn with_files(mountinfo: impl AsRef<Path>, proc_cgroup: impl AsRef<Path>) -> Self {
        CgroupReader {
            mountinfo: mountinfo.as_ref().into(),
            proc_cgroup: proc_cgroup.as_ref().into(),
            mounts: OnceLock::new(),
            last: Mutex::new(None),
        }
    }

    fn mounts(&self) -> Result<&[Option<Hierarchy>; 2], NumaError> {
        self.mounts
            .get_or_init(|| {
                let text = std::fs::read_to_string(&self.mountinfo).map_err(|e| {
                    let errno = numaperf_core::Errno::from_raw(e.raw_os_error().unwrap_or(5));
                    MOUNTINFO.error(FileProblem::Unreadable(errno))
                })?;
                let (v2, v1) = parse_cgroup_mounts(&text)
                    .map_err(|e| MOUNTINFO.error(FileProblem::Malformed(e)))?;
                let open = |m: Option<numaperf_core::cgroup::CgroupMount<'_>>| {
                    let m = m?;
                    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
                    let point = unescape_mount_path(m.mount_point);
                    let dir = rustix::fs::open(point.as_str(), flags, Mode::empty()).ok()?;
                    Some(Hierarchy {
                        version: m.version,
                        root: unescape_mount_path(m.root),
                        dir,
                    })
                };
                Ok([open(v2), open(v1)])
            })
            .as_ref()
            .map_err(|e| *e)
    }

    /// The tightest limit of the process's memory cgroup and its ancestors (`fresh`: read
    /// now; else the last reading, made now if there is none).
    pub(crate) fn limit(&self, fresh: bool) -> Result<Option<MemoryLimit>, NumaError> {
        if !fresh {
            if let Some(l) = *self.last.lock().unwrap_or_else(|e| e.into_inner()) {
                return Ok(l);
            }
        }
        let mut tightest: Option<MemoryLimit> = None;
        self.scan(|e| {
            if let Seen::Level(_, l) = e {
                tightest = Some(tightest.map_or(l, |t| t.tighter(l)));
            }
        })?;
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(tightest);
        Ok(tightest)
    }

    /// The process's memory cgroup, its tightest limit and the cgroup that sets it
    /// (`None`: no mounted hierarchy with the memory controller shows this process).
    pub(crate) fn describe(&self) -> Result<Option<MemoryCgroup>, NumaError> {
        let mut found: Option<MemoryCgroup> = None;
        self.scan(|e| match (e, &mut found) {
            (Seen::Cgroup(version, path), f) => {
                *f = Some(MemoryCgroup {
                    version,
                    path: path.into(),
                    limit: None,
                    limited_by: None,
                })
            }
            (Seen::Level(level, l), Some(c)) => {
                if c.limit.is_none_or(|t| t.tighter(l) == l) {
                    c.limit = Some(l);
                    c.limited_by = Some(level.into());
                }
            }
            (Seen::Level(..), None) => {}
        })?;
        Ok(found)
    }

    /// Tells `each` the process's cgroup, then every level with a limit, from that cgroup
    /// up to the mount's root; nothing when no memory hierarchy shows the process. A level
    /// without the limit file (the v2 root, a subtree without the controller) has no
    /// limit. No heap.
    fn scan(&self, mut each: impl FnMut(Seen<'_>)) -> Result<(), NumaError> {
        let [v2, v1] = self.mounts()?;
        let mut buf = [0u8; 4096];
        let (_, n) = read_once(rustix::fs::CWD, self.proc_cgroup.as_path(), &mut buf)
            .map_err(|e| PROC_CGROUP.error(problem(e)))?;
        if n == buf.len() {
            return Err(PROC_CGROUP.error(FileProblem::NotText));
        }
        let text =
            std::str::from_utf8(&buf[..n]).map_err(|_| PROC_CGROUP.error(FileProblem::NotText))?;
        let paths =
            parse_proc_cgroup(text).map_err(|e| PROC_CGROUP.error(FileProblem::Malformed(e)))?;
        // The v1 memory controller, when mounted, is the one that limits (the unified
        // hierarchy of a hybrid system then has no memory controller).
        let (h, path) = match (v1, paths.memory_v1, v2, paths.unified) {
            (Some(h), Some(p), _, _) | (_, _, Some(h), Some(p)) => (h, p),
            _ => return Ok(()),
        };
        let Some(rel) = relative_to_mount(path, &h.root) else {
            return Ok(());
        };
        each(Seen::Cgroup(h.version, path));
        let mut name = heapless::String::<512>::new();
        // memory.stat is the longest (about 2 KiB on 6.x); a longer one is read in part,
        // which can only make the reclaimable page cache look smaller.
        let mut text = [0u8; 8192];
        let mut read = |level: &str, file: &'static str| -> Result<Option<u64>, NumaError> {
            let f = SysfsFile::root(file);
            name.clear();
            let sep = if level.is_empty() { "" } else { "/" };
            write!(name, "{level}{sep}{file}").map_err(|_| f.error(FileProblem::NotText))?;
            let n = match read_once(h.dir.as_fd(), name.as_str(), &mut text) {
                Ok((_, n)) => n,
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => return Err(f.error(problem(e))),
            };
            let t = std::str::from_utf8(&text[..n]).map_err(|_| f.error(FileProblem::NotText))?;
            let malformed = |e| f.error(FileProblem::Malformed(e));
            if file == h.version.limit_file() {
                parse_limit(t, h.version).map_err(malformed)
            } else if file == STAT {
                parse_stat_file_pages(t, h.version)
                    .map(Some)
                    .map_err(malformed)
            } else {
                parse_usage(t).map(Some).map_err(malformed)
            }
        };
        for level in levels(rel) {
            let Some(limit) = read(level, h.version.limit_file())? else {
                continue;
            };
            let usage = read(level, h.version.usage_file())?
                .ok_or(SysfsFile::root(h.version.usage_file()).error(FileProblem::Missing))?;
            let reclaimable = read(level, STAT)?.unwrap_or(0);
            let mut shown = heapless::String::<512>::new();
            let root = h.root.trim_end_matches('/');
            let sep = if level.is_empty() { "" } else { "/" };
            let _ = write!(shown, "{root}{sep}{level}");
            let shown = if shown.is_empty() {
                "/"
            } else {
                shown.as_str()
            };
            each(Seen::Level(
                shown,
                MemoryLimit {
                    limit,
                    usage,
                    reclaimable,
                },
            ));
        }
        Ok(())
    }
}

/// What [`CgroupReader::scan`] finds.
enum Seen<'a> {
    /// The hierarchy and the process's cgroup path.
    Cgroup(CgroupVersion, &'a str),
    /// A level (as a cgroup path) and its limit.
    Level(&'a str, MemoryLimit),
}

fn problem(e: Errno) -> FileProblem {
    if e == Errno::NOENT {
        FileProblem::Missing
    } else {
        FileProblem::Unreadable(numaperf_core::Errno::from_raw(e.raw_os_error()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A fake cgroup tree in a temp dir: a mount table naming it and a /proc/self/cgroup.
    struct Fake {
        dir: PathBuf,
    }

    impl Fake {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("numaperf-cg-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Fake { dir }
        }
        fn file(&self, rel: &str, text: &str) -> &Self {
            let p = self.dir.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
            self
        }
        fn reader(&self) -> CgroupReader {
            CgroupReader::with_files(self.dir.join("mountinfo"), self.dir.join("cgroup"))
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn v2_takes_the_least_headroom_of_the_cgroup_and_its_ancestors() {
        let f = Fake::new("v2");
        let mnt = f.dir.join("unified");
        f.file(
            "mountinfo",
            &format!("1 0 0:1 / {} rw - cgroup2 cgroup2 rw\n", mnt.display()),
        )
        .file("cgroup", "0::/a/b\n")
        // The root has no memory.max; /a has 1 GiB with 1008 MiB used (16 MiB left);
        // /a/b has 64 MiB with nothing used.
        .file("unified/cgroup.controllers", "memory\n")
        .file("unified/a/memory.max", "1073741824\n")
        .file("unified/a/memory.current", "1056964608\n")
        .file("unified/a/b/memory.max", "67108864\n")
        .file("unified/a/b/memory.current", "0\n");
        let r = f.reader();
        let l = r.limit(true).unwrap().unwrap();
        assert_eq!((l.limit, l.headroom()), (1 << 30, 16 << 20));
        let c = r.describe().unwrap().unwrap();
        assert_eq!((c.version, c.path.as_str()), (CgroupVersion::V2, "/a/b"));
        assert_eq!(c.limited_by.as_deref(), Some("/a"));
        // The parent's limit lifted: the child's binds. Fresh readings see it, the last
        // reading is kept for the unfresh ones.
        f.file("unified/a/memory.max", "max\n");
        assert_eq!(r.limit(false).unwrap(), Some(l));
        let l = r.limit(true).unwrap().unwrap();
        assert_eq!((l.limit, l.usage), (64 << 20, 0));
        assert_eq!(
            r.describe().unwrap().unwrap().limited_by.as_deref(),
            Some("/a/b")
        );
        // Page cache counts as headroom: 48 MiB used, 40 MiB of it file pages.
        f.file("unified/a/b/memory.current", "50331648\n").file(
            "unified/a/b/memory.stat",
            "anon 8388608\nfile 41943040\nactive_file 20971520\ninactive_file 20971520\n",
        );
        let l = r.limit(true).unwrap().unwrap();
        assert_eq!((l.reclaimable, l.headroom()), (40 << 20, 56 << 20));
        f.file("unified/a/b/memory.stat", "active_file lots\n");
        let e = r.limit(true).unwrap_err();
        assert_eq!(e.to_string().split(':').next(), Some("memory.stat"));
        fs::remove_file(f.dir.join("unified/a/b/memory.stat")).unwrap();
        // No limit anywhere.
        f.file("unified/a/b/memory.max", "max\n");
        assert_eq!(r.limit(true).unwrap(), None);
        let c = r.describe().unwrap().unwrap();
        assert_eq!((c.limit, c.path.as_str()), (None, "/a/b"));
    }

    #[test]
    fn v1_memory_hierarchy_wins_on_a_hybrid_system() {
        let f = Fake::new("v1");
        let (u, m) = (f.dir.join("unified"), f.dir.join("memory"));
        let mountinfo = format!(
            "1 0 0:1 / {} rw - cgroup2 cgroup2 rw\n2 0 0:2 / {} rw - cgroup cgroup rw,memory\n",
            u.display(),
            m.display()
        );
        f.file("mountinfo", &mountinfo)
            .file("cgroup", "4:memory:/job\n0::/\n")
            .file("unified/cgroup.controllers", "\n")
            .file("memory/memory.limit_in_bytes", "9223372036854771712\n")
            .file("memory/memory.usage_in_bytes", "123\n")
            .file("memory/job/memory.limit_in_bytes", "33554432\n")
            .file("memory/job/memory.usage_in_bytes", "8388608\n")
            .file(
                "memory/job/memory.stat",
                "cache 4096\ntotal_inactive_file 4194304\n",
            );
        let l = f.reader().limit(true).unwrap().unwrap();
        assert_eq!((l.reclaimable, l.headroom()), (4 << 20, 28 << 20));
        let c = f.reader().describe().unwrap().unwrap();
        assert_eq!(
            (c.version, c.limited_by.as_deref()),
            (CgroupVersion::V1, Some("/job"))
        );
    }

    #[test]
    fn a_mounted_subtree_and_bad_files() {
        let f = Fake::new("sub");
        let mnt = f.dir.join("cg");
        // A container: its cgroup /docker/x is the mount's root.
        f.file(
            "mountinfo",
            &format!(
                "1 0 0:1 /docker/x {} ro - cgroup2 cgroup2 rw\n",
                mnt.display()
            ),
        )
        .file("cgroup", "0::/docker/x\n")
        .file("cg/memory.max", "268435456\n")
        .file("cg/memory.current", "268435456\n");
        let c = f.reader().describe().unwrap().unwrap();
        assert_eq!(c.limit.map(|l| l.headroom()), Some(0));
        assert_eq!(c.limited_by.as_deref(), Some("/docker/x"));
        // A cgroup outside the mounted subtree is not shown by it.
        f.file("cgroup", "0::/elsewhere\n");
        assert_eq!(f.reader().describe().unwrap(), None);
        // Corrupt files are errors naming the file.
        f.file("cgroup", "0::/docker/x\n")
            .file("cg/memory.max", "lots\n");
        let e = f.reader().limit(true).unwrap_err();
        assert!(
            matches!(e, NumaError::Sysfs { file, problem: FileProblem::Malformed(_) } if file.name == "memory.max"),
            "{e}"
        );
        f.file("cg/memory.max", "1\n");
        fs::remove_file(mnt.join("memory.current")).unwrap();
        let e = f.reader().limit(true).unwrap_err();
        assert_eq!(e.to_string(), "memory.current: missing");
        f.file("cgroup", "nonsense\n");
        assert!(f.reader().limit(true).is_err());
        // No cgroup mounts at all: nothing to say, not an error.
        f.file("cgroup", "0::/docker/x\n")
            .file("mountinfo", "1 0 0:1 / /proc rw - proc proc rw\n");
        assert_eq!(f.reader().limit(true).unwrap(), None);
        assert_eq!(f.reader().describe().unwrap(), None);
    }

    #[test]
    fn this_process_reads_without_error() {
        // Whatever this host has; the tree tests above check the values.
        let r = CgroupReader::live();
        r.limit(true).unwrap();
        r.describe().unwrap();
    }
}
