//! The IRQ bypass scenario: every MSI/MSI-X vector with an eventfd attached is an IRQ
//! bypass producer whose token is that eventfd and whose IRQ is the vector's Linux IRQ, as
//! vfio-pci registers them for KVM to post interrupts.
//!
//! KVM (the real consumer) is not in the TCG guest; the test-only module
//! tests/modules/irqbypass_consumer.c (`/dev/irqbypass_consumer`, loaded by harness/init) stands in for
//! it: each consumer is registered on one of the scenario's eventfds and the module logs every
//! add_producer/del_producer callback with the producer's IRQ number and whether a handler
//! was requested on that IRQ at that moment, in the order the IRQ bypass manager made them.  A step records the callbacks it caused, each producer's IRQ
//! shown as the vfio line of /proc/interrupts it is (`vfio-msix[0](BDF)`), so the transcript
//! says which vector paired with which eventfd, and the two drivers' transcripts compare
//! although their IRQ numbers may differ.

use crate::interrupts::{interrupt_topologies, set_fds, set_none, take_count, ACTION_TRIGGER, MSIX};
use crate::regions::with_group;
use crate::scenarios::{none, Ctx, Scenario};
use crate::sys::{new_eventfd, Errno, Fail};
use crate::transcript::{Expect, Fields, Outcome, Transcript, Val};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

const MSI: u32 = 1;
const CONSUMER_DEV: &str = "/dev/irqbypass_consumer";

pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
        name: "irq_bypass",
        rule: "each MSI/MSI-X vector with an eventfd is an IRQ bypass producer (token: the eventfd, IRQ: the vector's Linux IRQ), paired with the consumer of that eventfd whichever registers first: added after its IRQ is requested, deleted before it is freed, when the vector's eventfd is replaced or removed, on disable and on close without disable; a registration that fails (a second vector on the same eventfd, a consumer refusing) is only logged and the vector still signals its eventfd",
        loads_module: false,
        applies: interrupt_topologies,
        run: irq_bypass,
        expect: expect_irq_bypass,
    }]
}

// ----------------------------------------------------------------- helpers

/// The log of the test consumer module, read from where this reader was opened, with each
/// producer IRQ translated into the vfio line it belongs to.
struct BypassLog {
    reader: File,
    /// The vfio line names by IRQ number, as /proc/interrupts showed them last.
    lines: HashMap<u32, String>,
    /// The name each consumer's producer had when it was added: a del names the same IRQ
    /// (which may be freed by then, or reused).
    paired: HashMap<(String, u32), String>,
}

impl BypassLog {
    fn open() -> Result<BypassLog, Fail> {
        let reader = File::open(CONSUMER_DEV)
            .map_err(|e| Fail::other(format!("{CONSUMER_DEV}: {e} (is irqbypass_consumer.ko loaded?)")))?;
        Ok(BypassLog { reader, lines: HashMap::new(), paired: HashMap::new() })
    }

    /// Re-read the vfio lines of /proc/interrupts: `IRQ: counts... vfio-NAME(BDF)`.
    fn refresh_lines(&mut self) -> Result<(), Fail> {
        for line in fs::read_to_string("/proc/interrupts")?.lines() {
            let Some((irq, rest)) = line.trim_start().split_once(':') else { continue };
            let (Ok(irq), Some(i)) = (irq.parse::<u32>(), rest.find("vfio-")) else { continue };
            self.lines.insert(irq, rest[i..].trim_end().to_string());
        }
        Ok(())
    }

    /// The callbacks logged since the last call, as "NAME add|refuse|del LINE" followed by
    /// " (IRQ free)" for a callback made while no handler was requested on the IRQ, in order.
    fn take(&mut self) -> Result<Vec<String>, Fail> {
        let mut text = String::new();
        self.reader.read_to_string(&mut text)?;
        self.refresh_lines()?;
        let mut events = Vec::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let [name, what, irq, state] = f[..] else {
                return Err(Fail::other(format!("unexpected consumer log line {line:?}")));
            };
            let irq: u32 = irq.parse().map_err(|_| Fail::other(format!("bad IRQ in {line:?}")))?;
            let key = (name.to_string(), irq);
            let live = self.lines.get(&irq).cloned().unwrap_or_else(|| format!("IRQ {irq} without a vfio line"));
            let shown = match what {
                "del" => self.paired.remove(&key).unwrap_or(live),
                "add" => {
                    self.paired.insert(key, live.clone());
                    live
                }
                _ => live,
            };
            let state = match state {
                "requested" => "",
                "free" => " (IRQ free)",
                _ => return Err(Fail::other(format!("bad IRQ state in {line:?}"))),
            };
            events.push(format!("{name} {what} {shown}{state}"));
        }
        Ok(events)
    }
}

