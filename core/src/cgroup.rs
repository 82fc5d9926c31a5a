//! The memory cgroup's text, read without a heap: which cgroup a process is in
//! (`/proc/self/cgroup`), where the hierarchies are mounted (`/proc/self/mountinfo`), the
//! limit files of v2 (`memory.max`, `memory.current`) and v1 (`memory.limit_in_bytes`,
//! `memory.usage_in_bytes`), and the tightest limit of a cgroup and its ancestors.

use core::fmt;

use crate::parse::{ParseError, ParseErrorKind};

/// A v1 limit at or above this many bytes is "no limit": v1 writes "unlimited" as
/// `PAGE_COUNTER_MAX * PAGE_SIZE` (9223372036854771712 with 4 KiB pages), never "max".
pub const V1_UNLIMITED: u64 = 1 << 62;

/// The cgroup hierarchy that holds the memory controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupVersion {
    /// The legacy hierarchy (`cgroup` with the `memory` option).
    V1,
    /// The unified hierarchy (`cgroup2`).
    V2,
}

impl CgroupVersion {
    /// The file holding a level's limit.
    pub const fn limit_file(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "memory.limit_in_bytes",
            CgroupVersion::V2 => "memory.max",
        }
    }

    /// The file holding a level's usage (its own and its descendants').
    pub const fn usage_file(self) -> &'static str {
        match self {
            CgroupVersion::V1 => "memory.usage_in_bytes",
            CgroupVersion::V2 => "memory.current",
        }
    }

    /// The `memory.stat` keys of the level's page cache, its own and its descendants'
    /// (v2's counters are hierarchical; v1's hierarchical ones are `total_`).
    pub const fn file_keys(self) -> [&'static str; 2] {
        match self {
            CgroupVersion::V1 => ["total_active_file", "total_inactive_file"],
            CgroupVersion::V2 => ["active_file", "inactive_file"],
        }
    }
}

impl fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        })
    }
}

/// The limit that binds a process's memory: one level's limit and usage (the level, of the
/// process's cgroup and its ancestors, with the least headroom).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLimit {
    /// The level's limit in bytes (`memory.max`, `memory.limit_in_bytes`).
    pub limit: u64,
    /// What the level and its descendants use now, in bytes (page cache included).
    pub usage: u64,
    /// The part of `usage` that is page cache (`memory.stat`'s active and inactive file
    /// pages), which the kernel reclaims before its OOM killer acts.
    pub reclaimable: u64,
}

impl MemoryLimit {
    /// Bytes that may still be charged before the level's OOM killer acts: the limit
    /// less what is used and cannot be reclaimed (0 when that is at or beyond the limit).
    /// Page cache counts as free, as the kernel's reclaim takes it first; dirty pages
    /// under writeback and locked ones it cannot take, so the figure may be high then.
    pub const fn headroom(&self) -> u64 {
        let kept = self.usage.saturating_sub(self.reclaimable);
        self.limit.saturating_sub(kept)
    }

    /// The tighter of two limits: the one with less headroom (on a tie, the lower limit).
    pub fn tighter(self, other: MemoryLimit) -> MemoryLimit {
        if (other.headroom(), other.limit) < (self.headroom(), self.limit) {
            other
        } else {
            self
        }
    }
}

/// The cgroup paths of `/proc/self/cgroup`: the unified one (`0::/path`) and the v1
/// hierarchy that lists the `memory` controller (`4:memory:/path`), as the kernel writes
/// them (relative to the reader's cgroup namespace).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcCgroup<'a> {
    /// The unified (v2) path.
    pub unified: Option<&'a str>,
    /// The path in the v1 hierarchy of the memory controller.
    pub memory_v1: Option<&'a str>,
}

/// Reads `/proc/self/cgroup` text: `hierarchy-id:controllers:path` per line.
///
/// # Errors
/// A [`ParseError`] for a line without two colons, or a path that does not start with `/`.
pub fn parse_proc_cgroup(text: &str) -> Result<ProcCgroup<'_>, ParseError> {
    let mut out = ProcCgroup::default();
    let mut offset = 0;
    for line in text.split('\n') {
        let here = offset;
        offset += line.len() + 1;
        if line.is_empty() {
            continue;
        }
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(at(ParseErrorKind::UnexpectedChar('\n'), here + line.len()));
        };
        if !path.starts_with('/') {
            let pos = here + id.len() + controllers.len() + 2;
            let c = path.chars().next().unwrap_or('\n');
            return Err(at(ParseErrorKind::UnexpectedChar(c), pos));
        }
        if id == "0" && controllers.is_empty() {
            out.unified = Some(path);
        } else if controllers.split(',').any(|c| c == "memory") {
            out.memory_v1 = Some(path);
        }
    }
    Ok(out)
}

