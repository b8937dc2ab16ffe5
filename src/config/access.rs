// SPDX-License-Identifier: GPL-2.0

//! One chunk of a config access: where its bits come from and go to, and what a write does
//! beyond storing bits (the [`Hook`]s).

use super::{
    perms::{
        Hook,
        PermTable,
        Policy, //
    },
    shadow::{
        low_bytes,
        Shadow, //
    },
    Chunk,
    CommandState,
    VirtualConfig,
    WriteParts, //
};
use crate::{
    kernel_ext::pci::{
        config::{
            regs,
            PowerState, //
        },
        OwnedDevice,
        PciDeviceExt, //
    },
    kernel_ext::sync::RwSem,
    kernel_ext::vfio::FileMappings,
    memory::{
        self,
        MemoryAccess,
        MemoryGate, //
    }, //
};
use kernel::{
    prelude::*,
    sync::atomic::Relaxed, //
};

/// What a write needs to know beyond the config state.
pub(super) struct WriteCtx<'a> {
    pub(super) pdev: &'a OwnedDevice,
    /// The function's memory gate.
    pub(super) memory: &'a RwSem<MemoryGate>,
    /// The device file's mappings, zapped when BAR access is cut.
    pub(super) mappings: &'a FileMappings,
    /// The interrupt type in use (uAPI index), if any, for the chunks that read it
    /// ([`reads_irq_type`]: asked with the interrupt lock held across the write); `None` for
    /// the others.
    pub(super) irq_type: Option<u32>,
    /// The largest MSI queue size user space may program.
    pub(super) msi_qmax: u8,
}

/// Locks the gate `memory`, first removing the BARs' user mappings from `mappings` if `zap`.
fn lock_memory<'a>(
    memory: &'a RwSem<MemoryGate>,
    mappings: &FileMappings,
    zap: bool,
) -> MemoryAccess<'a> {
    if zap {
        memory::lock_and_zap(memory, mappings)
    } else {
        memory.write()
    }
}

impl WriteCtx<'_> {
    /// Locks the memory gate, first removing the BARs' user mappings if `zap`.
    fn lock_memory(&self, zap: bool) -> MemoryAccess<'_> {
        lock_memory(self.memory, self.mappings, zap)
    }
}

/// A change of the virtual INTx-disable bit, to apply once the config lock is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum IntxChange {
    Mask,
    Unmask,
}

/// Whether writes under `policy` can change anything (else they are dropped unread).
pub(super) fn writable(policy: Policy) -> bool {
    match policy {
        Policy::Table(..) | Policy::Raw => true,
        Policy::Direct { raw_write } => raw_write,
    }
}

/// Whether a header offset is inside the command register (whose writes act on the memory
/// gate, the BARs and INTx).
fn is_command(offset: usize) -> bool {
    let command = regs::PCI_COMMAND as usize;
    (command..command + 2).contains(&offset)
}

/// Whether a header offset is inside a BAR or the ROM BAR.
fn is_bar(offset: usize) -> bool {
    let bars = regs::PCI_BASE_ADDRESS_0 as usize..regs::PCI_BASE_ADDRESS_5 as usize + 4;
    let rom = regs::PCI_ROM_ADDRESS as usize..regs::PCI_ROM_ADDRESS as usize + 4;
    bars.contains(&offset) || rom.contains(&offset)
}

/// Whether reading `chunk` needs the config lock: BAR reads first answer pending sizing writes.
#[inline]
pub(super) fn needs_lock(chunk: Chunk) -> bool {
    matches!(chunk.policy, Policy::Table(_, Hook::Header)) && is_bar(chunk.offset)
}

