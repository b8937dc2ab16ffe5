// SPDX-License-Identifier: GPL-2.0
/*
 * Test-only: gives one unbound PCI function without a ROM BAR a platform copy of a ROM
 * (struct pci_dev's rom and romlen, which on a real host the firmware's setup data fill in
 * for the boot GPU), while the module is loaded. vfio-pci reads such a ROM without checking
 * memory decode, since the ROM resource is not a memory resource; no QEMU guest booted by
 * SeaBIOS has one.
 *
 * The copy is any bus or memory address the test names (the tests use the function's own
 * BAR2, whose bytes they write first). Loading refuses a function that has a driver or a ROM
 * resource; unloading takes the copy away again, so the tests unbind the function first.
 *
 *   insmod pci_rom_shadow.ko bdf=0000:01:00.0 addr=0xfe000000 len=0x10000
 */
#include <linux/module.h>
#include <linux/pci.h>

static char *bdf;
module_param(bdf, charp, 0444);
MODULE_PARM_DESC(bdf, "The function, as DOMAIN:BUS:DEVICE.FUNCTION");

static ulong addr;
module_param(addr, ulong, 0444);
MODULE_PARM_DESC(addr, "The physical address of the ROM copy");

static ulong len;
module_param(len, ulong, 0444);
MODULE_PARM_DESC(len, "The length of the ROM copy in bytes");

static struct pci_dev *shadowed;

static int __init pci_rom_shadow_init(void)
{
	unsigned int domain, bus, slot, fn;
	struct pci_dev *pdev;
	int ret = 0;

	if (!bdf || sscanf(bdf, "%x:%x:%x.%x", &domain, &bus, &slot, &fn) != 4 || !addr || !len)
		return -EINVAL;
	pdev = pci_get_domain_bus_and_slot(domain, bus, PCI_DEVFN(slot, fn));
	if (!pdev)
		return -ENODEV;
	device_lock(&pdev->dev);
	if (pdev->dev.driver)
		ret = -EBUSY;
	else if (pdev->resource[PCI_ROM_RESOURCE].flags || pdev->rom)
		ret = -EEXIST;
	else {
		pdev->rom = addr;
		pdev->romlen = len;
	}
	device_unlock(&pdev->dev);
	if (ret) {
		pci_dev_put(pdev);
		return ret;
	}
	shadowed = pdev;
	pci_info(pdev, "pci_rom_shadow: platform ROM copy at %#lx, %#lx bytes\n", addr, len);
	return 0;
}

static void __exit pci_rom_shadow_exit(void)
{
	device_lock(&shadowed->dev);
	shadowed->rom = 0;
	shadowed->romlen = 0;
	device_unlock(&shadowed->dev);
	pci_info(shadowed, "pci_rom_shadow: no platform ROM copy\n");
	pci_dev_put(shadowed);
}

module_init(pci_rom_shadow_init);
module_exit(pci_rom_shadow_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("vfio-pci-rs tests: a PCI function with a platform copy of a ROM");