/// The name of the step recording the callbacks `step` caused.
fn callbacks(step: &str) -> String {
    format!("callbacks: {step}")
}

/// Record the callbacks since the last record, as those `step` caused.
fn record_events(t: &mut Transcript, log: &mut BypassLog, step: &str) {
    t.step(&callbacks(step), log.take(), |e, _| vec![("events", Val::text(e.join("; ")))]);
}

/// A consumer registered on `eventfd` under `name` (refusing every producer if `refuse`):
/// unregistered when the file is closed.
fn consumer(name: &str, eventfd: &OwnedFd, refuse: bool) -> Result<File, Fail> {
    let mut f = OpenOptions::new().read(true).write(true).open(CONSUMER_DEV)?;
    let mode = if refuse { " refuse" } else { "" };
    f.write_all(format!("{name} {}{mode}", eventfd.as_raw_fd()).as_bytes())?;
    Ok(f)
}

fn ret(v: &i32, _: &mut Transcript) -> Fields {
    vec![("ret", Val::Num(*v as u64))]
}

fn count(n: &u64, _: &mut Transcript) -> Fields {
    vec![("signals", Val::Num(*n))]
}

fn fd(e: &OwnedFd) -> i32 {
    e.as_raw_fd()
}

// ---------------------------------------------------------------- irq_bypass

/// Step names, shared by the run and the rule.
const S_MSIX_ON: &str = "MSI-X enable 0-1 with eventfds 0 and 1 (consumer A on 0 registered before)";
const S_B_LATE: &str = "register consumer B on eventfd 1 after vector 1's producer";
const S_SWITCH: &str = "vector 0: eventfd 0 -> eventfd 2 (consumer C)";
const S_SAME: &str = "vector 0: eventfd 2 set again";
const S_DETACH: &str = "vector 1: fd -1";
const S_REATTACH: &str = "vector 1: eventfd 1 again";
const S_DYN: &str = "vector 4, beyond the 2 enabled: eventfd 4 (consumer D)";
const S_DYN_OFF: &str = "vector 4: fd -1";
const S_MSIX_OFF: &str = "MSI-X disable (DATA_NONE count 0)";
const S_DUP: &str = "MSI-X enable 0-1 both with eventfd 0";
const S_DUP_TRIGGER: &str = "trigger vectors 0-1: eventfd 0 signalled by both";
const S_DUP_OFF: &str = "MSI-X disable with the shared eventfd";
const S_REFUSE_ON: &str = "MSI-X enable 0 with eventfd 3 (consumer R refuses)";
const S_REFUSE_TRIGGER: &str = "trigger vector 0: eventfd 3 signalled without a producer";
const S_REFUSE_OFF: &str = "MSI-X disable without a registered producer";
const S_MSIX_AGAIN: &str = "MSI-X enable 0-1 with eventfds 0 and 1 again";
const S_BAD_BLOCK: &str = "MSI-X block 0-1: eventfd 2, then a closed fd (EBADF, the block undone)";
const S_BLOCK_AGAIN: &str = "MSI-X block 0-1 with eventfds 0 and 1 after the failed block";
const S_MSIX_CLOSE: &str = "close with MSI-X enabled";
const S_MSI_ON: &str = "MSI enable with eventfd 0";
const S_MSI_SWITCH: &str = "MSI vector 0: eventfd 0 -> eventfd 2";
const S_MSI_OFF: &str = "MSI disable (DATA_NONE count 0)";
const S_MSI_AGAIN: &str = "MSI enable with eventfd 0 again";
const S_A_GONE: &str = "unregister consumer A while paired";
const S_A2: &str = "register consumer A2 on eventfd 0 after the producer";
const S_MSI_CLOSE: &str = "close with MSI enabled";