/// How a write of a chunk is serialised against the others.
#[derive(Clone, Copy)]
pub(super) enum WriteRoute {
    /// No lock: its bits go to the device, or to the copy by one atomic update of just those
    /// bits, and nothing else changes ([`Shadow::write_unlocked`]). Raw and pass-through bytes,
    /// capabilities without a hook, the header but the command register and BARs, the other
    /// MSI and PCIe bytes: as vfio-pci writes them.
    Unlocked,
    /// The command register, under its table: with the memory gate's write lock alone (its
    /// memory decode drives the gate), as vfio-pci's `memory_lock` serialises these writes
    /// ([`Shadow::write_command`]).
    Command(&'static PermTable),
    /// With the config lock: the hook acts beyond the table (BAR sizing; MSI's control
    /// register, PM, VPD, a PCIe function-level reset, AF) or reads state kept under the lock.
    Locked,
}

/// How writing `val` to `chunk` is serialised ([`WriteRoute`]).
#[inline]
pub(super) fn write_route(chunk: Chunk, val: u32) -> WriteRoute {
    let locked = match chunk.policy {
        Policy::Raw | Policy::Direct { .. } | Policy::Table(_, Hook::None) => false,
        Policy::Table(table, Hook::Header) if is_command(chunk.offset) => {
            return WriteRoute::Command(table)
        }
        Policy::Table(_, Hook::Header) => is_bar(chunk.offset),
        Policy::Table(_, Hook::Msi) => msi_write_fixes_flags(chunk),
        Policy::Table(_, Hook::Exp) => exp_write_starts_flr(chunk, val),
        Policy::Table(..) => true,
    };
    if locked {
        WriteRoute::Locked
    } else {
        WriteRoute::Unlocked
    }
}

/// Whether writing `val` to `chunk`, of the PCI Express capability, sets the device control
/// register's Initiate Function Level Reset bit: the one PCIe write that acts under the lock
/// (the reset). vfio-pci takes no lock for the others either (`vfio_exp_config_write`); the
/// device control write took 1,700 instructions more than vfio-pci's on the debug kernel
/// with the lock, `scripts/bench.sh`.
#[inline]
fn exp_write_starts_flr(chunk: Chunk, val: u32) -> bool {
    // Bit 15 of the register: bit 7 of its second byte.
    let flr_byte = regs::PCI_EXP_DEVCTL as usize + 1;
    let flr_bit = regs::PCI_EXP_DEVCTL_BCR_FLR >> 8;
    (chunk.offset..chunk.offset + chunk.len).contains(&flr_byte)
        && (val >> (8 * (flr_byte - chunk.offset))) & flr_bit != 0
}

/// Whether writing `chunk` reads the interrupt type in use: an MSI capability write that goes
/// on to fix up the control register.
#[inline]
pub(super) fn reads_irq_type(chunk: Chunk) -> bool {
    matches!(chunk.policy, Policy::Table(_, Hook::Msi)) && msi_write_fixes_flags(chunk)
}

/// Whether a write of `chunk`, of the MSI capability, goes on to fix up the control register
/// (vfio-pci's condition: it starts at or before the flags word and reaches its start). The
/// other MSI bytes (message address and data, mask and pending bits) are plain table writes:
/// without a lock, as vfio-pci writes them (the message data took 3,400 instructions more than
/// vfio-pci's, most of them the two locks, before; `scripts/profile.sh`).
#[inline]
fn msi_write_fixes_flags(chunk: Chunk) -> bool {
    let flags = regs::PCI_MSI_FLAGS as usize;
    chunk.offset <= flags && chunk.offset + chunk.len >= flags
}

impl Shadow {
    /// Reads `chunk` (after [`VirtualConfig::fix_bars`] if [`needs_lock`] says so).
    // Always inlined into the read path, like `Shadow::chunk` (2197 against 2185
    // instructions per config read in `scripts/bench.sh`).
    #[inline(always)]
    pub(super) fn read(&self, pdev: &OwnedDevice, chunk: Chunk) -> Result<u32> {
        let Chunk {
            pos, len, offset, ..
        } = chunk;
        match chunk.policy {
            Policy::Raw => pdev.user_read_config(pos, len),
            Policy::Direct { .. } => {
                let mut val = pdev.user_read_config(pos, len)?;
                if pos >= super::layout::EXT_START {
                    // The extended capability header (the chain may skip capabilities).
                    if offset < 4 {
                        val = self.get(pos, len);
                    }
                } else if pos >= super::layout::HEADER_LEN {
                    // Capability id and next pointer.
                    if offset == regs::PCI_CAP_LIST_ID as usize && len > 1 {
                        val = (val & !0xffff) | self.get(pos, 2);
                    } else if offset == regs::PCI_CAP_LIST_NEXT as usize {
                        val = (val & !0xff) | self.get(pos, 1);
                    }
                }
                Ok(val)
            }
            Policy::Table(table, hook) => {
                let mut val = self.table_read(pdev, table, chunk)?;
                if hook == Hook::Header
                    && offset == regs::PCI_COMMAND as usize
                    && pdev.has_no_command_memory()
                {
                    val |= self.get(regs::PCI_COMMAND as usize, 2) & regs::PCI_COMMAND_MEMORY;
                }
                // vfio-pci's MSI read "fixup" of the queue size lands on the capability's id
                // byte, which user space reads from the device: nothing visible to mirror.
                Ok(val)
            }
        }
    }

