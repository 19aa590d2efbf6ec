// SPDX-License-Identifier: GPL-2.0
/*
 * A static cache in the module's own .data (the RFC's kmem_cache_setup, v3 03/10): set up on
 * load, filled with `objects` objects; on unload each object is freed with kfree_rcu and the
 * cache destroyed at once, so the destroy finishes asynchronously, after a grace period, and
 * rmmod frees this module's memory (where the cache lives) only after that.
 */
#include <sheaf/module.h>

struct item {
	struct rcu_head rcu;
	unsigned long serial;
};

static DEFINE_KMEM_CACHE_STATIC(item_cache_storage);
static struct kmem_cache *item_cache;

static int objects = 1000;
module_param(objects, int, 0444);
MODULE_PARM_DESC(objects, "objects allocated on load and freed with kfree_rcu on unload");

static bool nomerge = true;
module_param(nomerge, bool, 0444);
MODULE_PARM_DESC(nomerge, "SLAB_NO_MERGE: the cache is its own primary, its slabs behind the storage (else it may use a compatible cache's slabs)");

static int size = sizeof(struct item);
module_param(size, int, 0444);
MODULE_PARM_DESC(size, "object size in bytes (at least sizeof(struct item))");

static struct item **items;

/* A second static cache, with a usercopy region, and storage the kernel must refuse. */
static DEFINE_KMEM_CACHE_STATIC(copy_storage);

/* kmem_cache_setup_usercopy, and the refusals: each result checked (0 or -EINVAL). */
static int check_setup_api(void)
{
	struct kmem_cache_opaque on_stack;
	struct kmem_cache *c;

	c = kmem_cache_setup_usercopy(&copy_storage, "static_cache_copy", 64, 0, 0, 8, 16, NULL,
				      THIS_MODULE);
	if (!c || kmem_cache_size(c) != 64) {
		pr_err("static_cache: FAIL setup_usercopy\n");
		return -EINVAL;
	}
	kmem_cache_destroy(c);
	/* Storage that is not this module's data, the same storage twice: refused. */
	if (KMEM_CACHE_SETUP(&on_stack, "static_cache_stack", 64, 0, 0, NULL)) {
		pr_err("static_cache: FAIL storage on the stack accepted\n");
		return -EINVAL;
	}
	if (KMEM_CACHE_SETUP(&item_cache_storage, "static_cache_twice", 64, 0, 0, NULL)) {
		pr_err("static_cache: FAIL storage set up twice accepted\n");
		return -EINVAL;
	}
	pr_info("static_cache: ok setup_api\n");
	return 0;
}

static int __init static_cache_init(void)
{
	if (objects < 0 || objects > 1000000 || size < (int)sizeof(struct item) || size > 4096)
		return -EINVAL;
	item_cache = KMEM_CACHE_SETUP(&item_cache_storage, "static_cache_items", size, 0,
				      nomerge ? SLAB_NO_MERGE : 0, NULL);
	if (!item_cache)
		return -ENOMEM;
	if (check_setup_api()) {
		kmem_cache_destroy(item_cache);
		return -EINVAL;
	}
	items = kmalloc(sizeof(*items) * (objects ? objects : 1), GFP_KERNEL);
	if (!items) {
		kmem_cache_destroy(item_cache);
		return -ENOMEM;
	}
	for (int i = 0; i < objects; i++) {
		items[i] = kmem_cache_alloc(item_cache, GFP_KERNEL);
		if (!items[i]) {
			while (i--)
				kmem_cache_free(item_cache, items[i]);
			kfree(items);
			kmem_cache_destroy(item_cache);
			return -ENOMEM;
		}
		items[i]->serial = i;
	}
	pr_info("static_cache: %d objects of %d bytes in a static cache at %p\n", objects, size,
		(void *)&item_cache_storage);
	return 0;
}

static void __exit static_cache_exit(void)
{
	for (int i = 0; i < objects; i++)
		kfree_rcu(items[i], rcu);
	kfree(items);
	/* With objects still in kfree_rcu flight: the destroy finishes after a grace period. */
	kmem_cache_destroy(item_cache);
	pr_info("static_cache: destroyed with %d objects in kfree_rcu flight\n", objects);
}

module_init(static_cache_init);
module_exit(static_cache_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("A static cache in the module's .data, destroyed with objects in kfree_rcu flight");
MODULE_AUTHOR("Sheaf");
