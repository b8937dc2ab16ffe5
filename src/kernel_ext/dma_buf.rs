// SPDX-License-Identifier: GPL-2.0

//! dma-buf exports of PCI BAR ranges for peer-to-peer DMA, which the exporter can revoke.
//!
//! A [`BarSlices`] is a list of physical ranges of one memory BAR of a function bound to this
//! driver, with the BAR's P2PDMA provider (`pcim_p2pdma_provider()`, set up once at bind by
//! [`init_p2pdma`]). [`ExportSet::export`] makes it a dma-buf (`dma_buf_export()`, this
//! module as its owner, so the module stays loaded while the dma-buf lives) and installs a
//! file descriptor for it (`dma_buf_fd()`). The set keeps a list of its live exports (without
//! a reference: the dma-buf lives as long as user space and importers hold it) and moves them
//! all between two states:
//!
//! - **live**: importers that attach dynamically, allow peer-to-peer and can be revoked
//!   (`dma_buf_attach_revocable()`) get scatter lists of the ranges (`map_dma_buf`,
//!   `dma_buf_phys_vec_to_sgt()`);
//! - **revoked**: attaching (`ENODEV`) and mapping (`ENODEV`) fail; going there tells every
//!   importer to drop its mappings (`dma_buf_invalidate_mappings()`), waits for the
//!   reservation's fences and then for every mapping to be unmapped, so that no DMA reaches
//!   the BAR once [`ExportSet::revoke`] returns.
//!
//! [`ExportSet::detach_all`] (also run when the set is dropped) revokes every export for
//! good and forgets them: the dma-buf files may live on, revoked, after the device is closed;
//! they never reach the function again. The order of locks is: the set's list, then a
//! dma-buf's reservation lock, then its count of mappings.

use crate::kernel_ext::{
    bindings,
    compat::eopnotsupp,
    pci::{
        raw_of,
        OwnedDevice, //
    }, //
};
use core::{
    ptr::NonNull,
    sync::atomic::{
        AtomicBool,
        AtomicPtr,
        Ordering, //
    }, //
};
use kernel::{
    error::{
        from_result,
        to_result, //
    },
    ffi::c_int,
    new_condvar,
    new_mutex,
    prelude::*,
    sync::{
        Arc,
        CondVar,
        Mutex, //
    }, //
};

/// Sets up the P2PDMA providers of the memory BARs of `pdev` (device-managed: they live until
/// the driver unbinds), as vfio-pci does when it creates a device; `EOPNOTSUPP` when the
/// platform forbids CPU mappings of its BARs.
pub(crate) fn init_p2pdma(pdev: &OwnedDevice) -> Result {
    // SAFETY: `pdev` is a function bound to this driver (type invariant of `OwnedDevice`),
    // probed and not yet removed, as device-managed setup requires.
    to_result(unsafe { bindings::pcim_p2pdma_init(raw_of(pdev)) })
}

/// Whether `e` is the `EOPNOTSUPP` of [`init_p2pdma`]: the platform forbids CPU mappings of
/// the function's BARs, so it has no P2PDMA providers (and exports nothing), but binds.
pub(crate) fn p2pdma_unsupported(e: Error) -> bool {
    e == eopnotsupp()
}

/// A physical range of a BAR (`struct phys_vec`).
#[derive(Clone, Copy)]
pub(crate) struct PhysRange {
    /// Address of the first byte.
    pub(crate) addr: u64,
    /// Length in bytes.
    pub(crate) len: u64,
}

/// The P2PDMA provider of a memory BAR of a function bound to this driver.
///
/// # Invariants
///
/// The pointer is what `pcim_p2pdma_provider()` returned for a BAR of a function bound to
/// this driver: it lives until the driver unbinds, which the exports outlive only revoked
/// (the device is closed, and its set detached, before it unbinds).
pub(crate) struct P2pProvider(NonNull<bindings::p2pdma_provider>);

