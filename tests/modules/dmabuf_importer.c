// SPDX-License-Identifier: GPL-2.0
/*
 * dmabuf_importer: a test-only dma-buf importer, so the in-guest tests (tests/src/dma_buf.rs)
 * can attach to, map and watch the revocation of the dma-bufs vfio-pci and vfio-pci-rs export
 * (VFIO_DEVICE_FEATURE_DMA_BUF) the same way for both.  iommufd, the kernel's one importer of
 * them, maps only vfio-pci-core's own dma-bufs (it takes their physical range through a
 * private call into vfio-pci-core), so it cannot compare the two exporters' map paths.
 *
 * It imports as a revocable peer-to-peer importer must (dynamic attachment, allow_peer2peer,
 * an invalidate_mappings callback that unmaps at once), on behalf of a PCI function the test
 * names: the exporting function itself, whose own BAR is then reachable by bus address
 * (PCI_P2PDMA_MAP_BUS_ADDR, no IOMMU mapping), so a map really builds a scatter list.
 *
 * It is C, not Rust, because it is test infrastructure, not part of the driver: it exercises
 * the dma-buf importer API as C importers (iommufd, RDMA) do, it must not share the driver
 * crate's abstraction layer (the thing under test), and the kernel crate has no dma-buf
 * bindings.  scripts/guest.sh builds it with the other test modules (tests/modules/Kbuild),
 * and harness/init loads it; it is never installed.
 *
 * /dev/dmabuf_importer: every open file can hold one attachment.
 *   write "attach FD BDF"  attaches to the dma-buf FD of the writer for the PCI function BDF
 *                          (the exporter's errno: ENODEV when revoked, EOPNOTSUPP ...;
 *                          EBUSY when this file has an attachment already);
 *   write "attach FD BDF static"    the same, as a static importer (dma_buf_attach(): no
 *                          peer-to-peer, no invalidation);
 *   write "attach FD BDF norevoke"  the same, peer-to-peer but without an
 *                          invalidate_mappings callback (not revocable);
 *   write "map"            maps the attachment (the exporter's errno; EBUSY if mapped);
 *   write "unmap"          unmaps it (EINVAL if not mapped);
 *   write "detach"         unmaps and detaches;
 *   read                   "attached A mapped M invalidations N nents E len L addr X\n": the
 *                          state, how many times the exporter invalidated the mappings since
 *                          the attach (each invalidation unmaps), and the last mapping's DMA
 *                          segments (count, total length, first address).
 *   close                  as "detach".
 */
#include <linux/atomic.h>
#include <linux/dma-buf.h>
#include <linux/dma-resv.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

MODULE_IMPORT_NS("DMA_BUF");

struct importer {
	/* Serialises the commands of one file (never taken by the invalidate callback). */
	struct mutex lock;
	struct dma_buf *dmabuf;
	struct dma_buf_attachment *attach;
	struct pci_dev *pdev;
	/* The mapping and what it looked like: under the dma-buf's reservation lock. */
	struct sg_table *sgt;
	unsigned int nents;
	u64 len;
	u64 addr;
	atomic_t invalidations;
};

/* Called with the reservation lock held: drop the mapping, as a revocable importer must. */
static void importer_unmap_locked(struct importer *imp)
{
	if (imp->sgt) {
		dma_buf_unmap_attachment(imp->attach, imp->sgt, DMA_BIDIRECTIONAL);
		imp->sgt = NULL;
	}
}

static void importer_invalidate(struct dma_buf_attachment *attach)
{
	struct importer *imp = attach->importer_priv;

	atomic_inc(&imp->invalidations);
	importer_unmap_locked(imp);
}

static const struct dma_buf_attach_ops importer_ops = {
	.allow_peer2peer = true,
	.invalidate_mappings = importer_invalidate,
};

static const struct dma_buf_attach_ops importer_norevoke_ops = {
	.allow_peer2peer = true,
};

enum importer_kind { IMPORT_REVOCABLE, IMPORT_STATIC, IMPORT_NOREVOKE };

static void importer_detach(struct importer *imp)
{
	if (!imp->attach)
		return;
	dma_resv_lock(imp->dmabuf->resv, NULL);
	importer_unmap_locked(imp);
	dma_resv_unlock(imp->dmabuf->resv);
	dma_buf_detach(imp->dmabuf, imp->attach);
	dma_buf_put(imp->dmabuf);
	pci_dev_put(imp->pdev);
	imp->attach = NULL;
	imp->dmabuf = NULL;
	imp->pdev = NULL;
}

