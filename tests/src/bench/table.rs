//! The per-operation table of the benchmark: one row per operation, both
//! drivers' samples, the median of each and of each round, and the ratio.
//!
//! A round gives every driver one turn ([`Turn`]) on the same functions;
//! within a turn an operation is timed a number of times (its samples).  A
//! row's medians are over all its samples of all rounds, per driver; its
//! per-round ratios are the Rust median of one round over the C median of
//! the same round, of which the table prints the smallest and the largest.
//! Under `-icount shift=0` a nanosecond of guest time is one instruction.

use super::profile;
use crate::sys::Fail;
use std::time::{Duration, Instant};

/// Driver slots: the C vfio-pci, then vfio-pci-rs.
pub(super) const C: usize = 0;
pub(super) const RUST: usize = 1;

/// Which rows are measured: all, or those whose name contains one of the
/// comma-separated substrings of the benchmark's `--filter`.
#[derive(Clone, Default)]
pub(crate) struct Filter(Vec<String>);

impl Filter {
    pub(crate) fn new(filter: Option<&str>) -> Filter {
        Filter(filter.map_or_else(Vec::new, |f| f.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()))
    }

    pub(crate) fn matches(&self, name: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|s| name.contains(s.as_str()))
    }
}

/// One operation's samples.
struct Row {
    name: String,
    /// Per driver, every sample of every round.
    all: [Vec<Duration>; 2],
    /// Per driver, the median of each round.
    rounds: [Vec<Duration>; 2],
    /// Per driver, this round's samples so far.
    current: [Vec<Duration>; 2],
    /// The first failure, which ends the row's measurement.
    error: Option<String>,
}

/// Every operation's samples, in the order they were first timed.
#[derive(Default)]
pub(super) struct Table {
    rows: Vec<Row>,
    filter: Filter,
}

impl Table {
    pub(super) fn new(filter: Filter) -> Table {
        Table { rows: Vec::new(), filter }
    }

    fn row(&mut self, name: &str) -> &mut Row {
        let i = match self.rows.iter().position(|r| r.name == name) {
            Some(i) => i,
            None => {
                self.rows.push(Row {
                    name: name.to_string(),
                    all: Default::default(),
                    rounds: Default::default(),
                    current: Default::default(),
                    error: None,
                });
                self.rows.len() - 1
            }
        };
        &mut self.rows[i]
    }

    /// Driver `k`'s turn (named `drv`) in the current round.
    pub(super) fn turn<'a>(&'a mut self, k: usize, drv: &'a str) -> Turn<'a> {
        Turn { table: self, k, drv }
    }

    /// Prints the table (Markdown).
    pub(super) fn print(&self) {
        println!("| operation | samples | C | Rust | ratio | per-round min | per-round max |");
        println!("|---|---|---|---|---|---|---|");
        for r in &self.rows {
            if r.error.is_none() && r.all.iter().all(Vec::is_empty) {
                continue;
            }
            if let Some(e) = &r.error {
                println!("| {} | n/a | n/a | n/a | {e} | | |", r.name);
                continue;
            }
            let (c, rust) = (median(&r.all[C]), median(&r.all[RUST]));
            let ratios: Vec<f64> = r.rounds[C]
                .iter()
                .zip(&r.rounds[RUST])
                .filter(|(c, _)| !c.is_zero())
                .map(|(c, rust)| rust.as_secs_f64() / c.as_secs_f64())
                .collect();
            let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let max = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            println!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.name,
                r.all[C].len().min(r.all[RUST].len()),
                time(c),
                time(rust),
                ratio(rust, c),
                if ratios.is_empty() { "n/a".to_string() } else { format!("{min:.3}") },
                if ratios.is_empty() { "n/a".to_string() } else { format!("{max:.3}") },
            );
        }
    }
}

/// One driver's turn in one round: the samples it adds go to the current
/// round; dropping it closes the round for that driver.
pub(super) struct Turn<'a> {
    table: &'a mut Table,
    k: usize,
    drv: &'a str,
}

impl Turn<'_> {
    /// The driver's name.
    pub(super) fn driver(&self) -> &str {
        self.drv
    }

    /// Whether the row `name` measures: the filter takes it and it has not failed.
    pub(super) fn live(&mut self, name: &str) -> bool {
        self.table.filter.matches(name) && self.table.row(name).error.is_none()
    }

    /// Adds one sample to row `name`.
    pub(super) fn sample(&mut self, name: &str, d: Duration) {
        let k = self.k;
        self.table.row(name).current[k].push(d);
    }

    /// Records `e` as row `name`'s failure (the first one is kept).
    pub(super) fn fail(&mut self, name: &str, e: &Fail) {
        let drv = self.drv.to_string();
        let row = self.table.row(name);
        if row.error.is_none() {
            row.error = Some(format!("{drv}: {e}"));
        }
    }

    /// Runs `call` `warmup` times untimed, then `samples` times timed, as row
    /// `name`; the first failure ends the row.
    pub(super) fn time(
        &mut self,
        name: &str,
        warmup: usize,
        samples: usize,
        mut call: impl FnMut() -> Result<(), Fail>,
    ) {
        if !self.live(name) {
            return;
        }
        let result = (|| {
            for _ in 0..warmup {
                call()?;
            }
            let window = profile::Window::open(name, self.drv, samples);
            for _ in 0..samples {
                let t = Instant::now();
                let r = call();
                let d = t.elapsed();
                r?;
                self.sample(name, d);
            }
            drop(window);
            Ok(())
        })();
        if let Err(e) = result {
            self.fail(name, &e);
        }
    }

    /// A profile window ([`profile::Window`]) for `samples` samples of row `name` timed by the
    /// caller itself (rows [`Self::time`] cannot take, such as a pair of calls timed apart).
    pub(super) fn window(&self, name: &str, samples: usize) -> profile::Window {
        profile::Window::open(name, self.drv, samples)
    }

    /// Runs `body` as the measurement of row `name` when it still measures;
    /// its failure ends the row.
    pub(super) fn run(&mut self, name: &str, body: impl FnOnce(&mut Self) -> Result<(), Fail>) {
        if self.live(name) {
            if let Err(e) = body(self) {
                self.fail(name, &e);
            }
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let k = self.k;
        for row in &mut self.table.rows {
            if !row.current[k].is_empty() {
                let samples = std::mem::take(&mut row.current[k]);
                row.rounds[k].push(median(&samples));
                row.all[k].extend(samples);
            }
        }
    }
}

pub(super) fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s.get(s.len() / 2).copied().unwrap_or_default()
}

/// A duration in the unit that suits it (1 ns = 1 instruction under `-icount shift=0`).
pub(super) fn time(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 100_000 {
        format!("{ns} ns")
    } else if ns < 10_000_000 {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.3} ms", d.as_secs_f64() * 1e3)
    }
}

pub(super) fn ratio(a: Duration, b: Duration) -> String {
    if b.is_zero() {
        "n/a".to_string()
    } else {
        format!("{:.3}", a.as_secs_f64() / b.as_secs_f64())
    }
}
