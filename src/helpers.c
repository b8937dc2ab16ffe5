// SPDX-License-Identifier: GPL-2.0
/*
 * Out-of-line wrappers of the static inline kernel functions vfio-pci-rs needs, so Rust can
 * call them. Nothing else belongs here.
 */
#include <linux/pci.h>

#include "vfio_pci_rs_helpers.h"

int vfio_pci_rs_pci_domain_nr(struct pci_bus *bus)
{
	return pci_domain_nr(bus);
}
