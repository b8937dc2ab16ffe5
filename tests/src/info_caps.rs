//! Scenarios for the capability chain of VFIO_DEVICE_GET_INFO.  On x86
//! vfio-pci reports one capability, the PCI AtomicOps completer capability
//! (VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP, with VFIO_DEVICE_FLAGS_CAPS),
//! when the function completes AtomicOps (Device Capabilities 2) and
//! pci_enable_atomic_ops_to_root() succeeds for a width.  No QEMU 10.0
//! device or port advertises AtomicOps (pcie-root-port has no such
//! property), so on every function of the topologies neither driver may
//! report it: the scenario records the function's and its root port's
//! Device Capabilities 2 and Device Control 2 as sysfs shows them (the
//! AtomicOp bits; Device Control 2 must not change), and GET_INFO at every
//! argsz from the minimum to past the structure, with which bytes the
//! kernel wrote.

use crate::regions::with_group_device;
use crate::scenarios::{Ctx, Scenario, Site};
use crate::sys::Fail;
use crate::sysfs;
use crate::transcript::{Expect, Fields, Transcript, Val};
use crate::vfio::{InfoReply, SENTINEL};

pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
        name: "info_caps_atomic",
        rule: "GET_INFO reports VFIO_DEVICE_FLAGS_CAPS and the ATOMIC_COMP capability only when the function completes AtomicOps and the root port routes them: for a function without AtomicOp completer bits, no CAPS flag, cap_offset 0, argsz unchanged at every argsz from 16 to 64, nothing written past min(argsz, 24), and Device Control 2 left as it was",
        loads_module: false,
        applies: single_function,
        run: info_caps_atomic,
        expect: expect_info_caps_atomic,
    }]
}

fn single_function(site: &Site) -> Result<(), String> {
    if site.functions.len() != 1 {
        return Err("runs on single functions".into());
    }
    Ok(())
}

const PCI_CAP_ID_EXP: u8 = 0x10;
const PCI_EXP_DEVCAP2: usize = 0x24;
const PCI_EXP_DEVCTL2: usize = 0x28;
/// AtomicOp Routing Supported and the 32/64/128-bit completer bits.
const DEVCAP2_ATOMIC_BITS: u32 = 0x40 | 0x80 | 0x100 | 0x200;
/// AtomicOp Requester Enable and AtomicOp Egress Blocking.
const DEVCTL2_ATOMIC_BITS: u32 = 0x40 | 0x80;
const VFIO_DEVICE_FLAGS_CAPS: u64 = 1 << 7;

/// The AtomicOp bits of Device Capabilities 2 and Device Control 2 of
/// `bdf` (config space through sysfs); None for conventional PCI.
fn atomic_regs(bdf: &str) -> Result<Option<(u32, u32)>, Fail> {
    let cfg = std::fs::read(sysfs::device_dir(bdf).join("config"))?;
    let mut pos = *cfg.get(0x34).unwrap_or(&0) as usize;
    for _ in 0..48 {
        if !(0x40..=0xfc).contains(&pos) || pos + PCI_EXP_DEVCTL2 + 4 > cfg.len() {
            return Ok(None);
        }
        if cfg[pos] == PCI_CAP_ID_EXP {
            let dword = |o: usize| u32::from_le_bytes(cfg[pos + o..pos + o + 4].try_into().expect("4 bytes"));
            return Ok(Some((
                dword(PCI_EXP_DEVCAP2) & DEVCAP2_ATOMIC_BITS,
                dword(PCI_EXP_DEVCTL2) & DEVCTL2_ATOMIC_BITS,
            )));
        }
        pos = cfg[pos + 1] as usize;
    }
    Ok(None)
}

fn regs_fields(r: &Option<(u32, u32)>, _: &mut Transcript) -> Fields {
    match r {
        None => vec![("pcie", Val::Bool(false))],
        Some((cap, ctl)) => {
            vec![("devcap2 atomic bits", Val::Hex((*cap).into())), ("devctl2 atomic bits", Val::Hex((*ctl).into()))]
        }
    }
}

/// The root port above `bdf` (its parent in sysfs).
fn port_of(bdf: &str) -> Option<String> {
    let path = std::fs::canonicalize(sysfs::device_dir(bdf)).ok()?;
    let parent = path.parent()?.file_name()?.to_str()?.to_string();
    parent.contains(':').then_some(parent)
}

fn reply_fields(r: &InfoReply, argsz: u32) -> Fields {
    let written = (argsz as usize).min(24);
    vec![
        ("argsz", Val::Num(r.info.argsz.into())),
        ("flags", Val::Hex(r.info.flags.into())),
        ("cap_offset", Val::Num(r.info.cap_offset.into())),
        (
            "nothing written past min(argsz, 24)",
            Val::Bool(r.bytes.get(written..).unwrap_or(&[]).iter().all(|b| *b == SENTINEL)),
        ),
        ("bytes", Val::Bytes(r.bytes.clone())),
    ]
}

const ARGSZ: [u32; 6] = [16, 20, 24, 32, 40, 64];

fn info_caps_atomic(c: &Ctx) -> Transcript {
    let bdf = c.bdf().to_string();
    with_group_device(c, move |t, d| {
        t.step("function's AtomicOp registers", atomic_regs(&bdf), regs_fields);
        let port = port_of(&bdf);
        match &port {
            Some(p) => {
                t.step("root port's AtomicOp registers", atomic_regs(p), regs_fields);
            }
            None => {
                t.step(
                    "root port's AtomicOp registers",
                    Err::<(), Fail>(Fail::other("on the root bus")),
                    |_, _| vec![],
                );
            }
        }
        for argsz in ARGSZ {
            t.step(&format!("GET_INFO argsz {argsz}"), d.get_info(argsz), |r, _| reply_fields(r, argsz));
        }
        t.step("function's AtomicOp registers after GET_INFO", atomic_regs(&bdf), regs_fields);
        Ok(())
    })
}

fn expect_info_caps_atomic(_: &Ctx, t: &Transcript) -> Vec<String> {
    let mut e = Expect::new(t);
    let completes = t
        .find("function's AtomicOp registers")
        .and_then(|o| o.field("devcap2 atomic bits"))
        .and_then(Val::as_u64)
        .is_some_and(|b| b & 0x380 != 0);
    let mut failures = Vec::new();
    if completes {
        failures.push("the function completes AtomicOps: this scenario expects a function that does not".into());
    }
    for argsz in ARGSZ {
        let s = format!("GET_INFO argsz {argsz}");
        e.num(&s, "argsz", argsz.into());
        // cap_offset lies past an argsz below 20: its bytes are the sentinel's, which
        // "nothing written past" checks.
        if argsz >= 20 {
            e.num(&s, "cap_offset", 0);
        }
        e.val(&s, "nothing written past min(argsz, 24)", &Val::Bool(true));
        if let Some(flags) = t.find(&s).and_then(|o| o.field("flags")).and_then(Val::as_u64) {
            if flags & VFIO_DEVICE_FLAGS_CAPS != 0 {
                failures.push(format!("'{s}': VFIO_DEVICE_FLAGS_CAPS set without an AtomicOps completer"));
            }
        }
    }
    let before = t.find("function's AtomicOp registers").and_then(|o| o.field("devctl2 atomic bits"));
    let after = t.find("function's AtomicOp registers after GET_INFO").and_then(|o| o.field("devctl2 atomic bits"));
    if before != after {
        failures.push(format!("Device Control 2's AtomicOp bits changed: {before:?} -> {after:?}"));
    }
    failures.extend(e.finish());
    failures
}