/// One cgroup mount of `/proc/self/mountinfo`: which hierarchy, the directory of the
/// hierarchy it shows (`root`), and where (`mount_point`); both as mountinfo escapes them
/// (`\040` for a space: see [`unescape_mount_path`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CgroupMount<'a> {
    /// v2 (`cgroup2`) or v1 (`cgroup` with the `memory` super option).
    pub version: CgroupVersion,
    /// The cgroup shown at the mount point (`/` unless a subtree is bind-mounted).
    pub root: &'a str,
    /// The mount point.
    pub mount_point: &'a str,
}

/// The memory-relevant cgroup mounts in `/proc/self/mountinfo` text: the first `cgroup2`
/// mount and the first v1 `cgroup` mount with the memory controller.
///
/// A line reads `id parent major:minor root mount-point options [tags...] - fstype source
/// super-options`; lines of other file systems are skipped without being checked further.
///
/// # Errors
/// A [`ParseError`] for a line with fewer than five fields or without the ` - ` separator.
pub fn parse_cgroup_mounts(
    text: &str,
) -> Result<(Option<CgroupMount<'_>>, Option<CgroupMount<'_>>), ParseError> {
    let (mut v2, mut v1) = (None, None);
    let mut offset = 0;
    for line in text.split('\n') {
        let here = offset;
        offset += line.len() + 1;
        if line.is_empty() {
            continue;
        }
        let bad = at(ParseErrorKind::UnexpectedChar('\n'), here + line.len());
        let (mount, tail) = line.split_once(" - ").ok_or(bad)?;
        let mut fields = mount.split(' ');
        let (Some(root), Some(mount_point)) = (fields.nth(3), fields.next()) else {
            return Err(bad);
        };
        let mut tail = tail.split(' ');
        let (fstype, options) = (tail.next().unwrap_or(""), tail.nth(1).unwrap_or(""));
        let version = match fstype {
            "cgroup2" if v2.is_none() => CgroupVersion::V2,
            "cgroup" if v1.is_none() && options.split(',').any(|o| o == "memory") => {
                CgroupVersion::V1
            }
            _ => continue,
        };
        let m = CgroupMount {
            version,
            root,
            mount_point,
        };
        match version {
            CgroupVersion::V2 => v2 = Some(m),
            CgroupVersion::V1 => v1 = Some(m),
        }
    }
    Ok((v2, v1))
}

/// The process's cgroup relative to a mount's root: `path` with `root` taken off its
/// front (`""` for the root itself). `None` when the cgroup is not below the mounted
/// subtree (then that mount does not show it).
pub fn relative_to_mount<'a>(path: &'a str, root: &str) -> Option<&'a str> {
    let root = root.trim_end_matches('/');
    let rest = path.strip_prefix(root)?;
    if !rest.is_empty() && !rest.starts_with('/') {
        return None; // "/a/bc" is not below "/a/b"
    }
    Some(rest.trim_matches('/'))
}

/// `rel` (a relative cgroup path, `a/b/c`) and each ancestor up to the mount's root:
/// `a/b/c`, `a/b`, `a`, `""`.
pub fn levels(rel: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(rel.trim_matches('/'));
    core::iter::from_fn(move || {
        let cur = next?;
        next = if cur.is_empty() {
            None
        } else {
            Some(cur.rfind('/').map_or("", |i| &cur[..i]))
        };
        Some(cur)
    })
}

/// A limit file's text: `Ok(None)` for no limit (v2 `max`; v1 at or above
/// [`V1_UNLIMITED`]), else the bytes.
///
/// # Errors
/// A [`ParseError`] for text that is neither `max` nor a decimal number.
pub fn parse_limit(text: &str, version: CgroupVersion) -> Result<Option<u64>, ParseError> {
    let t = text.trim();
    if version == CgroupVersion::V2 && t == "max" {
        return Ok(None);
    }
    let bytes = parse_bytes(t)?;
    Ok((version == CgroupVersion::V2 || bytes < V1_UNLIMITED).then_some(bytes))
}

