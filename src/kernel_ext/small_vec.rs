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

/// Up to `N` elements of `T` in place, more in a [`KVec`]. Which one is decided by the room
/// asked for ([`Self::reserve`], or [`Self::push`] once the room is used up).
///
/// A vector meant to live in a caller's frame is made with [`Self::new`] and filled through a
/// `&mut`: returning one by value (or in a `Result`) moves its room in place, which is a
/// `memcpy()` of all `N` slots (the hot reset's guard vectors cost 444 instructions a reset
/// that way, `scripts/profile.sh` on the test kernel).
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
    /// Empty, with room for `N` elements in place.
    #[inline]
    pub(crate) const fn new() -> Self {
        // INVARIANT: No element is claimed to be initialised.
        Self(Storage::Inline {
            items: [const { MaybeUninit::uninit() }; N],
            len: 0,
        })
    }

    /// Makes room for `additional` more elements: in place while they fit, else in a [`KVec`]
    /// allocated with `flags` (the elements in place move there).
    #[inline]
    pub(crate) fn reserve(&mut self, additional: usize, flags: Flags) -> Result {
        match &mut self.0 {
            Storage::Inline { len, .. } if additional <= N - *len => Ok(()),
            Storage::Inline { items, len } => {
                let needed = len.checked_add(additional).ok_or(ENOMEM)?;
                let mut heap = KVec::with_capacity(needed, flags)?;
                let count = core::mem::replace(len, 0);
                // INVARIANT: From here on no element is claimed to be initialised in place:
                // each one is moved out exactly once, below.
                for slot in items.iter().take(count) {
                    // SAFETY: `items[..count]` were initialised (type invariant), and `len` is
                    // 0 now, so each is read out once and never dropped in place.
                    let item = unsafe { slot.assume_init_read() };
                    // `needed >= count`: there is room for every element moved.
                    let _ = heap.push_within_capacity(item);
                }
                self.0 = Storage::Heap(heap);
                Ok(())
            }
            Storage::Heap(items) => Ok(items.reserve(additional, flags)?),
        }
    }

    /// Appends `item` if the room asked for is not used up; gives it back otherwise.
    #[inline]
    pub(crate) fn push_within_capacity(&mut self, item: T) -> Result<(), T> {
        match &mut self.0 {
            Storage::Inline { items, len } => {
                let index = *len;
                let Some(slot) = items.get_mut(index) else {
                    return Err(item);
                };
                slot.write(item);
                // INVARIANT: `items[index]` was just initialised, and `index < N` since it
                // indexed `items` (so the compiler knows the sum does not overflow).
                *len = index + 1;
                Ok(())
            }
            Storage::Heap(items) => items.push_within_capacity(item).map_err(|e| e.0),
        }
    }

    /// Appends `item`, making room as [`Self::reserve`] does (for as many again) when there
    /// is none left, so that a vector filled one element at a time needs no count first.
    #[inline]
    pub(crate) fn push(&mut self, item: T, flags: Flags) -> Result {
        match self.push_within_capacity(item) {
            Ok(()) => Ok(()),
            Err(item) => self.grow_and_push(item, flags),
        }
    }

    /// [`Self::push`] once the room is used up.
    #[cold]
    fn grow_and_push(&mut self, item: T, flags: Flags) -> Result {
        self.reserve(self.len().max(1), flags)?;
        // There is room now.
        self.push_within_capacity(item).map_err(|_| ENOMEM)
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
    /// Appends `additional` elements of `T::default()`, to be filled through
    /// [`Self::as_mut_slice`], making room for them as [`Self::reserve`] does.
    #[inline]
    pub(crate) fn extend_default(&mut self, additional: usize, flags: Flags) -> Result {
        self.reserve(additional, flags)?;
        match &mut self.0 {
            Storage::Inline { items, len } => {
                let start = *len;
                let room = items.get_mut(start..).unwrap_or(&mut []);
                // `reserve` left room in place for all of them.
                let added = room.len().min(additional);
                for slot in room.iter_mut().take(added) {
                    slot.write(T::default());
                }
                // INVARIANT: `items[start..start + added]` were just initialised, and
                // `start + added <= N`, the length of `items`.
                *len = start + added;
                Ok(())
            }
            Storage::Heap(items) => Ok(items.extend_with(additional, T::default(), flags)?),
        }
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

    /// An empty vector with room for `capacity` elements.
    fn with_room<T, const N: usize>(capacity: usize) -> Result<SmallVec<T, N>> {
        let mut v = SmallVec::new();
        v.reserve(capacity, GFP_KERNEL)?;
        Ok(v)
    }

    #[test]
    fn stays_in_place_up_to_n() -> Result {
        let mut v = with_room::<u32, 4>(4)?;
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
        let mut v = with_room::<u32, 4>(5)?;
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
            let mut v = SmallVec::<u8, 4>::new();
            v.extend_default(len, GFP_KERNEL)?;
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
            let mut v = with_room::<Counted<'_>, 4>(capacity)?;
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

    #[test]
    fn reserve_stays_in_place_while_it_fits() -> Result {
        let mut v = SmallVec::<u32, 4>::new();
        assert_eq!(v.len(), 0);
        v.reserve(3, GFP_KERNEL)?;
        assert_eq!(v.push_within_capacity(1), Ok(()));
        v.reserve(3, GFP_KERNEL)?;
        assert!(matches!(v.0, Storage::Inline { .. }));
        // Nothing beyond what was reserved, in place or not.
        for i in 2..5 {
            assert_eq!(v.push_within_capacity(i), Ok(()));
        }
        assert_eq!(v.push_within_capacity(9), Err(9));
        assert_eq!(v.as_slice(), &[1, 2, 3, 4]);
        Ok(())
    }

    #[test]
    fn reserve_moves_to_the_heap_once_and_drops_once() -> Result {
        let drops = core::cell::Cell::new(0);
        let mut v = SmallVec::<Counted<'_>, 4>::new();
        v.reserve(2, GFP_KERNEL)?;
        for _ in 0..2 {
            assert!(v.push_within_capacity(Counted(&drops)).is_ok());
        }
        // Two in place, then room for five more: all seven on the heap.
        v.reserve(5, GFP_KERNEL)?;
        assert!(matches!(v.0, Storage::Heap(_)));
        assert_eq!(drops.get(), 0);
        assert_eq!(v.len(), 2);
        for _ in 0..5 {
            assert!(v.push_within_capacity(Counted(&drops)).is_ok());
        }
        assert_eq!(v.len(), 7);
        v.reserve(1, GFP_KERNEL)?;
        assert!(v.push_within_capacity(Counted(&drops)).is_ok());
        drop(v);
        assert_eq!(drops.get(), 8);
        Ok(())
    }

    #[test]
    fn extend_default_keeps_what_was_there() -> Result {
        let mut v = SmallVec::<u8, 4>::new();
        v.extend_default(2, GFP_KERNEL)?;
        v.as_mut_slice().iter_mut().for_each(|b| *b = 5);
        v.extend_default(1, GFP_KERNEL)?;
        assert_eq!(v.as_slice(), &[5, 5, 0]);
        v.extend_default(3, GFP_KERNEL)?;
        assert!(matches!(v.0, Storage::Heap(_)));
        assert_eq!(v.as_slice(), &[5, 5, 0, 0, 0, 0]);
        Ok(())
    }

    #[test]
    fn push_spills_to_the_heap_once_full() -> Result {
        let drops = core::cell::Cell::new(0);
        let mut v = SmallVec::<Counted<'_>, 4>::new();
        for _ in 0..4 {
            v.push(Counted(&drops), GFP_KERNEL)?;
        }
        assert!(matches!(v.0, Storage::Inline { .. }));
        for _ in 0..9 {
            v.push(Counted(&drops), GFP_KERNEL)?;
        }
        assert!(matches!(v.0, Storage::Heap(_)));
        assert_eq!(v.len(), 13);
        assert_eq!(drops.get(), 0);
        drop(v);
        assert_eq!(drops.get(), 13);
        Ok(())
    }
}
