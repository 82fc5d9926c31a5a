//! Memory the caller already has: what backs a range (`/proc/self/maps`, `statfs` for
//! tmpfs and hugetlbfs files), and the calling thread's own policy (set/get_mempolicy).

use numaperf_core::existing::MapsLine;
use numaperf_core::{
    MemPolicy, MemoryKind, NodeMask, NodeMode, NodeWeights, NumaError, ThreadPolicy, MAX_NUMNODES,
};

use crate::mempolicy as mp;

/// `statfs` magic numbers of the file systems whose files are shared memory.
const TMPFS_MAGIC: i64 = 0x0102_1994;
const HUGETLBFS_MAGIC: i64 = 0x9584_58f6;

/// Checks that every byte of `start..end` is mapped and none of it is an ordinary file
/// mapping, reading the process's own maps.
///
/// # Errors
/// [`NumaError::FileBackedMemory`], [`NumaError::ForeignMapping`] for an unmapped gap,
/// [`NumaError::Os`] when `/proc/self/maps` cannot be read.
pub(crate) fn check_placeable(start: usize, end: usize) -> Result<(), NumaError> {
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(|e| NumaError::Os {
        op: "read /proc/self/maps",
        errno: numaperf_core::Errno::from_raw(e.raw_os_error().unwrap_or(5)),
    })?;
    let mut covered = start;
    for line in maps.lines().filter_map(MapsLine::parse) {
        if covered >= end {
            break;
        }
        if line.end <= covered {
            continue;
        }
        if line.start > covered {
            break;
        }
        if line.kind(Some(is_shmem_file(&line))) == MemoryKind::File {
            return Err(NumaError::FileBackedMemory);
        }
        covered = line.end;
    }
    if covered < end {
        return Err(NumaError::ForeignMapping);
    }
    Ok(())
}

/// Whether the file behind a line is on tmpfs or hugetlbfs (false when it cannot be told).
fn is_shmem_file(line: &MapsLine<'_>) -> bool {
    if line.inode == 0 || line.path.is_empty() {
        return false;
    }
    // `f_type` is a `long` of the architecture's width (i64 on 64-bit targets).
    #[allow(clippy::unnecessary_cast)]
    let shmem = |f_type| matches!(f_type as i64, TMPFS_MAGIC | HUGETLBFS_MAGIC);
    rustix::fs::statfs(line.file_path())
        .map(|s| shmem(s.f_type))
        .unwrap_or(false)
}

/// The kernel's mode for a policy (as `mbind` and `set_mempolicy` take it).
pub(crate) fn mode_of(policy: &MemPolicy) -> u32 {
    match policy {
        MemPolicy::Local => mp::MPOL_LOCAL,
        MemPolicy::Bind(_) => mp::MPOL_BIND,
        MemPolicy::Preferred(_) => mp::MPOL_PREFERRED,
        MemPolicy::PreferredMany(_) => mp::MPOL_PREFERRED_MANY,
        MemPolicy::Interleave(_) => mp::MPOL_INTERLEAVE,
        // The kernel's own weights apply (its global table, never written here).
        MemPolicy::WeightedInterleave(_) => mp::MPOL_WEIGHTED_INTERLEAVE,
    }
}

