/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C API vfio-pci-rs uses beyond what the kernel crate binds: the VFIO
 * core's driver interface (vfio_device, its ops and dev_sets, the iommufd
 * physical-device helpers, group files), iommufd ownership queries and the
 * VFIO uAPI.  Kbuild runs bindgen on this header; the generated Rust reuses
 * kernel::bindings for every type the kernel crate already has.
 */
#include <linux/vfio.h>
#include <linux/iommufd.h>
#include <linux/pci.h>
#include <linux/msi.h>
#include <linux/irqbypass.h>
#include <linux/dma-buf.h>
#include <linux/dma-buf-mapping.h>
#include <linux/pci-p2pdma.h>
#include <linux/vgaarb.h>
#include <linux/aperture.h>
#include <uapi/linux/vfio.h>

/*
 * The uAPI's ioctl numbers are function-like macros, which bindgen cannot
 * evaluate; constants initialised from them can.
 */
#define VFIO_PCI_RS_IOCTL(name) const unsigned int VFIO_PCI_RS_IOCTL_##name = name

VFIO_PCI_RS_IOCTL(VFIO_DEVICE_GET_INFO);
VFIO_PCI_RS_IOCTL(VFIO_DEVICE_GET_REGION_INFO);
VFIO_PCI_RS_IOCTL(VFIO_DEVICE_GET_IRQ_INFO);
VFIO_PCI_RS_IOCTL(VFIO_DEVICE_SET_IRQS);
VFIO_PCI_RS_IOCTL(VFIO_DEVICE_RESET);
VFIO_PCI_RS_IOCTL(VFIO_DEVICE_GET_PCI_HOT_RESET_INFO);
VFIO_PCI_RS_IOCTL(VFIO_DEVICE_PCI_HOT_RESET);
VFIO_PCI_RS_IOCTL(VFIO_DEVICE_IOEVENTFD);

/* Power state constants are __force casts, which bindgen cannot evaluate either. */
const pci_power_t VFIO_PCI_RS_PCI_D0 = PCI_D0;
const pci_power_t VFIO_PCI_RS_PCI_D3HOT = PCI_D3hot;

/* Config space (src/config/): the power states user space can set through the PM capability. */
const pci_power_t VFIO_PCI_RS_CONFIG_PCI_D1 = PCI_D1;
const pci_power_t VFIO_PCI_RS_CONFIG_PCI_D2 = PCI_D2;

/* Tiny wrappers of static inline functions (src/kernel_ext/helpers.c). */
#include "vfio_pci_rs_helpers.h"

/* The trace events (src/kernel_ext/trace.c) and the refusal messages (src/kernel_ext/dyndbg.c). */
#include "vfio_pci_rs_trace.h"
#include "vfio_pci_rs_dyndbg.h"
