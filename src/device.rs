// SPDX-License-Identifier: GPL-2.0

//! One PCI function bound to vfio-pci-rs: its VFIO device state and its open/close lifecycle.
//!
//! A function is bound at probe (see [`crate::pci_driver`]) and becomes a [`VfioPciDevice`]
//! inside a VFIO core device. The first open enables it, resets it if it can, and saves its
//! config state; the last close stops it, resets it, and restores that state, so the next user
//! finds it as the host left it. A function that could not be reset alone is marked dirty in
//! its dev_set, and the set gets a slot or bus reset once none of it is open.

use crate::{
    bars::{
        BarsInfo,
        MsixTable, //
    },
    config::{
        self,
        ConfigSpace, //
    },
    dev_set::{
        NeedsReset,
        ResetScope,
        SetState, //
    },
    dma_buf,
    feature,
    hot_reset,
    info_caps::AtomicCompleter,
    intrs,
    intrs::{
        IrqInfo,
        IrqState, //
    },
    ioctl,
    ioeventfd,
    ioeventfd::Ioeventfds,
    kernel_ext::{
        eventfd::EventFd,
        mm::{
            FaultResult,
            PfnFaultHandler,
            VmFault, //
        },
        pci::{
            config::PowerState,
            regs,
            OwnedDevice,
            PciDeviceExt,
            SavedState, //
        },
        sync::{
            new_rwsem,
            RwSem, //
        },
        trace,
        vfio::{
            uapi,
            InfoCaps,
            LockedDevSet,
            Registration,
            SetMember,
            VfioDevice,
            VfioDeviceOps, //
        }, //
    },
    memory::{
        self,
        GatedFunction,
        MemoryGate, //
    },
    mmap,
    params,
    rdwr::{
        self,
        Transfer, //
    },
    regions::{
        self,
        Region, //
    },
    runtime_pm::{
        self,
        RuntimePower, //
    },
    sriov,
    vf_token,
    vf_token::{
        TokenRole,
        VfUser, //
    },
    vga::VgaFunction, //
};
use kernel::{
    mm::virt::VmaNew,
    new_mutex,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Mutex, //
    },
    uaccess::UserPtr, //
};

/// The state of a function while user space has it open.
#[derive(Default)]
pub(crate) struct OpenState {
    /// The config state saved at open, restored at close.
    saved: Option<SavedState>,
    /// For a VF sharing its PF's token: this open counted among the token's users.
    vf_user: Option<VfUser>,
}

/// The driver's state of one bound function.
///
/// Its parts are private: this module does the wiring, handing each concern module the parts
/// it needs (the function, its config space, its interrupts, its memory gate...).
#[pin_data]
pub(crate) struct VfioPciDevice {
    pdev: OwnedDevice,
    #[pin]
    open_state: Mutex<OpenState>,
    /// Whether a function-level reset worked at the current open (reported as
    /// `VFIO_DEVICE_FLAGS_RESET`): changed only under `open_state`'s lock, at open and close,
    /// and read without it, as vfio-pci reads its flag (`GET_INFO` and `VFIO_DEVICE_RESET`
    /// need no lock).
    reset_works: Atomic<bool>,
    /// The config space user space sees; rebuilt at every first open.
    #[pin]
    config: ConfigSpace,
    /// Interrupts and their eventfds.
    #[pin]
    irqs: Mutex<IrqState>,
    /// What `GET_IRQ_INFO` reads without the interrupt lock.
    irq_info: IrqInfo,
    /// Where the MSI-X table is, if the function has one: never touched through
    /// `read(2)`/`write(2)`.
    msix_table: Option<MsixTable>,
    /// How the function takes part in the VF token protocol (see [`crate::vf_token`]).
    token_role: TokenRole,
    /// The gate to the function's memory (see [`crate::memory`]): BAR access holds it shared,
    /// resets and memory-decode changes hold it exclusive across the change.
    #[pin]
    memory: RwSem<MemoryGate>,
    /// Which BARs may be mmapped, and which are mapped, while the function is open, readable
    /// without the gate.
    bars_info: BarsInfo,
    /// The armed `VFIO_DEVICE_IOEVENTFD`s (see [`crate::ioeventfd`]).
    #[pin]
    ioeventfds: Mutex<Ioeventfds<Self>>,
    /// Runtime power management (see [`crate::runtime_pm`]).
    power: RuntimePower,
    /// The VGA arbiter client and region of a VGA-class function (see [`crate::vga`]).
    vga: VgaFunction,
    /// The AtomicOps widths the function's physical function completes (read-only, so read
    /// at bind), for `GET_INFO`'s capability chain.
    atomic_completer: AtomicCompleter,
}

