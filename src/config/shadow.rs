// SPDX-License-Identifier: GPL-2.0

//! The virtual config bytes and the owner of each byte, readable without the config lock.
//!
//! vfio-pci reads its virtual config space without any lock, so a config read costs no more
//! than the file operation around it. The same here, without data races: the bytes and owners
//! live in atomics that exist as long as the function is bound (allocated at bind, rebuilt at
//! every first open), and a reader loads them with relaxed ordering. Changing them takes the
//! [`OpenConfig`], which exists only under the config lock (or in the open that builds the
//! space, while no file exists to read through): writers' read-modify-write sequences never
//! interleave, and a reader racing a writer sees each dword either before or after, as with C.
//! The one exception, writes that need no lock, change only bits no locked sequence reads
//! back, each in one atomic update of just those bits ([`Shadow::update`]), which every change
//! is: concurrent writers of different bits of a dword never undo each other (in vfio-pci they
//! may).

use super::{
    layout::Owner,
    perms,
    OpenConfig, //
};
use kernel::{
    prelude::*,
    sync::atomic::{
        Atomic,
        Relaxed, //
    }, //
};

/// Encoded [`Owner`]s, 16 bits each: a tag in the high bits, the capability id in the low ones.
const OWNER_UNASSIGNED: u16 = 0;
const OWNER_HEADER: u16 = 1;
const OWNER_CAP: u16 = 0x100;
const OWNER_ECAP: u16 = 0x4000;
/// Extended capability ids this large only occur as the hidden 4-byte anchor at 0x100, whose
/// rules do not depend on its id: they are all stored as this one.
const ECAP_ID_MAX: u16 = 0x3fff;
/// Marks a recorded MSI control register in [`Shadow::msi_flags`].
const MSI_PRESENT: u32 = 1 << 16;

/// What user space sees of config space where bits are virtualized, and who owns each byte.
pub(super) struct Shadow {
    /// The virtual config space, a little-endian dword each.
    words: KVec<Atomic<u32>>,
    /// The owners of each dword's bytes, encoded, 16 bits a byte (lowest byte lowest): one
    /// load answers a whole access.
    owners: KVec<Atomic<u64>>,
    /// For each dword, where the run of bytes of one owner that holds its first byte starts
    /// (see [`Shadow::index_runs`]): a capability's start in one load.
    run_starts: KVec<Atomic<u32>>,
    /// The MSI capability's control register as found at open, with [`MSI_PRESENT`] if the
    /// function has MSI (0 if not): its rules depend on the 64-bit and masking bits.
    msi_flags: Atomic<u32>,
}

/// The owner of one byte, as [`Shadow::owner_run`] found it.
#[derive(Clone, Copy)]
pub(super) struct OwnerRun {
    pub(super) owner: Owner,
    /// How many bytes from the byte to the end of its dword share its owner (at least 1).
    pub(super) len: usize,
    /// The byte.
    pub(super) pos: usize,
    /// Its dword's owners, encoded, as loaded.
    packed: u64,
}

impl Shadow {
    /// Room for a function with `size` bytes of config space (256 or 4096: whole dwords);
    /// every byte unassigned.
    pub(super) fn new(size: usize) -> Result<Self> {
        let dwords = size / 4;
        let mut words = KVec::with_capacity(dwords, GFP_KERNEL)?;
        let mut owners = KVec::with_capacity(dwords, GFP_KERNEL)?;
        let mut run_starts = KVec::with_capacity(dwords, GFP_KERNEL)?;
        for _ in 0..dwords {
            words.push(Atomic::new(0), GFP_KERNEL)?;
            owners.push(Atomic::new(0), GFP_KERNEL)?;
            run_starts.push(Atomic::new(0), GFP_KERNEL)?;
        }
        Ok(Self {
            words,
            owners,
            run_starts,
            msi_flags: Atomic::new(0),
        })
    }

    /// Size of the config space in bytes.
    pub(super) fn len(&self) -> usize {
        4 * self.words.len()
    }

