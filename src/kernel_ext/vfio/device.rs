// SPDX-License-Identifier: GPL-2.0

//! The VFIO core's `struct vfio_device`, with a driver's per-device state embedded after it.
//!
//! The VFIO core allocates the object (`_vfio_alloc_device`), counts references to it through
//! its embedded `struct device`, and frees it after calling the `release` op. [`VfioDevice`]
//! places the driver's state `T` right after the core's part, initialises it in place once the
//! core has allocated the object, and drops it in `release`, so the state lives exactly as long
//! as the core can call back into it. The ops table is built once per `T` from the
//! [`VfioDeviceOps`] trait, a `#[vtable]`: the ops a driver does not implement are left `NULL`
//! for the core, as in C. iommufd binding goes through the core's physical-device helpers.
//!
//! Each device is put in its dev_set ([`super::DevSetKey`]) when it is created, once, before
//! anyone else can reach it; `open_device` and `close_device` are handed the set the core
//! holds locked around them.

use super::{
    dev_set::{
        self,
        SetLocked, //
    },
    DevSetKey,
    LockedDevSet, //
};
use crate::kernel_ext::{
    bindings,
    compat,
    pci::OwnedDevice, //
};
use core::{
    any::TypeId,
    mem::{
        size_of,
        MaybeUninit, //
    },
    ops::Deref,
    ptr::{
        addr_of_mut,
        NonNull, //
    }, //
};
use kernel::{
    error::{
        from_err_ptr,
        from_result,
        to_result,
        VTABLE_DEFAULT_ERROR, //
    },
    ffi::{
        c_char,
        c_int,
        c_long,
        c_uint,
        c_ulong,
        c_void, //
    },
    mm::virt::VmaNew,
    prelude::*,
    sync::aref::{
        ARef,
        AlwaysRefCounted, //
    },
    types::Opaque,
    uaccess::UserPtr, //
};

