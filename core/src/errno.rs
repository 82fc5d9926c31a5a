//! A typed Linux errno (no_std): the value a failed system call returned, with its name.

use core::fmt;

/// A positive Linux errno value, as a failed system call reported it.
///
/// ```
/// use numaperf_core::Errno;
/// assert_eq!(Errno::EINVAL.raw(), 22);
/// assert_eq!(Errno::from_raw(22), Errno::EINVAL);
/// assert_eq!(Errno::EINVAL.name(), Some("EINVAL"));
/// assert_eq!(Errno::EINVAL.to_string(), "EINVAL");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Errno(i32);

macro_rules! errnos {
    ($($name:ident = $v:expr),* $(,)?) => {
        impl Errno {
            $(
                #[doc = concat!("`", stringify!($name), "`.")]
                pub const $name: Errno = Errno($v);
            )*

            /// The symbolic name (`"EINVAL"`), for the values numaperf meets.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($v => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

errnos! {
    EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, E2BIG = 7, EBADF = 9,
    EAGAIN = 11, ENOMEM = 12, EACCES = 13, EFAULT = 14, EBUSY = 16, EEXIST = 17,
    EXDEV = 18, ENODEV = 19, ENOTDIR = 20, EISDIR = 21, EINVAL = 22, ENOSPC = 28,
    ERANGE = 34, EDEADLK = 35, ENOSYS = 38, EOPNOTSUPP = 95,
}

impl Errno {
    /// The errno for a positive raw value (a negative one is taken by magnitude).
    pub const fn from_raw(raw: i32) -> Errno {
        Errno(raw.saturating_abs())
    }

    /// The positive raw value.
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// Whether this errno means the caller lacked the privilege (`EPERM`, `EACCES`).
    pub const fn is_permission(self) -> bool {
        matches!(self.0, 1 | 13)
    }
}

/// `EINVAL`, or `errno 999` for a value without a known name.
impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "errno {}", self.0),
        }
    }
}

/// `Errno(EINVAL=22)`.
impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "Errno({n}={})", self.0),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    #[test]
    fn names_and_values_round_trip() {
        assert_eq!(Errno::from_raw(-12), Errno::ENOMEM);
        assert_eq!(Errno::from_raw(i32::MIN).raw(), i32::MAX);
        assert_eq!(format!("{}", Errno::from_raw(999)), "errno 999");
        assert_eq!(format!("{:?}", Errno::EPERM), "Errno(EPERM=1)");
        assert!(Errno::EACCES.is_permission() && !Errno::EINVAL.is_permission());
    }
}
