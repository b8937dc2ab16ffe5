// SPDX-License-Identifier: GPL-2.0
/*
 * A QEMU TCG plugin for the benchmark's instruction profile (scripts/profile.sh): counts the
 * guest kernel's executed instructions per translation block within windows the guest opens
 * and closes by executing two marker addresses: the kernel's getppid() entry opens one (the
 * counts start from zero), its getpid() entry closes it (the counts are written out as one
 * section); the benchmark calls them before and after every timed batch of samples. A close
 * with no window open (a getpid() elsewhere) is ignored. A section's lines are
 * "ADDRESS INSNS EXECUTIONS" per block; scripts/profile.sh maps the addresses to symbols
 * (System.map, and the guest's /proc/kallsyms for modules).
 *
 * Arguments: open=ADDRESS, close=ADDRESS (hex), out=FILE.
 *
 * Only the few plugin API calls it needs are declared here, as QEMU's plugin header (not
 * installed by Debian's packages) declares them; QEMU checks qemu_plugin_version against the
 * range it supports at load time.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;

typedef struct {
	const char *target_name;
	struct {
		int min;
		int cur;
	} version;
	bool system_emulation;
	union {
		struct {
			int smp_vcpus;
			int max_vcpus;
		} system;
	};
} qemu_info_t;

enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };

typedef void (*tb_trans_cb)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*vcpu_udata_cb)(unsigned int vcpu_index, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, vcpu_udata_cb cb,
					  enum qemu_plugin_cb_flags flags, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);

__attribute__((visibility("default"))) int qemu_plugin_version = 4;

/* The kernel's half of the x86-64 address space. */
#define KERNEL_START 0xffff800000000000ull

/* One translated kernel block: where it starts, its length, its executions since the last mark. */
struct block {
	uint64_t vaddr;
	uint64_t insns;
	uint64_t executions;
	struct block *next;
};

static struct block *blocks;
static uint64_t open_mark, close_mark;
static FILE *out;
static unsigned int section;
static bool window_open;

/* Writes out the counts (if a window is open) and zeroes them. */
static void dump_and_reset(bool dump)
{
	if (dump)
		fprintf(out, "section %u\n", section++);
	for (struct block *b = blocks; b; b = b->next) {
		if (b->executions) {
			if (dump)
				fprintf(out, "%" PRIx64 " %" PRIu64 " %" PRIu64 "\n", b->vaddr,
					b->insns, b->executions);
			b->executions = 0;
		}
	}
	if (dump)
		fflush(out);
}

static void block_executed(unsigned int vcpu_index, void *userdata)
{
	struct block *b = userdata;

	(void)vcpu_index;
	b->executions++;
}

static void open_executed(unsigned int vcpu_index, void *userdata)
{
	(void)vcpu_index;
	(void)userdata;
	dump_and_reset(false);
	window_open = true;
}

static void close_executed(unsigned int vcpu_index, void *userdata)
{
	(void)vcpu_index;
	(void)userdata;
	if (window_open)
		dump_and_reset(true);
	window_open = false;
}

static void block_translated(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	uint64_t vaddr = qemu_plugin_tb_vaddr(tb);
	struct block *b;

	(void)id;
	if (vaddr < KERNEL_START)
		return;
	if (vaddr == open_mark || vaddr == close_mark) {
		qemu_plugin_register_vcpu_tb_exec_cb(tb, vaddr == open_mark ? open_executed : close_executed,
						     QEMU_PLUGIN_CB_NO_REGS, NULL);
		return;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return;
	b->vaddr = vaddr;
	b->insns = qemu_plugin_tb_n_insns(tb);
	b->next = blocks;
	blocks = b;
	qemu_plugin_register_vcpu_tb_exec_cb(tb, block_executed, QEMU_PLUGIN_CB_NO_REGS, b);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
							       const qemu_info_t *info, int argc,
							       char **argv)
{
	const char *path = NULL;

	(void)info;
	for (int i = 0; i < argc; i++) {
		if (!strncmp(argv[i], "open=", 5))
			open_mark = strtoull(argv[i] + 5, NULL, 16);
		else if (!strncmp(argv[i], "close=", 6))
			close_mark = strtoull(argv[i] + 6, NULL, 16);
		else if (!strncmp(argv[i], "out=", 4))
			path = argv[i] + 4;
	}
	if (!open_mark || !close_mark || !path) {
		fprintf(stderr, "insn-profile: needs open=ADDRESS, close=ADDRESS and out=FILE\n");
		return -1;
	}
	out = fopen(path, "w");
	if (!out) {
		perror(path);
		return -1;
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, block_translated);
	return 0;
}
