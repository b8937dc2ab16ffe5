// SPDX-License-Identifier: GPL-2.0

//! Config space as user space sees it through the config region: virtualized the way
//! vfio-pci virtualizes it.
//!
//! At first open the driver copies the function's config space ([`VirtualConfig`]) and
//! records which capability owns each byte, leaving out of both capability chains what user
//! space must not see. Every access is then split into aligned chunks of 4, 2 or 1 bytes that
//! stay inside one capability and one dword, and each chunk follows its owner's rules (see
//! [`perms`]): some bits come from and go to the copy, some pass through to the function,
//! writes to the rest are dropped. A few writes act: the command register drives the memory
//! gate and INTx masking, the PM capability changes the power state, PCIe and AF FLR reset the
//! function, BAR writes are sizing requests answered from the host's resources.
//!
//! Locking: reads take no lock, as in vfio-pci: the bytes and owners they use are atomics (see
//! [`shadow`]). Neither do writes whose rules need nothing but those bytes (most of the header,
//! capabilities without a hook, raw and pass-through bytes, MSI but its control register, PCIe
//! but a function-level reset: [`access::WriteRoute`]): their changes to the copy are single
//! atomic updates of the bits written. Command register writes hold the memory gate's write
//! lock alone, as vfio-pci's hold its `memory_lock`: that serialises them, and what they read
//! and change besides the bytes is in atomics too ([`CommandState`]). Everything else (BARs,
//! the capabilities with a hook, BAR reads, which may first answer pending sizing writes)
//! holds the lock inside [`ConfigSpace`], one chunk at a time. Order:
//! interrupts (`irqs`), then config, then the memory gate. An MSI chunk is written with the
//! interrupt lock held around the config lock, so that SET_IRQS cannot change the interrupt
//! type it reads; otherwise config code never calls into [`crate::intrs`] with the config lock
//! held, so interrupt code may read or update config state (INTx virtually disabled, MSI queue
//! size) while it holds its own lock.

mod access;
mod layout;
mod perms;
mod shadow;

use crate::{
    intrs::{
        self,
        IrqState,
        MsiQueueLimit, //
    },
    kernel_ext::pci::{
        config::regs,
        OwnedDevice,
        PciDeviceExt, //
    },
    kernel_ext::sync::RwSem,
    kernel_ext::uaccess,
    kernel_ext::vfio::FileMappings,
    memory::MemoryGate, //
};
use kernel::{
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
use layout::Owner;
use perms::Policy;
use shadow::{
    OwnerRun,
    Shadow, //
};

/// What a config write acts on besides config space, lent by the wiring ([`crate::device`]):
/// the function, its interrupts (INTx masking follows the virtual INTx-disable bit) and its
/// memory gate with the device file's mappings (memory decode and resets block BAR access).
#[derive(Clone, Copy)]
pub(crate) struct WriteParts<'a> {
    pub(crate) pdev: &'a OwnedDevice,
    pub(crate) irqs: &'a Mutex<IrqState>,
    pub(crate) memory: &'a RwSem<MemoryGate>,
    pub(crate) mappings: &'a FileMappings,
}

/// The config space of a bound function, as user space sees it.
#[pin_data]
pub(crate) struct ConfigSpace {
    /// The virtual bytes and their owners: read without a lock, changed under `state`'s except
    /// by the writes that need no lock.
    shadow: Shadow,
    /// What command register writes use besides the bytes.
    command: CommandState,
    #[pin]
    state: Mutex<ConfigState>,
}

/// What a command register write reads and changes besides the virtual bytes, without the
/// config lock: set at open, before any file can write, and changed only with the memory
/// gate's write lock held (the lock every command register write takes, for its memory
/// decode), so these writes never interleave.
struct CommandState {
    /// BAR 0-5 and ROM as the host programmed them, to restore after a reset user space
    /// caused behind the driver's back.
    host_bars: [Atomic<u32>; 7],
    /// User space set INTx disable in the virtual command register.
    intx_virtually_disabled: Atomic<bool>,
}

impl CommandState {
    fn new() -> Self {
        Self {
            host_bars: core::array::from_fn(|_| Atomic::new(0)),
            intx_virtually_disabled: Atomic::new(false),
        }
    }