impl VfioPciDevice {
    /// The PCI function.
    #[inline]
    pub(crate) fn pdev(&self) -> &OwnedDevice {
        &self.pdev
    }

    /// Interrupts and their eventfds.
    #[inline]
    pub(crate) fn irqs(&self) -> &Mutex<IrqState> {
        &self.irqs
    }

    /// How the function takes part in the VF token protocol.
    #[inline]
    pub(crate) fn token_role(&self) -> &TokenRole {
        &self.token_role
    }

    /// The gate to the function's memory.
    #[inline]
    pub(crate) fn memory(&self) -> &RwSem<MemoryGate> {
        &self.memory
    }

    /// Runtime power management of the function.
    #[inline]
    pub(crate) fn power(&self) -> &RuntimePower {
        &self.power
    }

    /// Whether a function-level reset worked at the current open.
    #[inline]
    pub(crate) fn reset_works(&self) -> bool {
        self.reset_works.load(Relaxed)
    }

    /// Registers `pdev` with the VFIO core, refusing what vfio-pci refuses.
    pub(crate) fn bind(pdev: &OwnedDevice) -> Result<Registration<Self>> {
        if u32::from(pdev.header_type()) != regs::PCI_HEADER_TYPE_NORMAL {
            return Err(EINVAL);
        }
        if pdev.num_vfs() != 0 {
            dev_warn!(pdev.as_device(), "Cannot bind to PF with SR-IOV enabled\n");
            return Err(EBUSY);
        }
        let reset_scope = ResetScope::of(pdev);
        // The BARs' P2PDMA providers, for dma-buf exports (none where the platform forbids
        // CPU mappings of the BARs), as vfio-pci sets them up.
        match dma_buf::init_p2pdma(pdev) {
            Err(e) if !dma_buf::p2pdma_unsupported(e) => return Err(e),
            _ => {}
        }
        let vdev = VfioDevice::new(
            pdev,
            reset_scope.dev_set_key(),
            try_pin_init!(Self {
                pdev: pdev.clone(),
                open_state <- new_mutex!(OpenState::default()),
                reset_works: Atomic::new(false),
                config <- ConfigSpace::new(pdev),
                irqs <- new_mutex!(IrqState::closed(params::nointxmask())),
                irq_info: IrqInfo::new(),
                msix_table: MsixTable::of(pdev),
                token_role: TokenRole::of(pdev, sriov::token_of_pf)?,
                memory <- new_rwsem!(MemoryGate::new(), "VfioPciDevice::memory"),
                bars_info: BarsInfo::new(),
                ioeventfds <- new_mutex!(Ioeventfds::new()),
                power: RuntimePower::new(),
                vga: VgaFunction::bind::<Self>(pdev)?,
                atomic_completer: AtomicCompleter::of(pdev),
            }),
        )?;
        // The PCI core leaves an unbound function's power state unknown; only D0 is a valid
        // next state.
        {
            let mut gate = vdev.memory.write();
            gate.probe_power_state(pdev);
            let _ = gate.set_power_state(pdev, PowerState::D0);
        }
        VfioDevice::register(vdev)
    }
}

#[vtable]
impl VfioDeviceOps for VfioPciDevice {
    /// Also the PCI driver's name ([`crate::pci_driver::DRIVER_NAME`]).
    const NAME: &'static CStr = c"vfio-pci-rs";

    type SetState = SetState;

    fn open_device(dev: &VfioDevice<Self>, set: &LockedDevSet<'_, Self>) -> Result {
        let result = open(dev);
        trace::open(
            &dev.pdev,
            || set.this().iommufd_ctx().is_some(),
            || dev.reset_works(),
            &result,
        );
        result
    }

    fn close_device(dev: &VfioDevice<Self>, set: &LockedDevSet<'_, Self>) {
        close(dev, set);
        hot_reset::reset_dirty_set(set);
        runtime_pm::release_after_close(&dev.pdev, &dev.power);
        // As vfio-pci, the error and request eventfds go last.
        intrs::release_triggers(&dev.irqs);
    }

