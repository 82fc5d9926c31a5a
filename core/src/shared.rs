//! Shared-memory objects across the trait boundary: the owned token of an object a backend
//! created or opened (a memfd on Linux), and a borrowed handle to open another view of one.

use core::marker::PhantomData;

/// What a shared object's raw number is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedKind {
    /// A file descriptor of this process (a memfd, tmpfs or hugetlbfs file).
    Fd,
    /// An object number of a backend without file descriptors (the simulator).
    Object,
}

/// A shared-memory object a backend created or opened; a token like [`Mapping`]: whoever
/// holds it owns the object's handle and gives it back with the backend's `close_shared`.
///
/// The object's pages and their memory policy belong to the object, not to a mapping of
/// it (the kernel keeps a shmem file's policy on the file): every mapping of it, in any
/// process, sees the same pages and allocates new ones by the same policy.
///
/// [`Mapping`]: crate::backend::Mapping
#[derive(Debug, PartialEq, Eq)]
pub struct SharedObject {
    raw: i32,
    kind: SharedKind,
    size: usize,
    page_size: usize,
}

impl SharedObject {
    /// A token for an object handle.
    ///
    /// # Safety
    /// `raw` is a handle of `kind` that the token owns from now on (closed only by the
    /// backend's `close_shared` with this token); the object holds `size` bytes, a
    /// multiple of `page_size`, the size of its pages.
    pub unsafe fn from_raw_parts(
        raw: i32,
        kind: SharedKind,
        size: usize,
        page_size: usize,
    ) -> Self {
        SharedObject {
            raw,
            kind,
            size,
            page_size,
        }
    }

    /// The raw handle (a file descriptor for [`SharedKind::Fd`]), still owned by the token.
    pub fn raw(&self) -> i32 {
        self.raw
    }

    /// What the raw handle is.
    pub fn kind(&self) -> SharedKind {
        self.kind
    }

    /// The object's size in bytes (whole pages).
    pub fn size(&self) -> usize {
        self.size
    }

    /// The size of the object's pages (a huge page for hugetlbfs).
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// A handle borrowed from this token, for the backend's `open_shared`.
    pub fn handle(&self) -> SharedHandle<'_> {
        SharedHandle {
            raw: self.raw,
            kind: self.kind,
            _owner: PhantomData,
        }
    }
}

/// A borrowed handle of a shared-memory object, valid while what it borrows from lives
/// (a [`SharedObject`], or a file descriptor the caller owns): what a second mapping of
/// the object is opened from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedHandle<'a> {
    raw: i32,
    kind: SharedKind,
    _owner: PhantomData<&'a ()>,
}

impl SharedHandle<'_> {
    /// A handle of `kind` for `raw`.
    ///
    /// # Safety
    /// `raw` stays an open handle of `kind` for the handle's lifetime (for a file
    /// descriptor: the I/O-safety contract of `BorrowedFd::borrow_raw`).
    pub unsafe fn borrow_raw(raw: i32, kind: SharedKind) -> Self {
        SharedHandle {
            raw,
            kind,
            _owner: PhantomData,
        }
    }

    /// The raw handle.
    pub fn raw(&self) -> i32 {
        self.raw
    }

    /// What the raw handle is.
    pub fn kind(&self) -> SharedKind {
        self.kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_names_its_object() {
        // SAFETY: the token is only read here; no backend closes object 7.
        let o = unsafe { SharedObject::from_raw_parts(7, SharedKind::Object, 8192, 4096) };
        let h = o.handle();
        assert_eq!((h.raw(), h.kind()), (7, SharedKind::Object));
        assert_eq!((o.size(), o.page_size()), (8192, 4096));
    }
}