/// The calling thread's policy from `get_mempolicy(2)`.
///
/// # Errors
/// The kernel's refusal, as a typed errno.
pub(crate) fn thread_policy() -> Result<Option<ThreadPolicy>, NumaError> {
    let mut mode = 0i32;
    let mut words = [0usize; MAX_NUMNODES / usize::BITS as usize];
    mp::get_mempolicy(
        &mut mode,
        &mut words,
        MAX_NUMNODES + 1,
        core::ptr::null(),
        0,
    )
    .map_err(|e| NumaError::from_errno("get_mempolicy", typed(e)))?;
    let mode = mode as u32;
    let flags = mode & (mp::MPOL_F_STATIC_NODES | mp::MPOL_F_RELATIVE_NODES);
    let node_mode = match flags {
        f if f == mp::MPOL_F_STATIC_NODES => NodeMode::Static,
        f if f == mp::MPOL_F_RELATIVE_NODES => NodeMode::Relative,
        _ => NodeMode::Default,
    };
    let numa_balancing = mode & mp::MPOL_F_NUMA_BALANCING != 0;
    let nodes = NodeMask::from_kernel(&words, MAX_NUMNODES + 1);
    let base =
        mode & !(mp::MPOL_F_STATIC_NODES | mp::MPOL_F_RELATIVE_NODES) & !mp::MPOL_F_NUMA_BALANCING;
    let policy = match base {
        m if m == mp::MPOL_DEFAULT => return Ok(None),
        m if m == mp::MPOL_LOCAL => MemPolicy::Local,
        // Before MPOL_LOCAL was reported, local allocation read as an empty preferred mask.
        m if m == mp::MPOL_PREFERRED => match nodes.first() {
            Some(n) => MemPolicy::Preferred(n),
            None => MemPolicy::Local,
        },
        m if m == mp::MPOL_BIND => MemPolicy::Bind(nodes),
        m if m == mp::MPOL_INTERLEAVE => MemPolicy::Interleave(nodes),
        m if m == mp::MPOL_PREFERRED_MANY => MemPolicy::PreferredMany(nodes),
        m if m == mp::MPOL_WEIGHTED_INTERLEAVE => {
            let table = crate::backend::kernel_weights(&nodes)?;
            let mut w = NodeWeights::new();
            for n in nodes.iter() {
                w.set(n, table.map_or(1, |t| t.weights.weight(n).max(1)))?;
            }
            MemPolicy::WeightedInterleave(w)
        }
        _ => {
            return Err(NumaError::Unsupported {
                feature: "a thread policy mode numaperf does not know",
                since: "a newer numaperf",
            })
        }
    };
    Ok(Some(ThreadPolicy {
        policy,
        node_mode,
        numa_balancing,
    }))
}

/// Sets the calling thread's policy with `set_mempolicy(2)` (`None`: `MPOL_DEFAULT`).
///
/// # Errors
/// The kernel's errno, untranslated (the caller types it).
pub(crate) fn set_thread_policy(policy: Option<&ThreadPolicy>) -> Result<(), rustix::io::Errno> {
    let Some(p) = policy else {
        return mp::set_mempolicy(mp::MPOL_DEFAULT, &[], 0);
    };
    let flags = match p.node_mode {
        NodeMode::Default => 0,
        NodeMode::Static => mp::MPOL_F_STATIC_NODES,
        NodeMode::Relative => mp::MPOL_F_RELATIVE_NODES,
    } | if p.numa_balancing {
        mp::MPOL_F_NUMA_BALANCING
    } else {
        0
    };
    let k = p.policy.nodes().to_kernel();
    mp::set_mempolicy(mode_of(&p.policy) | flags, k.used_words(), k.maxnode())
}

fn typed(e: rustix::io::Errno) -> numaperf_core::Errno {
    numaperf_core::Errno::from_raw(e.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_heap_is_placeable_and_a_file_is_not() {
        let v = vec![0u8; 1 << 20];
        let (s, e) = (v.as_ptr() as usize, v.as_ptr() as usize + v.len());
        assert_eq!(check_placeable(s & !4095, e & !4095), Ok(()));
        // This test binary's own text is a private file mapping.
        let f = own_heap_is_placeable_and_a_file_is_not as *const () as usize;
        assert_eq!(
            check_placeable(f & !4095, (f & !4095) + 4096),
            Err(NumaError::FileBackedMemory)
        );
        assert_eq!(check_placeable(4096, 8192), Err(NumaError::ForeignMapping));
    }

    #[test]
    fn thread_policy_round_trips() {
        std::thread::spawn(|| {
            let before = thread_policy().unwrap();
            let p = ThreadPolicy {
                policy: MemPolicy::Local,
                node_mode: NodeMode::Default,
                numa_balancing: false,
            };
            if set_thread_policy(Some(&p)) == Err(rustix::io::Errno::NOSYS) {
                println!("SKIPPED: this kernel has no mempolicy calls");
                return;
            }
            assert_eq!(thread_policy().unwrap(), Some(p));
            set_thread_policy(before.as_ref()).unwrap();
            assert_eq!(thread_policy().unwrap(), before);
        })
        .join()
        .unwrap();
    }
}
