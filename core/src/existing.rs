//! Memory a caller already has: what backs an address range (read from
//! `/proc/self/maps` lines on Linux), the whole pages of a byte range, and a thread's own
//! default policy.

use crate::error::NumaError;
use crate::options::NodeMode;
use crate::policy::MemPolicy;

/// What backs a mapped range, as far as memory policy is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    /// Anonymous memory (heap, stack, `MAP_ANONYMOUS`): new pages follow the range's policy.
    Anonymous,
    /// Shared memory (memfd, `/dev/shm`, System V, tmpfs and hugetlbfs files): the policy is
    /// kept with the shared object and holds for every process that maps it.
    Shared,
    /// An ordinary file: its pages live in the page cache, placed where the file was read,
    /// whatever a mapping's policy says (only private copy-on-write copies follow it).
    File,
}

/// One line of `/proc/<pid>/maps`: the range and what backs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapsLine<'a> {
    /// First address.
    pub start: usize,
    /// One past the last address.
    pub end: usize,
    /// The inode of the backing file (0: anonymous).
    pub inode: u64,
    /// The path column (empty for anonymous memory; `[heap]`, `[stack]`, `/memfd:x (deleted)`).
    pub path: &'a str,
}

impl<'a> MapsLine<'a> {
    /// Parses `start-end perms offset dev inode path`; `None` for a line that is not one.
    pub fn parse(line: &'a str) -> Option<Self> {
        let mut fields = line.splitn(6, ' ');
        let range = fields.next()?;
        let (start, end) = range.split_once('-')?;
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        let _perms = fields.next()?;
        let _offset = fields.next()?;
        let _dev = fields.next()?;
        let inode = fields.next()?.parse().ok()?;
        let path = fields.next().unwrap_or("").trim_start();
        (start <= end).then_some(MapsLine {
            start,
            end,
            inode,
            path,
        })
    }

    /// What backs the line's range, from its columns alone: `is_shmem_fs` says whether the
    /// file at `path` is on tmpfs or hugetlbfs (a `statfs` the caller makes; `None`: unknown,
    /// read as an ordinary file, so an unknown file is never pretended to follow a policy).
    pub fn kind(&self, is_shmem_fs: Option<bool>) -> MemoryKind {
        let p = self.path;
        if self.inode == 0 {
            // Anonymous, or a special mapping ([heap], [stack], [anon:name], [vdso]).
            return MemoryKind::Anonymous;
        }
        if p.starts_with("/memfd:") || p.starts_with("/SYSV") || p.starts_with("/dev/shm/") {
            return MemoryKind::Shared;
        }
        if is_shmem_fs == Some(true) {
            MemoryKind::Shared
        } else {
            MemoryKind::File
        }
    }

    /// The path without the kernel's ` (deleted)` suffix, for a `statfs`.
    pub fn file_path(&self) -> &'a str {
        self.path.strip_suffix(" (deleted)").unwrap_or(self.path)
    }
}

/// The whole pages of `addr..addr + len`: `(first page address, bytes, head, tail)`, where
/// `head` and `tail` are the bytes before and after them that share a page with memory
/// outside the range (left alone: placing them would place the neighbours too).
///
/// # Errors
/// [`NumaError::NoWholePage`] when the range holds no whole page.
pub fn whole_pages(
    addr: usize,
    len: usize,
    page: usize,
) -> Result<(usize, usize, usize, usize), NumaError> {
    let no_page = NumaError::NoWholePage {
        len,
        page_size: page,
    };
    let end = addr.checked_add(len).ok_or(no_page)?;
    let first = addr.checked_next_multiple_of(page).ok_or(no_page)?;
    let last = end - end % page;
    if first >= last {
        return Err(no_page);
    }
    Ok((first, last - first, first - addr, end - last))
}