    /// At open: the host's BARs as the fresh copy `shadow` holds them, INTx not disabled.
    fn capture(&self, shadow: &Shadow) {
        for (i, bar) in self.host_bars.iter().enumerate() {
            let pos = if i < 6 {
                regs::PCI_BASE_ADDRESS_0 as usize + 4 * i
            } else {
                regs::PCI_ROM_ADDRESS as usize
            };
            bar.store(shadow.get(pos, 4), Relaxed);
        }
        self.intx_virtually_disabled.store(false, Relaxed);
    }

    /// The host's value of BAR `i` (0-5; 6 is the ROM).
    fn host_bar(&self, i: usize) -> u32 {
        self.host_bars.get(i).map_or(0, |bar| bar.load(Relaxed))
    }
}

/// The config state behind the config lock.
struct ConfigState {
    /// The largest MSI queue size (log2 of vectors) the interrupt code enabled. Like
    /// vfio-pci's, it outlives the open that set it.
    msi_qmax: u8,
    /// The rest of the virtual config space, while the function is open.
    open: Option<OpenConfig>,
}

/// The state of an open function's virtual config space, beyond its bytes. Having it (`&mut`)
/// is what allows changing the shadow: it exists only under the config lock, or in the open
/// that builds it before any file can read.
struct OpenConfig {
    /// The virtual BARs may hold sizing writes not yet masked to the BARs' sizes.
    bars_dirty: bool,
}

/// The virtual config space of an open function, with the right to change it.
struct VirtualConfig<'a> {
    shadow: &'a Shadow,
    open: &'a mut OpenConfig,
}

impl ConfigSpace {
    /// The config space of `pdev`, closed.
    pub(crate) fn new(pdev: &OwnedDevice) -> impl PinInit<Self, Error> {
        let size = usize::try_from(pdev.cfg_size()).unwrap_or(0);
        try_pin_init!(Self {
            shadow: Shadow::new(size)?,
            command: CommandState::new(),
            state <- new_mutex!(ConfigState {
                msi_qmax: 0,
                open: None,
            }),
        })
    }
}

impl VirtualConfig<'_> {
    /// The `count` bytes at `pos` of the copy, as a little-endian value.
    fn get(&self, pos: usize, count: usize) -> u32 {
        self.shadow.get(pos, count)
    }

    /// Stores the low `count` bytes of `val` at `pos` of the copy.
    fn set(&mut self, pos: usize, count: usize, val: u32) {
        self.shadow.set(self.open, pos, count, val)
    }

    /// Whether the virtual command register enables memory decode (always, for functions
    /// without that bit). BAR access also needs the function out of D3, which the memory gate
    /// asks at every access.
    fn memory_enabled(&self, pdev: &OwnedDevice) -> bool {
        self.shadow.memory_enabled(pdev)
    }
}

impl Shadow {
    /// Whether the command register of this copy enables memory decode (always, for
    /// functions without that bit).
    fn memory_enabled(&self, pdev: &OwnedDevice) -> bool {
        let cmd = self.get(regs::PCI_COMMAND as usize, 2);
        pdev.has_no_command_memory() || cmd & regs::PCI_COMMAND_MEMORY != 0
    }

    /// Where the capability owning `run`'s byte starts (0 for the header).
    #[inline]
    fn cap_start(&self, run: &OwnerRun) -> usize {
        if run.owner == Owner::Header {
            return 0;
        }
        let base = if run.pos >= layout::EXT_START {
            layout::EXT_START
        } else {
            layout::HEADER_LEN
        };
        self.run_start(run, base)
    }