    /// Virtualized bits from the copy, the others from the device.
    #[inline]
    fn table_read(&self, pdev: &OwnedDevice, table: &PermTable, chunk: Chunk) -> Result<u32> {
        let virt = table.virt_bits(chunk.offset, chunk.len);
        let mut val = self.get(chunk.pos, chunk.len);
        if virt != low_bytes(chunk.len) {
            let phys = pdev.user_read_config(chunk.pos, chunk.len)?;
            val = (phys & !virt) | (val & virt);
        }
        Ok(val)
    }

    /// Writable virtualized bits to the copy (one atomic update of just those bits), writable
    /// others to the device, as vfio-pci's default write.
    #[inline]
    fn table_write(&self, pdev: &OwnedDevice, table: &PermTable, chunk: Chunk, val: u32) -> Result {
        let write = table.write_bits(chunk.offset, chunk.len);
        if write == 0 {
            return Ok(());
        }
        let virt = table.virt_bits(chunk.offset, chunk.len);
        if write & virt != 0 {
            self.update(chunk.pos, chunk.len, write & virt, val);
        }
        let through = write & !virt;
        if through != 0 {
            let phys = pdev.user_read_config(chunk.pos, chunk.len)?;
            pdev.user_write_config(chunk.pos, chunk.len, (phys & !through) | (val & through))?;
        }
        Ok(())
    }

    /// Writes `val` (the low `chunk.len` bytes) to `chunk`, which [`write_route`] says
    /// needs no lock: its bits go to the device, or to the copy by [`Shadow::update`], and
    /// nothing else changes.
    // Always inlined into the write path, like `Shadow::read`.
    #[inline(always)]
    pub(super) fn write_unlocked(&self, pdev: &OwnedDevice, chunk: Chunk, val: u32) -> Result {
        match chunk.policy {
            Policy::Raw | Policy::Direct { raw_write: true } => {
                pdev.user_write_config(chunk.pos, chunk.len, val)
            }
            Policy::Direct { raw_write: false } => Ok(()),
            Policy::Table(table, Hook::Exp) => self.write_exp_unlocked(pdev, table, chunk, val),
            Policy::Table(table, _) => self.table_write(pdev, table, chunk, val),
        }
    }

    /// A PCI Express capability write that initiates no reset: the table's write, then the
    /// device's Max_Read_Request_Size follows the virtual one if it changed. Concurrent
    /// writers of that field may leave the device with either's value, as in vfio-pci.
    fn write_exp_unlocked(
        &self,
        pdev: &OwnedDevice,
        table: &PermTable,
        chunk: Chunk,
        val: u32,
    ) -> Result {
        let ctrl_at = chunk.pos - chunk.offset + regs::PCI_EXP_DEVCTL as usize;
        let readrq_before = self.get(ctrl_at, 2) & regs::PCI_EXP_DEVCTL_READRQ;
        self.table_write(pdev, table, chunk, val)?;
        self.follow_readrq(pdev, ctrl_at, readrq_before);
        Ok(())
    }

