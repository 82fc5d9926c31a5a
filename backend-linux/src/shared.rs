//! Shared-memory objects on Linux: a memfd (`MFD_CLOEXEC | MFD_ALLOW_SEALING`, `MFD_HUGETLB`
//! for explicit huge pages) sized with `ftruncate`, sealed against shrinking
//! (`F_SEAL_SHRINK`) and mapped `MAP_SHARED`; a policy mbound on a shared mapping of shmem
//! or hugetlbfs becomes the file's, so every process mapping it follows it.
//!
//! The seal is what makes the safe accessors safe: without it any process holding a
//! descriptor could `ftruncate` the file shorter and every mapping's next access past the
//! new end would fault (`SIGBUS`). So `open` takes only files that carry it.

use std::os::fd::{BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::ptr::NonNull;

use linux_raw_sys::general::{HUGETLBFS_MAGIC, TMPFS_MAGIC};
use numaperf_core::region::round_to_unit;
use numaperf_core::{HugePages, Mapping, NumaError, SharedHandle, SharedKind, SharedObject};
use rustix::fs::{self, MemfdFlags, SealFlags};
use rustix::io::{self, Errno};
use rustix::mm::{self, MapFlags, ProtFlags};

use crate::backend::errno_error;

/// A new memfd of `len` bytes rounded up to whole pages of `huge` (`page`: the base page).
pub(crate) fn create(len: usize, huge: HugePages, page: usize) -> Result<SharedObject, NumaError> {
    let unit = huge.unit(page);
    let size = round_to_unit(len, unit)?;
    let flags = MemfdFlags::CLOEXEC
        | MemfdFlags::ALLOW_SEALING
        | match huge {
            HugePages::None | HugePages::Transparent => MemfdFlags::empty(),
            HugePages::Explicit2M => MemfdFlags::HUGETLB | MemfdFlags::HUGE_2MB,
            HugePages::Explicit1G => MemfdFlags::HUGETLB | MemfdFlags::HUGE_1GB,
        };
    let fd = fs::memfd_create(c"numaperf", flags).map_err(|e| match e {
        // Sealing hugetlb memfds came in Linux 4.16: before, the pair is EINVAL.
        Errno::INVAL
            if unit > page
                && fs::memfd_create(c"numaperf", flags - MemfdFlags::ALLOW_SEALING).is_ok() =>
        {
            NumaError::Unsupported {
                feature: "sealing a hugetlb memfd (MFD_HUGETLB | MFD_ALLOW_SEALING)",
                since: "Linux 4.16",
            }
        }
        // No hugetlbfs mount of that page size (or none at all).
        Errno::INVAL | Errno::NOENT if unit > page => {
            NumaError::HugePagesUnavailable { page_size: unit }
        }
        e => errno_error("memfd_create", e),
    })?;
    fs::ftruncate(&fd, size as u64).map_err(|e| errno_error("ftruncate", e))?;
    // From here on nobody, this process included, can make the file shorter.
    fs::fcntl_add_seals(&fd, SealFlags::SHRINK).map_err(|e| match e {
        Errno::INVAL => NumaError::Unsupported {
            feature: "sealing a memfd (F_ADD_SEALS)",
            since: "Linux 3.17 (hugetlb memfds: 4.16)",
        },
        e => errno_error("fcntl(F_ADD_SEALS)", e),
    })?;
    // SAFETY: the token takes over the descriptor just made (closed by `close`); the file
    // holds `size` bytes, whole pages of `unit`.
    Ok(unsafe { SharedObject::from_raw_parts(fd.into_raw_fd(), SharedKind::Fd, size, unit) })
}

/// A close-on-exec duplicate of the descriptor `h`, checked to be shmem (a memfd, tmpfs or
/// `/dev/shm` file) or hugetlbfs open for reading and writing and sealed against
/// shrinking (so the size read here holds for as long as the mapping), with its size
/// rounded up to its pages.
pub(crate) fn open(h: SharedHandle<'_>, page: usize) -> Result<SharedObject, NumaError> {
    if h.kind() != SharedKind::Fd || h.raw() < 0 {
        return Err(NumaError::NotSharedMemory);
    }
    // SAFETY: the handle's contract: `raw` is an open descriptor while `h` lives.
    let borrowed = unsafe { BorrowedFd::borrow_raw(h.raw()) };
    let fd = io::fcntl_dupfd_cloexec(borrowed, 0)
        .map_err(|e| errno_error("fcntl(F_DUPFD_CLOEXEC)", e))?;
    let sfs = fs::fstatfs(&fd).map_err(|e| errno_error("fstatfs", e))?;
    let unit = match sfs.f_type as u32 {
        TMPFS_MAGIC => page,
        HUGETLBFS_MAGIC => usize::try_from(sfs.f_bsize).map_err(|_| NumaError::NotSharedMemory)?,
        _ => return Err(NumaError::NotSharedMemory),
    };
    // A mapping every process writes needs a descriptor open for both.
    let access = fs::fcntl_getfl(&fd).map_err(|e| errno_error("fcntl(F_GETFL)", e))?;
    if access & fs::OFlags::RWMODE != fs::OFlags::RDWR {
        return Err(NumaError::PermissionDenied {
            op: "mmap(MAP_SHARED) of a descriptor not open for reading and writing",
        });
    }
    let st = fs::fstat(&fd).map_err(|e| errno_error("fstat", e))?;
    if !fs::FileType::from_raw_mode(st.st_mode).is_file() {
        return Err(NumaError::NotSharedMemory);
    }
    // Seals only ever get added, so one checked now holds until the file is gone; the
    // size is read after it.
    let seals = fs::fcntl_get_seals(&fd).map_err(|e| match e {
        Errno::INVAL => NumaError::SharedObjectUnsealed,
        e => errno_error("fcntl(F_GET_SEALS)", e),
    })?;
    if !seals.contains(SealFlags::SHRINK) {
        return Err(NumaError::SharedObjectUnsealed);
    }
    let st = fs::fstat(&fd).map_err(|e| errno_error("fstat", e))?;
    let size = usize::try_from(st.st_size).map_err(|_| NumaError::NotSharedMemory)?;
    let size = round_to_unit(size, unit)?;
    // SAFETY: the token takes over the duplicate; the size is rounded to whole pages
    // (a tmpfs file's last partial page is mapped whole, as mmap does).
    Ok(unsafe { SharedObject::from_raw_parts(fd.into_raw_fd(), SharedKind::Fd, size, unit) })
}

/// A `MAP_SHARED` read-write mapping of the first `len` bytes of `obj`.
///
/// Whether shmem pages are transparent huge pages is the kernel's `shmem_enabled`
/// setting (system-wide, `never` by default), which numaperf never changes: an object asked
/// with [`HugePages::Transparent`] gets whatever that allows.
pub(crate) fn map(obj: &SharedObject, len: usize) -> Result<Mapping, NumaError> {
    if obj.kind() != SharedKind::Fd {
        return Err(NumaError::NotSharedMemory);
    }
    let unit = obj.page_size();
    let mapped = round_to_unit(len, unit)?;
    if mapped > obj.size() {
        return Err(NumaError::SharedObjectTooSmall {
            len,
            size: obj.size() as u64,
        });
    }
    // SAFETY: the token owns the descriptor while `obj` lives.
    let fd = unsafe { BorrowedFd::borrow_raw(obj.raw()) };
    // SAFETY: a fresh shared mapping at an address the kernel picks (null hint): it
    // aliases no Rust object of this process.
    let addr = unsafe {
        mm::mmap(
            std::ptr::null_mut(),
            mapped,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            fd,
            0,
        )
    }
    .map_err(|e| match e {
        // hugetlbfs reserves its pages when mapping.
        Errno::NOMEM if unit > rustix::param::page_size() => {
            NumaError::HugePagesUnavailable { page_size: unit }
        }
        e => errno_error("mmap(MAP_SHARED)", e),
    })?;
    let addr = NonNull::new(addr.cast::<u8>()).ok_or(NumaError::Os {
        op: "mmap",
        errno: numaperf_core::Errno::EFAULT,
    })?;
    // SAFETY: `addr..addr + mapped` is the fresh mapping made above, mapped until `unmap`
    // is called with this token; `unit` divides `mapped`.
    Ok(unsafe { Mapping::from_raw_parts(addr, len, mapped, unit) })
}

/// Closes the token's descriptor.
pub(crate) fn close(obj: &SharedObject) -> Result<(), NumaError> {
    if obj.kind() != SharedKind::Fd || obj.raw() < 0 {
        return Err(NumaError::ForeignMapping);
    }
    // SAFETY: `close_shared`'s contract: the token owned this descriptor and is not used
    // again, so it is closed exactly once, here.
    drop(unsafe { OwnedFd::from_raw_fd(obj.raw()) });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, AsRawFd};

    #[test]
    fn a_memfd_is_shared_memory_and_a_regular_file_is_not() {
        let page = rustix::param::page_size();
        let obj = create(page + 1, HugePages::None, page).unwrap();
        assert_eq!(obj.size(), 2 * page);
        let again = open(obj.handle(), page).unwrap();
        assert_ne!(again.raw(), obj.raw());
        assert_eq!((again.size(), again.page_size()), (2 * page, page));
        assert_eq!(
            map(&again, 3 * page).unwrap_err(),
            NumaError::SharedObjectTooSmall {
                len: 3 * page,
                size: 2 * page as u64
            }
        );
        close(&again).unwrap();
        let path = format!("/proc/self/fd/{}", obj.raw());
        let read_only = std::fs::File::open(path).unwrap();
        // SAFETY: `read_only` lives to the end of the test.
        let h = unsafe { SharedHandle::borrow_raw(read_only.as_raw_fd(), SharedKind::Fd) };
        assert!(matches!(
            open(h, page),
            Err(NumaError::PermissionDenied { .. })
        ));
        close(&obj).unwrap();
        let file = std::fs::File::open("/proc/self/status").unwrap();
        // SAFETY: `file` lives to the end of the test.
        let h = unsafe { SharedHandle::borrow_raw(file.as_raw_fd(), SharedKind::Fd) };
        assert_eq!(open(h, page).unwrap_err(), NumaError::NotSharedMemory);
        // SAFETY: -1 is refused before it is used as a descriptor.
        let bad = unsafe { SharedHandle::borrow_raw(-1, SharedKind::Fd) };
        assert_eq!(open(bad, page).unwrap_err(), NumaError::NotSharedMemory);
    }

    #[test]
    fn nobody_can_shrink_a_created_object_and_unsealed_files_are_refused() {
        let page = rustix::param::page_size();
        let obj = create(4 * page, HugePages::None, page).unwrap();
        // SAFETY: the token owns the descriptor until `close` below.
        let own = unsafe { BorrowedFd::borrow_raw(obj.raw()) };
        // A second open file description, as another process gets by path or socket.
        let other = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/self/fd/{}", obj.raw()))
            .unwrap();
        for fd in [own, other.as_fd()] {
            assert_eq!(fs::ftruncate(fd, page as u64), Err(Errno::PERM));
            assert_eq!(fs::ftruncate(fd, 0), Err(Errno::PERM));
        }
        assert_eq!(fs::fstat(&other).unwrap().st_size, 4 * page as i64);
        // Growing stays allowed (the mappings keep their length) and is no shrink.
        fs::ftruncate(&other, 5 * page as u64).unwrap();
        let again = open(obj.handle(), page).unwrap();
        assert_eq!(again.size(), 5 * page);
        close(&again).unwrap();
        close(&obj).unwrap();

        // A memfd made without the seal (sealable or not) is refused.
        for flags in [
            MemfdFlags::CLOEXEC,
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        ] {
            let fd = fs::memfd_create(c"unsealed", flags).unwrap();
            fs::ftruncate(&fd, page as u64).unwrap();
            // SAFETY: `fd` lives to the end of the iteration.
            let h = unsafe { SharedHandle::borrow_raw(fd.as_raw_fd(), SharedKind::Fd) };
            assert_eq!(open(h, page).unwrap_err(), NumaError::SharedObjectUnsealed);
        }
        // A tmpfs file opened by path cannot be sealed at all.
        let dir = std::path::Path::new("/dev/shm");
        let tmpfs = fs::statfs(dir).is_ok_and(|s| s.f_type as u32 == TMPFS_MAGIC);
        if !tmpfs {
            return println!("SKIPPED (tmpfs part): /dev/shm is not a tmpfs mount here");
        }
        let path = dir.join(format!("numaperf-unsealed-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        file.set_len(page as u64).unwrap();
        // SAFETY: `file` lives to the end of the test.
        let h = unsafe { SharedHandle::borrow_raw(file.as_raw_fd(), SharedKind::Fd) };
        assert_eq!(open(h, page).unwrap_err(), NumaError::SharedObjectUnsealed);
    }
}
