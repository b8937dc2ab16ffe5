#!/bin/sh
# The demo, run inside the guest: bind the function behind the hotplug root port to
# vfio-pci-rs, show what appears, and open it through cdev + iommufd and through its group.
set -e
port=$(awk '$1 == "slot" { print $2 }' /etc/vfio-pci-rs/topology)
bdf=$(basename "$(ls -d /sys/bus/pci/devices/$port/[0-9a-f][0-9a-f][0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f].[0-7] | head -n1)")
echo "== vfio-pci-rs demo on $bdf ($(cat /sys/bus/pci/devices/$bdf/vendor):$(cat /sys/bus/pci/devices/$bdf/device))"
insmod "$VFIO_PCI_RS_KO"
echo vfio-pci-rs > /sys/bus/pci/devices/$bdf/driver_override
echo "$bdf" > /sys/bus/pci/drivers_probe
echo "driver:   $(basename "$(readlink /sys/bus/pci/devices/$bdf/driver)")"
group=$(basename "$(readlink /sys/bus/pci/devices/$bdf/iommu_group)")
cdev=$(ls /sys/bus/pci/devices/$bdf/vfio-dev/)
echo "group:    /dev/vfio/$group  ($(ls -l /dev/vfio/$group | awk '{print $1}'))"
echo "cdev:     /dev/vfio/devices/$cdev  (sysfs: /sys/bus/pci/devices/$bdf/vfio-dev/$cdev)"
echo "reset:    $(cat /sys/bus/pci/devices/$bdf/reset_method 2>/dev/null)"
/bin/vfio-pci-rs-tests --demo "$bdf"
echo "$bdf" > /sys/bus/pci/devices/$bdf/driver/unbind
rmmod vfio_pci_rs
echo "== demo done"