    /// Routes an ioctl to its handler; unknown commands get `ENOTTY`, as from vfio-pci.
    #[inline]
    fn ioctl(dev: &VfioDevice<Self>, cmd: u32, arg: usize) -> Result<isize> {
        let arg = UserPtr::from_addr(arg);
        match cmd {
            uapi::VFIO_PCI_RS_IOCTL_VFIO_DEVICE_GET_INFO => dispatch::get_info(dev, arg),
            uapi::VFIO_PCI_RS_IOCTL_VFIO_DEVICE_RESET => dispatch::reset(dev),
            uapi::VFIO_PCI_RS_IOCTL_VFIO_DEVICE_GET_IRQ_INFO => dispatch::get_irq_info(dev, arg),
            uapi::VFIO_PCI_RS_IOCTL_VFIO_DEVICE_SET_IRQS => dispatch::set_irqs(dev, arg),
            uapi::VFIO_PCI_RS_IOCTL_VFIO_DEVICE_GET_PCI_HOT_RESET_INFO => {
                dispatch::hot_reset_info(dev, arg)
            }
            uapi::VFIO_PCI_RS_IOCTL_VFIO_DEVICE_PCI_HOT_RESET => dispatch::hot_reset(dev, arg),
            uapi::VFIO_PCI_RS_IOCTL_VFIO_DEVICE_IOEVENTFD => dispatch::ioeventfd(dev, arg),
            _ => Err(ENOTTY),
        }
    }
    fn read(dev: &VfioDevice<Self>, buf: UserPtr, count: usize, pos: &mut i64) -> Result<usize> {
        rw(dev, buf, count, pos, false)
    }

    fn write(dev: &VfioDevice<Self>, buf: UserPtr, count: usize, pos: &mut i64) -> Result<usize> {
        rw(dev, buf, count, pos, true)
    }

    fn mmap(dev: &VfioDevice<Self>, vma: &VmaNew) -> Result {
        mmap::check(&dev.memory, &dev.pdev, vma)?;
        dev.init_pfnmap(vma)
    }

    fn region_info(
        dev: &VfioDevice<Self>,
        info: &mut uapi::vfio_region_info,
        caps: &mut InfoCaps<'_>,
    ) -> Result {
        regions::info(
            &dev.memory,
            &dev.bars_info,
            &dev.pdev,
            dev.msix_table,
            &dev.vga,
            info,
            caps,
        )
    }

    fn device_feature(
        dev: &VfioDevice<Self>,
        flags: u32,
        arg: UserPtr,
        argsz: usize,
    ) -> Result<i32> {
        if flags & uapi::VFIO_DEVICE_FEATURE_MASK == uapi::VFIO_DEVICE_FEATURE_DMA_BUF {
            return dma_buf::feature(&dev.pdev, &dev.memory, flags, arg, argsz);
        }
        feature::device_feature(dev, flags, arg, argsz).map(|()| 0)
    }

    fn match_name(dev: &VfioDevice<Self>, name: &CStr) -> Result<bool> {
        vf_token::match_name(&dev.pdev, &dev.token_role, name)
    }

    fn match_token(dev: &VfioDevice<Self>, token: Option<&[u8; 16]>) -> Result {
        vf_token::match_token(&dev.pdev, &dev.token_role, token)
    }

    fn request(dev: &VfioDevice<Self>, count: u32) {
        if intrs::signal_request(&dev.irqs) {
            if count % 10 == 0 {
                dev_notice!(
                    dev.pdev.as_device(),
                    "Relaying device request to user (#{})\n",
                    count
                );
            }
            return;
        }
        if count == 0 {
            dev_warn!(
                dev.pdev.as_device(),
                "No device request channel registered, blocked until released by user\n"
            );
        }
    }
}

/// The driver's part of the first open of `dev` (see [`VfioDeviceOps::open_device`]): the
/// function is resumed and kept resumed until the last close.
fn open(dev: &VfioDevice<VfioPciDevice>) -> Result {
    runtime_pm::resume_for_open(&dev.pdev, &dev.power)?;
    open_resumed(dev).inspect_err(|_| runtime_pm::release_after_close(&dev.pdev, &dev.power))
}

