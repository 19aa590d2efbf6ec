// SPDX-License-Identifier: GPL-2.0
/*
 * rcuwq: calls every RCU, workqueue, deferred-free-queue, time and CPU export and checks each
 * result, printing "rcuwq: ok CASE" or "rcuwq: FAIL CASE"; init_module returns 0 only if every
 * case passed. Everything it starts is idle again when init_module returns (and again in
 * cleanup_module, which also waits for its RCU callbacks).
 */
#include <sheaf/module.h>

static int failures;

static void check(bool ok, const char *name)
{
	if (ok) {
		pr_info("rcuwq: ok %s\n", name);
	} else {
		pr_err("rcuwq: FAIL %s\n", name);
		failures++;
	}
}

/* ---- RCU ---- */
static struct rcu_head rcu_cb_head;
static volatile int rcu_cb_ran;

static void rcu_cb(struct rcu_head *head)
{
	if (head == &rcu_cb_head)
		rcu_cb_ran++;
}

struct rcu_obj {
	long value;
	struct rcu_head rcu;
};

static void test_rcu(void)
{
	unsigned int cpu, nested_cpu;
	int i, allocated = 0;

	call_rcu(&rcu_cb_head, rcu_cb);
	synchronize_rcu();
	rcu_barrier();
	check(rcu_cb_ran == 1, "call_rcu");

	rcu_read_lock();
	cpu = smp_processor_id();
	rcu_read_lock();
	nested_cpu = smp_processor_id();
	rcu_read_unlock();
	rcu_read_unlock();
	check(cpu == nested_cpu && cpu < num_online_cpus(), "rcu_read_lock");

	/* An unlock without a lock is refused with a message; sleeping still works after it. */
	rcu_read_unlock();
	synchronize_rcu();
	check(1, "rcu_read_unlock_unbalanced");

	for (i = 0; i < 1000; i++) {
		struct rcu_obj *o = kmalloc(sizeof(*o), GFP_KERNEL);

		if (!o)
			break;
		o->value = i;
		allocated++;
		rcu_read_lock();
		kfree_rcu(o, rcu);
		rcu_read_unlock();
	}
	kvfree_rcu_barrier();
	check(allocated == 1000, "kfree_rcu");

	{
		struct rcu_obj *o = kmalloc(sizeof(*o), GFP_KERNEL);

		kfree_rcu_mightsleep(o);
		kvfree_rcu_barrier();
		check(o != NULL, "kfree_rcu_mightsleep");
	}
}

/* ---- Workqueues ---- */
static struct work_struct work_a;
static volatile int work_a_ran;
static struct delayed_work dwork_cancel, dwork_run;
static volatile int dwork_cancel_ran, dwork_run_ran;
static struct work_struct work_on;
static volatile int work_on_cpu = -1;
static struct work_struct work_unbound;
static volatile int work_unbound_ran;
static struct workqueue_struct *wq;

static void work_a_fn(struct work_struct *w)
{
	if (w == &work_a)
		work_a_ran++;
}

static void dwork_cancel_fn(struct work_struct *w)
{
	(void)w;
	dwork_cancel_ran++;
}

static void dwork_run_fn(struct work_struct *w)
{
	if (to_delayed_work(w) == &dwork_run)
		dwork_run_ran++;
}

static void work_on_fn(struct work_struct *w)
{
	(void)w;
	work_on_cpu = (int)smp_processor_id();
}

static void work_unbound_fn(struct work_struct *w)
{
	(void)w;
	work_unbound_ran++;
}