/// The page cache of a level from its `memory.stat` text: the sum of `version`'s
/// [`CgroupVersion::file_keys`] (a key the file lacks counts 0).
///
/// # Errors
/// A [`ParseError`] for a value of those keys that is not a decimal number (its position
/// in `text`).
pub fn parse_stat_file_pages(text: &str, version: CgroupVersion) -> Result<u64, ParseError> {
    let keys = version.file_keys();
    let mut sum: u64 = 0;
    let mut offset = 0;
    for line in text.split('\n') {
        let here = offset;
        offset += line.len() + 1;
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        if keys.contains(&key) {
            let v =
                parse_bytes(value.trim()).map_err(|e| at(e.kind, here + key.len() + 1 + e.pos))?;
            sum = sum.saturating_add(v);
        }
    }
    Ok(sum)
}

/// A usage file's text (`memory.current`, `memory.usage_in_bytes`): bytes.
///
/// # Errors
/// A [`ParseError`] for text that is not a decimal number.
pub fn parse_usage(text: &str) -> Result<u64, ParseError> {
    parse_bytes(text.trim())
}

fn parse_bytes(t: &str) -> Result<u64, ParseError> {
    if t.is_empty() {
        return Err(at(ParseErrorKind::Empty, 0));
    }
    if let Some(i) = t.bytes().position(|b| !b.is_ascii_digit()) {
        return Err(at(ParseErrorKind::ExpectedNumber, i));
    }
    t.parse().map_err(|_| at(ParseErrorKind::NumberTooLarge, 0))
}

/// A mountinfo path with its octal escapes (`\040` space, `\011` tab, `\012` newline,
/// `\134` backslash) decoded; other text is kept as it is.
#[cfg(feature = "alloc")]
pub fn unescape_mount_path(path: &str) -> alloc::string::String {
    let b = path.as_bytes();
    let mut out = alloc::vec::Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| {
            b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3'
        });
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    alloc::string::String::from_utf8(out).unwrap_or_else(|_| path.into())
}

