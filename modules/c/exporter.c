// SPDX-License-Identifier: GPL-2.0
/* exporter: exports a counter and a GPL-only function; `user` uses both. */
#include <sheaf/module.h>

static struct kmem_cache *exporter_cache;
long exporter_calls;
EXPORT_SYMBOL(exporter_calls);

/* Returns a + b and counts the call; allocates and frees one object to show the slab. */
long exporter_add(long a, long b)
{
	void *obj = kmem_cache_alloc(exporter_cache, GFP_KERNEL);

	if (obj)
		kmem_cache_free(exporter_cache, obj);
	exporter_calls++;
	return a + b;
}
EXPORT_SYMBOL_GPL(exporter_add);

static int __init exporter_init(void)
{
	exporter_cache = kmem_cache_create("exporter", 64, 0, SLAB_HWCACHE_ALIGN, NULL);
	if (!exporter_cache)
		return -ENOMEM;
	pr_info("exporter: loaded\n");
	return 0;
}

static void __exit exporter_exit(void)
{
	kmem_cache_destroy(exporter_cache);
	pr_info("exporter: unloaded after %ld calls\n", exporter_calls);
}

module_init(exporter_init);
module_exit(exporter_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Exports symbols for the user module");