fn irq_bypass(c: &Ctx) -> Transcript {
    let bdf = c.bdf().to_string();
    with_group(c, |t, group| {
        let mut e = Vec::new();
        for i in 0..5 {
            e.push(t.need(&format!("eventfd {i}"), new_eventfd().map_err(Fail::Os), none)?);
        }
        let mut log = t.need("open the consumer log", BypassLog::open(), none)?;
        let mut a = Some(t.need("register consumer A on eventfd 0", consumer("A", &e[0], false), none)?);
        let _c = t.need("register consumer C on eventfd 2", consumer("C", &e[2], false), none)?;
        let _r = t.need("register consumer R on eventfd 3, refusing", consumer("R", &e[3], true), none)?;
        let _d = t.need("register consumer D on eventfd 4", consumer("D", &e[4], false), none)?;
        record_events(t, &mut log, "before any vector");
        let _b;
        {
            let d = t.need("first open", group.get_device_fd(&bdf), none)?;
            t.step(S_MSIX_ON, set_fds(&d, MSIX, 0, &[fd(&e[0]), fd(&e[1])]), ret);
            record_events(t, &mut log, S_MSIX_ON);
            _b = t.need(S_B_LATE, consumer("B", &e[1], false), none)?;
            record_events(t, &mut log, S_B_LATE);
            t.step(S_SWITCH, set_fds(&d, MSIX, 0, &[fd(&e[2])]), ret);
            record_events(t, &mut log, S_SWITCH);
            t.step(S_SAME, set_fds(&d, MSIX, 0, &[fd(&e[2])]), ret);
            record_events(t, &mut log, S_SAME);
            t.step(S_DETACH, set_fds(&d, MSIX, 1, &[-1]), ret);
            record_events(t, &mut log, S_DETACH);
            t.step(S_REATTACH, set_fds(&d, MSIX, 1, &[fd(&e[1])]), ret);
            record_events(t, &mut log, S_REATTACH);
            t.step(S_DYN, set_fds(&d, MSIX, 4, &[fd(&e[4])]), ret);
            record_events(t, &mut log, S_DYN);
            t.step(S_DYN_OFF, set_fds(&d, MSIX, 4, &[-1]), ret);
            record_events(t, &mut log, S_DYN_OFF);
            t.step(S_MSIX_OFF, set_none(&d, ACTION_TRIGGER, MSIX, 0, 0), ret);
            record_events(t, &mut log, S_MSIX_OFF);

            t.step(S_DUP, set_fds(&d, MSIX, 0, &[fd(&e[0]), fd(&e[0])]), ret);
            record_events(t, &mut log, S_DUP);
            t.step(&format!("{S_DUP_TRIGGER}: SET_IRQS"), set_none(&d, ACTION_TRIGGER, MSIX, 0, 2), ret);
            t.step(S_DUP_TRIGGER, take_count(&e[0], Duration::ZERO), count);
            t.step(S_DUP_OFF, set_none(&d, ACTION_TRIGGER, MSIX, 0, 0), ret);
            record_events(t, &mut log, S_DUP_OFF);

            t.step(S_REFUSE_ON, set_fds(&d, MSIX, 0, &[fd(&e[3])]), ret);
            record_events(t, &mut log, S_REFUSE_ON);
            t.step(&format!("{S_REFUSE_TRIGGER}: SET_IRQS"), set_none(&d, ACTION_TRIGGER, MSIX, 0, 1), ret);
            t.step(S_REFUSE_TRIGGER, take_count(&e[3], Duration::ZERO), count);
            t.step(S_REFUSE_OFF, set_none(&d, ACTION_TRIGGER, MSIX, 0, 0), ret);
            record_events(t, &mut log, S_REFUSE_OFF);

            t.step(S_MSIX_AGAIN, set_fds(&d, MSIX, 0, &[fd(&e[0]), fd(&e[1])]), ret);
            record_events(t, &mut log, S_MSIX_AGAIN);
            t.step(S_BAD_BLOCK, set_fds(&d, MSIX, 0, &[fd(&e[2]), 4000]), ret);
            record_events(t, &mut log, S_BAD_BLOCK);
            t.step(S_BLOCK_AGAIN, set_fds(&d, MSIX, 0, &[fd(&e[0]), fd(&e[1])]), ret);
            record_events(t, &mut log, S_BLOCK_AGAIN);
        }
        t.record("close", Outcome::Ok(Vec::new()));
        record_events(t, &mut log, S_MSIX_CLOSE);
        {
            let d = t.need("second open", group.get_device_fd(&bdf), none)?;
            t.step(S_MSI_ON, set_fds(&d, MSI, 0, &[fd(&e[0])]), ret);
            record_events(t, &mut log, S_MSI_ON);
            t.step(S_MSI_SWITCH, set_fds(&d, MSI, 0, &[fd(&e[2])]), ret);
            record_events(t, &mut log, S_MSI_SWITCH);
            t.step(S_MSI_OFF, set_none(&d, ACTION_TRIGGER, MSI, 0, 0), ret);
            record_events(t, &mut log, S_MSI_OFF);
            t.step(S_MSI_AGAIN, set_fds(&d, MSI, 0, &[fd(&e[0])]), ret);
            record_events(t, &mut log, S_MSI_AGAIN);
            drop(a.take());
            record_events(t, &mut log, S_A_GONE);
            let _a2 = t.need(S_A2, consumer("A2", &e[0], false), none)?;
            record_events(t, &mut log, S_A2);
            drop(d);
            t.record("second close", Outcome::Ok(Vec::new()));
            record_events(t, &mut log, S_MSI_CLOSE);
        }
        Ok(())
    })
}