static int importer_attach(struct importer *imp, int fd, const char *bdf, enum importer_kind kind)
{
	unsigned int domain, bus, slot, fn;
	struct dma_buf_attachment *attach;
	struct dma_buf *dmabuf;
	struct pci_dev *pdev;

	if (imp->attach)
		return -EBUSY;
	if (sscanf(bdf, "%x:%x:%x.%x", &domain, &bus, &slot, &fn) != 4)
		return -EINVAL;
	pdev = pci_get_domain_bus_and_slot(domain, bus, PCI_DEVFN(slot, fn));
	if (!pdev)
		return -ENODEV;
	dmabuf = dma_buf_get(fd);
	if (IS_ERR(dmabuf)) {
		pci_dev_put(pdev);
		return PTR_ERR(dmabuf);
	}
	if (kind == IMPORT_STATIC)
		attach = dma_buf_attach(dmabuf, &pdev->dev);
	else
		attach = dma_buf_dynamic_attach(dmabuf, &pdev->dev,
						kind == IMPORT_REVOCABLE ? &importer_ops :
									   &importer_norevoke_ops,
						imp);
	if (IS_ERR(attach)) {
		dma_buf_put(dmabuf);
		pci_dev_put(pdev);
		return PTR_ERR(attach);
	}
	imp->dmabuf = dmabuf;
	imp->attach = attach;
	imp->pdev = pdev;
	atomic_set(&imp->invalidations, 0);
	imp->nents = 0;
	imp->len = 0;
	imp->addr = 0;
	return 0;
}

static int importer_map(struct importer *imp)
{
	struct scatterlist *sg;
	struct sg_table *sgt;
	unsigned int i;
	int ret = 0;

	if (!imp->attach)
		return -EINVAL;
	dma_resv_lock(imp->dmabuf->resv, NULL);
	if (imp->sgt) {
		ret = -EBUSY;
		goto out;
	}
	sgt = dma_buf_map_attachment(imp->attach, DMA_BIDIRECTIONAL);
	if (IS_ERR(sgt)) {
		ret = PTR_ERR(sgt);
		goto out;
	}
	imp->sgt = sgt;
	imp->nents = sgt->nents;
	imp->len = 0;
	imp->addr = sgt->nents ? sg_dma_address(sgt->sgl) : 0;
	for_each_sgtable_dma_sg(sgt, sg, i)
		imp->len += sg_dma_len(sg);
out:
	dma_resv_unlock(imp->dmabuf->resv);
	return ret;
}

static int importer_unmap(struct importer *imp)
{
	int ret = 0;

	if (!imp->attach)
		return -EINVAL;
	dma_resv_lock(imp->dmabuf->resv, NULL);
	if (imp->sgt)
		importer_unmap_locked(imp);
	else
		ret = -EINVAL;
	dma_resv_unlock(imp->dmabuf->resv);
	return ret;
}

static int importer_open(struct inode *inode, struct file *file)
{
	struct importer *imp = kzalloc(sizeof(*imp), GFP_KERNEL);

	if (!imp)
		return -ENOMEM;
	mutex_init(&imp->lock);
	file->private_data = imp;
	return 0;
}

static int importer_release(struct inode *inode, struct file *file)
{
	struct importer *imp = file->private_data;

	importer_detach(imp);
	mutex_destroy(&imp->lock);
	kfree(imp);
	return 0;
}

static ssize_t importer_write(struct file *file, const char __user *ubuf, size_t count,
			      loff_t *ppos)
{
	struct importer *imp = file->private_data;
	char buf[64], bdf[32], kind[16];
	int fd, ret, n;

	if (count >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	buf[count] = 0;
	strim(buf);

	mutex_lock(&imp->lock);
	n = sscanf(buf, "attach %d %31s %15s", &fd, bdf, kind);
	if (n == 2)
		ret = importer_attach(imp, fd, bdf, IMPORT_REVOCABLE);
	else if (n == 3 && !strcmp(kind, "static"))
		ret = importer_attach(imp, fd, bdf, IMPORT_STATIC);
	else if (n == 3 && !strcmp(kind, "norevoke"))
		ret = importer_attach(imp, fd, bdf, IMPORT_NOREVOKE);
	else if (!strcmp(buf, "map"))
		ret = importer_map(imp);
	else if (!strcmp(buf, "unmap"))
		ret = importer_unmap(imp);
	else if (!strcmp(buf, "detach")) {
		importer_detach(imp);
		ret = 0;
	} else
		ret = -EINVAL;
	mutex_unlock(&imp->lock);
	return ret ? ret : count;
}

static ssize_t importer_read(struct file *file, char __user *ubuf, size_t count, loff_t *ppos)
{
	struct importer *imp = file->private_data;
	char buf[160];
	int len;

	mutex_lock(&imp->lock);
	if (imp->attach)
		dma_resv_lock(imp->dmabuf->resv, NULL);
	len = scnprintf(buf, sizeof(buf),
			"attached %d mapped %d invalidations %d nents %u len 0x%llx addr 0x%llx\n",
			!!imp->attach, !!imp->sgt, atomic_read(&imp->invalidations), imp->nents,
			imp->len, imp->addr);
	if (imp->attach)
		dma_resv_unlock(imp->dmabuf->resv);
	mutex_unlock(&imp->lock);
	return simple_read_from_buffer(ubuf, count, ppos, buf, len);
}

static const struct file_operations importer_fops = {
	.owner = THIS_MODULE,
	.open = importer_open,
	.release = importer_release,
	.read = importer_read,
	.write = importer_write,
	.llseek = default_llseek,
};

static struct miscdevice importer_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "dmabuf_importer",
	.fops = &importer_fops,
	.mode = 0600,
};

module_misc_device(importer_dev);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Test-only dma-buf importer for the vfio-pci-rs tests");
