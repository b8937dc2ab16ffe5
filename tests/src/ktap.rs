//! KTAP reporting (Documentation/dev-tools/ktap.rst): the version line, the
//! plan, one result line per test with `# ` diagnostics before it, and a
//! final plain `P passed, F failed` line for the harness.
//!
//! A `# SKIP` result is an `ok` line and counts as passed, so that
//! `P + F` always equals the plan.

use std::io::{self, Write};

/// What one test concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    Skip(String),
}

/// A test's verdict and the diagnostics explaining it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseResult {
    pub verdict: Verdict,
    pub diagnostics: Vec<String>,
}

impl CaseResult {
    pub fn pass() -> CaseResult {
        CaseResult { verdict: Verdict::Pass, diagnostics: Vec::new() }
    }

    pub fn fail(diagnostics: Vec<String>) -> CaseResult {
        CaseResult { verdict: Verdict::Fail, diagnostics }
    }

    pub fn skip(reason: impl Into<String>) -> CaseResult {
        CaseResult { verdict: Verdict::Skip(reason.into()), diagnostics: Vec::new() }
    }

    /// Pass when `failures` is empty, otherwise fail with them as diagnostics.
    pub fn from_failures(failures: Vec<String>) -> CaseResult {
        if failures.is_empty() {
            CaseResult::pass()
        } else {
            CaseResult::fail(failures)
        }
    }

    /// Add diagnostics (printed whatever the verdict).
    pub fn with_notes(mut self, notes: impl IntoIterator<Item = String>) -> CaseResult {
        self.diagnostics.extend(notes);
        self
    }
}

/// A KTAP writer that counts as it goes.
pub struct Ktap<W: Write> {
    out: W,
    planned: usize,
    reported: usize,
    passed: usize,
    failed: usize,
}

impl<W: Write> Ktap<W> {
    /// Write the header and the plan for `planned` tests.
    pub fn start(mut out: W, planned: usize) -> io::Result<Ktap<W>> {
        writeln!(out, "KTAP version 1")?;
        writeln!(out, "1..{planned}")?;
        out.flush()?;
        Ok(Ktap { out, planned, reported: 0, passed: 0, failed: 0 })
    }

    /// Free-standing diagnostic line(s).
    pub fn diag(&mut self, text: &str) -> io::Result<()> {
        for line in text.lines() {
            writeln!(self.out, "# {line}")?;
        }
        self.out.flush()
    }

    /// Report the next test's result.
    pub fn report(&mut self, name: &str, result: &CaseResult) -> io::Result<()> {
        self.reported += 1;
        let n = self.reported;
        for d in &result.diagnostics {
            self.diag(d)?;
        }
        let name = sanitize(name);
        match &result.verdict {
            Verdict::Pass => {
                self.passed += 1;
                writeln!(self.out, "ok {n} {name}")?;
            }
            Verdict::Skip(reason) => {
                self.passed += 1;
                writeln!(self.out, "ok {n} {name} # SKIP {}", sanitize(reason))?;
            }
            Verdict::Fail => {
                self.failed += 1;
                writeln!(self.out, "not ok {n} {name}")?;
            }
        }
        self.out.flush()
    }

    /// Write a line that is not KTAP (a harness annotation), as it is.
    pub fn raw_line(&mut self, line: &str) -> io::Result<()> {
        writeln!(self.out, "{line}")?;
        self.out.flush()
    }

    /// Write the summary line; returns whether the run passed (F == 0 and
    /// every planned test was reported).
    pub fn finish(&mut self) -> io::Result<bool> {
        if self.reported != self.planned {
            // Should not happen; said loudly rather than silently.
            self.diag(&format!("planned {} tests, reported {}", self.planned, self.reported))?;
        }
        writeln!(self.out, "{} passed, {} failed", self.passed, self.failed)?;
        self.out.flush()?;
        Ok(self.failed == 0 && self.reported == self.planned)
    }

    pub fn reported(&self) -> usize {
        self.reported
    }

    pub fn counts(&self) -> (usize, usize) {
        (self.passed, self.failed)
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Test names and skip reasons live on one line and must not contain `#`,
/// which would start a directive.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '#' => '_',
            '\n' | '\r' => ' ',
            c => c,
        })
        .collect()
}