    /// Sets the device's Max_Read_Request_Size to the virtual device control register's at
    /// `ctrl_at` if that changed from `before` (not below the Max_Payload_Size).
    fn follow_readrq(&self, pdev: &OwnedDevice, ctrl_at: usize, before: u32) {
        let readrq = self.get(ctrl_at, 2) & regs::PCI_EXP_DEVCTL_READRQ;
        if readrq != before {
            let bytes = 128i32 << (readrq >> 12);
            pdev.pcie_set_readrq(bytes.max(pdev.pcie_mps()));
        }
    }
}

impl Shadow {
    /// Writes `val` (the low `chunk.len` bytes) to `chunk`, of the command register (header
    /// offset 4 or 5, under `table`), holding the memory gate's write lock of `parts` and no
    /// other: the gate serialises these writes, every byte changes by an atomic update, and
    /// the rest they use is `command`'s. Clearing memory decode first removes the BARs' user
    /// mappings. Returns the INTx change to apply once the gate is released.
    pub(super) fn write_command(
        &self,
        command: &CommandState,
        parts: &WriteParts<'_>,
        table: &PermTable,
        chunk: Chunk,
        val: u32,
    ) -> Result<Option<IntxChange>> {
        let pdev: &OwnedDevice = parts.pdev;
        let at = regs::PCI_COMMAND as usize;
        let mut gate;
        if chunk.offset == at {
            let decode = regs::PCI_COMMAND_MEMORY | regs::PCI_COMMAND_IO;
            let phys_cmd = pdev.user_read_config(at, 2)?;
            let virt_cmd = self.get(at, 2);
            let new_cmd = val & 0xffff;
            let is_set = |cmd: u32, bit: u32| cmd & bit != 0;
            let new_mem = is_set(new_cmd, regs::PCI_COMMAND_MEMORY);
            let new_io = is_set(new_cmd, regs::PCI_COMMAND_IO);
            gate = lock_memory(parts.memory, parts.mappings, !new_mem);
            // Decode enabled as far as we know but off in hardware: the function was reset
            // behind our back and lost its BARs.
            let lost_mem = new_mem
                && is_set(virt_cmd, regs::PCI_COMMAND_MEMORY)
                && !is_set(phys_cmd, regs::PCI_COMMAND_MEMORY)
                && !pdev.has_no_command_memory();
            let lost_io = new_io
                && is_set(virt_cmd, regs::PCI_COMMAND_IO)
                && !is_set(phys_cmd, regs::PCI_COMMAND_IO);
            if lost_mem || lost_io || bars_changed(command, pdev) {
                restore_bars(command, pdev);
            }
            self.table_write(pdev, table, chunk, val)?;
            // The decode bits as written, whatever the table keeps of them.
            self.update(at, 2, decode, new_cmd);
            gate.set_decode_enabled(self.memory_enabled(pdev));
            crate::dma_buf::restore(&mut gate, pdev);
        } else {
            gate = parts.memory.write();
            self.table_write(pdev, table, chunk, val)?;
        }
        let disabled = self.get(at, 2) & regs::PCI_COMMAND_INTX_DISABLE != 0;
        let flag = &command.intx_virtually_disabled;
        let intx = if disabled != flag.load(Relaxed) {
            flag.store(disabled, Relaxed);
            Some(if disabled {
                IntxChange::Mask
            } else {
                IntxChange::Unmask
            })
        } else {
            None
        };
        drop(gate);
        Ok(intx)
    }
}

/// Whether a BAR the host programmed reads differently now.
fn bars_changed(command: &CommandState, pdev: &OwnedDevice) -> bool {
    (0..6).any(|i| {
        let bar = command.host_bar(i);
        bar != 0 && pdev.user_read_config(regs::PCI_BASE_ADDRESS_0 as usize + 4 * i, 4) != Ok(bar)
    })
}

/// Writes the host's BARs back after a reset user space caused.
fn restore_bars(command: &CommandState, pdev: &OwnedDevice) {
    if pdev.is_virtfn() {
        return;
    }
    dev_info!(
        pdev.as_device(),
        "vfio_bar_restore: reset recovery - restoring BARs\n"
    );
    for i in 0..6 {
        let pos = regs::PCI_BASE_ADDRESS_0 as usize + 4 * i;
        let _ = pdev.user_write_config(pos, 4, command.host_bar(i));
    }
    let _ = pdev.user_write_config(regs::PCI_ROM_ADDRESS as usize, 4, command.host_bar(6));
    if crate::quirks::has_broken_intx(pdev) {
        let at = regs::PCI_COMMAND as usize;
        if let Ok(cmd) = pdev.user_read_config(at, 2) {
            let _ = pdev.user_write_config(at, 2, cmd | regs::PCI_COMMAND_INTX_DISABLE);
        }
    }
}

impl VirtualConfig<'_> {
    /// Writable virtualized bits to the copy, writable others to the device.
    #[inline]
    fn table_write(
        &mut self,
        pdev: &OwnedDevice,
        table: &PermTable,
        chunk: Chunk,
        val: u32,
    ) -> Result {
        self.shadow.table_write(pdev, table, chunk, val)
    }

