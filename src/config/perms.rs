// SPDX-License-Identifier: GPL-2.0

//! The rules of config space as data: how long each capability is, which of its bits user
//! space may write, and which bits it sees virtualized (kept in the driver's copy, never
//! written to the function).
//!
//! Every bit of a register is one of: read from the device and not writable (the default);
//! read from the device and written through (`write` set); or virtualized (`virt` set: read
//! from and, if writable, written to the virtual copy). These are vfio-pci's tables; a capability
//! that needs more than the tables (the command register, power state changes, FLR) names a
//! [`Hook`] that runs after the table-driven write.

use crate::kernel_ext::pci::config::regs;

/// All bits.
const ALL: u32 = u32::MAX;

/// Virtualized and writable bits of one register block, one byte of flags per config byte.
pub(super) struct PermTable {
    virt: &'static [u8],
    write: &'static [u8],
}

impl PermTable {
    /// The virtualized bits of the `count` bytes at `offset`, as a little-endian value.
    #[inline]
    pub(super) fn virt_bits(&self, offset: usize, count: usize) -> u32 {
        le_bits(self.virt, offset, count)
    }

    /// The writable bits of the `count` bytes at `offset`, as a little-endian value.
    pub(super) fn write_bits(&self, offset: usize, count: usize) -> u32 {
        le_bits(self.write, offset, count)
    }
}

/// `count` bytes of `bytes` from `offset`, little-endian; bytes past the end count as 0 (not
/// virtualized, not writable).
#[inline]
fn le_bits(bytes: &[u8], offset: usize, count: usize) -> u32 {
    let whole = offset
        .checked_add(4)
        .and_then(|end| bytes.get(offset..end))
        .and_then(|dword| <[u8; 4]>::try_from(dword).ok());
    if let Some(dword) = whole {
        return u32::from_le_bytes(dword) & super::shadow::low_bytes(count);
    }
    (0..count.min(4)).fold(0, |acc, i| {
        let byte = offset
            .checked_add(i)
            .and_then(|at| bytes.get(at))
            .copied()
            .unwrap_or(0);
        acc | (u32::from(byte) << (8 * i))
    })
}

/// Builds a [`PermTable`]'s bytes at compile time.
struct Perms<const N: usize> {
    virt: [u8; N],
    write: [u8; N],
}

impl<const N: usize> Perms<N> {
    /// Nothing virtualized, nothing writable.
    const fn new() -> Self {
        Self {
            virt: [0; N],
            write: [0; N],
        }
    }

    /// Sets the `width` bytes at `offset` (a field past `N` fails the build).
    const fn field(mut self, offset: u32, width: usize, virt: u32, write: u32) -> Self {
        let mut i = 0;
        while i < width {
            self.virt[offset as usize + i] = (virt >> (8 * i)) as u8;
            self.write[offset as usize + i] = (write >> (8 * i)) as u8;
            i += 1;
        }
        self
    }

    const fn byte(self, offset: u32, virt: u32, write: u32) -> Self {
        self.field(offset, 1, virt, write)
    }

    const fn word(self, offset: u32, virt: u32, write: u32) -> Self {
        self.field(offset, 2, virt, write)
    }

    const fn dword(self, offset: u32, virt: u32, write: u32) -> Self {
        self.field(offset, 4, virt, write)
    }

    /// Every capability's next pointer is virtualized, so the chain can skip capabilities.
    const fn cap_next(self) -> Self {
        self.byte(regs::PCI_CAP_LIST_NEXT, ALL, 0)
    }

    /// So is the first dword of every extended capability (its next pointer).
    const fn ecap_header(self) -> Self {
        self.dword(0, ALL, 0)
    }
}