/// The callbacks a driver implements for its VFIO devices (`struct vfio_device_ops`).
///
/// Every op is optional: one the implementation leaves out is `NULL` in the ops table, and
/// the core then does what it does for a C driver without it.
#[vtable]
pub(crate) trait VfioDeviceOps: Sized + Send + Sync + 'static {
    /// The driver name the VFIO core reports (`vfio_device_ops.name`).
    const NAME: &'static CStr;

    /// The per-device state the device's dev_set lock protects (see [`super::SetMember`]).
    type SetState: Copy + Default + Send;

    /// First open of the device; the core holds the lock of `set`, the device's dev_set.
    fn open_device(_dev: &VfioDevice<Self>, _set: &LockedDevSet<'_, Self>) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Last close of the device; the core holds the lock of `set`, the device's dev_set.
    fn close_device(_dev: &VfioDevice<Self>, _set: &LockedDevSet<'_, Self>) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// A `VFIO_DEVICE_*` ioctl the core does not handle itself.
    fn ioctl(_dev: &VfioDevice<Self>, _cmd: u32, _arg: usize) -> Result<isize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The core asks the user to release the device (unbind in progress), `count` times so far.
    fn request(_dev: &VfioDevice<Self>, _count: u32) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `read(2)` of `count` bytes at `*pos` of the device file into user memory at `buf`;
    /// advances `*pos` by what it returns.
    fn read(
        _dev: &VfioDevice<Self>,
        _buf: UserPtr,
        _count: usize,
        _pos: &mut i64,
    ) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `write(2)` of `count` bytes from user memory at `buf` to `*pos` of the device file;
    /// advances `*pos` by what it returns.
    fn write(
        _dev: &VfioDevice<Self>,
        _buf: UserPtr,
        _count: usize,
        _pos: &mut i64,
    ) -> Result<usize> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `mmap(2)` of the device file: sets up `vma` (a mapping being created).
    fn mmap(_dev: &VfioDevice<Self>, _vma: &VmaNew) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `VFIO_DEVICE_GET_REGION_INFO`: fills `info` for `info.index` (the core has checked
    /// `argsz` and copies the result and the capabilities out).
    fn region_info(
        _dev: &VfioDevice<Self>,
        _info: &mut bindings::vfio_region_info,
        _caps: &mut InfoCaps<'_>,
    ) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Whether `name` (given to `VFIO_GROUP_GET_DEVICE_FD`) names this device; may carry
    /// options after the device name, whose errors abort the lookup.
    fn match_name(_dev: &VfioDevice<Self>, _name: &CStr) -> Result<bool> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// Checks the token offered (or not) when the device is opened.
    fn match_token(_dev: &VfioDevice<Self>, _token: Option<&[u8; 16]>) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// A `VFIO_DEVICE_FEATURE` the core does not handle itself; `arg` points past the
    /// `vfio_device_feature` header, `argsz` counts the bytes there. Returns what the ioctl
    /// returns: 0, or a new file descriptor.
    fn device_feature(
        _dev: &VfioDevice<Self>,
        _flags: u32,
        _arg: UserPtr,
        _argsz: usize,
    ) -> Result<i32> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// The capability chain of an info ioctl's reply, collected by the core
/// (`struct vfio_info_cap`), which appends it after the fixed reply.
pub(crate) struct InfoCaps<'a>(&'a mut bindings::vfio_info_cap);

impl InfoCaps<'_> {
    /// Appends the capability `cap`, whose bytes start with a `vfio_info_cap_header`; the
    /// core fills in the header's `next` link.
    pub(crate) fn add(&mut self, cap: &[u8]) -> Result {
        if cap.len() < size_of::<bindings::vfio_info_cap_header>() {
            return Err(EINVAL);
        }
        // SAFETY: `self.0` is the core's chain for this ioctl; `cap` is a readable buffer of
        // `cap.len()` bytes beginning with a header (checked above), which the core only
        // reads (copies) despite the non-const parameter.
        to_result(unsafe {
            bindings::vfio_info_add_capability(self.0, cap.as_ptr().cast_mut().cast(), cap.len())
        })
    }
}

/// A `struct vfio_device` followed by the driver's state.
///
/// # Invariants
///
/// - The object was allocated by the VFIO core with [`VfioDevice::<T>::OPS`] as its ops, so
///   every callback the core makes on it is for a `VfioDevice<T>`.
/// - Once [`VfioDevice::new`] has returned it, `data` is initialised (and `data_ready` true)
///   until the `release` op drops it, `set_state` is initialised, and the device is in its
///   dev_set for good.
#[repr(C)]
pub(crate) struct VfioDevice<T: VfioDeviceOps> {
    core: Opaque<bindings::vfio_device>,
    /// `TypeId::of::<T>()`, right after `core`, so at the same offset whatever `T` is: a
    /// dev_set walk checks it before it takes a member for a `VfioDevice<T>`.
    driver_type: TypeId,
    /// Whether `data` holds a value; the core zeroes the allocation, so it starts false.
    data_ready: bool,
    /// The state of the device its dev_set's lock protects.
    pub(super) set_state: SetLocked<T::SetState>,
    data: MaybeUninit<T>,
}

// SAFETY: The core's part is synchronised by the core; `T` is `Send`.
unsafe impl<T: VfioDeviceOps> Send for VfioDevice<T> {}
// SAFETY: The core's part is synchronised by the core; `T` is `Sync`.
unsafe impl<T: VfioDeviceOps> Sync for VfioDevice<T> {}

// SAFETY: The object is reference counted through its embedded `struct device`, and the core
// frees it (after `release`) only when that count reaches zero. Every `&VfioDevice` this layer
// lends outside itself is backed by a reference: an `ARef`, a registration, or a core callback
// on an open or registered device. The one place a device may be reached with its count at
// zero, a dev_set member whose release waits for the set lock, lends only its driver state
// (`SetMember::data`), never the device.
unsafe impl<T: VfioDeviceOps> AlwaysRefCounted for VfioDevice<T> {
    fn inc_ref(&self) {
        // SAFETY: The shared reference proves the count is non-zero (see above).
        unsafe { kernel::bindings::get_device(addr_of_mut!((*self.as_raw()).device)) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller gives back a reference it owns.
        unsafe { kernel::bindings::put_device(addr_of_mut!((*obj.as_ref().as_raw()).device)) };
    }
}

impl<T: VfioDeviceOps> Deref for VfioDevice<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: By the type invariant `data` is initialised while anyone can reach `self`.
        unsafe { self.data.assume_init_ref() }
    }
}

/// The callback `op` when the driver implements it (`present`, a `HAS_*` constant of its
/// `#[vtable]`), else none: the core then takes its default.
const fn optional<F: Copy>(present: bool, op: F) -> Option<F> {
    if present {
        Some(op)
    } else {
        None
    }
}

