// SPDX-License-Identifier: GPL-2.0
/* user: calls the exporter module's symbols, so exporter cannot be unloaded before it. */
#include <sheaf/module.h>

extern long exporter_calls;
long exporter_add(long a, long b);

static int __init user_init(void)
{
	long sum = exporter_add(40, 2);
	char *buf = kzalloc(32, GFP_KERNEL);

	if (!buf)
		return -ENOMEM;
	kfree(buf);
	pr_info("user: exporter_add(40, 2) = %ld, %ld calls so far\n", sum, exporter_calls);
	return 0;
}

static void __exit user_exit(void)
{
	pr_info("user: bye\n");
}

module_init(user_init);
module_exit(user_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Uses the exporter module");
MODULE_INFO(depends, "exporter");
