//! The two drivers under comparison and the resting state between tests.
//!
//! The C vfio-pci is the reference: loaded by the harness, never unloaded
//! here.  vfio-pci-rs is loaded from `$VFIO_PCI_RS_KO` with init_module(2)
//! (what busybox `insmod` does, but with the errno kept) and unloaded with
//! delete_module(2) (what `rmmod` does).  Where a step only exists for the
//! module (loading with `ids=`, unloading), the reference performs the
//! kernel-equivalent operation and the step is recorded as skipped.

use crate::sys::{self, Errno, Fail};
use crate::sysfs::{self, PciId};
use std::ffi::CString;
use std::fs;
use std::path::{Path, PathBuf};

pub const REFERENCE_NAME: &str = "vfio-pci";
pub const REFERENCE_MODULE: &str = "vfio_pci";
pub const RUST_NAME: &str = "vfio-pci-rs";
pub const RUST_MODULE: &str = "vfio_pci_rs";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The C vfio-pci, resident for the whole boot.
    Reference,
    /// vfio-pci-rs, from this module file (None: $VFIO_PCI_RS_KO unset).
    Module(Option<PathBuf>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Driver {
    /// The PCI driver name (/sys/bus/pci/drivers/NAME).
    pub name: &'static str,
    pub kind: Kind,
    /// Devices that were bound to this driver before the first test and
    /// that no test may unbind.
    pub preexisting: Vec<String>,
}

impl Driver {
    pub fn reference(preexisting: Vec<String>) -> Driver {
        Driver { name: REFERENCE_NAME, kind: Kind::Reference, preexisting }
    }

    pub fn rust(ko: Option<PathBuf>) -> Driver {
        Driver { name: RUST_NAME, kind: Kind::Module(ko), preexisting: Vec::new() }
    }

    pub fn is_reference(&self) -> bool {
        self.kind == Kind::Reference
    }

    /// /sys/bus/pci/drivers/NAME exists.
    pub fn registered(&self) -> bool {
        sysfs::exists(&sysfs::driver_dir(self.name)).is_ok()
    }

    /// Make the driver available.  The module is inserted with `params`
    /// (e.g. `ids=8086:10d3`); the reference must already be registered and
    /// accepts no parameters here.
    pub fn load(&self, params: &str) -> Result<(), Fail> {
        match &self.kind {
            Kind::Reference if !params.is_empty() => {
                Err(Fail::other("the reference driver is resident; it takes no parameters here"))
            }
            Kind::Reference if self.registered() => Ok(()),
            Kind::Reference => Err(Fail::other(format!("{} is not registered", self.name))),
            Kind::Module(None) => Err(Fail::other("VFIO_PCI_RS_KO is not set")),
            Kind::Module(Some(ko)) => insmod(ko, params),
        }
    }

    /// Unload the module; for the reference, do what unloading does to its
    /// devices instead (driver_unregister unbinds every bound device, one
    /// at a time: unbinding a PF removes its VFs on the way).
    pub fn unload(&self) -> Result<(), Fail> {
        match &self.kind {
            Kind::Module(_) => rmmod(RUST_MODULE),
            Kind::Reference => {
                while let Some(bdf) =
                    sysfs::bound_devices(self.name).into_iter().find(|b| !self.preexisting.contains(b))
                {
                    sysfs::unbind_from(self.name, &bdf)?;
                }
                Ok(())
            }
        }
    }

    /// The driver's `enable_sriov` module parameter (both drivers have one,
    /// writable at run time); ENOENT while the module is not loaded.
    pub fn enable_sriov_param(&self) -> PathBuf {
        let module = if self.is_reference() { REFERENCE_MODULE } else { RUST_MODULE };
        Path::new("/sys/module").join(module).join("parameters").join("enable_sriov")
    }

    /// Set `enable_sriov`: whether a PF bound to the driver may create VFs.
    pub fn set_enable_sriov(&self, on: bool) -> Result<(), Fail> {
        sysfs::write_attr(&self.enable_sriov_param(), if on { "1" } else { "0" })
    }
}

/// insmod: init_module(2) with the module file's contents and `params`.
pub fn insmod(ko: &Path, params: &str) -> Result<(), Fail> {
    let image = fs::read(ko).map_err(|e| Fail::other(format!("reading {}: {e}", ko.display())))?;
    let params = CString::new(params).map_err(|_| Fail::other("module parameters contain NUL"))?;
    sys::init_module(&image, &params).map_err(Fail::Os)
}

/// rmmod: delete_module(2) with O_NONBLOCK.
pub fn rmmod(module: &str) -> Result<(), Fail> {
    let name = CString::new(module).map_err(|_| Fail::other("module name contains NUL"))?;
    sys::delete_module(&name).map_err(Fail::Os)
}

/// /sys/module/NAME exists.
pub fn module_loaded(module: &str) -> bool {
    sysfs::exists(&Path::new("/sys/module").join(module)).is_ok()
}

/// What the tests may touch, and what was there before they started.
#[derive(Clone, Debug, Default)]
pub struct World {
    /// Every function of every present topology.
    pub functions: Vec<String>,
    /// Their vendor:device ids (deduplicated): the only ids tests add.
    pub ids: Vec<PciId>,
    /// Devices bound to the C vfio-pci before the first test: left alone.
    pub preexisting: Vec<String>,
    /// Native driver modules (sysfs::MODELS) loaded before the first test:
    /// left loaded; the others are unloaded when a test leaves them loaded.
    pub preloaded: Vec<&'static str>,
}

/// The native driver modules of the known device models that are loaded now.
pub fn native_modules_loaded() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = sysfs::MODELS.iter().map(|m| m.native_driver).filter(|m| module_loaded(m)).collect();
    v.dedup();
    v
}