/// Declares a `static` [`PermTable`] backed by a compile-time [`Perms`].
macro_rules! perm_table {
    ($(#[$attr:meta])* $name:ident, $len:expr, $perms:expr) => {
        $(#[$attr])*
        static $name: PermTable = {
            const PERMS: Perms<{ $len as usize }> = $perms;
            PermTable {
                virt: &PERMS.virt,
                write: &PERMS.write,
            }
        };
    };
}

perm_table!(
    HEADER,
    64,
    Perms::new()
        // Virtualized because SR-IOV VFs read all ones here.
        .word(regs::PCI_VENDOR_ID, ALL, 0)
        .word(regs::PCI_DEVICE_ID, ALL, 0)
        // INTx disable is the driver's (interrupt control); the rest goes through.
        .word(regs::PCI_COMMAND, regs::PCI_COMMAND_INTX_DISABLE, ALL)
        // The capability-list bit, because the driver may hide every capability.
        .word(regs::PCI_STATUS, regs::PCI_STATUS_CAP_LIST, 0)
        .byte(regs::PCI_CACHE_LINE_SIZE, 0, ALL)
        .byte(regs::PCI_LATENCY_TIMER, 0, ALL)
        .byte(regs::PCI_BIST, 0, ALL)
        // BARs are the host's: user space sees and sizes virtual ones.
        .dword(regs::PCI_BASE_ADDRESS_0, ALL, ALL)
        .dword(regs::PCI_BASE_ADDRESS_1, ALL, ALL)
        .dword(regs::PCI_BASE_ADDRESS_2, ALL, ALL)
        .dword(regs::PCI_BASE_ADDRESS_3, ALL, ALL)
        .dword(regs::PCI_BASE_ADDRESS_4, ALL, ALL)
        .dword(regs::PCI_BASE_ADDRESS_5, ALL, ALL)
        .dword(regs::PCI_ROM_ADDRESS, ALL, ALL)
        .byte(regs::PCI_CAPABILITY_LIST, ALL, 0)
        .byte(regs::PCI_INTERRUPT_LINE, ALL, ALL)
        // Virtual so INTx can be hidden.
        .byte(regs::PCI_INTERRUPT_PIN, ALL, 0)
);

perm_table!(
    PM,
    8,
    Perms::new()
        .cap_next()
        // User space cannot handle PME: PME support reads as none.
        .word(regs::PCI_PM_PMC, regs::PCI_PM_CAP_PME_MASK, 0)
        // The power state is changed by the driver (see `Hook::Pm`), PME bits are virtual.
        .dword(
            regs::PCI_PM_CTRL,
            regs::PCI_PM_CTRL_PME_ENABLE | regs::PCI_PM_CTRL_PME_STATUS,
            !(regs::PCI_PM_CTRL_PME_ENABLE
                | regs::PCI_PM_CTRL_PME_STATUS
                | regs::PCI_PM_CTRL_STATE_MASK)
        )
);

perm_table!(
    VPD,
    8,
    Perms::new()
        .cap_next()
        // Both emulated: VPD goes through the PCI core's accessors.
        .word(regs::PCI_VPD_ADDR, ALL, ALL)
        .dword(regs::PCI_VPD_DATA, ALL, ALL)
);

perm_table!(
    PCIX,
    regs::PCI_CAP_PCIX_SIZEOF_V2,
    Perms::new()
        .cap_next()
        .word(regs::PCI_X_CMD, 0, ALL)
        .dword(regs::PCI_X_ECC_CSR, 0, ALL)
);

perm_table!(
    EXP,
    regs::PCI_CAP_EXP_ENDPOINT_SIZEOF_V2,
    Perms::new()
        .cap_next()
        // Not phantom functions (IOMMU) nor MPS (fabric-wide); FLR and MRRS via `Hook::Exp`.
        .word(
            regs::PCI_EXP_DEVCTL,
            regs::PCI_EXP_DEVCTL_BCR_FLR
                | regs::PCI_EXP_DEVCTL_PAYLOAD
                | regs::PCI_EXP_DEVCTL_READRQ,
            !regs::PCI_EXP_DEVCTL_PHANTOM
        )
        // ARI forwarding is set up by the host.
        .word(regs::PCI_EXP_DEVCTL2, 0, !regs::PCI_EXP_DEVCTL2_ARI)
);

perm_table!(
    AF,
    8,
    Perms::new().cap_next().byte(
        regs::PCI_AF_CTRL,
        regs::PCI_AF_CTRL_FLR,
        regs::PCI_AF_CTRL_FLR
    )
);

perm_table!(
    /// MSI with 32-bit addresses, without per-vector masking.
    MSI_32,
    12,
    Perms::new()
        .cap_next()
        .byte(regs::PCI_MSI_FLAGS, ALL, ALL)
        .dword(regs::PCI_MSI_ADDRESS_LO, ALL, ALL)
        .word(regs::PCI_MSI_DATA_32, ALL, ALL)
);

perm_table!(
    /// MSI with 32-bit addresses and per-vector masking.
    MSI_32_MASK,
    20,
    Perms::new()
        .cap_next()
        .byte(regs::PCI_MSI_FLAGS, ALL, ALL)
        .dword(regs::PCI_MSI_ADDRESS_LO, ALL, ALL)
        .word(regs::PCI_MSI_DATA_32, ALL, ALL)
        .dword(regs::PCI_MSI_MASK_32, 0, ALL)
        .dword(regs::PCI_MSI_PENDING_32, 0, ALL)
);

perm_table!(
    /// MSI with 64-bit addresses, without per-vector masking.
    MSI_64,
    16,
    Perms::new()
        .cap_next()
        .byte(regs::PCI_MSI_FLAGS, ALL, ALL)
        .dword(regs::PCI_MSI_ADDRESS_LO, ALL, ALL)
        .dword(regs::PCI_MSI_ADDRESS_HI, ALL, ALL)
        .word(regs::PCI_MSI_DATA_64, ALL, ALL)
);

perm_table!(
    /// MSI with 64-bit addresses and per-vector masking.
    MSI_64_MASK,
    24,
    Perms::new()
        .cap_next()
        .byte(regs::PCI_MSI_FLAGS, ALL, ALL)
        .dword(regs::PCI_MSI_ADDRESS_LO, ALL, ALL)
        .dword(regs::PCI_MSI_ADDRESS_HI, ALL, ALL)
        .word(regs::PCI_MSI_DATA_64, ALL, ALL)
        .dword(regs::PCI_MSI_MASK_64, 0, ALL)
        .dword(regs::PCI_MSI_PENDING_64, 0, ALL)
);

/// Uncorrectable errors user space may clear, mask and grade.
const AER_UNCORRECTABLE: u32 = regs::PCI_ERR_UNC_UND
    | regs::PCI_ERR_UNC_DLP
    | regs::PCI_ERR_UNC_SURPDN
    | regs::PCI_ERR_UNC_POISON_TLP
    | regs::PCI_ERR_UNC_FCP
    | regs::PCI_ERR_UNC_COMP_TIME
    | regs::PCI_ERR_UNC_COMP_ABORT
    | regs::PCI_ERR_UNC_UNX_COMP
    | regs::PCI_ERR_UNC_RX_OVER
    | regs::PCI_ERR_UNC_MALF_TLP
    | regs::PCI_ERR_UNC_ECRC
    | regs::PCI_ERR_UNC_UNSUP
    | regs::PCI_ERR_UNC_ACSV
    | regs::PCI_ERR_UNC_INTN
    | regs::PCI_ERR_UNC_MCBTLP
    | regs::PCI_ERR_UNC_ATOMEG
    | regs::PCI_ERR_UNC_TLPPRE;

/// Correctable errors user space may clear and mask.
const AER_CORRECTABLE: u32 = regs::PCI_ERR_COR_RCVR
    | regs::PCI_ERR_COR_BAD_TLP
    | regs::PCI_ERR_COR_BAD_DLLP
    | regs::PCI_ERR_COR_REP_ROLL
    | regs::PCI_ERR_COR_REP_TIMER
    | regs::PCI_ERR_COR_ADV_NFAT
    | regs::PCI_ERR_COR_INTERNAL
    | regs::PCI_ERR_COR_LOG_OVER;

perm_table!(
    AER,
    regs::PCI_ERR_ROOT_COMMAND,
    Perms::new()
        .ecap_header()
        .dword(regs::PCI_ERR_UNCOR_STATUS, 0, AER_UNCORRECTABLE)
        .dword(regs::PCI_ERR_UNCOR_MASK, 0, AER_UNCORRECTABLE)
        .dword(regs::PCI_ERR_UNCOR_SEVER, 0, AER_UNCORRECTABLE)
        .dword(regs::PCI_ERR_COR_STATUS, 0, AER_CORRECTABLE)
        .dword(regs::PCI_ERR_COR_MASK, 0, AER_CORRECTABLE)
        .dword(
            regs::PCI_ERR_CAP,
            0,
            regs::PCI_ERR_CAP_ECRC_GENE | regs::PCI_ERR_CAP_ECRC_CHKE
        )
);

perm_table!(
    POWER_BUDGET,
    regs::PCI_EXT_CAP_PWR_SIZEOF,
    Perms::new()
        .ecap_header()
        // Selecting which budget entry to read is harmless.
        .byte(regs::PCI_PWR_DATA, 0, ALL)
);

/// What runs after the table-driven part of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Hook {
    None,
    /// Standard header: BAR sizing, memory/IO enable, INTx disable.
    Header,
    /// MSI: queue size and enable are fixed up and written to the device.
    Msi,
    /// Power management: power state changes.
    Pm,
    /// VPD: address writes start a VPD read or write.
    Vpd,
    /// PCI Express: FLR and Max_Read_Request_Size.
    Exp,
    /// Advanced Features: FLR.
    Af,
}

/// How accesses to a range of config space behave.
#[derive(Clone, Copy)]
pub(super) enum Policy {
    /// As the table says, then the hook.
    Table(&'static PermTable, Hook),
    /// Read from the device except the capability header (from the virtual copy, so the chain
    /// can skip capabilities); writes dropped, or passed through raw when `raw_write`.
    Direct { raw_write: bool },
    /// Read and written on the device as is (bytes no capability claims: some devices keep
    /// registers there).
    Raw,
}

/// The standard header's policy.
pub(super) const HEADER_POLICY: Policy = Policy::Table(&HEADER, Hook::Header);

/// The policy of standard capability `id`, MSI excepted (its table depends on the function).
pub(super) fn cap_policy(id: u8) -> Policy {
    match u32::from(id) {
        regs::PCI_CAP_ID_PM => Policy::Table(&PM, Hook::Pm),
        regs::PCI_CAP_ID_VPD => Policy::Table(&VPD, Hook::Vpd),
        regs::PCI_CAP_ID_PCIX => Policy::Table(&PCIX, Hook::None),
        regs::PCI_CAP_ID_EXP => Policy::Table(&EXP, Hook::Exp),
        regs::PCI_CAP_ID_AF => Policy::Table(&AF, Hook::Af),
        regs::PCI_CAP_ID_VNDR => Policy::Direct { raw_write: true },
        _ => Policy::Direct { raw_write: false },
    }
}

/// The MSI table for a function whose MSI control register reads `flags`.
pub(super) fn msi_policy(flags: u16) -> Policy {
    let is_64 = u32::from(flags) & regs::PCI_MSI_FLAGS_64BIT != 0;
    let masks = u32::from(flags) & regs::PCI_MSI_FLAGS_MASKBIT != 0;
    let table = match (is_64, masks) {
        (false, false) => &MSI_32,
        (false, true) => &MSI_32_MASK,
        (true, false) => &MSI_64,
        (true, true) => &MSI_64_MASK,
    };
    Policy::Table(table, Hook::Msi)
}

/// The length of the MSI capability for `flags`.
pub(super) fn msi_len(flags: u16) -> usize {
    let mut len = 10;
    if u32::from(flags) & regs::PCI_MSI_FLAGS_64BIT != 0 {
        len += 4;
    }
    if u32::from(flags) & regs::PCI_MSI_FLAGS_MASKBIT != 0 {
        len += 10;
    }
    len
}

/// The policy of extended capability `id` (or of a hidden one anchoring the chain).
pub(super) fn ecap_policy(id: u16) -> Policy {
    match u32::from(id) {
        regs::PCI_EXT_CAP_ID_ERR => Policy::Table(&AER, Hook::None),
        regs::PCI_EXT_CAP_ID_PWR => Policy::Table(&POWER_BUDGET, Hook::None),
        regs::PCI_EXT_CAP_ID_VNDR | regs::PCI_EXT_CAP_ID_DVSEC => {
            Policy::Direct { raw_write: true }
        }
        _ => Policy::Direct { raw_write: false },
    }
}

/// How long a capability is, as far as its id tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CapLen {
    /// Not shown to user space: removed from the chain.
    Hidden,
    Fixed(usize),
    /// Depends on the capability's contents.
    Variable,
}

/// Standard capability `id`: which ones user space sees, and their lengths.
pub(super) fn cap_len(id: u8) -> CapLen {
    match u32::from(id) {
        regs::PCI_CAP_ID_PM => CapLen::Fixed(regs::PCI_PM_SIZEOF as usize),
        regs::PCI_CAP_ID_AGP => CapLen::Fixed(regs::PCI_AGP_SIZEOF as usize),
        regs::PCI_CAP_ID_VPD => CapLen::Fixed(regs::PCI_CAP_VPD_SIZEOF as usize),
        regs::PCI_CAP_ID_MSIX => CapLen::Fixed(regs::PCI_CAP_MSIX_SIZEOF as usize),
        regs::PCI_CAP_ID_AF => CapLen::Fixed(regs::PCI_CAP_AF_SIZEOF as usize),
        regs::PCI_CAP_ID_MSI
        | regs::PCI_CAP_ID_PCIX
        | regs::PCI_CAP_ID_HT
        | regs::PCI_CAP_ID_VNDR
        | regs::PCI_CAP_ID_EXP
        | regs::PCI_CAP_ID_SATA => CapLen::Variable,
        // ID 0 (null), bridge, CompactPCI, hot-swap, debug, AGP 8x, secure device,
        // Enhanced Allocation and anything unknown.
        _ => CapLen::Hidden,
    }
}

/// Extended capability `id`: which ones user space sees, and their lengths.
pub(super) fn ecap_len(id: u16) -> CapLen {
    match u32::from(id) {
        regs::PCI_EXT_CAP_ID_ERR => CapLen::Fixed(regs::PCI_ERR_ROOT_COMMAND as usize),
        regs::PCI_EXT_CAP_ID_DSN => CapLen::Fixed(regs::PCI_EXT_CAP_DSN_SIZEOF as usize),
        regs::PCI_EXT_CAP_ID_PWR => CapLen::Fixed(regs::PCI_EXT_CAP_PWR_SIZEOF as usize),
        regs::PCI_EXT_CAP_ID_ARI => CapLen::Fixed(regs::PCI_EXT_CAP_ARI_SIZEOF as usize),
        regs::PCI_EXT_CAP_ID_ATS => CapLen::Fixed(regs::PCI_EXT_CAP_ATS_SIZEOF as usize),
        regs::PCI_EXT_CAP_ID_SRIOV => CapLen::Fixed(regs::PCI_EXT_CAP_SRIOV_SIZEOF as usize),
        regs::PCI_EXT_CAP_ID_MCAST => {
            CapLen::Fixed(regs::PCI_EXT_CAP_MCAST_ENDPOINT_SIZEOF as usize)
        }
        regs::PCI_EXT_CAP_ID_PRI => CapLen::Fixed(regs::PCI_EXT_CAP_PRI_SIZEOF as usize),
        regs::PCI_EXT_CAP_ID_LTR => CapLen::Fixed(regs::PCI_EXT_CAP_LTR_SIZEOF as usize),
        regs::PCI_EXT_CAP_ID_VC
        | regs::PCI_EXT_CAP_ID_VC9
        | regs::PCI_EXT_CAP_ID_MFVC
        | regs::PCI_EXT_CAP_ID_VNDR
        | regs::PCI_EXT_CAP_ID_ACS
        | regs::PCI_EXT_CAP_ID_REBAR
        | regs::PCI_EXT_CAP_ID_DPA
        | regs::PCI_EXT_CAP_ID_TPH
        | regs::PCI_EXT_CAP_ID_DVSEC => CapLen::Variable,
        // Root-complex only, obsolete, not yet supported (MR-IOV, secondary PCIe, PMUX,
        // PASID) or unknown.
        _ => CapLen::Hidden,
    }
}

#[kernel::macros::kunit_tests(vfio_pci_rs_config_perms)]
mod tests {
    use super::*;

    /// The length of a table; 0 if its halves differ.
    fn len(table: &PermTable) -> usize {
        if table.virt.len() == table.write.len() {
            table.virt.len()
        } else {
            0
        }
    }

    #[test]
    fn table_sizes() {
        // The sizes vfio-pci allocates its permission bits with.
        assert_eq!(len(&HEADER), 64);
        assert_eq!(len(&PM), 8);
        assert_eq!(len(&VPD), 8);
        assert_eq!(len(&PCIX), 24);
        assert_eq!(len(&EXP), 0x34);
        assert_eq!(len(&AER), 0x2c);
        assert_eq!(len(&POWER_BUDGET), 0x10);
        // Every fixed-length capability the tables cover fits in its table.
        assert!(matches!(cap_len(0x13), CapLen::Fixed(n) if n <= len(&AF)));
        assert!(matches!(cap_len(0x01), CapLen::Fixed(n) if n == len(&PM)));
        assert!(matches!(cap_len(0x03), CapLen::Fixed(n) if n == len(&VPD)));
    }

    #[test]
    fn readonly_header_bytes_are_not_writable() {
        // Vendor, device, revision, class, header type, subsystem ids, capability pointer,
        // interrupt pin, min grant, max latency.
        for (offset, width) in [
            (0x00, 2),
            (0x02, 2),
            (0x08, 1),
            (0x09, 3),
            (0x0e, 1),
            (0x2c, 4),
            (0x34, 1),
            (0x3d, 1),
            (0x3e, 2),
        ] {
            assert_eq!(HEADER.write_bits(offset, width), 0);
        }
        // The ids, the capability pointer and the pin are virtual; revision and class are not.
        assert_eq!(HEADER.virt_bits(0x00, 4), u32::MAX);
        assert_eq!(HEADER.virt_bits(0x34, 1), 0xff);
        assert_eq!(HEADER.virt_bits(0x3d, 1), 0xff);
        assert_eq!(HEADER.virt_bits(0x08, 4), 0);
        // INTx disable is the only virtual command bit; every command bit is writable.
        assert_eq!(HEADER.virt_bits(0x04, 2), 0x400);
        assert_eq!(HEADER.write_bits(0x04, 2), 0xffff);
    }

    #[test]
    fn capability_headers_are_virtual_and_readonly() {
        let caps: [&PermTable; 9] = [
            &PM,
            &VPD,
            &PCIX,
            &EXP,
            &AF,
            &MSI_32,
            &MSI_32_MASK,
            &MSI_64,
            &MSI_64_MASK,
        ];
        for table in caps {
            // The id comes from the device, the next pointer from the copy; neither is
            // writable.
            assert_eq!(table.write_bits(0, 2), 0);
            assert_eq!(table.virt_bits(0, 1), 0);
            assert_eq!(table.virt_bits(1, 1), 0xff);
        }
        for table in [&AER, &POWER_BUDGET] {
            assert_eq!(table.write_bits(0, 4), 0);
            assert_eq!(table.virt_bits(0, 4), u32::MAX);
        }
    }

    #[test]
    fn hooked_bits_are_not_written_through() {
        // The power state is the PM hook's, phantom functions and ARI are the host's.
        assert_eq!(PM.write_bits(4, 2) & 0x3, 0);
        assert_eq!(PM.virt_bits(4, 2), 0x8100);
        assert_eq!(EXP.write_bits(8, 2) & 0x200, 0);
        assert_eq!(EXP.write_bits(0x28, 2) & 0x20, 0);
        assert_eq!(EXP.write_bits(0x28, 2) | 0x20, 0xffff);
        // Initiate FLR is virtual in both capabilities that have it.
        assert_eq!(EXP.virt_bits(8, 2) & 0x8000, 0x8000);
        assert_eq!(AF.virt_bits(4, 1), 1);
        assert_eq!(AF.write_bits(4, 1), 1);
    }

    #[test]
    fn le_bits_reads_past_the_end_as_zero() {
        let bytes = [0x11, 0x22, 0x33, 0x44, 0x55];
        assert_eq!(le_bits(&bytes, 0, 4), 0x4433_2211);
        assert_eq!(le_bits(&bytes, 1, 2), 0x3322);
        assert_eq!(le_bits(&bytes, 3, 4), 0x5544);
        assert_eq!(le_bits(&bytes, 5, 1), 0);
        assert_eq!(le_bits(&bytes, usize::MAX, 4), 0);
    }

    #[test]
    fn capability_lengths() {
        // vfio-pci's pci_cap_length and pci_ext_cap_length.
        assert_eq!(cap_len(0x00), CapLen::Hidden);
        assert_eq!(cap_len(0x01), CapLen::Fixed(8));
        assert_eq!(cap_len(0x02), CapLen::Fixed(12));
        assert_eq!(cap_len(0x04), CapLen::Hidden);
        assert_eq!(cap_len(0x05), CapLen::Variable);
        assert_eq!(cap_len(0x10), CapLen::Variable);
        assert_eq!(cap_len(0x11), CapLen::Fixed(12));
        assert_eq!(cap_len(0x13), CapLen::Fixed(6));
        assert_eq!(cap_len(0x14), CapLen::Hidden);
        assert_eq!(ecap_len(0x01), CapLen::Fixed(0x2c));
        assert_eq!(ecap_len(0x02), CapLen::Variable);
        assert_eq!(ecap_len(0x03), CapLen::Fixed(12));
        assert_eq!(ecap_len(0x04), CapLen::Fixed(0x10));
        assert_eq!(ecap_len(0x05), CapLen::Hidden);
        assert_eq!(ecap_len(0x10), CapLen::Fixed(0x40));
        assert_eq!(ecap_len(0x12), CapLen::Fixed(40));
        assert_eq!(ecap_len(0x1b), CapLen::Hidden);
        assert_eq!(ecap_len(0x23), CapLen::Variable);
    }

    #[test]
    fn msi_tables_follow_the_flags() {
        assert_eq!(msi_len(0), 10);
        assert_eq!(msi_len(0x80), 14);
        assert_eq!(msi_len(0x100), 20);
        assert_eq!(msi_len(0x180), 24);
        for flags in [0u16, 0x80, 0x100, 0x180] {
            let Policy::Table(table, Hook::Msi) = msi_policy(flags) else {
                assert!(matches!(msi_policy(flags), Policy::Table(_, Hook::Msi)));
                continue;
            };
            // The table covers the capability, and the masks are writable where they are.
            assert!(msi_len(flags) <= len(table));
            let mask_at = if flags & 0x80 != 0 { 0x10 } else { 0xc };
            let masked = flags & 0x100 != 0;
            let writable = table.write_bits(mask_at, 4) == u32::MAX;
            assert_eq!(writable, masked);
        }
    }

    #[test]
    fn policies_by_id() {
        assert!(matches!(
            cap_policy(0x09),
            Policy::Direct { raw_write: true }
        ));
        assert!(matches!(
            cap_policy(0x11),
            Policy::Direct { raw_write: false }
        ));
        assert!(matches!(cap_policy(0x01), Policy::Table(_, Hook::Pm)));
        assert!(matches!(cap_policy(0x10), Policy::Table(_, Hook::Exp)));
        assert!(matches!(
            ecap_policy(0x0b),
            Policy::Direct { raw_write: true }
        ));
        assert!(matches!(
            ecap_policy(0x23),
            Policy::Direct { raw_write: true }
        ));
        assert!(matches!(
            ecap_policy(0x10),
            Policy::Direct { raw_write: false }
        ));
        assert!(matches!(ecap_policy(0x01), Policy::Table(_, Hook::None)));
        assert!(matches!(HEADER_POLICY, Policy::Table(_, Hook::Header)));
    }
}