    /// Writes `val` (the low `chunk.len` bytes) to `chunk`; returns an INTx change to apply.
    pub(super) fn write(
        &mut self,
        ctx: &WriteCtx<'_>,
        chunk: Chunk,
        val: u32,
    ) -> Result<Option<IntxChange>> {
        let pdev: &OwnedDevice = ctx.pdev;
        let (table, hook) = match chunk.policy {
            Policy::Raw | Policy::Direct { raw_write: true } => {
                pdev.user_write_config(chunk.pos, chunk.len, val)?;
                return Ok(None);
            }
            Policy::Direct { raw_write: false } => return Ok(None),
            Policy::Table(table, hook) => (table, hook),
        };
        match hook {
            Hook::Header => return self.write_header(ctx, table, chunk, val),
            Hook::None => self.table_write(pdev, table, chunk, val)?,
            Hook::Msi => self.write_msi(ctx, table, chunk, val)?,
            Hook::Pm => {
                self.table_write(pdev, table, chunk, val)?;
                if chunk.offset == regs::PCI_PM_CTRL as usize {
                    self.user_set_power_state(ctx, PowerState::from_pmcsr(val));
                }
            }
            Hook::Vpd => self.write_vpd(pdev, table, chunk, val)?,
            Hook::Exp => self.write_exp(ctx, table, chunk, val)?,
            Hook::Af => self.write_af(ctx, table, chunk, val)?,
        }
        Ok(None)
    }

    /// The standard header's registers with a hook but the command register
    /// ([`Shadow::write_command`]): the BARs, whose sizing writes [`Self::fix_bars`] answers.
    fn write_header(
        &mut self,
        ctx: &WriteCtx<'_>,
        table: &PermTable,
        chunk: Chunk,
        val: u32,
    ) -> Result<Option<IntxChange>> {
        self.table_write(ctx.pdev, table, chunk, val)?;
        if is_bar(chunk.offset) {
            self.open.bars_dirty = true;
        }
        Ok(None)
    }