    /// The chunk of an access of `count` bytes at `pos`: how many bytes, which rules, and the
    /// offset inside the owning capability.
    // Always inlined: returned through memory, the chunk cost a config read 60 instructions
    // (2257 against 2197 in `scripts/bench.sh`).
    #[inline(always)]
    fn chunk(&self, pos: usize, count: usize) -> Result<Chunk> {
        let size = self.len();
        let end = pos.checked_add(count).ok_or(EFAULT)?;
        if pos >= size || end > size {
            return Err(EFAULT);
        }
        // Up to the end of the dword or of the owner, whichever comes first.
        let run = self.owner_run(pos);
        let left = count.min(run.len);
        let len = if left >= 4 && pos % 4 == 0 {
            4
        } else if left >= 2 && pos % 2 == 0 {
            2
        } else {
            1
        };
        let (policy, start) = match run.owner {
            Owner::Unassigned => (Policy::Raw, pos),
            Owner::Header => (perms::HEADER_POLICY, 0),
            Owner::Cap(id) if u32::from(id) == regs::PCI_CAP_ID_MSI => (
                self.msi().unwrap_or(Policy::Direct { raw_write: false }),
                self.cap_start(&run),
            ),
            Owner::Cap(id) => (perms::cap_policy(id), self.cap_start(&run)),
            Owner::Ecap(id) => (perms::ecap_policy(id), self.cap_start(&run)),
        };
        Ok(Chunk {
            pos,
            len,
            offset: pos - start,
            policy,
        })
    }
}

/// One aligned piece of an access, inside one dword and one capability.
#[derive(Clone, Copy)]
struct Chunk {
    /// Config space offset.
    pos: usize,
    /// 1, 2 or 4 bytes.
    len: usize,
    /// Offset inside the owning capability (or header).
    offset: usize,
    policy: Policy,
}

/// Builds the virtual config space at first open (after the function's reset and state save)
/// and opens the memory gate `memory` of `pdev` as its command register says.
pub(crate) fn open(config: &ConfigSpace, pdev: &OwnedDevice, memory: &RwSem<MemoryGate>) -> Result {
    let mut state = config.state.lock();
    let mut open = OpenConfig::build(&config.shadow, pdev)?;
    config.command.capture(&config.shadow);
    let virt = VirtualConfig {
        shadow: &config.shadow,
        open: &mut open,
    };
    let enabled = virt.memory_enabled(pdev);
    state.open = Some(open);
    memory.write().set_decode_enabled(enabled);
    Ok(())
}

/// Drops the virtual config space at last close (the function is back in D0 by then).
pub(crate) fn close(config: &ConfigSpace) {
    config.state.lock().open = None;
}

impl MsiQueueLimit for ConfigSpace {
    /// Records the MSI queue size (log2 of the vectors) the interrupt code enabled; writes to
    /// the MSI control register cannot ask for more. Callers may hold the interrupt lock.
    fn set_msi_qmax(&self, qmax: u8) {
        self.state.lock().msi_qmax = qmax;
    }
}

/// Reads up to `count` bytes of the config space `config` of `pdev` at `offset` into user
/// memory at `buf`; returns how many moved.
///
/// Like vfio-pci, an access that does not fit in config space fails (`EFAULT`), as does one
/// that faults on the user buffer; an error after some chunks moved is still an error.
#[inline]
pub(crate) fn read(
    config: &ConfigSpace,
    pdev: &OwnedDevice,
    buf: UserPtr,
    count: usize,
    offset: u64,
) -> Result<usize> {
    let mut pos = usize::try_from(offset).map_err(|_| EFAULT)?;
    let mut done = 0;
    while done < count {
        let user = buf.wrapping_byte_add(done);
        let moved = read_chunk(config, pdev, user, count - done, pos)?;
        done += moved;
        pos += moved;
    }
    Ok(done)
}

/// Writes up to `count` bytes from user memory at `buf` to the config space `config` at
/// `offset`, acting on `parts` as the bytes written ask; returns how many moved. Fails as
/// [`read`] does.
pub(crate) fn write(
    config: &ConfigSpace,
    parts: &WriteParts<'_>,
    buf: UserPtr,
    count: usize,
    offset: u64,
) -> Result<usize> {
    let mut pos = usize::try_from(offset).map_err(|_| EFAULT)?;
    let mut done = 0;
    while done < count {
        let user = buf.wrapping_byte_add(done);
        let chunk = config.shadow.chunk(pos, count - done)?;
        write_chunk(config, parts, user, chunk)?;
        done += chunk.len;
        pos += chunk.len;
    }
    Ok(done)
}

