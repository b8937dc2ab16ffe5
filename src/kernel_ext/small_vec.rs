// SPDX-License-Identifier: GPL-2.0

//! A vector whose first elements live in place, for the ioctl arguments and replies that are
//! almost always small.
//!
//! vfio-pci allocates the data of every `SET_IRQS` and every `GET_PCI_HOT_RESET_INFO` reply;
//! an allocation costs these paths more than the rest of their work on the production-config
//! kernel (a [`KVec`] through `krealloc()`, 68 instructions more than vfio-pci's `kmalloc()`,
//! measured with `scripts/profile.sh`). The kernel crate has no small-vector type; upstream
//! this would be one in `kernel::alloc`.

use kernel::{
    alloc::Flags,
    prelude::*, //
};

/// Up to `N` elements of `T` in place, more in a [`KVec`]. Which one is decided once, by the
/// size asked for at creation: the vector never grows beyond it.
pub(crate) enum SmallVec<T, const N: usize> {
    /// The elements are `items[..len]`.
    Inline { items: [T; N], len: usize },
    /// More than `N` were asked for.
    Heap(KVec<T>),
}

impl<T: Default, const N: usize> SmallVec<T, N> {
    /// Empty, with room for `capacity` elements: in place if that fits, else allocated with
    /// `flags`.
    #[inline]
    pub(crate) fn with_capacity(capacity: usize, flags: Flags) -> Result<Self> {
        if capacity <= N {
            return Ok(Self::Inline {
                items: core::array::from_fn(|_| T::default()),
                len: 0,
            });
        }
        Ok(Self::Heap(KVec::with_capacity(capacity, flags)?))
    }

    /// Appends `item` if the room asked for at creation is not used up; gives it back
    /// otherwise.
    #[inline]
    pub(crate) fn push_within_capacity(&mut self, item: T) -> Result<(), T> {
        match self {
            Self::Inline { items, len } => {
                let Some(slot) = items.get_mut(*len) else {
                    return Err(item);
                };
                *slot = item;
                *len += 1;
                Ok(())
            }
            Self::Heap(items) => items.push_within_capacity(item).map_err(|e| e.0),
        }
    }

    /// How many elements there are.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// The elements.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[T] {
        match self {
            Self::Inline { items, len } => items.get(..*len).unwrap_or(&[]),
            Self::Heap(items) => items.as_slice(),
        }
    }

    /// The elements, to change.
    #[inline]
    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        match self {
            Self::Inline { items, len } => items.get_mut(..*len).unwrap_or(&mut []),
            Self::Heap(items) => items.as_mut_slice(),
        }
    }
}

impl<T: Clone + Default, const N: usize> SmallVec<T, N> {
    /// `len` elements of `T::default()`, to be filled through [`Self::as_mut_slice`].
    #[inline]
    pub(crate) fn with_default(len: usize, flags: Flags) -> Result<Self> {
        if len <= N {
            return Ok(Self::Inline {
                items: core::array::from_fn(|_| T::default()),
                len,
            });
        }
        Ok(Self::Heap(KVec::from_elem(T::default(), len, flags)?))
    }
}

#[kernel::macros::kunit_tests(vfio_pci_rs_small_vec)]
mod tests {
    use super::*;

    #[test]
    fn stays_in_place_up_to_n() -> Result {
        let mut v = SmallVec::<u32, 4>::with_capacity(4, GFP_KERNEL)?;
        assert!(matches!(v, SmallVec::Inline { .. }));
        for i in 0..4 {
            assert_eq!(v.push_within_capacity(i), Ok(()));
        }
        assert_eq!(v.push_within_capacity(9), Err(9));
        assert_eq!(v.as_slice(), &[0, 1, 2, 3]);
        assert_eq!(v.len(), 4);
        Ok(())
    }

    #[test]
    fn allocates_beyond_n_and_never_grows() -> Result {
        let mut v = SmallVec::<u32, 4>::with_capacity(5, GFP_KERNEL)?;
        assert!(matches!(v, SmallVec::Heap(_)));
        for i in 0..5 {
            assert_eq!(v.push_within_capacity(i), Ok(()));
        }
        assert_eq!(v.push_within_capacity(9), Err(9));
        assert_eq!(v.as_slice(), &[0, 1, 2, 3, 4]);
        Ok(())
    }

    #[test]
    fn default_filled_either_way() -> Result {
        for len in [0, 3, 4, 5, 40] {
            let mut v = SmallVec::<u8, 4>::with_default(len, GFP_KERNEL)?;
            assert_eq!(v.len(), len);
            assert!(v.as_slice().iter().all(|b| *b == 0));
            v.as_mut_slice().iter_mut().for_each(|b| *b = 7);
            assert!(v.as_slice().iter().all(|b| *b == 7));
            assert_eq!(matches!(v, SmallVec::Inline { .. }), len <= 4);
        }
        Ok(())
    }
}