    /// Makes the virtual BARs answer sizing: each keeps only the address bits its resource's
    /// size allows, plus the type flags; BARs the host did not map read 0.
    pub(super) fn fix_bars(&mut self, pdev: &OwnedDevice) {
        if !self.open.bars_dirty {
            return;
        }
        let mut bar = 0;
        while bar < regs::PCI_STD_NUM_BARS as usize {
            let pos = regs::PCI_BASE_ADDRESS_0 as usize + 4 * bar;
            let res = match pdev.resource(bar) {
                res if res.start != 0 => res,
                _ => {
                    self.set(pos, 4, 0);
                    bar += 1;
                    continue;
                }
            };
            let mask = !res.len.wrapping_sub(1);
            let flags = if res.flags & u64::from(regs::IORESOURCE_IO) != 0 {
                regs::PCI_BASE_ADDRESS_SPACE_IO
            } else {
                let mut flags = regs::PCI_BASE_ADDRESS_SPACE_MEMORY;
                if res.flags & u64::from(regs::IORESOURCE_PREFETCH) != 0 {
                    flags |= regs::PCI_BASE_ADDRESS_MEM_PREFETCH;
                }
                if res.flags & u64::from(regs::IORESOURCE_MEM_64) != 0 {
                    flags |= regs::PCI_BASE_ADDRESS_MEM_TYPE_64;
                }
                flags
            };
            let low = (self.get(pos, 4) & mask as u32) | flags;
            self.set(pos, 4, low);
            if low & regs::PCI_BASE_ADDRESS_MEM_TYPE_64 != 0 {
                bar += 1;
                let high = self.get(pos + 4, 4) & (mask >> 32) as u32;
                self.set(pos + 4, 4, high);
            }
            bar += 1;
        }

        let rom = regs::PCI_ROM_ADDRESS as usize;
        let rom_mask = match pdev.resource(regs::PCI_ROM_RESOURCE as usize) {
            res if res.start != 0 => Some(!res.len.wrapping_sub(1)),
            // A shadow ROM the platform copied.
            _ => pdev.platform_rom().map(|(_, len)| {
                !(len.checked_next_power_of_two().unwrap_or(0) as u64).wrapping_sub(1)
            }),
        };
        match rom_mask {
            Some(mask) => {
                let mask = mask as u32 | regs::PCI_ROM_ADDRESS_ENABLE;
                self.set(rom, 4, self.get(rom, 4) & mask);
            }
            None => self.set(rom, 4, 0),
        }
        self.open.bars_dirty = false;
    }

    /// MSI: the control register is virtual, but its enable and queue size also reach the
    /// device, clamped to what the interrupt code set up.
    fn write_msi(
        &mut self,
        ctx: &WriteCtx<'_>,
        table: &PermTable,
        chunk: Chunk,
        val: u32,
    ) -> Result {
        let pdev: &OwnedDevice = ctx.pdev;
        self.table_write(pdev, table, chunk, val)?;
        if !msi_write_fixes_flags(chunk) {
            return Ok(());
        }
        let at = chunk.pos - chunk.offset + regs::PCI_MSI_FLAGS as usize;
        let mut flags = self.get(at, 2);
        // MSI is enabled through VFIO_DEVICE_SET_IRQS only.
        if ctx.irq_type != Some(crate::kernel_ext::vfio::irq::VFIO_PCI_MSI_IRQ_INDEX) {
            flags &= !regs::PCI_MSI_FLAGS_ENABLE;
        }
        let qmax = u32::from(ctx.msi_qmax);
        if (flags & regs::PCI_MSI_FLAGS_QSIZE) >> 4 > qmax {
            flags = (flags & !regs::PCI_MSI_FLAGS_QSIZE) | (qmax << 4);
        }
        self.set(at, 2, flags);
        pdev.user_write_config(at, 2, flags)
    }

    /// Power state change user space asked for through PMCSR, with the BARs' mappings zapped
    /// on the way into D3hot. A PF with VFs stays in D0 (`EBUSY`, which a PMCSR write
    /// ignores, as vfio-pci's does).
    fn user_set_power_state(&mut self, ctx: &WriteCtx<'_>, state: PowerState) {
        let mut gate = ctx.lock_memory(state == PowerState::D3Hot);
        let _ = gate.set_power_state(ctx.pdev, state);
        crate::dma_buf::restore(&mut gate, ctx.pdev);
    }