impl World {
    /// Return to the contract's resting state: no dynamic ids added by us,
    /// no topology function bound to any driver, no driver_override set,
    /// vfio-pci-rs and the native drivers a test loaded unloaded, PCI
    /// autoprobe on.  Returns what could not be restored.
    pub fn restore(&self) -> Vec<String> {
        let mut problems = Vec::new();
        // A PF with VFs first: its VFIO driver removes them through sriov_numvfs. (Unbinding
        // would too, but in this kernel a PF driver that disables SR-IOV in its remove
        // trips a lockdep assertion, the C vfio-pci included.)
        let reference = Driver::reference(Vec::new());
        for bdf in &self.functions {
            if sysfs::sriov_count(bdf, "sriov_numvfs").unwrap_or(0) == 0 {
                continue;
            }
            let vfs = sysfs::virtfns(bdf);
            let removed = match sysfs::current_driver(bdf) {
                Ok(d) if d == REFERENCE_NAME || d == RUST_NAME => {
                    let driver = if d == REFERENCE_NAME { reference.clone() } else { Driver::rust(None) };
                    driver.set_enable_sriov(true).and_then(|()| sysfs::set_sriov_numvfs(bdf, 0))
                }
                Ok(d) => Err(Fail::other(format!("bound to {d}"))),
                Err(e) => Err(e),
            };
            if let Err(e) = removed {
                problems.push(format!("remove the VFs {vfs:?} of {bdf}: {e}"));
            }
            if !sysfs::wait_until(sysfs::SETTLE, || sysfs::virtfns(bdf).is_empty()) {
                problems.push(format!("the VFs {vfs:?} of {bdf} are still there"));
            }
        }
        if fs::read_to_string(reference.enable_sriov_param()).is_ok_and(|v| v.trim() != "N") {
            if let Err(e) = reference.set_enable_sriov(false) {
                problems.push(format!("reset {REFERENCE_NAME}'s enable_sriov: {e}"));
            }
        }
        match sysfs::autoprobe() {
            Ok(true) => {}
            Ok(false) => {
                if let Err(e) = sysfs::set_autoprobe(true) {
                    problems.push(format!("turn PCI drivers_autoprobe back on: {e}"));
                }
            }
            Err(e) => problems.push(format!("read PCI drivers_autoprobe: {e}")),
        }
        for bdf in &self.functions {
            if let Ok(d) = sysfs::current_driver(bdf) {
                if d != REFERENCE_NAME && d != RUST_NAME {
                    if let Err(e) = sysfs::unbind(bdf) {
                        problems.push(format!("unbind {bdf} from {d}: {e}"));
                    }
                }
            }
        }
        for m in native_modules_loaded() {
            if !self.preloaded.contains(&m) {
                if let Err(e) = rmmod(m) {
                    problems.push(format!("rmmod {m}: {e}"));
                }
            }
        }
        for driver in [REFERENCE_NAME, RUST_NAME] {
            if sysfs::exists(&sysfs::driver_dir(driver)).is_err() {
                continue;
            }
            for id in &self.ids {
                // ENODEV: the id was not there, which is the usual case.
                match sysfs::remove_id(driver, id) {
                    Ok(()) | Err(Fail::Os(Errno::ENODEV)) => {}
                    Err(e) => problems.push(format!("remove_id {} from {driver}: {e}", id.new_id_line())),
                }
            }
            for bdf in sysfs::bound_devices(driver) {
                if driver == REFERENCE_NAME && self.preexisting.contains(&bdf) {
                    continue;
                }
                if let Err(e) = sysfs::unbind_from(driver, &bdf) {
                    problems.push(format!("unbind {bdf} from {driver}: {e}"));
                }
            }
        }
        for bdf in &self.functions {
            match sysfs::driver_override(bdf) {
                Ok(None) => {}
                Ok(Some(_)) => {
                    if let Err(e) = sysfs::clear_driver_override(bdf) {
                        problems.push(format!("clear driver_override of {bdf}: {e}"));
                    }
                }
                Err(e) => problems.push(format!("read driver_override of {bdf}: {e}")),
            }
        }
        if module_loaded(RUST_MODULE) {
            if let Err(e) = rmmod(RUST_MODULE) {
                problems.push(format!("rmmod {RUST_MODULE}: {e}"));
            }
        }
        for bdf in &self.functions {
            if let Ok(d) = sysfs::current_driver(bdf) {
                if !(d == REFERENCE_NAME && self.preexisting.contains(bdf)) {
                    problems.push(format!("{bdf} is still bound to {d}"));
                }
            }
        }
        problems
    }
}
