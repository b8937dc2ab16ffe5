/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Out-of-line wrappers of the static inline kernel functions vfio-pci-rs calls from Rust,
 * defined in src/kernel_ext/helpers.c.
 */
#ifndef VFIO_PCI_RS_HELPERS_H
#define VFIO_PCI_RS_HELPERS_H

struct device;
struct dma_buf;
struct dma_buf_ops;
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

/*
 * Runtime PM (src/kernel_ext/pci/runtime_pm.rs): whether a function may runtime-suspend
 * (pm_runtime_allow(), pm_runtime_forbid()) and its usage count, as
 * pm_runtime_resume_and_get(), pm_runtime_resume(), pm_runtime_put(),
 * pm_runtime_get_noresume() and pm_runtime_put_noidle() change it (inlines, or without
 * CONFIG_PM no-ops).
 */
void vfio_pci_rs_pm_runtime_allow(struct device *dev);
void vfio_pci_rs_pm_runtime_forbid(struct device *dev);
int vfio_pci_rs_pm_runtime_resume_and_get(struct device *dev);
int vfio_pci_rs_pm_runtime_resume(struct device *dev);
void vfio_pci_rs_pm_runtime_put(struct device *dev);
void vfio_pci_rs_pm_runtime_get_noresume(struct device *dev);
void vfio_pci_rs_pm_runtime_put_noidle(struct device *dev);

/*
 * dma-buf export of BAR ranges (src/kernel_ext/dma_buf.rs): the export info carries this
 * module's name and THIS_MODULE (DEFINE_DMA_BUF_EXPORT_INFO, a macro), so the module stays
 * loaded while one of its dma-bufs lives; the other helpers reach the dma_buf's fields
 * (file, resv, priv), whose types the driver's bindings do not include.
 */
struct dma_buf *vfio_pci_rs_dma_buf_export(const struct dma_buf_ops *ops, size_t size,
					   int flags, void *priv);
void *vfio_pci_rs_dma_buf_priv(struct dma_buf *dmabuf);
bool vfio_pci_rs_dma_buf_get_active(struct dma_buf *dmabuf);
void vfio_pci_rs_dma_buf_fput(struct dma_buf *dmabuf);
void vfio_pci_rs_dma_buf_resv_lock(struct dma_buf *dmabuf);
void vfio_pci_rs_dma_buf_resv_unlock(struct dma_buf *dmabuf);
void vfio_pci_rs_dma_buf_resv_wait(struct dma_buf *dmabuf);
void vfio_pci_rs_dma_buf_resv_assert_held(struct dma_buf *dmabuf);

#endif
