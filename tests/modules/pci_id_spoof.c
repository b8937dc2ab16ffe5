// SPDX-License-Identifier: GPL-2.0
/*
 * Test-only: makes one unbound PCI function report another device ID while the module is
 * loaded, so that both VFIO drivers can be shown a device of vfio-pci's denylist (Intel
 * QuickAssist, DSA, IAA), which no QEMU 10.0 device can present: QEMU lets only vfio-pci
 * passthrough and ati-vga override their IDs.
 *
 * It rewrites the kernel's copy of the ID (struct pci_dev's device field, which drivers match
 * and probe with and sysfs shows), not the function's config space. Loading refuses a function
 * that has a driver; unloading puts the real ID back and refuses nothing, so the tests unbind
 * the function first.
 *
 *   insmod pci_id_spoof.ko bdf=0000:01:00.0 device=0x0435
 */
#include <linux/module.h>
#include <linux/pci.h>

static char *bdf;
module_param(bdf, charp, 0444);
MODULE_PARM_DESC(bdf, "The function, as DOMAIN:BUS:DEVICE.FUNCTION");

static uint device;
module_param(device, uint, 0444);
MODULE_PARM_DESC(device, "The device ID it reports while the module is loaded");

static struct pci_dev *spoofed;
static unsigned short real_device;

static int __init pci_id_spoof_init(void)
{
	unsigned int domain, bus, slot, fn;
	struct pci_dev *pdev;
	int ret = 0;

	if (!bdf || sscanf(bdf, "%x:%x:%x.%x", &domain, &bus, &slot, &fn) != 4 || device > 0xffff)
		return -EINVAL;
	pdev = pci_get_domain_bus_and_slot(domain, bus, PCI_DEVFN(slot, fn));
	if (!pdev)
		return -ENODEV;
	device_lock(&pdev->dev);
	if (pdev->dev.driver) {
		ret = -EBUSY;
	} else {
		real_device = pdev->device;
		pdev->device = device;
	}
	device_unlock(&pdev->dev);
	if (ret) {
		pci_dev_put(pdev);
		return ret;
	}
	spoofed = pdev;
	pci_info(pdev, "pci_id_spoof: device ID %04x reported as %04x\n", real_device, device);
	return 0;
}

static void __exit pci_id_spoof_exit(void)
{
	device_lock(&spoofed->dev);
	spoofed->device = real_device;
	device_unlock(&spoofed->dev);
	pci_info(spoofed, "pci_id_spoof: device ID %04x again\n", real_device);
	pci_dev_put(spoofed);
}

module_init(pci_id_spoof_init);
module_exit(pci_id_spoof_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("vfio-pci-rs tests: a PCI function reporting another device ID");