    /// The `count` (at most 4) bytes at `pos` as a little-endian value; bytes past the end
    /// read 0.
    #[inline]
    pub(super) fn get(&self, pos: usize, count: usize) -> u32 {
        let count = count.min(4);
        if pos % 4 + count <= 4 {
            return (self.word(pos / 4) >> (8 * (pos % 4))) & low_bytes(count);
        }
        self.get_unaligned(pos, count)
    }

    /// [`Shadow::get`] across a dword boundary (only the open-time build does that).
    #[cold]
    fn get_unaligned(&self, pos: usize, count: usize) -> u32 {
        (0..count).fold(0, |acc, i| {
            acc | (self.byte(pos.saturating_add(i)) << (8 * i))
        })
    }

    /// The byte at `pos`, 0 past the end.
    fn byte(&self, pos: usize) -> u32 {
        (self.word(pos / 4) >> (8 * (pos % 4))) & 0xff
    }

    #[inline]
    fn word(&self, index: usize) -> u32 {
        self.words.get(index).map_or(0, |word| word.load(Relaxed))
    }

    /// The owner of the byte at `pos` ([`Owner::Unassigned`] past the end).
    pub(super) fn owner(&self, pos: usize) -> Owner {
        self.owner_run(pos).owner
    }

    /// The owner of the byte at `pos`, and how many bytes from `pos` to the end of its dword
    /// share that owner: one load of the dword's owners, kept for [`Self::run_start`].
    #[inline]
    pub(super) fn owner_run(&self, pos: usize) -> OwnerRun {
        let packed = self.owners.get(pos / 4).map_or(0, |o| o.load(Relaxed));
        // The lanes of `pos` and the bytes after it, lowest first.
        let lanes = packed >> (16 * (pos % 4));
        let code = lanes as u16;
        // Lanes equal to `code` are zero here; the lanes past the dword may be too, hence
        // the clamp to what is left of the dword.
        let differ = lanes ^ (u64::from(code) * 0x0001_0001_0001_0001);
        let same = (differ.trailing_zeros() / 16) as usize;
        OwnerRun {
            owner: decode(code),
            len: same.clamp(1, 4 - pos % 4),
            pos,
            packed,
        }
    }

    /// The first byte of the run of bytes that end at `run`'s byte and share its owner, not
    /// below `floor`, as [`Self::index_runs`] last recorded the runs: from the owners `run`
    /// loaded, and one more load if the run reaches back to its dword's first byte. (Walking
    /// back byte by byte through [`Self::owner`], the start of the MSI message data took 700
    /// instructions, dword by dword still about 120; `scripts/profile.sh`.)
    #[inline]
    pub(super) fn run_start(&self, run: &OwnerRun, floor: usize) -> usize {
        let pos = run.pos;
        if pos >= self.len() {
            return pos;
        }
        let lane_code = |lane: usize| (run.packed >> (16 * lane)) as u16;
        let code = lane_code(pos % 4);
        let mut start = pos;
        while start % 4 != 0 && lane_code((start - 1) % 4) == code {
            start -= 1;
        }
        if start % 4 == 0 {
            start = self
                .run_starts
                .get(pos / 4)
                .map_or(start, |s| s.load(Relaxed) as usize);
        }
        start.max(floor.min(pos))
    }

    /// The MSI capability's rules, if the function has MSI.
    pub(super) fn msi(&self) -> Option<perms::Policy> {
        let flags = self.msi_flags.load(Relaxed);
        (flags & MSI_PRESENT != 0).then(|| perms::msi_policy(flags as u16))
    }

    /// Stores the low `count` (at most 4) bytes of `val` at `pos`, little-endian; bytes past
    /// the end are dropped. `_held` proves the caller may change the shadow (see the module
    /// documentation).
    pub(super) fn set(&self, _held: &mut OpenConfig, pos: usize, count: usize, val: u32) {
        let count = count.min(4);
        if pos % 4 + count > 4 {
            for i in 0..count {
                self.set(_held, pos.saturating_add(i), 1, val >> (8 * i));
            }
            return;
        }
        self.update(pos, count, low_bytes(count), val);
    }

