//! The small allocations' size classes: 16-byte steps to 128 bytes, then four classes per
//! doubling up to [`SMALL_MAX`] (40 classes, at most 25% slack above 128 bytes).

/// The largest small allocation; anything larger gets a mapping of its own.
pub(crate) const SMALL_MAX: usize = 32 << 10;

/// Number of size classes.
pub(crate) const CLASSES: usize = 40;

/// The largest alignment a small block can have (a slab starts on a page boundary).
pub(crate) const SMALL_MAX_ALIGN: usize = 4096;

/// The class of the smallest block holding `size` bytes (`None`: above [`SMALL_MAX`]).
fn class_of_size(size: usize) -> Option<usize> {
    if size <= 128 {
        return Some(size.max(1).div_ceil(16) - 1);
    }
    if size > SMALL_MAX {
        return None;
    }
    // 2^k < size <= 2^(k+1), k >= 7; four classes of 2^(k-2) bytes each.
    let k = (usize::BITS - 1 - (size - 1).leading_zeros()) as usize;
    let step = 1usize << (k - 2);
    let sub = (size - (1 << k)).div_ceil(step);
    Some(8 + (k - 7) * 4 + sub - 1)
}

/// The block size of class `i` (`i < CLASSES`).
pub(crate) const fn class_size(i: usize) -> usize {
    if i < 8 {
        return 16 * (i + 1);
    }
    let j = i - 8;
    let k = 7 + j / 4;
    (1 << k) + (j % 4 + 1) * (1 << (k - 2))
}

/// The alignment every block of class `i` has in a page-aligned slab whose blocks start at
/// a multiple of it: the largest power of two dividing the block size, at most a page.
pub(crate) const fn class_align(i: usize) -> usize {
    let size = class_size(i);
    let a = 1 << size.trailing_zeros();
    if a > SMALL_MAX_ALIGN {
        SMALL_MAX_ALIGN
    } else {
        a
    }
}

/// The class for `size` bytes aligned to `align` (a power of two): the smallest class that
/// holds the size and whose blocks have the alignment; `None` when no small class does.
pub(crate) fn class_for(size: usize, align: usize) -> Option<usize> {
    if align > SMALL_MAX_ALIGN {
        return None;
    }
    let mut i = class_of_size(size.max(align))?;
    while class_align(i) < align {
        i += 1;
        if i >= CLASSES {
            return None;
        }
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn classes_grow_and_end_at_the_small_limit() {
        assert_eq!(class_size(0), 16);
        assert_eq!(class_size(8), 160);
        assert_eq!(class_size(CLASSES - 1), SMALL_MAX);
        for i in 1..CLASSES {
            assert!(class_size(i) > class_size(i - 1));
            assert_eq!(class_size(i) % 16, 0);
        }
        assert_eq!(class_for(SMALL_MAX + 1, 8), None);
        assert_eq!(class_for(8, 8192), None);
        assert_eq!(class_for(0, 1), Some(0));
    }

    proptest! {
        #[test]
        fn a_class_holds_the_size_aligned(size in 0usize..=SMALL_MAX, shift in 0u32..=12) {
            let align = 1usize << shift;
            let i = class_for(size, align).unwrap();
            prop_assert!(class_size(i) >= size);
            prop_assert_eq!(class_size(i) % align, 0);
            prop_assert!(class_align(i) >= align);
            // Any size between the asked one and the block's is the same class (so a
            // deallocation with the returned length finds the block's class).
            prop_assert_eq!(class_for(class_size(i), align), Some(i));
            if align <= 16 && size > 128 {
                prop_assert!(class_size(i) - size <= size / 4);
            }
        }
    }
}