impl P2pProvider {
    /// The provider of BAR `bar` of `pdev`; `EINVAL` if it has none (not a memory BAR, or
    /// [`init_p2pdma`] failed).
    pub(crate) fn of(pdev: &OwnedDevice, bar: u8) -> Result<Self> {
        if u32::from(bar) >= kernel::bindings::PCI_STD_NUM_BARS {
            return Err(EINVAL);
        }
        // SAFETY: `pdev` is a function bound to this driver; `bar` is a standard BAR index.
        let provider = unsafe { bindings::pcim_p2pdma_provider(raw_of(pdev), c_int::from(bar)) };
        // INVARIANT: Returned by `pcim_p2pdma_provider()` for a BAR of `pdev`.
        NonNull::new(provider).map(Self).ok_or(EINVAL)
    }
}

/// Ranges of one memory BAR, with the BAR's P2PDMA provider, ready to export.
pub(crate) struct BarSlices {
    provider: P2pProvider,
    ranges: KVec<bindings::phys_vec>,
    size: usize,
}

impl BarSlices {
    /// The ranges `ranges` (`size` bytes in all) of the BAR of `provider`; the caller checked
    /// them against the BAR.
    pub(crate) fn new(provider: P2pProvider, ranges: &[PhysRange], size: usize) -> Result<Self> {
        let mut phys = KVec::with_capacity(ranges.len(), GFP_KERNEL)?;
        for range in ranges {
            phys.push(
                bindings::phys_vec {
                    paddr: range.addr,
                    len: range.len as usize,
                },
                GFP_KERNEL,
            )?;
        }
        Ok(Self {
            provider,
            ranges: phys,
            size,
        })
    }
}

/// One exported dma-buf, its `priv`.
#[pin_data]
struct Export {
    /// The dma-buf; set once, right after `dma_buf_export()` returned it.
    dmabuf: AtomicPtr<bindings::dma_buf>,
    slices: BarSlices,
    /// Whether attaching and mapping fail; changed with the reservation lock held.
    revoked: AtomicBool,
    /// How many scatter lists importers hold (`map_dma_buf` not yet unmapped).
    #[pin]
    maps: Mutex<usize>,
    /// Signalled when `maps` drops to zero.
    #[pin]
    unmapped: CondVar,
    /// The list the export is in until it is released or detached.
    set: Arc<SetList>,
}

// SAFETY: The provider pointer is only passed to the dma-buf core, which may use it from any
// thread; the rest is synchronised (atomics, locks).
unsafe impl Send for Export {}
// SAFETY: As above.
unsafe impl Sync for Export {}

impl Export {
    fn dmabuf(&self) -> *mut bindings::dma_buf {
        self.dmabuf.load(Ordering::Acquire)
    }

    /// The export of `dmabuf`, one of ours.
    ///
    /// # Safety
    ///
    /// `dmabuf` must be a dma-buf exported with [`OPS`] that was not yet released.
    unsafe fn of<'a>(dmabuf: *mut bindings::dma_buf) -> &'a Self {
        // SAFETY: Our dma-bufs' `priv` is a leaked `Pin<KBox<Export>>`, freed in `release`.
        unsafe { &*bindings::vfio_pci_rs_dma_buf_priv(dmabuf).cast::<Self>() }
    }

    /// Moves the export to `revoked` (vfio-pci's `vfio_pci_dma_buf_move()` for one buffer),
    /// telling importers to drop their mappings either way, and when revoking, waiting for
    /// them to have done so.
    fn set_revoked(&self, revoked: bool) {
        let dmabuf = self.dmabuf();
        if self.revoked.load(Ordering::Relaxed) == revoked {
            return;
        }
        // SAFETY: `dmabuf` is live: the caller holds a reference to its file (and so do the
        // calls below).
        unsafe { bindings::vfio_pci_rs_dma_buf_resv_lock(dmabuf) };
        if revoked {
            self.revoked.store(true, Ordering::Relaxed);
        }
        // SAFETY: As above; the reservation lock is held, as the call requires.
        unsafe { bindings::dma_buf_invalidate_mappings(dmabuf) };
        // SAFETY: As above.
        unsafe { bindings::vfio_pci_rs_dma_buf_resv_wait(dmabuf) };
        // SAFETY: As above; locked above.
        unsafe { bindings::vfio_pci_rs_dma_buf_resv_unlock(dmabuf) };
        if revoked {
            let mut maps = self.maps.lock();
            while *maps != 0 {
                self.unmapped.wait(&mut maps);
            }
        } else {
            // SAFETY: As above.
            unsafe { bindings::vfio_pci_rs_dma_buf_resv_lock(dmabuf) };
            self.revoked.store(false, Ordering::Relaxed);
            // SAFETY: As above; locked just above.
            unsafe { bindings::vfio_pci_rs_dma_buf_resv_unlock(dmabuf) };
        }
    }
}

