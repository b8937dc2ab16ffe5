# The long fuzzer run (tests/src/fuzz.rs), for scripts/guest.sh run harness/fuzz-long.sh:
# every fuzz case with VFIO_PCI_RS_FUZZ_OPS operations per run (default 10000; 7 sites, so
# 70000 per driver) and a watchdog long enough for them.
export VFIO_PCI_RS_FUZZ_OPS=${VFIO_PCI_RS_FUZZ_OPS:-10000}
/bin/vfio-pci-rs-tests --filter fuzz --timeout 600