/// A thread's own default policy, as `set_mempolicy` sets and `get_mempolicy` reports it:
/// memory in ranges without a policy of their own (the heap, ordinary `mmap`s) follows it
/// when the thread faults it in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadPolicy {
    /// The policy. A `WeightedInterleave` takes the kernel's global weights.
    pub policy: MemPolicy,
    /// How the policy's node ids are read (`MPOL_F_STATIC_NODES`, `MPOL_F_RELATIVE_NODES`).
    pub node_mode: NodeMode,
    /// `MPOL_F_NUMA_BALANCING` (Linux 5.12; `Bind` and `PreferredMany`).
    pub numa_balancing: bool,
}

impl ThreadPolicy {
    /// `policy` with physical node ids and no balancing flag.
    pub fn new(policy: MemPolicy) -> Self {
        ThreadPolicy {
            policy,
            node_mode: NodeMode::Default,
            numa_balancing: false,
        }
    }

    /// The region options the policy's validation reads (node mode, balancing).
    pub fn options(&self) -> crate::options::RegionOptions {
        crate::options::RegionOptions {
            node_mode: self.node_mode,
            numa_balancing: self.numa_balancing,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn maps_lines_are_classified() {
        let anon = MapsLine::parse("7f00-7f10 rw-p 00000000 00:00 0 ").unwrap();
        assert_eq!(
            (anon.start, anon.end, anon.kind(None)),
            (0x7f00, 0x7f10, MemoryKind::Anonymous)
        );
        let heap = MapsLine::parse("5000-6000 rw-p 00000000 00:00 0          [heap]").unwrap();
        assert_eq!(
            (heap.path, heap.kind(None)),
            ("[heap]", MemoryKind::Anonymous)
        );
        let memfd =
            MapsLine::parse("1000-2000 rw-s 00000000 00:01 1234   /memfd:pool (deleted)").unwrap();
        assert_eq!(memfd.kind(None), MemoryKind::Shared);
        assert_eq!(memfd.file_path(), "/memfd:pool");
        let file = MapsLine::parse("1000-3000 r--p 00001000 fd:01 99 /usr/lib/libc.so.6").unwrap();
        assert_eq!(file.kind(None), MemoryKind::File);
        assert_eq!(file.kind(Some(false)), MemoryKind::File);
        let tmp = MapsLine::parse("1000-3000 rw-s 00000000 00:2a 7 /tmp/x").unwrap();
        assert_eq!(tmp.kind(Some(true)), MemoryKind::Shared);
        let spaces = MapsLine::parse("1000-3000 rw-s 00000000 00:2a 7 /tmp/a b").unwrap();
        assert_eq!(spaces.path, "/tmp/a b");
        for bad in [
            "",
            "zz-10 rw-p 0 0 0",
            "10-5 rw-p 0 00:00 0",
            "10-20 rw-p 0 00:00 x",
        ] {
            assert_eq!(MapsLine::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn whole_pages_leave_partial_ends() {
        assert_eq!(whole_pages(4096, 8192, 4096), Ok((4096, 8192, 0, 0)));
        assert_eq!(whole_pages(4000, 8300, 4096), Ok((4096, 8192, 96, 12)));
        let none = Err(NumaError::NoWholePage {
            len: 5000,
            page_size: 4096,
        });
        assert_eq!(whole_pages(100, 5000, 4096), none);
        assert!(whole_pages(usize::MAX - 10, 100, 4096).is_err());
    }

    proptest! {
        #[test]
        fn whole_pages_lie_inside_and_are_aligned(addr in 0usize..1 << 40, len in 0usize..1 << 20) {
            if let Ok((first, bytes, head, tail)) = whole_pages(addr, len, 4096) {
                prop_assert_eq!(first % 4096, 0);
                prop_assert_eq!(bytes % 4096, 0);
                prop_assert!(bytes > 0 && head < 4096 && tail < 4096);
                prop_assert_eq!(head + bytes + tail, len);
                prop_assert_eq!(first, addr + head);
            } else {
                prop_assert!(len < 8192);
            }
        }

        #[test]
        fn maps_parse_never_panics(s in ".{0,80}") {
            let _ = MapsLine::parse(&s);
        }
    }
}
