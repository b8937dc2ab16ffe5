// SPDX-License-Identifier: GPL-2.0

//! Synchronisation primitives the kernel crate does not have yet: a reader/writer semaphore
//! that owns its data, and a spinlock backend that saves and disables local interrupts.

mod irqlock;
mod rwsem;

pub(crate) use irqlock::{
    new_irqsave_spinlock,
    IrqSaveSpinLock, //
};
pub(crate) use rwsem::{
    new_rwsem,
    RwSem,
    WriteGuard, //
};