/// The live exports of a set.
///
/// # Invariants
///
/// Every pointer in the list is the `Export` of a dma-buf exported with [`OPS`] whose
/// `release` has not finished: `release` removes it under the list's lock before freeing it.
#[pin_data]
struct SetList {
    #[pin]
    exports: Mutex<KVec<NonNull<Export>>>,
}

// SAFETY: The pointers are only dereferenced under the lock, while valid (type invariant).
unsafe impl Send for SetList {}
// SAFETY: As above.
unsafe impl Sync for SetList {}

impl SetList {
    /// Revokes (`revoked`) or restores every export. Out of line, so that what calls it for
    /// every function of a set (the hot reset) inlines only the check for a function that never
    /// exported one, as vfio-pci's `vfio_pci_dma_buf_move()` walks an empty list.
    #[inline(never)]
    fn set_all_revoked(&self, revoked: bool) {
        drop(self.for_each_active(|export| export.set_revoked(revoked)));
    }

    /// Calls `f` on every export in the list whose dma-buf file is still referenced (one whose
    /// last reference is gone is about to be released), holding a reference meanwhile; returns
    /// with the list still locked, for [`ExportSet::detach_all`].
    fn for_each_active(
        &self,
        mut f: impl FnMut(&Export),
    ) -> kernel::sync::MutexGuard<'_, KVec<NonNull<Export>>> {
        let exports = self.exports.lock();
        for export in exports.iter() {
            // SAFETY: In the list, so not yet freed (type invariant), and the lock held keeps
            // `release` from freeing it.
            let export = unsafe { export.as_ref() };
            let dmabuf = export.dmabuf();
            // SAFETY: The dma-buf is not freed before its `release` returns.
            if !unsafe { bindings::vfio_pci_rs_dma_buf_get_active(dmabuf) } {
                continue;
            }
            f(export);
            // SAFETY: Drops the reference taken just above.
            unsafe { bindings::vfio_pci_rs_dma_buf_fput(dmabuf) };
        }
        exports
    }
}

/// The dma-bufs exported from one function, which its owner revokes and restores together
/// (vfio-pci's `vdev->dmabufs`). Callers serialise changes (the driver holds its memory gate
/// exclusive), so that the state of every export follows the function's.
pub(crate) struct ExportSet {
    /// Allocated at the first export.
    list: Option<Arc<SetList>>,
}

impl ExportSet {
    /// A set with no exports.
    pub(crate) const fn new() -> Self {
        Self { list: None }
    }

