# The long stress run (tests/src/stress.rs), for scripts/guest.sh run harness/stress-long.sh:
# stress_single and stress_set with their workers running VFIO_PCI_RS_STRESS_SECS seconds
# (default 40) per driver, stress_unbind through its disruptions VFIO_PCI_RS_STRESS_ROUNDS
# times (default 5), and a watchdog long enough for them.
export VFIO_PCI_RS_STRESS_SECS=${VFIO_PCI_RS_STRESS_SECS:-40}
export VFIO_PCI_RS_STRESS_ROUNDS=${VFIO_PCI_RS_STRESS_ROUNDS:-5}
/bin/vfio-pci-rs-tests --filter stress_ --timeout 600