    /// Sets the bits `mask` of the `count` (at most 4) bytes at `pos`, which stay inside one
    /// dword, to those of `val`, in one atomic update: a lock-free writer changing other bits
    /// of the dword at the same time loses nothing, nor does it. Writes that take no lock
    /// change the copy only through this, and only bits that no writer holding the lock reads
    /// back (see [`super::access::WriteRoute`]).
    pub(super) fn update(&self, pos: usize, count: usize, mask: u32, val: u32) {
        let Some(word) = self.words.get(pos / 4) else {
            return;
        };
        let shift = 8 * (pos % 4);
        let mask = (mask & low_bytes(count.min(4 - pos % 4))) << shift;
        let val = val << shift;
        let mut old = word.load(Relaxed);
        // Only another lock-free writer's update of other bits makes this retry.
        while let Err(now) = word.cmpxchg(old, (old & !mask) | (val & mask), Relaxed) {
            old = now;
        }
    }

    /// Zeroes every byte, leaves every byte unassigned and forgets the MSI rules; `_held` as
    /// for [`Shadow::set`].
    pub(super) fn clear(&self, _held: &mut OpenConfig) {
        self.words.iter().for_each(|word| word.store(0, Relaxed));
        self.owners
            .iter()
            .for_each(|owners| owners.store(0, Relaxed));
        self.msi_flags.store(0, Relaxed);
    }

    /// Marks the byte at `pos` as `owner`'s; `_held` as for [`Shadow::set`].
    pub(super) fn set_owner(&self, _held: &mut OpenConfig, pos: usize, owner: Owner) {
        let code = match owner {
            Owner::Header => OWNER_HEADER,
            Owner::Unassigned => OWNER_UNASSIGNED,
            Owner::Cap(id) => OWNER_CAP | u16::from(id),
            Owner::Ecap(id) => OWNER_ECAP | id.min(ECAP_ID_MAX),
        };
        if let Some(slot) = self.owners.get(pos / 4) {
            let shift = 16 * (pos % 4);
            let old = slot.load(Relaxed);
            slot.store(
                (old & !(0xffff << shift)) | (u64::from(code) << shift),
                Relaxed,
            );
        }
    }

    /// Records where each dword's first byte's owner run starts, for [`Self::run_start`]; owners set after it are not seen there until it runs
    /// again. `_held` as for [`Shadow::set`]: the open-time build calls it last.
    pub(super) fn index_runs(&self, _held: &mut OpenConfig) {
        let mut start = 0;
        let mut previous = None;
        for pos in 0..self.len() {
            let code = self
                .owners
                .get(pos / 4)
                .map_or(0, |o| (o.load(Relaxed) >> (16 * (pos % 4))) as u16);
            if previous != Some(code) {
                start = pos;
            }
            previous = Some(code);
            if pos % 4 == 0 {
                if let Some(slot) = self.run_starts.get(pos / 4) {
                    slot.store(start as u32, Relaxed);
                }
            }
        }
    }

    /// Records the MSI control register whose rules apply (`None`: no MSI); `_held` as for
    /// [`Shadow::set`].
    pub(super) fn set_msi_flags(&self, _held: &mut OpenConfig, flags: Option<u16>) {
        self.msi_flags
            .store(flags.map_or(0, |f| MSI_PRESENT | u32::from(f)), Relaxed);
    }
}

/// The mask of the low `count` (1 to 4) bytes.
#[inline]
pub(super) fn low_bytes(count: usize) -> u32 {
    match count {
        1 => 0xff,
        2 => 0xffff,
        3 => 0xff_ffff,
        _ => u32::MAX,
    }
}

/// The [`Owner`] an owner code stands for.
#[inline]
fn decode(code: u16) -> Owner {
    match code {
        OWNER_HEADER => Owner::Header,
        code if code >= OWNER_ECAP => Owner::Ecap(code - OWNER_ECAP),
        code if code >= OWNER_CAP => Owner::Cap((code - OWNER_CAP) as u8),
        _ => Owner::Unassigned,
    }
}

#[kernel::macros::kunit_tests(vfio_pci_rs_config_shadow)]
mod tests {
    use super::*;