    /// Exports `slices` as a dma-buf, revoked from the start if `revoked`, and returns a new
    /// file descriptor for it, opened with `open_flags` (`O_CLOEXEC`, access mode).
    pub(crate) fn export(
        &mut self,
        slices: BarSlices,
        open_flags: u32,
        revoked: bool,
    ) -> Result<i32> {
        let list = match &self.list {
            Some(list) => list.clone(),
            None => {
                let list = Arc::pin_init(
                    pin_init!(SetList {
                        exports <- new_mutex!(KVec::new(), "vfio_pci_rs::dma_buf::SetList"),
                    }),
                    GFP_KERNEL,
                )?;
                self.list = Some(list.clone());
                list
            }
        };
        let size = slices.size;
        let back_link = list.clone();
        let export = KBox::pin_init(
            pin_init!(Export {
                dmabuf: AtomicPtr::new(core::ptr::null_mut()),
                slices,
                revoked: AtomicBool::new(revoked),
                maps <- new_mutex!(0, "vfio_pci_rs::dma_buf::Export::maps"),
                unmapped <- new_condvar!("vfio_pci_rs::dma_buf::Export::unmapped"),
                set: back_link,
            }),
            GFP_KERNEL,
        )?;
        // SAFETY: The box is only freed by `release` (or below, if the export fails), and never
        // moved: its pointer is the dma-buf's `priv`.
        let export = KBox::into_raw(unsafe { Pin::into_inner_unchecked(export) });
        // SAFETY: `OPS` is 'static and complete; `export` is valid until `release`.
        let dmabuf = unsafe {
            bindings::vfio_pci_rs_dma_buf_export(&OPS, size, open_flags as c_int, export.cast())
        };
        let dmabuf = match kernel::error::from_err_ptr(dmabuf) {
            Ok(dmabuf) => dmabuf,
            Err(e) => {
                // SAFETY: The export failed, so nothing else has the pointer; it came from
                // `KBox::into_raw` above.
                drop(unsafe { KBox::from_raw(export) });
                return Err(e);
            }
        };
        // SAFETY: `export` is valid until `release`, which cannot run before we drop the
        // reference `dma_buf_export()` gave us.
        let export_ref = unsafe { &*export };
        export_ref.dmabuf.store(dmabuf, Ordering::Release);
        let pushed = {
            let mut exports = list.exports.lock();
            // SAFETY: `dmabuf` is live (we hold its reference).
            unsafe { bindings::vfio_pci_rs_dma_buf_resv_lock(dmabuf) };
            export_ref.revoked.store(revoked, Ordering::Relaxed);
            // INVARIANT: An export of ours, released only through `release`, which removes it.
            // SAFETY: `export` is not null (it came from a box).
            let pushed = exports.push(unsafe { NonNull::new_unchecked(export) }, GFP_KERNEL);
            // SAFETY: Locked just above.
            unsafe { bindings::vfio_pci_rs_dma_buf_resv_unlock(dmabuf) };
            pushed
        };
        if let Err(e) = pushed {
            // SAFETY: Gives back our reference; `release` frees the export.
            unsafe { bindings::dma_buf_put(dmabuf) };
            return Err(e.into());
        }
        // SAFETY: `dmabuf` is live; on success the new descriptor owns our reference.
        let fd = unsafe { bindings::dma_buf_fd(dmabuf, open_flags as c_int) };
        if fd < 0 {
            // SAFETY: The reference was not consumed; give it back.
            unsafe { bindings::dma_buf_put(dmabuf) };
            return Err(Error::from_errno(fd));
        }
        Ok(fd)
    }

    /// Revokes every export (see the module documentation); returns once no importer maps
    /// any of them.
    #[inline]
    pub(crate) fn revoke(&mut self) {
        if let Some(list) = &self.list {
            list.set_all_revoked(true);
        }
    }

    /// Makes every export live again.
    #[inline]
    pub(crate) fn restore(&mut self) {
        if let Some(list) = &self.list {
            list.set_all_revoked(false);
        }
    }

    /// Revokes every export for good and forgets them all (the last close of the device).
    pub(crate) fn detach_all(&mut self) {
        if let Some(list) = self.list.take() {
            let mut exports = list.for_each_active(|export| export.set_revoked(true));
            exports.clear();
        }
    }
}

impl Drop for ExportSet {
    fn drop(&mut self) {
        self.detach_all();
    }
}

/// The ops of every dma-buf this driver exports.
static OPS: bindings::dma_buf_ops = bindings::dma_buf_ops {
    attach: Some(attach_callback),
    map_dma_buf: Some(map_callback),
    unmap_dma_buf: Some(unmap_callback),
    release: Some(release_callback),
    // SAFETY: All other members are optional callbacks (null pointers) and flags (zero).
    ..unsafe { core::mem::zeroed() }
};

/// `attach`: only importers that allow peer-to-peer (`EOPNOTSUPP`) and can be revoked
/// (`EOPNOTSUPP`) attach, and only to a live export (`ENODEV`), in vfio-pci's order.
///
/// # Safety
///
/// The dma-buf core calls it with one of our dma-bufs and an attachment being set up for it.
unsafe extern "C" fn attach_callback(
    dmabuf: *mut bindings::dma_buf,
    attachment: *mut bindings::dma_buf_attachment,
) -> c_int {
    // SAFETY: `dmabuf` is ours and not released (it has an attachment being made).
    let export = unsafe { Export::of(dmabuf) };
    // SAFETY: `attachment` is valid for the call.
    let peer2peer = unsafe { (*attachment).peer2peer };
    from_result(|| {
        if !peer2peer {
            return Err(eopnotsupp());
        }
        if export.revoked.load(Ordering::Relaxed) {
            return Err(ENODEV);
        }
        // SAFETY: `attachment` is valid for the call.
        if !unsafe { bindings::dma_buf_attach_revocable(attachment) } {
            return Err(eopnotsupp());
        }
        Ok(0)
    })
}