    /// VPD: writing the address register's flag starts a transfer through the PCI core; the
    /// flag toggles when it completed.
    fn write_vpd(
        &mut self,
        pdev: &OwnedDevice,
        table: &PermTable,
        chunk: Chunk,
        val: u32,
    ) -> Result {
        self.table_write(pdev, table, chunk, val)?;
        let flag_byte = regs::PCI_VPD_ADDR as usize + 1;
        if chunk.offset > flag_byte || chunk.offset + chunk.len <= flag_byte {
            return Ok(());
        }
        let start = chunk.pos - chunk.offset;
        let addr_at = start + regs::PCI_VPD_ADDR as usize;
        let data_at = start + regs::PCI_VPD_DATA as usize;
        let addr = self.get(addr_at, 2);
        let vpd_addr = (addr & !regs::PCI_VPD_ADDR_F) as u16;
        if addr & regs::PCI_VPD_ADDR_F != 0 {
            if !pdev.write_vpd(vpd_addr, self.get(data_at, 4)) {
                return Ok(());
            }
        } else {
            match pdev.read_vpd(addr as u16) {
                Some(data) => self.set(data_at, 4, data),
                None => return Ok(()),
            }
        }
        self.set(addr_at, 2, addr ^ regs::PCI_VPD_ADDR_F);
        Ok(())
    }

    /// PCI Express: Initiate FLR resets the function (if it supports FLR) and reads back 0;
    /// MRRS goes to the device, but never below the configured MPS.
    fn write_exp(
        &mut self,
        ctx: &WriteCtx<'_>,
        table: &PermTable,
        chunk: Chunk,
        val: u32,
    ) -> Result {
        let pdev: &OwnedDevice = ctx.pdev;
        let start = chunk.pos - chunk.offset;
        let ctrl_at = start + regs::PCI_EXP_DEVCTL as usize;
        let readrq_before = self.get(ctrl_at, 2) & regs::PCI_EXP_DEVCTL_READRQ;
        self.table_write(pdev, table, chunk, val)?;

        let ctrl = self.get(ctrl_at, 2);
        if ctrl & regs::PCI_EXP_DEVCTL_BCR_FLR != 0 {
            // Just the bit: lock-free writers may change the rest of the register meanwhile.
            self.shadow
                .update(ctrl_at, 2, regs::PCI_EXP_DEVCTL_BCR_FLR, 0);
            let devcap = pdev.user_read_config(start + regs::PCI_EXP_DEVCAP as usize, 4);
            if devcap.is_ok_and(|cap| cap & regs::PCI_EXP_DEVCAP_FLR != 0) {
                self.reset_function(ctx);
            }
        }
        self.shadow.follow_readrq(pdev, ctrl_at, readrq_before);
        Ok(())
    }

    /// Advanced Features: Initiate FLR resets the function (if it supports FLR and
    /// Transactions Pending) and reads back 0.
    fn write_af(
        &mut self,
        ctx: &WriteCtx<'_>,
        table: &PermTable,
        chunk: Chunk,
        val: u32,
    ) -> Result {
        let pdev: &OwnedDevice = ctx.pdev;
        self.table_write(pdev, table, chunk, val)?;
        let start = chunk.pos - chunk.offset;
        let ctrl_at = start + regs::PCI_AF_CTRL as usize;
        let ctrl = self.get(ctrl_at, 1);
        if ctrl & regs::PCI_AF_CTRL_FLR != 0 {
            self.set(ctrl_at, 1, ctrl & !regs::PCI_AF_CTRL_FLR);
            let needed = regs::PCI_AF_CAP_FLR | regs::PCI_AF_CAP_TP;
            let cap = pdev.user_read_config(start + regs::PCI_AF_CAP as usize, 1);
            if cap.is_ok_and(|cap| cap & needed == needed) {
                self.reset_function(ctx);
            }
        }
        Ok(())
    }

    /// A function reset user space asked for, with its BAR mappings zapped and BAR access
    /// blocked meanwhile.
    fn reset_function(&self, ctx: &WriteCtx<'_>) {
        let mut gate = ctx.lock_memory(true);
        let _ = ctx.pdev.try_reset_function();
        crate::dma_buf::restore(&mut gate, ctx.pdev);
    }
}