    /// The right to change a shadow, as an open holds it.
    fn held() -> OpenConfig {
        OpenConfig { bars_dirty: false }
    }

    /// The owner of `pos` and its run to the end of the dword.
    fn run(shadow: &Shadow, pos: usize) -> (Owner, usize) {
        let run = shadow.owner_run(pos);
        (run.owner, run.len)
    }

    /// Where the run ending at `pos` starts, not below `floor`.
    fn start(shadow: &Shadow, pos: usize, floor: usize) -> usize {
        shadow.run_start(&shadow.owner_run(pos), floor)
    }

    #[test]
    fn owners_round_trip() -> Result {
        let shadow = Shadow::new(256)?;
        let mut held = held();
        let owners = [
            Owner::Header,
            Owner::Cap(0x01),
            Owner::Cap(0xff),
            Owner::Ecap(0x0001),
            Owner::Ecap(0x3fff),
            Owner::Unassigned,
            Owner::Cap(0x00),
            Owner::Ecap(0x0000),
        ];
        for (pos, owner) in owners.iter().enumerate() {
            shadow.set_owner(&mut held, pos, *owner);
        }
        for (pos, owner) in owners.iter().enumerate() {
            assert_eq!(shadow.owner(pos), *owner);
        }
        // Ids too large to pack all stand for the hidden anchor.
        shadow.set_owner(&mut held, 9, Owner::Ecap(0xffff));
        assert_eq!(shadow.owner(9), Owner::Ecap(0x3fff));
        // Past the end: unassigned, and not stored.
        shadow.set_owner(&mut held, 256, Owner::Header);
        assert_eq!(shadow.owner(256), Owner::Unassigned);
        // Clearing forgets every owner.
        shadow.clear(&mut held);
        assert_eq!(shadow.owner(0), Owner::Unassigned);
        assert_eq!(shadow.owner(3), Owner::Unassigned);
        Ok(())
    }

    #[test]
    fn owner_runs_stop_at_the_owner_and_the_dword() -> Result {
        let shadow = Shadow::new(256)?;
        let mut held = held();
        // Dword 0: two header bytes, then two of capability 1.
        for (pos, owner) in [Owner::Header, Owner::Header, Owner::Cap(1), Owner::Cap(1)]
            .into_iter()
            .enumerate()
        {
            shadow.set_owner(&mut held, pos, owner);
        }
        assert_eq!(run(&shadow, 0), (Owner::Header, 2));
        assert_eq!(run(&shadow, 1), (Owner::Header, 1));
        assert_eq!(run(&shadow, 2), (Owner::Cap(1), 2));
        assert_eq!(run(&shadow, 3), (Owner::Cap(1), 1));
        // Dwords 1 and 2 all header: runs end with the dword.
        for pos in 4..12 {
            shadow.set_owner(&mut held, pos, Owner::Header);
        }
        assert_eq!(run(&shadow, 4), (Owner::Header, 4));
        assert_eq!(run(&shadow, 6), (Owner::Header, 2));
        // Dword 3: an owner followed by unassigned bytes (code 0, like the lanes past the
        // dword).
        shadow.set_owner(&mut held, 12, Owner::Cap(5));
        assert_eq!(run(&shadow, 12), (Owner::Cap(5), 1));
        assert_eq!(run(&shadow, 13), (Owner::Unassigned, 3));
        // Untouched dwords and past the end.
        assert_eq!(run(&shadow, 16), (Owner::Unassigned, 4));
        assert_eq!(run(&shadow, 255), (Owner::Unassigned, 1));
        assert_eq!(run(&shadow, 4096), (Owner::Unassigned, 4));
        Ok(())
    }