/// The dma-buf an attachment is for.
///
/// # Safety
///
/// `attachment` must be a valid attachment.
unsafe fn dmabuf_of(attachment: *mut bindings::dma_buf_attachment) -> *mut bindings::dma_buf {
    // SAFETY: Valid by the requirement; the dma-buf core sets `dmabuf` before any op.
    unsafe { (*attachment).dmabuf }
}

/// `map_dma_buf`: a scatter list of the ranges for the importer's device, or `ENODEV` once
/// revoked.
///
/// # Safety
///
/// The dma-buf core calls it with an attachment of one of our dma-bufs, holding its
/// reservation lock.
unsafe extern "C" fn map_callback(
    attachment: *mut bindings::dma_buf_attachment,
    dir: kernel::bindings::dma_data_direction,
) -> *mut kernel::bindings::sg_table {
    // SAFETY: By the function's requirements.
    let dmabuf = unsafe { dmabuf_of(attachment) };
    // SAFETY: `dmabuf` is ours and live.
    unsafe { bindings::vfio_pci_rs_dma_buf_resv_assert_held(dmabuf) };
    // SAFETY: `dmabuf` is ours and live.
    let export = unsafe { Export::of(dmabuf) };
    if export.revoked.load(Ordering::Relaxed) {
        return ENODEV.to_ptr();
    }
    let slices = &export.slices;
    // SAFETY: The provider lives while the export is live (invariant of `P2pProvider`); the
    // ranges are valid for reads (the core does not write them despite the `*mut`).
    let sgt = unsafe {
        bindings::dma_buf_phys_vec_to_sgt(
            attachment,
            slices.provider.0.as_ptr(),
            slices.ranges.as_ptr().cast_mut(),
            slices.ranges.len(),
            slices.size,
            dir,
        )
    };
    if kernel::error::from_err_ptr(sgt).is_ok() {
        *export.maps.lock() += 1;
    }
    sgt
}

/// `unmap_dma_buf`: frees a scatter list [`map_callback`] made.
///
/// # Safety
///
/// The dma-buf core calls it with an attachment of one of our dma-bufs, holding its
/// reservation lock, and a list `map_callback` returned for it.
unsafe extern "C" fn unmap_callback(
    attachment: *mut bindings::dma_buf_attachment,
    sgt: *mut kernel::bindings::sg_table,
    dir: kernel::bindings::dma_data_direction,
) {
    // SAFETY: By the function's requirements.
    let dmabuf = unsafe { dmabuf_of(attachment) };
    // SAFETY: `dmabuf` is ours and live.
    unsafe { bindings::vfio_pci_rs_dma_buf_resv_assert_held(dmabuf) };
    // SAFETY: `dmabuf` is ours and live.
    let export = unsafe { Export::of(dmabuf) };
    // SAFETY: `sgt` was made by `dma_buf_phys_vec_to_sgt()` for `attachment`.
    unsafe { bindings::dma_buf_free_sgt(attachment, sgt, dir) };
    let mut maps = export.maps.lock();
    *maps = maps.saturating_sub(1);
    if *maps == 0 {
        export.unmapped.notify_all();
    }
}

/// `release`: the last reference to one of our dma-bufs is gone; forgets and frees its export.
///
/// # Safety
///
/// The dma-buf core calls it once per dma-buf, after which it frees the dma-buf.
unsafe extern "C" fn release_callback(dmabuf: *mut bindings::dma_buf) {
    // SAFETY: `priv` is the pointer `ExportSet::export` leaked from a box.
    let export = unsafe { bindings::vfio_pci_rs_dma_buf_priv(dmabuf) }.cast::<Export>();
    {
        // SAFETY: Valid until freed below.
        let set = unsafe { &(*export).set };
        let mut exports = set.exports.lock();
        if let Some(at) = exports.iter().position(|e| e.as_ptr() == export) {
            let _ = exports.remove(at);
        }
    }
    // SAFETY: No one can reach the export any more (out of the list, its dma-buf released);
    // it came from `KBox::into_raw`.
    drop(unsafe { KBox::from_raw(export) });
}