/// Reads the first chunk of `count` bytes at `pos` into user memory at `user`.
fn read_chunk(
    config: &ConfigSpace,
    pdev: &OwnedDevice,
    user: UserPtr,
    count: usize,
    pos: usize,
) -> Result<usize> {
    let chunk = config.shadow.chunk(pos, count)?;
    let val = if access::needs_lock(chunk) {
        let mut state = config.state.lock();
        let open = state.open.as_mut().ok_or(ENODEV)?;
        let mut virt = VirtualConfig {
            shadow: &config.shadow,
            open,
        };
        virt.fix_bars(pdev);
        config.shadow.read(pdev, chunk)?
    } else {
        config.shadow.read(pdev, chunk)?
    };
    let len = chunk.len;
    let bytes = val.to_le_bytes();
    let data = bytes.get(..len).ok_or(EINVAL)?;
    uaccess::copy_to_user(user, data)?;
    Ok(len)
}

/// Writes `chunk` from user memory at `user`: without any lock when its rules need no state
/// beyond the bytes themselves, with the memory gate's write lock alone for the command
/// register, else with the config lock held, and for MSI the interrupt lock before it (see
/// [`access::WriteRoute`]).
#[inline]
fn write_chunk(
    config: &ConfigSpace,
    parts: &WriteParts<'_>,
    user: UserPtr,
    chunk: Chunk,
) -> Result {
    if !access::writable(chunk.policy) {
        // Dropped without even reading the user buffer, as vfio-pci does.
        return Ok(());
    }
    let val = read_user(user, chunk.len)?;
    let intx = match access::write_route(chunk, val) {
        access::WriteRoute::Unlocked => {
            return config.shadow.write_unlocked(parts.pdev, chunk, val);
        }
        access::WriteRoute::Command(table) => {
            config
                .shadow
                .write_command(&config.command, parts, table, chunk, val)?
        }
        access::WriteRoute::Locked if access::reads_irq_type(chunk) => {
            // SET_IRQS cannot change the interrupt type until the MSI control register is
            // written back (the lock order allows the config lock under the interrupt lock).
            intrs::with_active_irq_type(parts.irqs, |irq_type| {
                write_locked(config, parts, chunk, val, irq_type)
            })?
        }
        access::WriteRoute::Locked => write_locked(config, parts, chunk, val, None)?,
    };
    match intx {
        Some(access::IntxChange::Mask) => {
            intrs::intx_mask(parts.irqs, parts.pdev);
        }
        Some(access::IntxChange::Unmask) => intrs::intx_unmask(parts.irqs, parts.pdev),
        None => {}
    }
    Ok(())
}

/// Writes `val` (the low `chunk.len` bytes) to `chunk` with the config lock held; `irq_type`
/// is the interrupt type in use for the chunks that read it ([`access::reads_irq_type`]).
/// Returns the INTx change to apply once the lock is dropped.
fn write_locked(
    config: &ConfigSpace,
    parts: &WriteParts<'_>,
    chunk: Chunk,
    val: u32,
    irq_type: Option<u32>,
) -> Result<Option<access::IntxChange>> {
    let mut state = config.state.lock();
    let msi_qmax = state.msi_qmax;
    let open = state.open.as_mut().ok_or(ENODEV)?;
    let mut virt = VirtualConfig {
        shadow: &config.shadow,
        open,
    };
    let ctx = access::WriteCtx {
        pdev: parts.pdev,
        memory: parts.memory,
        mappings: parts.mappings,
        irq_type,
        msi_qmax,
    };
    virt.write(&ctx, chunk, val)
}

/// The `len` (1, 2 or 4) bytes at `user`, little-endian.
#[inline]
fn read_user(user: UserPtr, len: usize) -> Result<u32> {
    let mut bytes = [0u8; 4];
    let data = bytes.get_mut(..len).ok_or(EINVAL)?;
    uaccess::copy_from_user(user, data)?;
    Ok(u32::from_le_bytes(bytes))
}

#[kernel::macros::kunit_tests(vfio_pci_rs_config)]
mod tests {
    use super::*;
    use perms::Hook;

    /// What the open-time build holds, to change the shadow with.
    fn held() -> OpenConfig {
        OpenConfig { bars_dirty: false }
    }

