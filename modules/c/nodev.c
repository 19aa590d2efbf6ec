// SPDX-License-Identifier: GPL-2.0
/* nodev: init_module fails with -ENODEV, and the loader must leave nothing behind. */
#include <sheaf/module.h>

static int __init nodev_init(void)
{
	pr_info("nodev: no device here\n");
	return -ENODEV;
}

module_init(nodev_init);
MODULE_LICENSE("Dual MIT/GPL");
MODULE_DESCRIPTION("A module whose init fails with -ENODEV");
