// SPDX-License-Identifier: GPL-2.0
/*
 * Out-of-line wrappers of the static inline kernel functions vfio-pci-rs needs, so Rust can
 * call them. Nothing else belongs here.
 */
#include <linux/device.h>
#include <linux/dma-buf.h>
#include <linux/dma-resv.h>
#include <linux/file.h>
#include <linux/module.h>
#include <linux/mm.h>
#include <linux/pci.h>
#include <linux/pm_runtime.h>
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

/*
 * Runtime PM (src/kernel_ext/pci/runtime_pm.rs): the usage-count helpers are inlines, and
 * without CONFIG_PM all of these are.
 */
void vfio_pci_rs_pm_runtime_allow(struct device *dev)
{
	pm_runtime_allow(dev);
}

void vfio_pci_rs_pm_runtime_forbid(struct device *dev)
{
	pm_runtime_forbid(dev);
}

int vfio_pci_rs_pm_runtime_resume_and_get(struct device *dev)
{
	return pm_runtime_resume_and_get(dev);
}

int vfio_pci_rs_pm_runtime_resume(struct device *dev)
{
	return pm_runtime_resume(dev);
}

void vfio_pci_rs_pm_runtime_put(struct device *dev)
{
	pm_runtime_put(dev);
}

void vfio_pci_rs_pm_runtime_get_noresume(struct device *dev)
{
	pm_runtime_get_noresume(dev);
}

void vfio_pci_rs_pm_runtime_put_noidle(struct device *dev)
{
	pm_runtime_put_noidle(dev);
}

/*
 * dma-buf export of BAR ranges (src/kernel_ext/dma_buf.rs). The dma-buf API is in the DMA_BUF
 * symbol namespace.
 */
MODULE_IMPORT_NS("DMA_BUF");

struct dma_buf *vfio_pci_rs_dma_buf_export(const struct dma_buf_ops *ops, size_t size,
					   int flags, void *priv)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp_info);

	exp_info.ops = ops;
	exp_info.size = size;
	exp_info.flags = flags;
	exp_info.priv = priv;
	return dma_buf_export(&exp_info);
}

void *vfio_pci_rs_dma_buf_priv(struct dma_buf *dmabuf)
{
	return dmabuf->priv;
}

bool vfio_pci_rs_dma_buf_get_active(struct dma_buf *dmabuf)
{
	return get_file_active(&dmabuf->file) != NULL;
}

void vfio_pci_rs_dma_buf_fput(struct dma_buf *dmabuf)
{
	fput(dmabuf->file);
}

void vfio_pci_rs_dma_buf_resv_lock(struct dma_buf *dmabuf)
{
	dma_resv_lock(dmabuf->resv, NULL);
}

void vfio_pci_rs_dma_buf_resv_unlock(struct dma_buf *dmabuf)
{
	dma_resv_unlock(dmabuf->resv);
}

void vfio_pci_rs_dma_buf_resv_wait(struct dma_buf *dmabuf)
{
	dma_resv_wait_timeout(dmabuf->resv, DMA_RESV_USAGE_BOOKKEEP, false, MAX_SCHEDULE_TIMEOUT);
}

void vfio_pci_rs_dma_buf_resv_assert_held(struct dma_buf *dmabuf)
{
	dma_resv_assert_held(dmabuf->resv);
}
