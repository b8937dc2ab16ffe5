// SPDX-License-Identifier: GPL-2.0
/*
 * irqbypass_consumer: a test-only IRQ bypass consumer, standing in for KVM's irqfd, so the
 * in-guest tests (tests/src/irqbypass.rs) can watch the IRQ bypass producers vfio-pci and
 * vfio-pci-rs register for their MSI/MSI-X vectors.  The test guest runs under TCG, without
 * KVM, so the real consumer is not there.
 *
 * It is C, not Rust, because it is test infrastructure, not part of the driver: it exercises
 * the IRQ bypass manager's consumer API exactly as KVM (C) does, it must not share the
 * driver crate's abstraction layer (the thing under test), and the kernel crate has no IRQ
 * bypass bindings.  scripts/guest.sh builds it with Kbuild against the test kernel (it needs
 * irqbypass.ko's symbols), with the other test modules (tests/modules/Kbuild), and
 * harness/init loads it; it is never installed.
 *
 * /dev/irqbypass_consumer: every open file can be one consumer.
 *   write "NAME FD"         registers a consumer named NAME (at most 15 characters) with
 *                           the writer's eventfd FD as its token (EBUSY when this file has
 *                           one already, or another consumer has that eventfd);
 *   write "NAME FD refuse"  the same, but its add_producer callback fails (EOPNOTSUPP), so
 *                           every producer registered with that token fails to register;
 *   read                    the log of every consumer's callbacks since this file was
 *                           opened, one line each: "NAME add IRQ STATE", "NAME refuse IRQ
 *                           STATE" or "NAME del IRQ STATE", IRQ being the producer's Linux
 *                           IRQ number and STATE "requested" if a handler is requested on
 *                           it at that moment (vfio-pci registers its producers after
 *                           request_irq and unregisters them before free_irq), else "free";
 *   close                   unregisters the file's consumer (logging its del if paired).
 */
#include <linux/eventfd.h>
#include <linux/fs.h>
#include <linux/interrupt.h>
#include <linux/irqbypass.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#define LOG_SIZE (64 * 1024)

struct test_consumer {
	struct irq_bypass_consumer cons;
	struct eventfd_ctx *eventfd;
	char name[16];
	bool refuse;
};

/* One log for all consumers, appended by the callbacks (under the manager's lock). */
static DEFINE_MUTEX(log_lock);
/* Serialises registrations (two writes on one file). */
static DEFINE_MUTEX(reg_lock);
static char *log_buf;
static size_t log_len;
static bool log_full;

static void log_event(struct test_consumer *c, const char *what, int irq)
{
	int n;

	mutex_lock(&log_lock);
	n = snprintf(log_buf + log_len, LOG_SIZE - log_len, "%s %s %d %s\n", c->name, what, irq,
		     irq_has_action(irq) ? "requested" : "free");
	if (n >= LOG_SIZE - log_len)
		log_full = true;
	else
		log_len += n;
	mutex_unlock(&log_lock);
}

static int test_add_producer(struct irq_bypass_consumer *cons, struct irq_bypass_producer *prod)
{
	struct test_consumer *c = container_of(cons, struct test_consumer, cons);

	log_event(c, c->refuse ? "refuse" : "add", prod->irq);
	return c->refuse ? -EOPNOTSUPP : 0;
}

static void test_del_producer(struct irq_bypass_consumer *cons, struct irq_bypass_producer *prod)
{
	struct test_consumer *c = container_of(cons, struct test_consumer, cons);

	log_event(c, "del", prod->irq);
}

static int test_open(struct inode *inode, struct file *file)
{
	struct test_consumer *c = kzalloc(sizeof(*c), GFP_KERNEL);

	if (!c)
		return -ENOMEM;
	c->cons.add_producer = test_add_producer;
	c->cons.del_producer = test_del_producer;
	file->private_data = c;
	/* A reader sees what happened after it opened the file. */
	mutex_lock(&log_lock);
	file->f_pos = log_len;
	mutex_unlock(&log_lock);
	return 0;
}

static ssize_t test_write(struct file *file, const char __user *ubuf, size_t count, loff_t *ppos)
{
	struct test_consumer *c = file->private_data;
	char buf[64], name[16], mode[8] = "";
	struct eventfd_ctx *ctx;
	int fd, n, ret;

	guard(mutex)(&reg_lock);
	if (c->eventfd)
		return -EBUSY;
	if (count >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	buf[count] = '\0';
	n = sscanf(buf, "%15s %d %7s", name, &fd, mode);
	if (n < 2 || (n == 3 && strcmp(mode, "refuse")))
		return -EINVAL;
	ctx = eventfd_ctx_fdget(fd);
	if (IS_ERR(ctx))
		return PTR_ERR(ctx);
	strscpy(c->name, name);
	c->refuse = n == 3;
	ret = irq_bypass_register_consumer(&c->cons, ctx);
	if (ret) {
		eventfd_ctx_put(ctx);
		return ret;
	}
	c->eventfd = ctx;
	return count;
}

static ssize_t test_read(struct file *file, char __user *ubuf, size_t count, loff_t *ppos)
{
	ssize_t ret;

	mutex_lock(&log_lock);
	ret = log_full ? -ENOSPC : simple_read_from_buffer(ubuf, count, ppos, log_buf, log_len);
	mutex_unlock(&log_lock);
	return ret;
}

static int test_release(struct inode *inode, struct file *file)
{
	struct test_consumer *c = file->private_data;

	if (c->eventfd) {
		irq_bypass_unregister_consumer(&c->cons);
		eventfd_ctx_put(c->eventfd);
	}
	kfree(c);
	return 0;
}

static const struct file_operations test_fops = {
	.owner = THIS_MODULE,
	.open = test_open,
	.read = test_read,
	.write = test_write,
	.release = test_release,
};

static struct miscdevice test_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "irqbypass_consumer",
	.fops = &test_fops,
	.mode = 0600,
};

static int __init test_init(void)
{
	int ret;

	log_buf = kvzalloc(LOG_SIZE, GFP_KERNEL);
	if (!log_buf)
		return -ENOMEM;
	ret = misc_register(&test_misc);
	if (ret)
		kvfree(log_buf);
	return ret;
}

static void __exit test_exit(void)
{
	misc_deregister(&test_misc);
	kvfree(log_buf);
}

module_init(test_init);
module_exit(test_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Test-only IRQ bypass consumer for the vfio-pci-rs tests");