fn expect_irq_bypass(c: &Ctx, t: &Transcript) -> Vec<String> {
    let bdf = c.bdf();
    // Attaching a vector beyond those enabled needs dynamic MSI-X allocation (irq_msi_loopback
    // checks when it is there); without it the attach fails and nothing is registered.
    let dynamic = t.find(S_DYN).is_some_and(Outcome::is_ok);
    let x = |v: u32| format!("vfio-msix[{v}]({bdf})");
    let m = format!("vfio-msi[0]({bdf})");
    let mut e = Expect::new(t);
    let mut events = |step: &str, want: &[String]| e.val(&callbacks(step), "events", &Val::text(want.join("; ")));
    events("before any vector", &[]);
    events(S_MSIX_ON, &[format!("A add {}", x(0))]);
    events(S_B_LATE, &[format!("B add {}", x(1))]);
    events(S_SWITCH, &[format!("A del {}", x(0)), format!("C add {}", x(0))]);
    events(S_SAME, &[format!("C del {}", x(0)), format!("C add {}", x(0))]);
    events(S_DETACH, &[format!("B del {}", x(1))]);
    events(S_REATTACH, &[format!("B add {}", x(1))]);
    if dynamic {
        events(S_DYN, &[format!("D add {}", x(4))]);
        events(S_DYN_OFF, &[format!("D del {}", x(4))]);
    } else {
        events(S_DYN, &[]);
        events(S_DYN_OFF, &[]);
    }
    events(S_MSIX_OFF, &[format!("C del {}", x(0)), format!("B del {}", x(1))]);
    events(S_DUP, &[format!("A add {}", x(0))]);
    events(S_DUP_OFF, &[format!("A del {}", x(0))]);
    events(S_REFUSE_ON, &[format!("R refuse {}", x(0))]);
    events(S_REFUSE_OFF, &[]);
    events(S_MSIX_AGAIN, &[format!("A add {}", x(0)), format!("B add {}", x(1))]);
    events(
        S_BAD_BLOCK,
        &[format!("A del {}", x(0)), format!("C add {}", x(0)), format!("B del {}", x(1)), format!("C del {}", x(0))],
    );
    events(S_BLOCK_AGAIN, &[format!("A add {}", x(0)), format!("B add {}", x(1))]);
    events(S_MSIX_CLOSE, &[format!("A del {}", x(0)), format!("B del {}", x(1))]);
    events(S_MSI_ON, &[format!("A add {m}")]);
    events(S_MSI_SWITCH, &[format!("A del {m}"), format!("C add {m}")]);
    events(S_MSI_OFF, &[format!("C del {m}")]);
    events(S_MSI_AGAIN, &[format!("A add {m}")]);
    events(S_A_GONE, &[format!("A del {m}")]);
    events(S_A2, &[format!("A2 add {m}")]);
    events(S_MSI_CLOSE, &[format!("A2 del {m}")]);
    for step in [S_MSIX_ON, S_SWITCH, S_SAME, S_DETACH, S_REATTACH, S_MSIX_OFF, S_DUP, S_DUP_OFF] {
        e.num(step, "ret", 0);
    }
    for step in [S_REFUSE_ON, S_REFUSE_OFF, S_MSIX_AGAIN, S_BLOCK_AGAIN, S_MSI_ON, S_MSI_SWITCH, S_MSI_OFF, S_MSI_AGAIN]
    {
        e.num(step, "ret", 0);
    }
    e.num(S_DYN_OFF, "ret", 0);
    e.err(S_BAD_BLOCK, Errno::EBADF);
    e.num(S_DUP_TRIGGER, "signals", 2);
    e.num(S_REFUSE_TRIGGER, "signals", 1);
    e.finish()
}
