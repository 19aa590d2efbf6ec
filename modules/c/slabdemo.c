// SPDX-License-Identifier: GPL-2.0
/*
 * slabdemo: a tour of the slab API for a module, one step after the other, each printed:
 * a cache with red zones and poisoning, a bulk allocation and free, a krealloc, a burst of
 * kfree_rcu, a work item, and the deferred free queue filled inside an RCU read-side section
 * (where nothing may sleep: the objects are freed after it, by kmem_free_up_q).
 *
 *	sheaf> insmod slabdemo.ko burst=5000
 *	sheaf> cat /sys/kernel/slab/slabdemo_objs/red_zone
 *	sheaf> rmmod slabdemo
 */
#include <sheaf/module.h>

struct obj {
	struct rcu_head rcu;
	unsigned long value;
	char name[40];
};

static int burst = 1000;
module_param(burst, int, 0444);
MODULE_PARM_DESC(burst, "objects freed with kfree_rcu in one burst");

static struct kmem_cache *cache;
static struct work_struct work;
static int work_ran;

static void demo_work(struct work_struct *w)
{
	(void)w;
	work_ran = smp_processor_id() + 1;
}

static int __init slabdemo_init(void)
{
	void *bulk[32];
	char *buf;
	int n;
	DEFINE_KMEM_FREE_Q(q);

	if (burst < 0 || burst > 100000)
		return -EINVAL;
	cache = kmem_cache_create("slabdemo_objs", sizeof(struct obj), 0,
				  SLAB_RED_ZONE | SLAB_POISON, NULL);
	if (!cache)
		return -ENOMEM;
	pr_info("slabdemo: cache slabdemo_objs, %u-byte objects, red zones and poisoning\n",
		kmem_cache_size(cache));

	n = kmem_cache_alloc_bulk(cache, GFP_KERNEL, 32, bulk);
	if (n != 32)
		goto fail;
	kmem_cache_free_bulk(cache, 32, bulk);
	pr_info("slabdemo: bulk: 32 objects allocated and freed in two calls\n");

	buf = kmalloc(16, GFP_KERNEL);
	if (!buf)
		goto fail;
	for (int i = 0; i < 16; i++)
		buf[i] = 'a' + i;
	buf = krealloc(buf, 4000, GFP_KERNEL);
	if (!buf || buf[15] != 'p')
		goto fail;
	pr_info("slabdemo: krealloc 16 -> 4000 bytes (ksize %zu), contents kept\n", ksize(buf));
	kfree(buf);

	for (int i = 0; i < burst; i++) {
		struct obj *o = kmem_cache_alloc(cache, GFP_KERNEL);

		if (!o)
			goto fail;
		o->value = i;
		kfree_rcu(o, rcu);
	}
	kvfree_rcu_barrier();
	pr_info("slabdemo: kfree_rcu burst of %d objects, all freed after kvfree_rcu_barrier\n",
		burst);

	INIT_WORK(&work, demo_work);
	schedule_work(&work);
	flush_work(&work);
	if (!work_ran)
		goto fail;
	pr_info("slabdemo: a work item ran on CPU %d\n", work_ran - 1);

	kmem_free_q_init(&q);
	rcu_read_lock();
	for (int i = 0; i < 8; i++) {
		void *o = kmem_cache_alloc(cache, GFP_ATOMIC);

		if (o && kmem_free_q_add(&q, cache, o))
			kmem_cache_free(cache, o);
	}
	rcu_read_unlock();
	kmem_free_up_q(&q);
	pr_info("slabdemo: 8 objects queued inside an RCU read-side section, freed after it\n");
	return 0;
fail:
	pr_err("slabdemo: a step failed\n");
	kmem_cache_destroy(cache);
	return -ENOMEM;
}

static void __exit slabdemo_exit(void)
{
	kmem_cache_destroy(cache);
	pr_info("slabdemo: cache destroyed\n");
}

module_init(slabdemo_init);
module_exit(slabdemo_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("A tour of the slab API: debug cache, bulk, krealloc, kfree_rcu, work, free queue");
MODULE_AUTHOR("Sheaf");