    /// A 256-byte config space: the header, a PM capability at 0x40 (8 bytes), a vendor
    /// capability at 0x48 (2 bytes), the rest unassigned.
    fn layout() -> Result<Shadow> {
        let shadow = Shadow::new(256)?;
        let mut held = held();
        for pos in 0..256 {
            let owner = match pos {
                0..0x40 => Owner::Header,
                0x40..0x48 => Owner::Cap(0x01),
                0x48..0x4a => Owner::Cap(0x09),
                _ => Owner::Unassigned,
            };
            shadow.set_owner(&mut held, pos, owner);
        }
        shadow.index_runs(&mut held);
        Ok(shadow)
    }

    /// The length and capability offset of the first chunk of `count` bytes at `pos`.
    fn split(shadow: &Shadow, pos: usize, count: usize) -> Option<(usize, usize)> {
        shadow
            .chunk(pos, count)
            .ok()
            .map(|chunk| (chunk.len, chunk.offset))
    }

    #[test]
    fn widths_follow_alignment() -> Result {
        let shadow = layout()?;
        assert_eq!(split(&shadow, 0, 4), Some((4, 0)));
        assert_eq!(split(&shadow, 0, 64), Some((4, 0)));
        assert_eq!(split(&shadow, 0, 3), Some((2, 0)));
        assert_eq!(split(&shadow, 1, 4), Some((1, 1)));
        assert_eq!(split(&shadow, 2, 4), Some((2, 2)));
        assert_eq!(split(&shadow, 3, 2), Some((1, 3)));
        assert_eq!(split(&shadow, 4, 1), Some((1, 4)));
        assert_eq!(split(&shadow, 0x3e, 4), Some((2, 0x3e)));
        Ok(())
    }

    #[test]
    fn chunks_stay_in_their_capability() -> Result {
        let shadow = layout()?;
        // Offsets are from the capability's start.
        assert_eq!(split(&shadow, 0x40, 8), Some((4, 0)));
        assert_eq!(split(&shadow, 0x44, 4), Some((4, 4)));
        assert_eq!(split(&shadow, 0x45, 1), Some((1, 5)));
        assert_eq!(split(&shadow, 0x46, 2), Some((2, 6)));
        // The vendor capability ends inside its dword.
        assert_eq!(split(&shadow, 0x48, 4), Some((2, 0)));
        assert_eq!(split(&shadow, 0x49, 4), Some((1, 1)));
        // Unassigned bytes belong to no capability: offset 0.
        assert_eq!(split(&shadow, 0x4a, 4), Some((2, 0)));
        assert_eq!(split(&shadow, 0x4b, 4), Some((1, 0)));
        assert_eq!(split(&shadow, 0x4c, 4), Some((4, 0)));
        assert_eq!(shadow.cap_start(&shadow.owner_run(0x47)), 0x40);
        assert_eq!(shadow.cap_start(&shadow.owner_run(0x49)), 0x48);
        assert_eq!(shadow.cap_start(&shadow.owner_run(0x10)), 0);
        Ok(())
    }

    #[test]
    fn pcie_writes_lock_only_to_reset() -> Result {
        let shadow = layout()?;
        let mut held = held();
        // A PCI Express capability at 0x60: device control at 0x68, FLR its bit 15.
        for pos in 0x60..0x9c {
            shadow.set_owner(&mut held, pos, Owner::Cap(regs::PCI_CAP_ID_EXP as u8));
        }
        shadow.index_runs(&mut held);
        let locks = |pos, len, val| {
            shadow
                .chunk(pos, len)
                .is_ok_and(|c| matches!(access::write_route(c, val), access::WriteRoute::Locked))
        };
        let flr = regs::PCI_EXP_DEVCTL_BCR_FLR;
        assert!(!locks(0x68, 2, 0));
        assert!(!locks(0x68, 2, !flr & 0xffff));
        assert!(locks(0x68, 2, flr));
        assert!(locks(0x68, 4, flr));
        assert!(locks(0x69, 1, flr >> 8));
        assert!(!locks(0x68, 1, 0xff));
        assert!(!locks(0x6a, 2, 0xffff));
        assert!(!locks(0x60, 4, u32::MAX));
        assert!(!locks(0x88, 2, flr));
        Ok(())
    }

