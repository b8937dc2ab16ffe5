// SPDX-License-Identifier: GPL-2.0
/*
 * The refusal messages of the hot-reset ioctls (include/vfio_pci_rs_dyndbg.h): every text is
 * here, each at its own dev_dbg() call site, so dynamic debug lists and switches them one by
 * one. Rust's dev_dbg!() has no dynamic-debug call site (no struct _ddebug in __dyndbg), hence
 * this file. Off, a message costs the static branch of its call site and formats nothing.
 */
#include <linux/device.h>
#include <linux/dev_printk.h>

#include "vfio_pci_rs_dyndbg.h"

static const char *const vfio_pci_rs_ioctl_names[] = {
	[VFIO_PCI_RS_IOCTL_HOT_RESET_INFO] = "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO",
	[VFIO_PCI_RS_IOCTL_HOT_RESET] = "VFIO_DEVICE_PCI_HOT_RESET",
};

void vfio_pci_rs_dbg_refused(struct device *dev, enum vfio_pci_rs_ioctl ioctl,
			     enum vfio_pci_rs_refusal rule, struct device *member, const char *driver,
			     long a, long b)
{
	const char *op = ioctl < ARRAY_SIZE(vfio_pci_rs_ioctl_names) ?
			 vfio_pci_rs_ioctl_names[ioctl] : "?";
	const char *m = member ? dev_name(member) : "?";

	switch (rule) {
	case VFIO_PCI_RS_REFUSED_ARGSZ:
		dev_dbg(dev, "%s refused: argsz does not cover the 12-byte header\n", op);
		break;
	case VFIO_PCI_RS_REFUSED_FAULT:
		dev_dbg(dev, "%s refused: the argument cannot be copied (%ld)\n", op, a);
		break;
	case VFIO_PCI_RS_REFUSED_FLAGS:
		dev_dbg(dev, "%s refused: flags 0x%lx, must be 0\n", op, a);
		break;
	case VFIO_PCI_RS_REFUSED_FDS_ON_CDEV:
		dev_dbg(dev, "%s refused: %ld group fds for a device opened through its cdev (the iommufd_ctx proves ownership: pass count 0)\n",
			op, a);
		break;
	case VFIO_PCI_RS_REFUSED_NO_FDS_ON_GROUP:
		dev_dbg(dev, "%s refused: no group fds for a device opened through its group (count 0 is for cdev-opened devices)\n",
			op);
		break;
	case VFIO_PCI_RS_REFUSED_NO_RESET_METHOD:
		dev_dbg(dev, "%s refused: no slot or bus reset can reach this function\n", op);
		break;
	case VFIO_PCI_RS_REFUSED_COUNT:
		dev_dbg(dev, "%s refused: %ld group fds, more than the %ld functions in the reset scope\n",
			op, a, b);
		break;
	case VFIO_PCI_RS_REFUSED_BAD_FD:
		dev_dbg(dev, "%s refused: fd %ld is not open\n", op, a);
		break;
	case VFIO_PCI_RS_REFUSED_NOT_GROUP:
		dev_dbg(dev, "%s refused: fd %ld is not a VFIO group\n", op, a);
		break;
	case VFIO_PCI_RS_REFUSED_NOT_BOUND:
		if (driver)
			dev_dbg(dev, "%s refused: %s in the reset scope is bound to %s, not to this driver\n",
				op, m, driver);
		else
			dev_dbg(dev, "%s refused: %s in the reset scope is bound to no driver\n",
				op, m);
		break;
	case VFIO_PCI_RS_REFUSED_GROUP_MISSING:
		dev_dbg(dev, "%s refused: no group fd given covers %s in the reset scope\n", op, m);
		break;
	case VFIO_PCI_RS_REFUSED_NOT_OWNED:
		dev_dbg(dev, "%s refused: %s in the reset scope is not owned by the caller's iommufd_ctx\n",
			op, m);
		break;
	case VFIO_PCI_RS_REFUSED_BUSY:
		dev_dbg(dev, "%s refused: %s in the reset scope is busy (its memory is in use)\n",
			op, m);
		break;
	case VFIO_PCI_RS_REFUSED_NO_IOMMU_GROUP:
		dev_dbg(dev, "%s refused: %s in the reset scope has no IOMMU group\n", op, m);
		break;
	case VFIO_PCI_RS_REFUSED_EMPTY:
		dev_dbg(dev, "%s refused: the reset scope holds no function\n", op);
		break;
	case VFIO_PCI_RS_REFUSED_NO_ROOM:
		dev_dbg(dev, "%s refused: argsz has room for %ld entries, the reset scope holds %ld (count says how many)\n",
			op, a, b);
		break;
	case VFIO_PCI_RS_REFUSED_TOPOLOGY:
		dev_dbg(dev, "%s refused: the reset scope changed while it was walked\n", op);
		break;
	case VFIO_PCI_RS_REFUSED_RESET_FAILED:
		dev_dbg(dev, "%s failed: the slot or bus reset returned %ld\n", op, a);
		break;
	}
}