impl<T: VfioDeviceOps> VfioDevice<T> {
    const OPS: bindings::vfio_device_ops = bindings::vfio_device_ops {
        name: kernel::str::as_char_ptr_in_const_context(T::NAME).cast_mut(),
        init: None,
        release: Some(Self::release_callback),
        bind_iommufd: Some(bindings::vfio_iommufd_physical_bind),
        unbind_iommufd: Some(bindings::vfio_iommufd_physical_unbind),
        attach_ioas: Some(bindings::vfio_iommufd_physical_attach_ioas),
        detach_ioas: Some(bindings::vfio_iommufd_physical_detach_ioas),
        pasid_attach_ioas: Some(bindings::vfio_iommufd_physical_pasid_attach_ioas),
        pasid_detach_ioas: Some(bindings::vfio_iommufd_physical_pasid_detach_ioas),
        open_device: optional(T::HAS_OPEN_DEVICE, Self::open_device_callback),
        close_device: optional(T::HAS_CLOSE_DEVICE, Self::close_device_callback),
        read: optional(T::HAS_READ, Self::read_callback),
        write: optional(T::HAS_WRITE, Self::write_callback),
        ioctl: optional(T::HAS_IOCTL, Self::ioctl_callback),
        get_region_info_caps: optional(T::HAS_REGION_INFO, Self::region_info_callback),
        mmap: optional(T::HAS_MMAP, Self::mmap_callback),
        request: optional(T::HAS_REQUEST, Self::request_callback),
        match_: optional(T::HAS_MATCH_NAME, Self::match_callback),
        match_token_uuid: optional(T::HAS_MATCH_TOKEN, Self::match_token_callback),
        dma_unmap: None,
        device_feature: optional(T::HAS_DEVICE_FEATURE, Self::device_feature_callback),
    };

