//! The MSI-X delivery row of the device-access benchmark: the time from the
//! device raising an MSI-X vector to the vector's eventfd, registered with
//! VFIO_DEVICE_SET_IRQS (MSI-X index, DATA_EVENTFD | ACTION_TRIGGER), being
//! read.
//!
//! The device is made to interrupt the way the interrupt scenarios do it
//! (interrupts.rs): the model's interrupt cause is routed to a vector and
//! enabled, then set through the interrupt cause set register (ICS).  Only
//! that last write is inside the timed span, and it goes through the mmap of
//! BAR0, so no driver code runs before the interrupt: the span is QEMU's
//! message, the host's interrupt entry, the driver's handler signalling the
//! eventfd, then poll(2) and read(2) of the eventfd.  Every sample starts
//! from a quiet device and a zero counter: the device is quieted and left
//! alone for a while, and whatever came late (QEMU's e1000e may send a
//! second message for one cause) is drained and counted, not timed.

use crate::interrupts::{
    bar0_write, msix_route, quiet, registers, set_bus_master, set_fds, set_none, take_count, take_late, ACTION_TRIGGER,
    MSIX,
};
use crate::sys::{new_eventfd, Fail, Mmio};
use crate::vfio::Device;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Timed samples per call of [`measure`], after [`WARMUP`] untimed ones.
pub(super) const SAMPLES: usize = 200;
const WARMUP: usize = 5;
/// How long a sample waits for its signal before the run fails.
const TIMEOUT: Duration = Duration::from_secs(1);
/// How long the quieted device is left alone before the next sample (guest
/// time; under `-icount sleep=off` idle time costs the host nothing).
const SETTLE: Duration = Duration::from_millis(1);

/// The signals beyond the one each sample waited for (QEMU's e1000e may send
/// a second message for one cause).
#[derive(Default, Clone, Copy)]
pub(super) struct Extra {
    /// Already counted by the sample's own read.
    pub(super) in_read: u64,
    /// Arrived after it, drained before the next sample.
    pub(super) late: u64,
}

/// Times [`SAMPLES`] deliveries on function `bdf`, open as `d` with BAR0
/// mapped at `bar0`, appending to `times` and adding to `extra`.  MSI-X is
/// disabled again at the end.
pub(super) fn measure(
    bdf: &str,
    d: &Device,
    bar0: &Mmio,
    times: &mut Vec<Duration>,
    extra: &mut Extra,
) -> Result<(), Fail> {
    let r = registers(bdf).ok_or_else(|| Fail::other(format!("{bdf}: no interrupt recipe for this model")))?;
    let route = msix_route(r);
    let fd = new_eventfd()?;
    // The device's MSI-X writes need Bus Master; only the routed vector gets the eventfd.
    set_bus_master(bdf)?;
    quiet(d, r)?;
    let mut fds = vec![-1; route.vector as usize + 1];
    fds[route.vector as usize] = fd.as_raw_fd();
    set_fds(d, MSIX, 0, &fds)?;
    let result = (|| {
        if let Some((ivar, value)) = route.ivar {
            bar0_write(d, ivar, value)?;
        }
        for i in 0..WARMUP + SAMPLES {
            quiet(d, r)?;
            extra.late += take_late(&fd, SETTLE)?;
            bar0_write(d, r.ims, route.cause)?;
            let t = Instant::now();
            bar0.write32(r.ics as usize, route.cause).ok_or_else(|| Fail::other("ICS outside the BAR0 mapping"))?;
            let n = take_count(&fd, TIMEOUT)?;
            let elapsed = t.elapsed();
            if n == 0 {
                return Err(Fail::other(format!("no signal within {TIMEOUT:?} (sample {i})")));
            }
            extra.in_read += n - 1;
            if i >= WARMUP {
                times.push(elapsed);
            }
        }
        Ok(())
    })();
    let _ = quiet(d, r);
    let _ = set_none(d, ACTION_TRIGGER, MSIX, 0, 0);
    result
}