    #[test]
    fn owner_runs_start_at_the_owner_or_the_floor() -> Result {
        let shadow = Shadow::new(256)?;
        let mut held = held();
        // 0x40..0x4e: capability 5 (three whole dwords and two bytes), then capability 9.
        for pos in 0x40..0x4e {
            shadow.set_owner(&mut held, pos, Owner::Cap(5));
        }
        for pos in 0x4e..0x54 {
            shadow.set_owner(&mut held, pos, Owner::Cap(9));
        }
        shadow.index_runs(&mut held);
        assert_eq!(start(&shadow, 0x40, 0x40), 0x40);
        assert_eq!(start(&shadow, 0x43, 0x40), 0x40);
        assert_eq!(start(&shadow, 0x4c, 0x40), 0x40);
        assert_eq!(start(&shadow, 0x4d, 0x40), 0x40);
        assert_eq!(start(&shadow, 0x4e, 0x40), 0x4e);
        assert_eq!(start(&shadow, 0x53, 0x40), 0x4e);
        // The floor stops it, inside a dword too.
        assert_eq!(start(&shadow, 0x4c, 0x42), 0x42);
        assert_eq!(start(&shadow, 0x4c, 0x44), 0x44);
        // Unassigned bytes (below 0x40) are a run of their own; past the end: itself.
        assert_eq!(start(&shadow, 0x3f, 0), 0);
        assert_eq!(start(&shadow, 4096, 0), 4096);
        Ok(())
    }

    #[test]
    fn bytes_are_little_endian() -> Result {
        let shadow = Shadow::new(256)?;
        let mut held = held();
        assert_eq!(shadow.len(), 256);
        shadow.set(&mut held, 0, 4, 0x4433_2211);
        assert_eq!(shadow.get(0, 1), 0x11);
        assert_eq!(shadow.get(1, 2), 0x3322);
        assert_eq!(shadow.get(3, 1), 0x44);
        shadow.set(&mut held, 1, 2, 0xbbaa);
        assert_eq!(shadow.get(0, 4), 0x44bb_aa11);
        // Across a dword boundary.
        shadow.set(&mut held, 6, 4, 0x8877_6655);
        assert_eq!(shadow.get(4, 4), 0x6655_0000);
        assert_eq!(shadow.get(8, 4), 0x0000_8877);
        assert_eq!(shadow.get(7, 2), 0x7766);
        // At the end: what does not fit is dropped and reads 0.
        shadow.set(&mut held, 254, 4, 0xffff_ffff);
        assert_eq!(shadow.get(252, 4), 0xffff_0000);
        assert_eq!(shadow.get(254, 4), 0xffff);
        assert_eq!(shadow.get(256, 1), 0);
        shadow.clear(&mut held);
        assert_eq!(shadow.get(0, 4), 0);
        Ok(())
    }

    #[test]
    fn updates_change_only_their_bits() -> Result {
        let shadow = Shadow::new(256)?;
        let mut held = held();
        shadow.set(&mut held, 0x3c, 4, 0x4433_2211);
        shadow.update(0x3c, 1, 0xff, 0xaa);
        assert_eq!(shadow.get(0x3c, 4), 0x4433_22aa);
        shadow.update(0x3d, 2, 0x0f0f, 0xffff);
        assert_eq!(shadow.get(0x3c, 4), 0x443f_2faa);
        // The mask is cut to the bytes written, and to the dword.
        shadow.update(0x3e, 1, u32::MAX, 0);
        assert_eq!(shadow.get(0x3c, 4), 0x4400_2faa);
        shadow.update(0x3f, 4, u32::MAX, 0x11);
        assert_eq!(shadow.get(0x3c, 4), 0x1100_2faa);
        assert_eq!(shadow.get(0x40, 4), 0);
        // Past the end: dropped.
        shadow.update(256, 4, u32::MAX, 0);
        assert_eq!(shadow.get(252, 4), 0);
        Ok(())
    }

    #[test]
    fn msi_flags_are_recorded() -> Result {
        let shadow = Shadow::new(256)?;
        let mut held = held();
        assert!(shadow.msi().is_none());
        shadow.set_msi_flags(&mut held, Some(0));
        assert!(shadow.msi().is_some());
        shadow.set_msi_flags(&mut held, None);
        assert!(shadow.msi().is_none());
        Ok(())
    }

    #[test]
    fn low_bytes_masks() {
        assert_eq!(low_bytes(1), 0xff);
        assert_eq!(low_bytes(2), 0xffff);
        assert_eq!(low_bytes(3), 0xff_ffff);
        assert_eq!(low_bytes(4), u32::MAX);
    }
}