    #[test]
    fn chunk_policies() -> Result {
        let shadow = layout()?;
        let policy = |pos| shadow.chunk(pos, 1).map(|chunk| chunk.policy);
        assert!(matches!(policy(0x04), Ok(Policy::Table(_, Hook::Header))));
        assert!(matches!(policy(0x41), Ok(Policy::Table(_, Hook::Pm))));
        assert!(matches!(
            policy(0x48),
            Ok(Policy::Direct { raw_write: true })
        ));
        assert!(matches!(policy(0x80), Ok(Policy::Raw)));
        // BAR reads take the config lock (pending sizing), other header reads do not.
        let needs_lock = |pos| shadow.chunk(pos, 4).is_ok_and(access::needs_lock);
        assert!(needs_lock(0x10));
        assert!(needs_lock(0x24));
        assert!(needs_lock(0x30));
        assert!(!needs_lock(0x04));
        assert!(!needs_lock(0x2c));
        assert!(!needs_lock(0x40));
        // Writes that act beyond their bytes take the config lock, but the command register's,
        // which take the memory gate's write lock alone; the others no lock.
        let route = |pos, len| shadow.chunk(pos, len).map(|c| access::write_route(c, 0));
        let write_locks = |pos, len| matches!(route(pos, len), Ok(access::WriteRoute::Locked));
        let command = |pos, len| matches!(route(pos, len), Ok(access::WriteRoute::Command(_)));
        assert!(command(0x04, 2));
        assert!(command(0x04, 4));
        assert!(command(0x04, 1));
        assert!(command(0x05, 1));
        assert!(!command(0x06, 2));
        assert!(!command(0x00, 4));
        assert!(!write_locks(0x04, 2));
        assert!(!write_locks(0x06, 2));
        assert!(!write_locks(0x08, 4));
        assert!(!write_locks(0x0c, 4));
        assert!(write_locks(0x10, 4));
        assert!(write_locks(0x24, 4));
        assert!(write_locks(0x30, 4));
        assert!(!write_locks(0x3c, 1));
        assert!(write_locks(0x44, 4));
        assert!(!write_locks(0x48, 2));
        assert!(!write_locks(0x80, 4));
        // Only the MSI capability's writes ask the interrupt type.
        assert!(!shadow.chunk(0x04, 2).is_ok_and(access::reads_irq_type));
        assert!(!shadow.chunk(0x44, 4).is_ok_and(access::reads_irq_type));
        // An MSI capability (64-bit) at 0x50: only the writes that reach its flags word lock
        // and ask the interrupt type (from 0x50 to 0x52 included, vfio-pci's condition); the
        // message address and data are written without a lock.
        let mut held = held();
        for pos in 0x50..0x5e {
            shadow.set_owner(&mut held, pos, Owner::Cap(regs::PCI_CAP_ID_MSI as u8));
        }
        shadow.set_msi_flags(&mut held, Some(regs::PCI_MSI_FLAGS_64BIT as u16));
        shadow.index_runs(&mut held);
        let msi_locks = |pos, len| {
            let chunk = shadow.chunk(pos, len);
            let locks = chunk
                .is_ok_and(|c| matches!(access::write_route(c, 0), access::WriteRoute::Locked));
            assert_eq!(locks, chunk.is_ok_and(access::reads_irq_type));
            locks
        };
        assert!(msi_locks(0x50, 4));
        assert!(msi_locks(0x50, 2));
        assert!(msi_locks(0x52, 2));
        assert!(msi_locks(0x52, 1));
        assert!(!msi_locks(0x50, 1));
        assert!(!msi_locks(0x53, 1));
        assert!(!msi_locks(0x54, 4));
        assert!(!msi_locks(0x5c, 2));
        // Writes to dropped-write policies are not even read from user space.
        assert!(access::writable(Policy::Raw));
        assert!(!access::writable(Policy::Direct { raw_write: false }));
        assert!(access::writable(Policy::Direct { raw_write: true }));
        Ok(())
    }

    #[test]
    fn accesses_outside_config_space_fail() -> Result {
        let shadow = layout()?;
        assert_eq!(split(&shadow, 252, 4), Some((4, 0)));
        assert!(shadow.chunk(253, 4).is_err_and(|e| e == EFAULT));
        assert!(shadow.chunk(256, 1).is_err_and(|e| e == EFAULT));
        assert!(shadow.chunk(usize::MAX, 2).is_err_and(|e| e == EFAULT));
        Ok(())
    }
}