static void test_workqueues(void)
{
	unsigned int cpu;
	bool all_on = true;
	int waited;

	INIT_WORK(&work_a, work_a_fn);
	check(schedule_work(&work_a), "schedule_work");
	flush_work(&work_a);
	check(work_a_ran == 1, "flush_work");

	wq = alloc_workqueue("rcuwq_%d", 0, 0, 7);
	check(wq != NULL, "alloc_workqueue");
	check(alloc_workqueue("rcuwq_bad", 1u << 30, 0) == NULL, "alloc_workqueue_bad_flags");
	if (!wq)
		return;

	check(queue_work(wq, &work_a) && (flush_work(&work_a), work_a_ran == 2), "queue_work");

	INIT_WORK(&work_on, work_on_fn);
	for (cpu = 0; cpu < num_online_cpus(); cpu++) {
		work_on_cpu = -1;
		if (!queue_work_on((int)cpu, wq, &work_on)) {
			all_on = false;
			break;
		}
		flush_work(&work_on);
		if (work_on_cpu != (int)cpu)
			all_on = false;
	}
	check(all_on, "queue_work_on");
	check(!queue_work_on(100000, wq, &work_on), "queue_work_on_bad_cpu");

	INIT_DELAYED_WORK(&dwork_cancel, dwork_cancel_fn);
	check(queue_delayed_work(wq, &dwork_cancel, 20), "queue_delayed_work");
	check(!queue_delayed_work(wq, &dwork_cancel, 20), "queue_delayed_work_twice");
	check(cancel_delayed_work_sync(&dwork_cancel) && dwork_cancel_ran == 0,
	      "cancel_delayed_work_sync");

	INIT_DELAYED_WORK(&dwork_run, dwork_run_fn);
	queue_delayed_work(system_wq, &dwork_run, 2);
	for (waited = 0; waited < 100 && !dwork_run_ran; waited++)
		msleep(10);
	flush_work(&dwork_run.work);
	check(dwork_run_ran == 1, "delayed_work_runs");

	INIT_WORK(&work_unbound, work_unbound_fn);
	check(queue_work(system_unbound_wq, &work_unbound), "system_unbound_wq");
	flush_work(&work_unbound);
	check(work_unbound_ran == 1, "system_unbound_wq_ran");

	/* Queued, then canceled before it can run (the queue is not flushed meanwhile). */
	check(queue_work(wq, &work_a), "queue_work_again");
	cancel_work_sync(&work_a);
	check(!cancel_work_sync(&work_a) && !flush_work(&work_a), "cancel_work_sync");

	check(!queue_work(NULL, &work_a) && !queue_work(wq, NULL), "queue_work_null");
	destroy_workqueue(NULL);
	destroy_workqueue(system_wq);
	destroy_workqueue(wq);
	wq = NULL;
	check(1, "destroy_workqueue");
}

/* ---- The deferred free queue ---- */
struct fq_obj {
	long a, b, c;
};

static void test_free_q(void)
{
	DEFINE_KMEM_FREE_Q(zq);
	struct kmem_free_q_head q;
	struct kmem_cache *cache = kmem_cache_create("rcuwq_fq", sizeof(struct fq_obj), 0, 0, NULL);
	struct fq_obj *first = NULL;
	int i, queued = 0;

	kmem_free_q_init(&q);
	rcu_read_lock(); /* the "lock": no sleeping inside, nothing freed inside */
	for (i = 0; i < 10; i++) {
		struct fq_obj *o = kmalloc(sizeof(*o), GFP_ATOMIC);

		if (o && kmem_free_q_add(&q, NULL, o) == 0) {
			queued++;
			if (!first)
				first = o;
		}
	}
	if (cache) {
		struct fq_obj *o = kmem_cache_alloc(cache, GFP_ATOMIC);

		if (o && kmem_free_q_add(&zq, cache, o) == 0)
			queued++;
	}
	/* Queued twice: refused, the object stays queued once. */
	check(first && kmem_free_q_add(&q, NULL, first) == -EINVAL, "kmem_free_q_add_twice");
	check(kmem_free_q_add(NULL, NULL, first) == -EINVAL, "kmem_free_q_add_null");
	rcu_read_unlock();
	kmem_free_up_q(&q);
	kmem_free_up_q(&zq);
	check(queued == 11, "kmem_free_q");
	kmem_cache_destroy(cache);
}

/* ---- Time and CPUs ---- */
static void test_time(void)
{
	unsigned long before = jiffies;

	msleep(10);
	check(jiffies > before, "msleep_jiffies");
	check(num_online_cpus() >= 1 && smp_processor_id() < num_online_cpus(), "cpus");
}

static void stop_everything(void)
{
	cancel_work_sync(&work_a);
	cancel_work_sync(&work_on);
	cancel_work_sync(&work_unbound);
	cancel_delayed_work_sync(&dwork_cancel);
	cancel_delayed_work_sync(&dwork_run);
	if (wq)
		destroy_workqueue(wq);
	wq = NULL;
	/* call_rcu callbacks are this module's code. */
	rcu_barrier();
}

static int __init rcuwq_init(void)
{
	failures = 0;
	test_rcu();
	test_workqueues();
	test_free_q();
	test_time();
	stop_everything();
	if (failures) {
		pr_err("rcuwq: %d failed\n", failures);
		return -EINVAL;
	}
	pr_info("rcuwq: all passed\n");
	return 0;
}

static void __exit rcuwq_exit(void)
{
	stop_everything();
	pr_info("rcuwq: unloaded\n");
}

module_init(rcuwq_init);
module_exit(rcuwq_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Checks the RCU, workqueue and free-queue exports");