/// [`open`], once the function is resumed.
fn open_resumed(dev: &VfioDevice<VfioPciDevice>) -> Result {
    let pdev: &OwnedDevice = &dev.pdev;
    let mut state = dev.open_state.lock();
    // The state saved below must not include bus mastering.
    pdev.clear_master();
    pdev.enable()?;
    match pdev.try_reset_function() {
        Err(e) if e == EAGAIN => {
            pdev.disable();
            return Err(e);
        }
        result => dev.reset_works.store(result.is_ok(), Relaxed),
    }
    state.saved = pdev.save_state();
    if state.saved.is_none() {
        dev_dbg!(pdev.as_device(), "Couldn't store saved state\n");
    }
    {
        let mut gate = dev.memory.write();
        gate.open(pdev);
        dev.bars_info.publish(gate.bars().ok());
    }
    // Interrupt setup may change the command register (INTx disable), which the virtual
    // config space then starts from.
    let opened = dev
        .irqs
        .lock()
        .open(pdev, &dev.irq_info)
        .and_then(|()| config::open(&dev.config, pdev, &dev.memory));
    if let Err(e) = opened {
        config::close(&dev.config);
        close_bars(dev);
        state.saved = None;
        pdev.disable();
        return Err(e);
    }
    state.vf_user = dev.token_role.new_user();
    Ok(())
}

/// The driver's part of the last close of `dev`, before the dirty-set reset (see
/// [`VfioDeviceOps::close_device`]), in the order of vfio-pci's `vfio_pci_core_disable()`: back
/// to D0 first (with the state the function lost if user space left it in D3hot), then no
/// more DMA, then no more interrupts and ioeventfds, then the rest.
fn close(dev: &VfioDevice<VfioPciDevice>, set: &LockedDevSet<'_, VfioPciDevice>) {
    let member = set.this();
    let pdev: &OwnedDevice = &dev.pdev;
    runtime_pm::wake_for_close(pdev, &dev.memory);
    // The VF is no longer a user of its PF's token.
    drop(dev.open_state.lock().vf_user.take());
    dma_buf::close(&dev.memory);
    // A function reset fails outside D0, and a NoSoftRst- function would lose the state saved
    // at D3hot entry to it.
    drop(memory::wake_to_d0(&dev.memory, pdev));
    pdev.clear_master();
    intrs::teardown(&dev.irqs, &dev.irq_info, &dev.memory, &dev.pdev);
    ioeventfd::teardown(&dev.ioeventfds);
    config::close(&dev.config);
    close_bars(dev);

    let mut state = dev.open_state.lock();
    let reset_works = dev.reset_works.load(Relaxed);
    dev.reset_works.store(false, Relaxed);
    member.set_needs_reset(true);

    let mut restore = true;
    if pdev.load_saved_state(state.saved.take()).is_err() {
        dev_info!(
            pdev.as_device(),
            "close_device: Couldn't reload saved state\n"
        );
        if reset_works {
            pdev.resave_state();
        } else {
            restore = false;
        }
    }
    drop(state);

    // Not attempted unless a function reset works and there is a state to restore.
    let mut reset = Err(ENOTTY);
    if restore {
        pdev.write_config_word(regs::PCI_COMMAND, regs::PCI_COMMAND_INTX_DISABLE as u16);
        if reset_works {
            reset = reset_function_for_close(pdev, &member);
        }
        pdev.restore_state();
    }
    pdev.disable();
    trace::close(pdev, &reset, member.needs_reset());
}

/// Releases the BARs of `dev` (last close, or a failed first open).
fn close_bars(dev: &VfioPciDevice) {
    let mut gate = dev.memory.write();
    gate.close();
    dev.bars_info.publish(None);
}

/// `read(2)`/`write(2)` on the device file: the region at `*pos` moves up to `count` bytes.
fn rw(
    dev: &VfioDevice<VfioPciDevice>,
    buf: UserPtr,
    count: usize,
    pos: &mut i64,
    write: bool,
) -> Result<usize> {
    if count == 0 {
        return Ok(0);
    }
    let (index, offset) = regions::split_offset(*pos as u64);
    let region = u32::try_from(index)
        .ok()
        .and_then(Region::from_index)
        .ok_or(EINVAL)?;
    let _resumed = runtime_pm::resume_for_access(&dev.pdev)?;
    let xfer = Transfer {
        buf,
        count,
        offset,
        write,
    };
    let done = match region {
        Region::Config if write => {
            let parts = config::WriteParts {
                pdev: &dev.pdev,
                irqs: &dev.irqs,
                memory: &dev.memory,
                mappings: dev.mappings(),
            };
            config::write(&dev.config, &parts, buf, count, offset)?
        }
        Region::Config => config::read(&dev.config, &dev.pdev, buf, count, offset)?,
        Region::Bar(bar) => rdwr::bar_rw(&dev.memory, &dev.pdev, dev.msix_table, bar, xfer)?,
        Region::Rom => rdwr::rom_read(&dev.memory, &dev.pdev, xfer)?,
        Region::Vga => dev.vga.rw(&dev.pdev, xfer)?,
    };
    *pos += done as i64;
    Ok(done)
}

