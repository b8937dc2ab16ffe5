// SPDX-License-Identifier: GPL-2.0

//! A vector whose first elements live in place, for the ioctl arguments and replies that are
//! almost always small.
//!
//! vfio-pci allocates the data of every `SET_IRQS` and every `GET_PCI_HOT_RESET_INFO` reply;
//! an allocation costs these paths more than the rest of their work on the production-config
//! kernel (a [`KVec`] through `krealloc()`, 68 instructions more than vfio-pci's `kmalloc()`,
//! measured with `scripts/profile.sh`). The kernel crate has no small-vector type; upstream
//! this would be one in `kernel::alloc`.

use core::{
    mem::MaybeUninit,
    ptr,
    slice, //
};
use kernel::{
    alloc::Flags,
    prelude::*, //
};

/// Up to `N` elements of `T` in place, more in a [`KVec`]. Which one is decided once, by the
/// size asked for at creation: the vector never grows beyond it.
///
/// The room in place is left uninitialised until an element is pushed, and only the pushed
/// elements are dropped: a vector of guards for a set of 16 functions neither writes nor
/// checks the slots a set of two leaves empty.
pub(crate) struct SmallVec<T, const N: usize>(Storage<T, N>);

/// Where the elements of a [`SmallVec`] are.
///
/// # Invariants
///
/// In `Inline`, `len <= N` and `items[..len]` are initialised.
enum Storage<T, const N: usize> {
    /// The elements are `items[..len]`.
    Inline {
        items: [MaybeUninit<T>; N],
        len: usize,
    },
    /// More than `N` were asked for.
    Heap(KVec<T>),
}

impl<T, const N: usize> SmallVec<T, N> {
    /// Empty, with room for `capacity` elements: in place if that fits, else allocated with
    /// `flags`.
    #[inline]
    pub(crate) fn with_capacity(capacity: usize, flags: Flags) -> Result<Self> {
        if capacity <= N {
            // INVARIANT: No element is claimed to be initialised.
            return Ok(Self(Storage::Inline {
                items: [const { MaybeUninit::uninit() }; N],
                len: 0,
            }));
        }
        Ok(Self(Storage::Heap(KVec::with_capacity(capacity, flags)?)))
    }

    /// Appends `item` if the room asked for at creation is not used up; gives it back
    /// otherwise.
    #[inline]
    pub(crate) fn push_within_capacity(&mut self, item: T) -> Result<(), T> {
        match &mut self.0 {
            Storage::Inline { items, len } => {
                let Some(slot) = items.get_mut(*len) else {
                    return Err(item);
                };
                slot.write(item);
                // INVARIANT: `items[*len]` was just initialised, and `*len < N` since it
                // indexed `items`.
                *len += 1;
                Ok(())
            }
            Storage::Heap(items) => items.push_within_capacity(item).map_err(|e| e.0),
        }
    }

    /// How many elements there are.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        match &self.0 {
            Storage::Inline { len, .. } => *len,
            Storage::Heap(items) => items.len(),
        }
    }

    /// The elements.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[T] {
        match &self.0 {
            Storage::Inline { items, len } => {
                let init = items.get(..*len).unwrap_or(&[]);
                // SAFETY: `items[..len]` are initialised (type invariant), and
                // `MaybeUninit<T>` has the layout of `T`; the borrow of `self` keeps them so.
                unsafe { slice::from_raw_parts(init.as_ptr().cast::<T>(), init.len()) }
            }
            Storage::Heap(items) => items.as_slice(),
        }
    }

    /// The elements, to change.
    #[inline]
    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        match &mut self.0 {
            Storage::Inline { items, len } => {
                let init = items.get_mut(..*len).unwrap_or(&mut []);
                // SAFETY: As in `as_slice`; the borrow is exclusive, and a `T` written through
                // it leaves the slot initialised.
                unsafe { slice::from_raw_parts_mut(init.as_mut_ptr().cast::<T>(), init.len()) }
            }
            Storage::Heap(items) => items.as_mut_slice(),
        }
    }
}

impl<T: Clone + Default, const N: usize> SmallVec<T, N> {
    /// `len` elements of `T::default()`, to be filled through [`Self::as_mut_slice`].
    #[inline]
    pub(crate) fn with_default(len: usize, flags: Flags) -> Result<Self> {
        if len <= N {
            let mut items = [const { MaybeUninit::uninit() }; N];
            for slot in items.iter_mut().take(len) {
                slot.write(T::default());
            }
            // INVARIANT: `items[..len]` were just initialised, and `len <= N`.
            return Ok(Self(Storage::Inline { items, len }));
        }
        Ok(Self(Storage::Heap(KVec::from_elem(
            T::default(),
            len,
            flags,
        )?)))
    }
}

impl<T, const N: usize> Drop for SmallVec<T, N> {
    fn drop(&mut self) {
        // A `KVec` drops its elements itself.
        if let Storage::Inline { items, len } = &mut self.0 {
            let init = items.get_mut(..*len).unwrap_or(&mut []);
            let elements = ptr::slice_from_raw_parts_mut(init.as_mut_ptr().cast::<T>(), init.len());
            // SAFETY: `items[..len]` are initialised (type invariant) and, the vector going
            // away, nothing uses them after this drop.
            unsafe { ptr::drop_in_place(elements) };
        }
    }
}

#[kernel::macros::kunit_tests(vfio_pci_rs_small_vec)]
mod tests {
    use super::*;

    #[test]
    fn stays_in_place_up_to_n() -> Result {
        let mut v = SmallVec::<u32, 4>::with_capacity(4, GFP_KERNEL)?;
        assert!(matches!(v.0, Storage::Inline { .. }));
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
        assert!(matches!(v.0, Storage::Heap(_)));
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
            assert_eq!(matches!(v.0, Storage::Inline { .. }), len <= 4);
        }
        Ok(())
    }

    /// Counts its drops.
    struct Counted<'a>(&'a core::cell::Cell<usize>);

    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    #[test]
    fn drops_what_was_pushed_once() -> Result {
        for (capacity, pushed) in [(4, 0), (4, 2), (4, 4), (6, 6)] {
            let drops = core::cell::Cell::new(0);
            let mut v = SmallVec::<Counted<'_>, 4>::with_capacity(capacity, GFP_KERNEL)?;
            for _ in 0..pushed {
                assert!(v.push_within_capacity(Counted(&drops)).is_ok());
            }
            // Refused: dropped on the spot.
            if pushed == capacity {
                assert!(v.push_within_capacity(Counted(&drops)).is_err());
                assert_eq!(drops.get(), 1);
                drops.set(0);
            }
            assert_eq!(v.len(), pushed);
            drop(v);
            assert_eq!(drops.get(), pushed);
        }
        Ok(())
    }
}
