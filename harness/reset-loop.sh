# The two-vCPU freeze reproducer (Documentation/testing.rst, "Two vCPUs"), for
# scripts/guest.sh run harness/reset-loop.sh: secondary bus resets of the 2-function e1000e
# (the rp_multi topology's root port, 0000:00:03.0) through reset_subordinate, no VFIO driver
# bound. Multi-threaded TCG froze within 150-200 of them; each run here makes 400.
n=${RESET_LOOP_COUNT:-400}
br=/sys/bus/pci/devices/0000:00:03.0
i=0
while [ $i -lt $n ]; do
	echo 1 > $br/reset_subordinate || exit 1
	i=$((i + 1))
done
echo "reset-loop: $i secondary bus resets"
