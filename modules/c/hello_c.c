// SPDX-License-Identifier: GPL-2.0
/* hello_c: prints on load and unload; `insmod hello_c.ko whom=... times=N` changes what. */
#include <sheaf/module.h>

static char *whom = "world";
module_param(whom, charp, 0444);
MODULE_PARM_DESC(whom, "who to greet");

static int times = 1;
module_param(times, int, 0644);
MODULE_PARM_DESC(times, "how many greetings");

static int __init hello_init(void)
{
	for (int i = 0; i < times; i++)
		pr_info("hello_c: hello, %s (%d of %d)\n", whom, i + 1, times);
	return 0;
}

static void __exit hello_exit(void)
{
	pr_info("hello_c: goodbye, %s\n", whom);
}

module_init(hello_init);
module_exit(hello_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Hello world in C, with parameters");
MODULE_AUTHOR("Sheaf");