    /// Allocates a VFIO device for `parent`, a function this driver was probed with,
    /// initialises its state with `init` and puts it in the dev_set keyed by `set`. The result
    /// can be registered once ([`Self::register`]).
    #[expect(
        clippy::new_ret_no_self,
        reason = "the device exists from here on; only its registration is still to come"
    )]
    pub(crate) fn new(
        parent: &OwnedDevice,
        set: DevSetKey<'_>,
        init: impl PinInit<T, Error>,
    ) -> Result<Unregistered<T>> {
        // The core allocates with `kvzalloc`, which aligns to `ARCH_KMALLOC_MINALIGN` only.
        const {
            assert!(core::mem::align_of::<Self>() <= kernel::bindings::ARCH_KMALLOC_MINALIGN);
        }
        // SAFETY: `parent`'s device is valid while `parent` lives; the size covers `Self`,
        // whose first field is the core's struct; `OPS` is 'static.
        let raw = unsafe {
            bindings::_vfio_alloc_device(
                size_of::<Self>(),
                crate::kernel_ext::pci::device_raw_of(parent),
                &Self::OPS,
            )
        };
        let raw = from_err_ptr(raw)?.cast::<Self>();
        // SAFETY: `_vfio_alloc_device` returned a valid, zeroed object of `size_of::<Self>()`
        // bytes with one reference, which the `ARef` now owns; `Self` is `repr(C)` with the
        // core's struct first. If `init` fails, dropping the `ARef` frees the object without
        // touching `data`, since `data_ready` is still false.
        let this = unsafe { ARef::from_raw(NonNull::new_unchecked(raw)) };
        // SAFETY: `set_state` is uninitialised memory inside the allocation that no one else
        // can reach yet; it needs no drop, being `Copy`.
        unsafe { addr_of_mut!((*raw).set_state).write(SetLocked::new()) };
        // SAFETY: As above, the field is ours to initialise.
        unsafe { addr_of_mut!((*raw).driver_type).write(TypeId::of::<T>()) };
        // SAFETY: `data` is uninitialised memory inside the allocation that no one else can
        // reach yet (the device is not registered); the core never moves the object, so
        // in-place (pinned) initialisation is sound.
        unsafe { compat::pin_init_at(addr_of_mut!((*raw).data).cast::<T>(), init)? };
        // SAFETY: As above, no one else can reach the object yet.
        // INVARIANT: `data` was initialised just above.
        unsafe { (*raw).data_ready = true };
        // INVARIANT: Assigned once, here, before the device is registered.
        dev_set::assign(&this, set)?;
        // INVARIANT: `this` is the only reference to the new device.
        Ok(Unregistered(this))
    }

    /// The device `core` is the `vfio_device` of, if it is a `VfioDevice<T>`.
    ///
    /// # Safety
    ///
    /// `core` must be the `vfio_device` of a live `VfioDevice<U>`, for some `U`, made by
    /// [`Self::new`] (every device in a dev_set this layer keys is), live for `'a`.
    pub(in crate::kernel_ext) unsafe fn from_core_of_type<'a>(
        core: *mut bindings::vfio_device,
    ) -> Option<&'a Self> {
        // SAFETY: `VfioDevice<U>` is `repr(C)` and starts with `core` and `driver_type`, whose
        // offset does not depend on `U`; `new` initialised it before the device could be in a
        // set.
        let driver_type = unsafe { (*core.cast::<Self>()).driver_type };
        // SAFETY: The same type as ours: `core` is a `VfioDevice<T>` by the safety requirement.
        (driver_type == TypeId::of::<T>()).then(|| unsafe { Self::from_core(core) })
    }

    /// The core's `struct vfio_device`.
    pub(in crate::kernel_ext) fn as_raw(&self) -> *mut bindings::vfio_device {
        self.core.get()
    }

    /// # Safety
    ///
    /// `core` must be the `vfio_device` of a live `VfioDevice<T>` (a VFIO core callback for a
    /// device allocated with [`Self::OPS`]).
    pub(in crate::kernel_ext) unsafe fn from_core<'a>(
        core: *mut bindings::vfio_device,
    ) -> &'a Self {
        // SAFETY: `core` is the first field of a `repr(C)` `Self` by the safety requirement.
        unsafe { &*core.cast::<Self>() }
    }

    /// Registers the device with the VFIO core as a physical device with an IOMMU group.
    /// The returned guard unregisters it when dropped.
    pub(crate) fn register(this: Unregistered<T>) -> Result<Registration<T>> {
        let this = this.0;
        // SAFETY: `this` is a fully initialised VFIO device with physical iommufd ops, never
        // registered before (type invariant of `Unregistered`, which was consumed).
        to_result(unsafe { bindings::vfio_register_group_dev(this.as_raw()) })?;
        Ok(Registration(this))
    }

    /// Whether the current user opened the device through its cdev (not through its group).
    pub(crate) fn cdev_opened(&self) -> bool {
        // SAFETY: `self.as_raw()` is valid; the core writes the bit when the device is opened,
        // before any ioctl on the opened device can read it.
        unsafe { bindings::vfio_device::cdev_opened_raw(self.as_raw()) != 0 }
    }

    /// The `release` op.
    ///
    /// # Safety
    ///
    /// Only the VFIO core calls it, on a device allocated with [`Self::OPS`], with the
    /// arguments `struct vfio_device_ops` documents for `release`.
    unsafe extern "C" fn release_callback(core: *mut bindings::vfio_device) {
        let this = core.cast::<Self>();
        // SAFETY: The core calls `release` once, when the last reference is gone, on an object
        // allocated with our ops; by the type invariant `data` is initialised iff `data_ready`.
        unsafe {
            if (*this).data_ready {
                (*this).data_ready = false;
                (*this).data.assume_init_drop();
            }
        }
    }

    /// The `open_device` op.
    ///
    /// # Safety
    ///
    /// Only the VFIO core calls it, on a device allocated with [`Self::OPS`], with the
    /// arguments `struct vfio_device_ops` documents for `open_device`.
    unsafe extern "C" fn open_device_callback(core: *mut bindings::vfio_device) -> c_int {
        // SAFETY: The core only calls our ops on our devices.
        let this = unsafe { Self::from_core(core) };
        // SAFETY: The core holds the dev_set lock around `open_device`; `set` is dropped
        // before we return.
        let set = unsafe { LockedDevSet::held_by_core(this) };
        from_result(|| T::open_device(this, &set).map(|()| 0))
    }

    /// The `close_device` op.
    ///
    /// # Safety
    ///
    /// Only the VFIO core calls it, on a device allocated with [`Self::OPS`], with the
    /// arguments `struct vfio_device_ops` documents for `close_device`.
    unsafe extern "C" fn close_device_callback(core: *mut bindings::vfio_device) {
        // SAFETY: The core only calls our ops on our devices.
        let this = unsafe { Self::from_core(core) };
        // SAFETY: The core holds the dev_set lock around `close_device`; `set` is dropped
        // before we return.
        let set = unsafe { LockedDevSet::held_by_core(this) };
        T::close_device(this, &set)
    }

    /// The `ioctl` op.
    ///
    /// # Safety
    ///
    /// Only the VFIO core calls it, on a device allocated with [`Self::OPS`], with the
    /// arguments `struct vfio_device_ops` documents for `ioctl`.
    unsafe extern "C" fn ioctl_callback(
        core: *mut bindings::vfio_device,
        cmd: c_uint,
        arg: c_ulong,
    ) -> c_long {
        // SAFETY: The core only calls our ops on our devices.
        let this = unsafe { Self::from_core(core) };
        match T::ioctl(this, cmd, arg) {
            Ok(ret) => ret as c_long,
            Err(err) => err.to_errno() as c_long,
        }
    }

    /// The `read` op.
    ///
    /// # Safety
    ///
    /// Only the VFIO core calls it, on a device allocated with [`Self::OPS`], with the
    /// arguments `struct vfio_device_ops` documents for `read`.
    unsafe extern "C" fn read_callback(
        core: *mut bindings::vfio_device,
        buf: *mut c_char,
        count: usize,
        ppos: *mut i64,
    ) -> isize {
        // SAFETY: The core only calls our ops on our devices.
        let this = unsafe { Self::from_core(core) };
        // SAFETY: The core passes the file position of this `read(2)`, valid for the call.
        let pos = unsafe { &mut *ppos };
        match T::read(this, UserPtr::from_ptr(buf.cast()), count, pos) {
            Ok(done) => done as isize,
            Err(err) => err.to_errno() as isize,
        }
    }

    /// The `write` op.
    ///
    /// # Safety
    ///
    /// Only the VFIO core calls it, on a device allocated with [`Self::OPS`], with the
    /// arguments `struct vfio_device_ops` documents for `write`.
    unsafe extern "C" fn write_callback(
        core: *mut bindings::vfio_device,
        buf: *const c_char,
        count: usize,
        ppos: *mut i64,
    ) -> isize {
        // SAFETY: The core only calls our ops on our devices.
        let this = unsafe { Self::from_core(core) };
        // SAFETY: The core passes the file position of this `write(2)`, valid for the call.
        let pos = unsafe { &mut *ppos };
        match T::write(this, UserPtr::from_ptr(buf.cast_mut().cast()), count, pos) {
            Ok(done) => done as isize,
            Err(err) => err.to_errno() as isize,
        }
    }

    /// The `mmap` op.
    ///
    /// # Safety
    ///
    /// Only the VFIO core calls it, on a device allocated with [`Self::OPS`], with the
    /// arguments `struct vfio_device_ops` documents for `mmap`.
    unsafe extern "C" fn mmap_callback(
        core: *mut bindings::vfio_device,
        vma: *mut kernel::bindings::vm_area_struct,
    ) -> c_int {
        // SAFETY: The core only calls our ops on our devices.
        let this = unsafe { Self::from_core(core) };
        // SAFETY: The core calls `mmap` from the file's `mmap` hook, with the new mapping
        // set up but not yet visible, and the mmap lock held for writing.
        let vma = unsafe { VmaNew::from_raw(vma) };
        from_result(|| T::mmap(this, vma).map(|()| 0))
    }

    /// The `get_region_info_caps` op.
    ///
    /// # Safety
    ///
    /// Only the VFIO core calls it, on a device allocated with [`Self::OPS`], with the
    /// arguments `struct vfio_device_ops` documents for `get_region_info_caps`.
    unsafe extern "C" fn region_info_callback(
        core: *mut bindings::vfio_device,
        info: *mut bindings::vfio_region_info,
        caps: *mut bindings::vfio_info_cap,
    ) -> c_int {
        // SAFETY: The core only calls our ops on our devices.
        let this = unsafe { Self::from_core(core) };
        // SAFETY: Both point to the core's locals of this ioctl, exclusively ours for the call.
        let (info, caps) = unsafe { (&mut *info, &mut *caps) };
        from_result(|| T::region_info(this, info, &mut InfoCaps(caps)).map(|()| 0))
    }

    /// The `match` op.
    ///
    /// # Safety
    ///
    /// Only the VFIO core calls it, on a device allocated with [`Self::OPS`], with the
    /// arguments `struct vfio_device_ops` documents for `match`.
    unsafe extern "C" fn match_callback(
        core: *mut bindings::vfio_device,
        buf: *mut c_char,
    ) -> c_int {
        // SAFETY: The core only calls our ops on our devices.
        let this = unsafe { Self::from_core(core) };
        // SAFETY: The core passes the NUL-terminated name user space gave, live for the call.
        let name = unsafe { CStr::from_char_ptr(buf) };
        match T::match_name(this, name) {
            Ok(found) => c_int::from(found),
            Err(err) => err.to_errno(),
        }
    }

    /// The `match_token_uuid` op.
    ///
    /// # Safety
    ///
    /// Only the VFIO core calls it, on a device allocated with [`Self::OPS`], with the
    /// arguments `struct vfio_device_ops` documents for `match_token_uuid`.
    unsafe extern "C" fn match_token_callback(
        core: *mut bindings::vfio_device,
        uuid: *const kernel::bindings::uuid_t,
    ) -> c_int {
        // SAFETY: The core only calls our ops on our devices.
        let this = unsafe { Self::from_core(core) };
        // SAFETY: When not null, `uuid` points to the core's copy of the token, live for the
        // call.
        let token = unsafe { uuid.as_ref() }.map(|uuid| &uuid.b);
        from_result(|| T::match_token(this, token).map(|()| 0))
    }

    /// The `device_feature` op.
    ///
    /// # Safety
    ///
    /// Only the VFIO core calls it, on a device allocated with [`Self::OPS`], with the
    /// arguments `struct vfio_device_ops` documents for `device_feature`.
    unsafe extern "C" fn device_feature_callback(
        core: *mut bindings::vfio_device,
        flags: u32,
        arg: *mut c_void,
        argsz: usize,
    ) -> c_int {
        // SAFETY: The core only calls our ops on our devices.
        let this = unsafe { Self::from_core(core) };
        from_result(|| T::device_feature(this, flags, UserPtr::from_ptr(arg), argsz))
    }

    /// The user mappings of the device's file, lent to code that removes them.
    #[inline]
    pub(crate) fn mappings(&self) -> &FileMappings {
        // SAFETY: `FileMappings` is a `repr(transparent)` wrapper of the `Opaque` core struct
        // that `self.core` is, so the cast reference is valid for as long as `self` is.
        unsafe { &*core::ptr::from_ref(&self.core).cast::<FileMappings>() }
    }

    /// The `request` op.
    ///
    /// # Safety
    ///
    /// Only the VFIO core calls it, on a device allocated with [`Self::OPS`], with the
    /// arguments `struct vfio_device_ops` documents for `request`.
    unsafe extern "C" fn request_callback(core: *mut bindings::vfio_device, count: c_uint) {
        // SAFETY: The core only calls our ops on our devices.
        let this = unsafe { Self::from_core(core) };
        T::request(this, count)
    }
}

