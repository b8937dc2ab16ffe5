//! The huge-mapping rows of the benchmark: the first touch of a large BAR
//! through mmap, faulted 4 KiB at a time, a PMD (2 MiB) at a time and a PUD
//! (1 GiB) at once, through each driver.  The BAR is the 1 GiB BAR2 of the
//! "hugebar1g" topology's ivshmem; the mapping's address picks the block
//! size, as in tests/src/huge_map.rs (4 KiB past a 2 MiB boundary: pages;
//! 2 MiB-aligned: PMDs; 1 GiB-aligned: a PUD).  Each sample is a fresh
//! mapping touched once: every 4 KiB of a 64 MiB window for pages and PMDs
//! (16384 reads, 16384 or 32 faults), every 2 MiB of the whole BAR for the
//! PUD (512 reads, 1 fault).  The fault count of every sample is checked.
//! `VFIO_PCI_RS_BENCH_ONLY=huge_fault` in the guest runs these rows alone.

use super::{median, ratio, REFERENCE_NAME, ROUNDS, RUST_NAME};
use crate::huge_map::PlacedMap;
use crate::sys::Fail;
use crate::sysfs;
use crate::vfio::{Device, Iommufd};
use std::path::Path;
use std::time::{Duration, Instant};

/// The topology whose function is measured.
pub(super) const TOPOLOGY: &str = "hugebar1g";
const BAR: u64 = 2;
const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const WINDOW: u64 = 64 * MIB;

/// One way of faulting the BAR: name, mapping length, address alignment and
/// skew, touch stride, the faults one touch of it must take, samples per
/// round.
struct Way {
    name: &'static str,
    len: u64,
    align: u64,
    skew: u64,
    stride: u64,
    faults: u64,
    samples: usize,
}

const WAYS: [Way; 3] = [
    Way {
        name: "64 MiB, 4 KiB faults",
        len: WINDOW,
        align: 2 * MIB,
        skew: 4 * KIB,
        stride: 4 * KIB,
        faults: WINDOW / (4 * KIB),
        samples: 2,
    },
    Way {
        name: "64 MiB, PMD faults",
        len: WINDOW,
        align: 2 * MIB,
        skew: 0,
        stride: 4 * KIB,
        faults: WINDOW / (2 * MIB),
        samples: 8,
    },
    Way { name: "1 GiB, one PUD fault", len: GIB, align: GIB, skew: 0, stride: 2 * MIB, faults: 1, samples: 8 },
];

/// Prints the table for function `bdf`.
pub(super) fn bench(bdf: &str) -> Result<(), Fail> {
    let mut times: [[Vec<Duration>; 2]; WAYS.len()] = Default::default();
    for _ in 0..ROUNDS {
        for (k, drv) in [REFERENCE_NAME, RUST_NAME].into_iter().enumerate() {
            measure(drv, bdf, k, &mut times)?;
        }
    }
    println!("| first touch of a BAR mmap ({bdf}, BAR2) | faults | C | Rust | ratio |");
    println!("|---|---|---|---|---|");
    for (way, t) in WAYS.iter().zip(&times) {
        let (c, r) = (median(&t[0]), median(&t[1]));
        println!("| {} | {} | {} | {} | {} |", way.name, way.faults, us(c), us(r), ratio(r, c));
    }
    let page = |k: usize| median(&times[0][k]);
    let pmd = |k: usize| median(&times[1][k]);
    println!();
    println!(
        "Medians of fresh mappings touched once ({ROUNDS} rounds, drivers alternating, {} / {} / {} samples per round); 4 KiB over PMD faults for the same 64 MiB: C {}, Rust {}.",
        WAYS[0].samples,
        WAYS[1].samples,
        WAYS[2].samples,
        ratio(page(0), pmd(0)),
        ratio(page(1), pmd(1)),
    );
    Ok(())
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// Binds `bdf` to `drv`, opens its cdev, times every way, unbinds.
fn measure(drv: &str, bdf: &str, k: usize, times: &mut [[Vec<Duration>; 2]; WAYS.len()]) -> Result<(), Fail> {
    sysfs::set_driver_override(bdf, drv)?;
    sysfs::drivers_probe(bdf)?;
    let result = (|| {
        let cdev = sysfs::vfio_dev_entries(bdf)?
            .into_iter()
            .next()
            .ok_or_else(|| Fail::other(format!("{bdf} has no cdev under {drv}")))?;
        let dev = Device::open_cdev(&cdev)?;
        let iommufd = Iommufd::open()?;
        dev.bind_iommufd(&iommufd).map_err(Fail::Os)?;
        let ioas = iommufd.ioas_alloc().map_err(Fail::Os)?;
        dev.attach_pt(ioas).map_err(Fail::Os)?;
        for (way, t) in WAYS.iter().zip(times.iter_mut()) {
            for _ in 0..way.samples {
                let map = PlacedMap::new(&dev, BAR << 40, way.len, way.align, way.skew).map_err(Fail::Os)?;
                let start = Instant::now();
                let faults = map.touch(way.stride)?;
                t[k].push(start.elapsed());
                if faults != way.faults {
                    return Err(Fail::other(format!("{drv}: {}: {faults} faults, expected {}", way.name, way.faults)));
                }
            }
        }
        Ok(())
    })();
    let _ = sysfs::unbind(bdf);
    let _ = sysfs::clear_driver_override(bdf);
    result
}

/// Whether the benchmark's topology is present (its port listed).
pub(super) fn function(topologies: &[sysfs::Topology], devices: &Path) -> Result<Option<String>, Fail> {
    let Some(t) = topologies.iter().find(|t| t.name == TOPOLOGY) else {
        return Ok(None);
    };
    Ok(sysfs::functions_below(devices, &t.port)?.into_iter().next())
}
