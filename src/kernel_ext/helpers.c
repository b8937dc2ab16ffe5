// SPDX-License-Identifier: GPL-2.0
/*
 * Out-of-line wrappers of the static inline kernel functions vfio-pci-rs needs, so Rust can
 * call them. Nothing else belongs here.
 */
#include <linux/device.h>
#include <linux/mm.h>
#include <linux/pci.h>
#include <linux/spinlock.h>

#include "vfio_pci_rs_helpers.h"

int vfio_pci_rs_pci_domain_nr(struct pci_bus *bus)
{
	return pci_domain_nr(bus);
}

void vfio_pci_rs_vma_init_pfnmap(struct vm_area_struct *vma)
{
	vma->vm_page_prot = pgprot_decrypted(pgprot_noncached(vma->vm_page_prot));
	vm_flags_set(vma, VM_ALLOW_ANY_UNCACHED | VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTDUMP);
}

unsigned long vfio_pci_rs_spin_lock_irqsave(spinlock_t *lock)
{
	unsigned long flags;

	spin_lock_irqsave(lock, flags);
	return flags;
}

int vfio_pci_rs_spin_trylock_irqsave(spinlock_t *lock, unsigned long *flags)
{
	return spin_trylock_irqsave(lock, *flags);
}

void vfio_pci_rs_spin_unlock_irqrestore(spinlock_t *lock, unsigned long flags)
{
	spin_unlock_irqrestore(lock, flags);
}

void vfio_pci_rs_dev_info_ratelimited(struct device *dev, const char *msg)
{
	dev_info_ratelimited(dev, "%s\n", msg);
}

void vfio_pci_rs_dev_info_ptr(struct device *dev, const char *before, const void *ptr,
			      const char *after)
{
	dev_info(dev, "%s%p%s\n", before, ptr, after);
}