impl PfnFaultHandler for VfioDevice<VfioPciDevice> {
    #[inline]
    fn fault(&self, fault: &VmFault<'_>) -> FaultResult {
        mmap::bar_fault(&self.memory, &self.pdev, fault)
    }
}

impl GatedFunction for VfioPciDevice {
    #[inline]
    fn pdev(&self) -> &OwnedDevice {
        &self.pdev
    }

    #[inline]
    fn memory(&self) -> &RwSem<MemoryGate> {
        &self.memory
    }
}

impl feature::FeatureTarget for VfioDevice<VfioPciDevice> {
    fn enter_low_power(&self, wake: Option<EventFd>) -> Result {
        memory::lock_and_zap(&self.memory, self.mappings()).enter_low_power(&self.pdev, wake)
    }

    fn exit_low_power(&self) {
        let mut gate = self.memory.write();
        gate.exit_low_power(&self.pdev);
        dma_buf::restore(&mut gate, &self.pdev);
    }

    fn has_vf_token(&self) -> bool {
        self.token_role.pf_token().is_some()
    }

    fn set_vf_token(&self, uuid: [u8; 16]) {
        if let Some(token) = self.token_role.pf_token() {
            token.set(uuid);
        }
    }
}

/// Resets a closing function alone, without touching the state loaded for restore, when its
/// device lock and its upstream bridge's are free (else `EBUSY`); a success clears its
/// needs-reset mark.
fn reset_function_for_close(pdev: &OwnedDevice, member: &SetMember<'_, VfioPciDevice>) -> Result {
    let bridge_lock = pdev.try_lock_upstream_bridge()?;
    let lock = pdev.try_lock().ok_or(EBUSY)?;
    let result = pdev.reset_function_locked(&lock);
    if result.is_ok() {
        member.set_needs_reset(false);
    }
    drop(lock);
    drop(bridge_lock);
    result
}

/// The ioctls' handlers, each out of line: the dispatch in [`VfioPciDevice::ioctl`] then only
/// compares and calls, where with the handlers inlined it saved six registers and set up a
/// frame for the largest of them on every ioctl.
mod dispatch {
    use super::*;

    #[inline(never)]
    pub(super) fn get_info(dev: &VfioDevice<VfioPciDevice>, arg: UserPtr) -> Result<isize> {
        ioctl::get_info(arg, &dev.pdev, dev.atomic_completer, || dev.reset_works())
    }

    #[inline(never)]
    pub(super) fn reset(dev: &VfioDevice<VfioPciDevice>) -> Result<isize> {
        let result = ioctl::reset(dev.reset_works(), &dev.pdev, &dev.memory, dev.mappings());
        trace::device_reset(&dev.pdev, &result);
        result
    }

    #[inline(never)]
    pub(super) fn get_irq_info(dev: &VfioDevice<VfioPciDevice>, arg: UserPtr) -> Result<isize> {
        intrs::get_irq_info(&dev.irq_info, &dev.pdev, arg)
    }

    #[inline(never)]
    pub(super) fn set_irqs(dev: &VfioDevice<VfioPciDevice>, arg: UserPtr) -> Result<isize> {
        intrs::set_irqs(
            &dev.irqs,
            &dev.irq_info,
            &dev.memory,
            &dev.pdev,
            &dev.config,
            arg,
        )
    }

    #[inline(never)]
    pub(super) fn hot_reset_info(dev: &VfioDevice<VfioPciDevice>, arg: UserPtr) -> Result<isize> {
        hot_reset::get_info(dev, arg)
    }

    #[inline(never)]
    pub(super) fn hot_reset(dev: &VfioDevice<VfioPciDevice>, arg: UserPtr) -> Result<isize> {
        hot_reset::hot_reset(dev, arg)
    }

    #[inline(never)]
    pub(super) fn ioeventfd(dev: &VfioDevice<VfioPciDevice>, arg: UserPtr) -> Result<isize> {
        ioeventfd::ioctl(dev, &dev.ioeventfds, &dev.bars_info, dev.msix_table, arg)
    }
}
