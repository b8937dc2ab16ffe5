/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Out-of-line wrappers of the static inline kernel functions vfio-pci-rs calls from Rust,
 * defined in src/kernel_ext/helpers.c.
 */
#ifndef VFIO_PCI_RS_HELPERS_H
#define VFIO_PCI_RS_HELPERS_H

struct device;
struct pci_bus;
struct spinlock;
struct vm_area_struct;

int vfio_pci_rs_pci_domain_nr(struct pci_bus *bus);

/*
 * Makes a new mapping an uncached, pinned-out-of-dumps I/O mapping of raw PFNs (what
 * io_remap_pfn_range() would set), before any PFN is inserted at fault time.
 */
void vfio_pci_rs_vma_init_pfnmap(struct vm_area_struct *vma);

/* Interrupts (src/intrs): the irq-saving spinlock the INTx handler shares with process context. */
unsigned long vfio_pci_rs_spin_lock_irqsave(struct spinlock *lock);
int vfio_pci_rs_spin_trylock_irqsave(struct spinlock *lock, unsigned long *flags);
void vfio_pci_rs_spin_unlock_irqrestore(struct spinlock *lock, unsigned long flags);

/*
 * VF token refusals (src/vf_token.rs): logged at most at the kernel's default rate, as
 * vfio-pci's pci_info_ratelimited() does (user space can trigger them at will).
 */
void vfio_pci_rs_dev_info_ratelimited(struct device *dev, const char *msg);

/*
 * A message naming a kernel object by its address as %p prints it (hashed), as vfio-pci's
 * "irq bypass producer (eventfd %p) registration fails" does (src/intrs/msi.rs).
 */
void vfio_pci_rs_dev_info_ptr(struct device *dev, const char *before, const void *ptr,
			      const char *after);

#endif