const fn at(kind: ParseErrorKind, pos: usize) -> ParseError {
    ParseError { kind, pos }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// This development host's file (a v1 memory hierarchy beside an empty unified one).
    const HYBRID: &str = "9:name=systemd:/\n4:memory:/process_api/7302b97b\n3:cpuset:/\n0::/\n";

    #[test]
    fn proc_cgroup_finds_the_unified_and_the_memory_paths() {
        let p = parse_proc_cgroup(HYBRID).unwrap();
        assert_eq!(p.unified, Some("/"));
        assert_eq!(p.memory_v1, Some("/process_api/7302b97b"));
        let v2 = parse_proc_cgroup("0::/user.slice/user-0.slice/session-3.scope\n").unwrap();
        assert_eq!(v2.unified, Some("/user.slice/user-0.slice/session-3.scope"));
        assert_eq!(v2.memory_v1, None);
        // Controllers listed together, as some v1 setups mount them.
        let joint = parse_proc_cgroup("5:cpu,memory,pids:/job\n").unwrap();
        assert_eq!(joint.memory_v1, Some("/job"));
        // A colon inside the path stays in the path.
        let colon = parse_proc_cgroup("0::/a:b\n").unwrap();
        assert_eq!(colon.unified, Some("/a:b"));
        assert_eq!(parse_proc_cgroup("").unwrap(), ProcCgroup::default());
    }

    #[test]
    fn proc_cgroup_refuses_what_the_kernel_never_writes() {
        let e = parse_proc_cgroup("0::/\nnonsense\n").unwrap_err();
        assert_eq!(e.pos, 13);
        let e = parse_proc_cgroup("0::relative\n").unwrap_err();
        assert_eq!((e.kind, e.pos), (ParseErrorKind::UnexpectedChar('r'), 3));
    }

    #[test]
    fn mountinfo_names_the_memory_hierarchies() {
        let text = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
";
        let (v2, v1) = parse_cgroup_mounts(text).unwrap();
        let v2 = v2.unwrap();
        assert_eq!(
            (v2.version, v2.root, v2.mount_point),
            (CgroupVersion::V2, "/", "/sys/fs/cgroup/unified")
        );
        let v1 = v1.unwrap();
        assert_eq!(
            (v1.version, v1.mount_point),
            (CgroupVersion::V1, "/sys/fs/cgroup/memory")
        );
        // A container's bind-mounted subtree and an escaped space.
        let c = "99 98 0:30 /docker/abc /sys/fs/cgroup\\040x ro - cgroup2 cgroup2 rw\n";
        let (v2, v1) = parse_cgroup_mounts(c).unwrap();
        let v2 = v2.unwrap();
        assert_eq!(
            (v2.root, v2.mount_point),
            ("/docker/abc", "/sys/fs/cgroup\\040x")
        );
        #[cfg(feature = "alloc")]
        assert_eq!(unescape_mount_path(v2.mount_point), "/sys/fs/cgroup x");
        assert_eq!(v1, None);
        assert!(parse_cgroup_mounts("1 2 3\n").is_err());
        assert!(parse_cgroup_mounts("1 2 0:1 / - cgroup2 x y\n").is_err());
    }

    #[test]
    fn paths_are_taken_relative_to_the_mounted_subtree() {
        assert_eq!(relative_to_mount("/a/b", "/"), Some("a/b"));
        assert_eq!(relative_to_mount("/", "/"), Some(""));
        assert_eq!(relative_to_mount("/docker/abc/x", "/docker/abc"), Some("x"));
        assert_eq!(relative_to_mount("/docker/abc", "/docker/abc"), Some(""));
        assert_eq!(relative_to_mount("/docker/abcd", "/docker/abc"), None);
        assert_eq!(relative_to_mount("/other", "/docker"), None);
        let all: Vec<&str> = levels("a/b/c").collect();
        assert_eq!(all, ["a/b/c", "a/b", "a", ""]);
        assert_eq!(levels("").collect::<Vec<_>>(), [""]);
        assert_eq!(levels("/x/").collect::<Vec<_>>(), ["x", ""]);
    }

    #[test]
    fn limits_read_as_the_kernel_writes_them() {
        use CgroupVersion::{V1, V2};
        assert_eq!(parse_limit("max\n", V2), Ok(None));
        assert_eq!(parse_limit("67108864\n", V2), Ok(Some(64 << 20)));
        assert_eq!(parse_limit("9223372036854771712\n", V1), Ok(None));
        assert_eq!(parse_limit("67108864\n", V1), Ok(Some(64 << 20)));
        // "max" is v2's word only; v1 writes a number.
        assert!(parse_limit("max", V1).is_err());
        assert_eq!(parse_limit("", V2).unwrap_err().kind, ParseErrorKind::Empty);
        assert_eq!(
            parse_limit("12k", V2).unwrap_err(),
            at(ParseErrorKind::ExpectedNumber, 2)
        );
        assert_eq!(
            parse_usage("99999999999999999999").unwrap_err().kind,
            ParseErrorKind::NumberTooLarge
        );
        assert_eq!(parse_usage("4096\n"), Ok(4096));
    }

    #[test]
    fn the_tightest_level_is_the_one_with_least_headroom() {
        let parent = MemoryLimit {
            limit: 1 << 30,
            usage: (1 << 30) - (16 << 20),
            reclaimable: 0,
        };
        let child = MemoryLimit {
            limit: 64 << 20,
            usage: 0,
            reclaimable: 0,
        };
        assert_eq!(parent.tighter(child), parent);
        assert_eq!(child.tighter(parent), parent);
        assert_eq!(parent.headroom(), 16 << 20);
        let over = MemoryLimit {
            limit: 10,
            usage: 20,
            reclaimable: 0,
        };
        assert_eq!(over.headroom(), 0);
        // Page cache is taken back before the OOM killer acts.
        let cached = MemoryLimit {
            limit: 64 << 20,
            usage: 60 << 20,
            reclaimable: 40 << 20,
        };
        assert_eq!(cached.headroom(), 44 << 20);
        assert_eq!(cached.tighter(child), cached);
    }

    #[test]
    fn page_cache_is_read_from_memory_stat() {
        let v2 = "anon 4096\nfile 12288\nactive_file 4096\ninactive_file 8192\nshmem 0\n";
        assert_eq!(parse_stat_file_pages(v2, CgroupVersion::V2), Ok(12288));
        let v1 = "cache 100\nactive_file 1\ntotal_active_file 4096\ntotal_inactive_file 4096\n";
        assert_eq!(parse_stat_file_pages(v1, CgroupVersion::V1), Ok(8192));
        assert_eq!(parse_stat_file_pages("anon 1\n", CgroupVersion::V2), Ok(0));
        let e = parse_stat_file_pages("anon 1\ninactive_file x\n", CgroupVersion::V2);
        assert_eq!(e, Err(at(ParseErrorKind::ExpectedNumber, 21)));
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,64}") {
            let _ = parse_stat_file_pages(&s, CgroupVersion::V2);
            let _ = parse_proc_cgroup(&s);
            let _ = parse_cgroup_mounts(&s);
            let _ = parse_limit(&s, CgroupVersion::V1);
            let _ = parse_limit(&s, CgroupVersion::V2);
            #[cfg(feature = "alloc")]
            let _ = unescape_mount_path(&s);
            let _ = levels(&s).count();
            let _ = relative_to_mount(&s, "/a");
        }
    }
}
