/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Out-of-line wrappers of the static inline kernel functions vfio-pci-rs calls from Rust,
 * defined in src/helpers.c.
 */
#ifndef VFIO_PCI_RS_HELPERS_H
#define VFIO_PCI_RS_HELPERS_H

struct pci_bus;

int vfio_pci_rs_pci_domain_nr(struct pci_bus *bus);

#endif
