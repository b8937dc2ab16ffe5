/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Why a hot-reset ioctl was refused: the rules, logged through dynamic debug by
 * src/kernel_ext/dyndbg.c (one dev_dbg() call site per rule, whose text is written there and
 * nowhere else), called from Rust through src/kernel_ext/dyndbg.rs.
 *
 * Enable them with
 *   echo 'module vfio_pci_rs +p' > /proc/dynamic_debug/control
 * Every message is prefixed with the calling function's driver and address, names the ioctl,
 * and, where one function of the reset set is to blame, that function's address.
 */
#ifndef VFIO_PCI_RS_DYNDBG_H
#define VFIO_PCI_RS_DYNDBG_H

struct device;

/* The ioctl refused. */
enum vfio_pci_rs_ioctl {
	VFIO_PCI_RS_IOCTL_HOT_RESET_INFO,
	VFIO_PCI_RS_IOCTL_HOT_RESET,
};

/*
 * The rule that refused it; `member` is the function to blame (or NULL), `driver` the name of
 * its driver (NULL: none; "?": its device lock was busy, so it could not be read), `a` and `b`
 * the numbers the rule names.
 */
enum vfio_pci_rs_refusal {
	/* argsz does not cover the 12-byte header. */
	VFIO_PCI_RS_REFUSED_ARGSZ,
	/* The argument could not be copied (a: the errno). */
	VFIO_PCI_RS_REFUSED_FAULT,
	/* flags is not 0 (a: flags). */
	VFIO_PCI_RS_REFUSED_FLAGS,
	/* Group fds given for a device opened through its cdev (a: count). */
	VFIO_PCI_RS_REFUSED_FDS_ON_CDEV,
	/* The zero-length array given for a device opened through its group. */
	VFIO_PCI_RS_REFUSED_NO_FDS_ON_GROUP,
	/* Neither a slot nor a bus reset can reach the function. */
	VFIO_PCI_RS_REFUSED_NO_RESET_METHOD,
	/* More group fds than functions in the reset scope (a: count, b: functions). */
	VFIO_PCI_RS_REFUSED_COUNT,
	/* An fd that is not open (a: fd). */
	VFIO_PCI_RS_REFUSED_BAD_FD,
	/* An fd that is not a VFIO group (a: fd). */
	VFIO_PCI_RS_REFUSED_NOT_GROUP,
	/* member is in the reset scope but not in this function's set: bound to `driver`. */
	VFIO_PCI_RS_REFUSED_NOT_BOUND,
	/* No group fd given covers member. */
	VFIO_PCI_RS_REFUSED_GROUP_MISSING,
	/* member is not owned by the caller's iommufd_ctx. */
	VFIO_PCI_RS_REFUSED_NOT_OWNED,
	/* member's memory is in use (its memory gate is held): try again. */
	VFIO_PCI_RS_REFUSED_BUSY,
	/* member has no IOMMU group. */
	VFIO_PCI_RS_REFUSED_NO_IOMMU_GROUP,
	/* The reset scope holds no function. */
	VFIO_PCI_RS_REFUSED_EMPTY,
	/* argsz has room for fewer entries than the scope holds (a: room, b: functions). */
	VFIO_PCI_RS_REFUSED_NO_ROOM,
	/* The topology changed while the scope was walked. */
	VFIO_PCI_RS_REFUSED_TOPOLOGY,
	/* The slot or bus reset itself failed (a: the errno). */
	VFIO_PCI_RS_REFUSED_RESET_FAILED,
};

void vfio_pci_rs_dbg_refused(struct device *dev, enum vfio_pci_rs_ioctl ioctl,
			     enum vfio_pci_rs_refusal rule, struct device *member, const char *driver,
			     long a, long b);

#endif
