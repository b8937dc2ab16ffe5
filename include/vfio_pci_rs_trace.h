/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The trace events of vfio-pci-rs (tracefs: events/vfio_pci_rs/): the decisions around the
 * open, close and resets of a function, with their outcome. Defined once, in
 * src/kernel_ext/trace.c; Rust calls them through src/kernel_ext/trace.rs, which tests each
 * event's static key first, so a disabled event costs one branch and formats nothing.
 *
 * Fields every event has:
 *   dev     the function the event is about (its PCI address)
 *   ret     0 on success, else the negative errno the operation ended with
 *
 * vfio_pci_rs_open        first open of a function (the driver's open_device)
 *   iommufd               1 when the device is bound to an iommufd context (opened through
 *                         its cdev, or through its group on an iommufd-backed container)
 *   reset_works           a function reset worked at open (VFIO_DEVICE_FLAGS_RESET)
 * vfio_pci_rs_close       last close of a function (the driver's close_device)
 *   reset                 the function reset at close: 0 done, -EBUSY its or its bridge's
 *                         device lock was contended, -ENOTTY not attempted (no working
 *                         function reset, or no state to restore), else the reset's errno
 *   needs_reset           the function is left for the dirty-set reset of its set
 * vfio_pci_rs_reset       VFIO_DEVICE_RESET
 *   method                the PCI core's first reset method for the function (the first word
 *                         of sysfs reset_method), the one pci_try_reset_function() tries
 *                         first; "none" if it has none
 * vfio_pci_rs_hot_reset   VFIO_DEVICE_PCI_HOT_RESET
 *   scope                 slot, bus, or none (no slot or bus reset can reach the function)
 *   proof                 groups (group fds) or iommufd (the zero-length array)
 *   members               every function the reset reaches, comma separated
 * vfio_pci_rs_dirty_reset the slot or bus reset of a set whose last open function closes
 *   members               as for hot_reset
 *   ret                   also -ENODEV when no slot or bus reset is possible, -EBUSY when a
 *                         function in the scope is not bound to this driver (then nothing
 *                         was reset)
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM vfio_pci_rs

/* Out-of-tree: define_trace.h includes the header again as <./vfio_pci_rs_trace.h>. */
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE vfio_pci_rs_trace

#if !defined(VFIO_PCI_RS_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define VFIO_PCI_RS_TRACE_H

#include <linux/pci.h>
#include <linux/tracepoint.h>

#ifndef VFIO_PCI_RS_TRACE_ONCE
#define VFIO_PCI_RS_TRACE_ONCE
/*
 * Room for the members string of `count` functions: "dddd:bb:dd.f" and a comma or the final
 * NUL each, one NUL alone for none.
 */
#define VFIO_PCI_RS_MEMBERS_LEN(count) ((count) ? (count) * 13 : 1)

/*
 * Writes the members string; `members` holds (segment << 16 | bus << 8 | devfn) per function.
 */
void vfio_pci_rs_trace_members(char *out, const u32 *members, unsigned int count);
#endif

TRACE_EVENT(vfio_pci_rs_open,
	TP_PROTO(struct pci_dev *pdev, bool iommufd, bool reset_works, int ret),
	TP_ARGS(pdev, iommufd, reset_works, ret),
	TP_STRUCT__entry(
		__string(dev, pci_name(pdev))
		__field(bool, iommufd)
		__field(bool, reset_works)
		__field(int, ret)
	),
	TP_fast_assign(
		__assign_str(dev);
		__entry->iommufd = iommufd;
		__entry->reset_works = reset_works;
		__entry->ret = ret;
	),
	TP_printk("dev=%s iommufd=%d reset_works=%d ret=%d", __get_str(dev),
		  __entry->iommufd, __entry->reset_works, __entry->ret)
);

TRACE_EVENT(vfio_pci_rs_close,
	TP_PROTO(struct pci_dev *pdev, int reset, bool needs_reset),
	TP_ARGS(pdev, reset, needs_reset),
	TP_STRUCT__entry(
		__string(dev, pci_name(pdev))
		__field(int, reset)
		__field(bool, needs_reset)
	),
	TP_fast_assign(
		__assign_str(dev);
		__entry->reset = reset;
		__entry->needs_reset = needs_reset;
	),
	TP_printk("dev=%s reset=%d needs_reset=%d", __get_str(dev), __entry->reset,
		  __entry->needs_reset)
);

/* The names of sysfs reset_method, by index of struct pci_dev's reset_methods[]. */
#define vfio_pci_rs_show_reset_method(m)					\
	__print_symbolic(m, { 0, "none" }, { 1, "device_specific" }, { 2, "acpi" },	\
			 { 3, "flr" }, { 4, "af_flr" }, { 5, "pm" }, { 6, "bus" },	\
			 { 7, "cxl_bus" })

TRACE_EVENT(vfio_pci_rs_reset,
	TP_PROTO(struct pci_dev *pdev, int ret),
	TP_ARGS(pdev, ret),
	TP_STRUCT__entry(
		__string(dev, pci_name(pdev))
		__field(u8, method)
		__field(int, ret)
	),
	TP_fast_assign(
		__assign_str(dev);
		__entry->method = pdev->reset_methods[0];
		__entry->ret = ret;
	),
	TP_printk("dev=%s method=%s ret=%d", __get_str(dev),
		  vfio_pci_rs_show_reset_method(__entry->method), __entry->ret)
);

TRACE_EVENT(vfio_pci_rs_hot_reset,
	TP_PROTO(struct pci_dev *pdev, const char *scope, bool by_iommufd, const u32 *members,
		 unsigned int count, int ret),
	TP_ARGS(pdev, scope, by_iommufd, members, count, ret),
	TP_STRUCT__entry(
		__string(dev, pci_name(pdev))
		__string(scope, scope)
		__field(bool, by_iommufd)
		__dynamic_array(char, members, VFIO_PCI_RS_MEMBERS_LEN(count))
		__field(int, ret)
	),
	TP_fast_assign(
		__assign_str(dev);
		__assign_str(scope);
		__entry->by_iommufd = by_iommufd;
		vfio_pci_rs_trace_members(__get_str(members), members, count);
		__entry->ret = ret;
	),
	TP_printk("dev=%s scope=%s proof=%s members=%s ret=%d", __get_str(dev),
		  __get_str(scope), __entry->by_iommufd ? "iommufd" : "groups",
		  __get_str(members), __entry->ret)
);

TRACE_EVENT(vfio_pci_rs_dirty_reset,
	TP_PROTO(struct pci_dev *pdev, const u32 *members, unsigned int count, int ret),
	TP_ARGS(pdev, members, count, ret),
	TP_STRUCT__entry(
		__string(dev, pci_name(pdev))
		__dynamic_array(char, members, VFIO_PCI_RS_MEMBERS_LEN(count))
		__field(int, ret)
	),
	TP_fast_assign(
		__assign_str(dev);
		vfio_pci_rs_trace_members(__get_str(members), members, count);
		__entry->ret = ret;
	),
	TP_printk("dev=%s members=%s ret=%d", __get_str(dev), __get_str(members), __entry->ret)
);

#endif /* VFIO_PCI_RS_TRACE_H */

/* Outside the guard: define_trace.h reads the header again for each of its passes. */
#include <trace/define_trace.h>