/// A VFIO device made by [`VfioDevice::new`] and not registered yet.
///
/// # Invariants
///
/// The reference is the only one to a device that was never registered: the type is neither
/// `Clone` nor gives out the `ARef`, so [`VfioDevice::register`], which consumes it, registers
/// a device at most once.
pub(crate) struct Unregistered<T: VfioDeviceOps>(ARef<VfioDevice<T>>);

impl<T: VfioDeviceOps> Deref for Unregistered<T> {
    type Target = VfioDevice<T>;

    fn deref(&self) -> &VfioDevice<T> {
        &self.0
    }
}

/// The user mappings of a VFIO device's file (every open file of the device shares them, through
/// the inode the core allocates for the device), as [`VfioDevice::mappings`] lends them: code
/// that must take them away (a reset, memory decode turned off) gets this, not the device.
#[repr(transparent)]
pub(crate) struct FileMappings(Opaque<bindings::vfio_device>);

impl FileMappings {
    /// Removes every user mapping of the device file's bytes `[start, start + len)`, so that
    /// the next access faults (and goes through the driver's fault handler again).
    pub(crate) fn zap(&self, start: u64, len: u64) {
        // SAFETY: `self.0` is the core struct of a live `VfioDevice` (only
        // `VfioDevice::mappings` makes a `FileMappings`); the core sets `inode` at allocation
        // (every open file of the device shares it) and keeps it until release.
        unsafe {
            let inode = (*self.0.get()).inode;
            kernel::bindings::unmap_mapping_range((*inode).i_mapping, start as i64, len as i64, 1);
        }
    }
}

/// A VFIO device registered with the core; dropping it unregisters the device, which first
/// waits for every user to close it (asking them through the `request` op).
pub(crate) struct Registration<T: VfioDeviceOps>(ARef<VfioDevice<T>>);

impl<T: VfioDeviceOps> Deref for Registration<T> {
    type Target = VfioDevice<T>;

    fn deref(&self) -> &VfioDevice<T> {
        &self.0
    }
}

impl<T: VfioDeviceOps> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: The device was registered by `VfioDevice::register`, once.
        unsafe { bindings::vfio_unregister_group_dev(self.0.as_raw()) };
    }
}
