// SPDX-License-Identifier: GPL-2.0
/*
 * The trace events of include/vfio_pci_rs_trace.h, instantiated here (an event definition is
 * C macros, which Rust cannot expand), with the rust_do_trace_*() entry points that
 * src/kernel_ext/trace.rs calls once it has found the event enabled.
 */
#include <linux/kernel.h>
#include <linux/types.h>

#define CREATE_TRACE_POINTS
#define CREATE_RUST_TRACE_POINTS
#include "vfio_pci_rs_trace.h"

void vfio_pci_rs_trace_members(char *out, const u32 *members, unsigned int count)
{
	unsigned int i;
	char *p = out;

	*p = '\0';
	for (i = 0; i < count; i++) {
		u32 m = members[i];

		/* 12 characters and a separator or the NUL: the room VFIO_PCI_RS_MEMBERS_LEN gives. */
		p += scnprintf(p, 14, "%s%04x:%02x:%02x.%u", i ? "," : "", m >> 16,
			       (m >> 8) & 0xff, PCI_SLOT(m & 0xff), PCI_FUNC(m & 0xff));
	}
}
