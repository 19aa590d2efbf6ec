/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Everything a Sheaf module written in C includes (Linux's <linux/module.h>, <linux/printk.h>,
 * <linux/slab.h> and <linux/moduleparam.h> in one header). Build a module with nothing but gcc
 * and this directory:
 *
 *     gcc -c -O2 -ffreestanding -fno-pic -mcmodel=kernel -mno-red-zone \
 *         -fno-stack-protector -mgeneral-regs-only -I include hello.c -o hello.ko
 *
 * or `cargo modbuild c hello.c`. The format of the sections these macros fill (.modinfo,
 * .sheaf.exports, .sheaf.exports_gpl, .sheaf.params) is in docs/modules.md and in the loader
 * (kernel/crates/modload).
 */
#ifndef _SHEAF_MODULE_H
#define _SHEAF_MODULE_H

/* ---- Types (gcc's freestanding headers: size_t, NULL, bool) ---- */
#include <stddef.h>
#include <stdbool.h>
typedef long ssize_t;

/* ---- Error numbers (Linux's values; init_module returns one negated) ---- */
#define EPERM 1
#define ENOENT 2
#define EIO 5
#define ENOMEM 12
#define EFAULT 14
#define EBUSY 16
#define EEXIST 17
#define ENODEV 19
#define EINVAL 22
#define ENOSPC 28

/* ---- printk ---- */
#define KERN_SOH "\001"
#define KERN_EMERG KERN_SOH "0"
#define KERN_ALERT KERN_SOH "1"
#define KERN_CRIT KERN_SOH "2"
#define KERN_ERR KERN_SOH "3"
#define KERN_WARNING KERN_SOH "4"
#define KERN_NOTICE KERN_SOH "5"
#define KERN_INFO KERN_SOH "6"
#define KERN_DEBUG KERN_SOH "7"
#define KERN_DEFAULT ""
#define KERN_CONT KERN_SOH "c"

/*
 * Conversions: %s %c %d %i %u %ld %lu %lld %llu %x %lx %llx %p %zu %%, a width, and the '-'
 * and '0' flags. Returns the number of bytes printed.
 */
int printk(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define pr_emerg(fmt, ...) printk(KERN_EMERG fmt, ##__VA_ARGS__)
#define pr_alert(fmt, ...) printk(KERN_ALERT fmt, ##__VA_ARGS__)
#define pr_crit(fmt, ...) printk(KERN_CRIT fmt, ##__VA_ARGS__)
#define pr_err(fmt, ...) printk(KERN_ERR fmt, ##__VA_ARGS__)
#define pr_warn(fmt, ...) printk(KERN_WARNING fmt, ##__VA_ARGS__)
#define pr_notice(fmt, ...) printk(KERN_NOTICE fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...) printk(KERN_INFO fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...) printk(KERN_DEBUG fmt, ##__VA_ARGS__)
#define pr_cont(fmt, ...) printk(KERN_CONT fmt, ##__VA_ARGS__)

/* ---- Memory (the kernel's slab allocator) ---- */
typedef unsigned int gfp_t;
#define GFP_KERNEL ((gfp_t)0x01u)
#define GFP_ATOMIC ((gfp_t)0x02u)
#define __GFP_ZERO ((gfp_t)0x04u)
#define __GFP_NOWARN ((gfp_t)0x08u)
#define GFP_NOWAIT ((gfp_t)0x10u)

/*
 * A size nothing serves (more than 4 MiB), or an array size that overflows, gives NULL.
 * Unknown gfp_t bits are ignored. kfree, krealloc and ksize of a pointer that is not the
 * start of a kmalloc'ed object are refused and reported (ksize answers 0).
 */
void *kmalloc(size_t size, gfp_t flags);
void *kzalloc(size_t size, gfp_t flags);
void kfree(const void *objp);
void *kcalloc(size_t n, size_t size, gfp_t flags);
void *kmalloc_array(size_t n, size_t size, gfp_t flags);
/* The grown part is zeroed only with __GFP_ZERO; NULL leaves objp untouched. */
void *krealloc(const void *objp, size_t new_size, gfp_t flags);
size_t ksize(const void *objp);
/* Problems the slab allocator has reported since boot (Sheaf's own, for tests). */
unsigned long slab_errors(void);

struct kmem_cache;
typedef unsigned int slab_flags_t;
#define SLAB_CONSISTENCY_CHECKS ((slab_flags_t)(1u << 0))
#define SLAB_RED_ZONE ((slab_flags_t)(1u << 1))
#define SLAB_POISON ((slab_flags_t)(1u << 2))
#define SLAB_HWCACHE_ALIGN ((slab_flags_t)(1u << 3))
#define SLAB_NO_MERGE ((slab_flags_t)(1u << 4))
#define SLAB_STORE_USER ((slab_flags_t)(1u << 5))
#define SLAB_PANIC ((slab_flags_t)(1u << 6))
#define SLAB_TYPESAFE_BY_RCU ((slab_flags_t)(1u << 7))
/* Accepted; they only keep such a cache from merging with one without them. */
#define SLAB_RECLAIM_ACCOUNT ((slab_flags_t)(1u << 8))
#define SLAB_ACCOUNT ((slab_flags_t)(1u << 9))
#define SLAB_CACHE_DMA ((slab_flags_t)(1u << 10))

/*
 * Any other flag bit refuses the creation (NULL, and a message). SLAB_RED_ZONE, SLAB_POISON,
 * SLAB_STORE_USER and SLAB_CONSISTENCY_CHECKS make the cache check its objects (as under
 * slub_debug); what they find is reported and counted by slab_errors(). A pointer that is not
 * a cache (NULL included) is refused with a message by every function taking one: NULL, 0 or
 * -EINVAL back (kmem_cache_destroy(NULL) and kmem_cache_free(s, NULL) do nothing quietly;
 * kmem_cache_free_bulk(NULL, ...) kfrees each object, as Linux's kfree_bulk).
 */
struct kmem_cache *kmem_cache_create(const char *name, unsigned int size, unsigned int align,
				     slab_flags_t flags, void (*ctor)(void *));
void *kmem_cache_alloc(struct kmem_cache *s, gfp_t flags);
void kmem_cache_free(struct kmem_cache *s, void *objp);
void kmem_cache_destroy(struct kmem_cache *s);
struct kmem_cache *kmem_cache_create_usercopy(const char *name, unsigned int size,
					      unsigned int align, slab_flags_t flags,
					      unsigned int useroffset, unsigned int usersize,
					      void (*ctor)(void *));
void *kmem_cache_zalloc(struct kmem_cache *s, gfp_t flags);
/* 0 when no slab is left, 1 when objects keep some. */
int kmem_cache_shrink(struct kmem_cache *s);
/* size objects into p: returns size, or 0 (nothing allocated). */
int kmem_cache_alloc_bulk(struct kmem_cache *s, gfp_t flags, size_t size, void **p);
void kmem_cache_free_bulk(struct kmem_cache *s, size_t size, void **p);
unsigned int kmem_cache_size(struct kmem_cache *s);

/* ---- RCU, workqueues, the deferred free queue, time and CPUs ---- */
/*
 * Structures a module embeds whose layout is the kernel's: opaque storage of the size and
 * alignment the kernel build exports (include/generated/module_abi.h, checked by a host test).
 */
#include "../generated/module_abi.h"

struct rcu_head {
	_Alignas(SHEAF_RCU_HEAD_ALIGN) unsigned char __opaque[SHEAF_RCU_HEAD_SIZE];
};
_Static_assert(sizeof(struct rcu_head) == SHEAF_RCU_HEAD_SIZE, "module_abi.h");
typedef void (*rcu_callback_t)(struct rcu_head *head);

/* Runs func(head) in a kernel thread after a grace period; never allocates. */
void call_rcu(struct rcu_head *head, rcu_callback_t func);
/* Wait for a grace period / for every queued callback (sleep: not in a read-side section). */
void synchronize_rcu(void);
void rcu_barrier(void);
/* A read-side section: preemption off, nests; no sleeping inside. */
void rcu_read_lock(void);
void rcu_read_unlock(void);
/* Frees ptr (from kmalloc or a cache) after a grace period; head inside it, or NULL. */
void kvfree_call_rcu(struct rcu_head *head, void *ptr);
/* Waits until every object given to kvfree_call_rcu so far is freed. */
void kvfree_rcu_barrier(void);
#define kfree_rcu(ptr, rhf) kvfree_call_rcu(&(ptr)->rhf, (void *)(ptr))
#define kfree_rcu_mightsleep(ptr) kvfree_call_rcu(NULL, (void *)(ptr))

struct work_struct;
typedef void (*work_func_t)(struct work_struct *work);
/*
 * The kernel keeps an object per work item while it is in use (queued, running, or until
 * cancel_work_sync/flush_work): an item must be idle before its memory is freed or the
 * module unloads, as on Linux; then nothing of it is left in the kernel.
 */
struct work_struct {
	work_func_t func;
	unsigned long __reserved;
};
struct delayed_work {
	struct work_struct work;
};
_Static_assert(sizeof(struct work_struct) == SHEAF_WORK_STRUCT_SIZE, "module_abi.h");
_Static_assert(_Alignof(struct work_struct) == SHEAF_WORK_STRUCT_ALIGN, "module_abi.h");
_Static_assert(sizeof(struct delayed_work) == SHEAF_DELAYED_WORK_SIZE, "module_abi.h");
_Static_assert(_Alignof(struct delayed_work) == SHEAF_DELAYED_WORK_ALIGN, "module_abi.h");
#define __WORK_INITIALIZER(n, f) { .func = (f), .__reserved = 0 }
#define DECLARE_WORK(n, f) struct work_struct n = __WORK_INITIALIZER(n, f)
#define INIT_WORK(_work, _func)                   \
	do {                                      \
		(_work)->func = (_func);          \
		(_work)->__reserved = 0;          \
	} while (0)
#define INIT_DELAYED_WORK(_dwork, _func) INIT_WORK(&(_dwork)->work, (_func))
#define to_delayed_work(_work) ((struct delayed_work *)(_work))

/* A workqueue: system_wq, system_unbound_wq, or one from alloc_workqueue. */
struct workqueue_struct;
extern struct workqueue_struct *system_wq;
extern struct workqueue_struct *system_unbound_wq;
#define WQ_UNBOUND (1u << 1)
#define WQ_FREEZABLE (1u << 2)
#define WQ_MEM_RECLAIM (1u << 3)
#define WQ_HIGHPRI (1u << 4)
/* Queueing returns false if the item was pending already (or on bad input, with a message). */
bool schedule_work(struct work_struct *work);
bool queue_work(struct workqueue_struct *wq, struct work_struct *work);
bool queue_work_on(int cpu, struct workqueue_struct *wq, struct work_struct *work);
bool queue_delayed_work(struct workqueue_struct *wq, struct delayed_work *dwork,
			unsigned long delay);
bool flush_work(struct work_struct *work);
bool cancel_work_sync(struct work_struct *work);
bool cancel_delayed_work_sync(struct delayed_work *dwork);
/* A new workqueue named by fmt (printk's conversions); max_active 0: the default. */
struct workqueue_struct *alloc_workqueue(const char *fmt, unsigned int flags, int max_active, ...) __attribute__((format(printf, 1, 4)));
void destroy_workqueue(struct workqueue_struct *wq);

/* The deferred free queue: queue objects under a lock, free them after the unlock. */
struct kmem_free_q_head {
	_Alignas(SHEAF_KMEM_FREE_Q_HEAD_ALIGN) unsigned char __opaque[SHEAF_KMEM_FREE_Q_HEAD_SIZE];
};
_Static_assert(sizeof(struct kmem_free_q_head) == SHEAF_KMEM_FREE_Q_HEAD_SIZE, "module_abi.h");
/* An empty queue is all zero bytes. */
#define DEFINE_KMEM_FREE_Q(name) struct kmem_free_q_head name = { { 0 } }
void kmem_free_q_init(struct kmem_free_q_head *head);
/* s: the object's cache, NULL for kmalloc. 0, or -EINVAL if refused (the object stays yours). */
int kmem_free_q_add(struct kmem_free_q_head *head, struct kmem_cache *s, void *obj);
void kmem_free_up_q(struct kmem_free_q_head *head);

/* Time and CPUs. */
#define HZ 100
extern unsigned long volatile jiffies;
void msleep(unsigned int msecs);
unsigned int smp_processor_id(void);
unsigned int num_online_cpus(void);

/* ---- The module itself ---- */
struct module;
/* Resolved by the loader to this module's handle (Linux's __this_module). */
extern struct module __this_module;
#define THIS_MODULE (&__this_module)

/* Takes a reference on a live module (false once it is going away); module_put drops it. */
bool try_module_get(struct module *module);
void module_put(struct module *module);

/* ---- Static caches: the module's own struct kmem_cache, in its .data ---- */
/*
 * A static cache (the RFC's kmem_cache_setup) lives in the module's memory:
 *
 *	static DEFINE_KMEM_CACHE_STATIC(my_cache);
 *	struct kmem_cache *c = KMEM_CACHE_SETUP(&my_cache, "my_cache", 64, 0, 0, NULL);
 *
 * The cache pins the module (THIS_MODULE) from setup to its final release: the module's
 * cleanup_module destroys it (kmem_cache_destroy), and rmmod frees the module's memory only
 * after the destroy has finished, also when objects were still in kfree_rcu flight. Storage
 * outside the module's data, or set up twice, is refused (NULL). A static cache of a module
 * never merges other caches into it; it may itself use a compatible cache's slabs.
 */
#include "slab-static.h"

struct kmem_cache *kmem_cache_setup(struct kmem_cache_opaque *cache, const char *name,
				    unsigned int size, unsigned int align, slab_flags_t flags,
				    void (*ctor)(void *), struct module *owner);
struct kmem_cache *kmem_cache_setup_usercopy(struct kmem_cache_opaque *cache, const char *name,
					     unsigned int size, unsigned int align,
					     slab_flags_t flags, unsigned int useroffset,
					     unsigned int usersize, void (*ctor)(void *),
					     struct module *owner);
#define KMEM_CACHE_SETUP(cache, name, size, align, flags, ctor) \
	kmem_cache_setup((cache), (name), (size), (align), (flags), (ctor), THIS_MODULE)

/* ---- Entry points ---- */
#define __init __attribute__((section(".init.text")))
#define __exit __attribute__((section(".exit.text")))
#define __initdata __attribute__((section(".init.data")))

/* init_module and cleanup_module are aliases of the module's functions, as on Linux. */
#define module_init(initfn)                                             \
	static inline int (*__inittest(void))(void) { return initfn; } \
	int init_module(void) __attribute__((alias(#initfn)))
#define module_exit(exitfn)                                              \
	static inline void (*__exittest(void))(void) { return exitfn; } \
	void cleanup_module(void) __attribute__((alias(#exitfn)))

/* ---- .modinfo: NUL-terminated "key=value" strings ---- */
#define __SHEAF_CAT2(a, b) a##b
#define __SHEAF_CAT(a, b) __SHEAF_CAT2(a, b)
#define __MODULE_INFO(tag, info)                                                            \
	static const char __SHEAF_CAT(__modinfo_, __COUNTER__)[]                            \
		__attribute__((section(".modinfo"), used, aligned(1))) = #tag "=" info
#define MODULE_INFO(tag, info) __MODULE_INFO(tag, info)
#define MODULE_LICENSE(text) __MODULE_INFO(license, text)
#define MODULE_DESCRIPTION(text) __MODULE_INFO(description, text)
#define MODULE_AUTHOR(text) __MODULE_INFO(author, text)
#define MODULE_ALIAS(text) __MODULE_INFO(alias, text)
#define MODULE_VERSION(text) __MODULE_INFO(version, text)
#define MODULE_PARM_DESC(name, text) __MODULE_INFO(parm, #name ":" text)
/* The module's name, when the builder passes -DKBUILD_MODNAME='"name"' (else the file name). */
#ifdef KBUILD_MODNAME
__MODULE_INFO(name, KBUILD_MODNAME);
#endif

/* ---- Exports: NUL-terminated names in .sheaf.exports(_gpl) ---- */
#define __EXPORT_SYMBOL(sym, sec)                                                      \
	extern __typeof__(sym) sym;                                                    \
	static const char __export_name_##sym[]                                        \
		__attribute__((section(sec), used, aligned(1))) = #sym
#define EXPORT_SYMBOL(sym) __EXPORT_SYMBOL(sym, ".sheaf.exports")
#define EXPORT_SYMBOL_GPL(sym) __EXPORT_SYMBOL(sym, ".sheaf.exports_gpl")

/* ---- Parameters: 24-byte descriptors in .sheaf.params ---- */
struct sheaf_param {
	const char *name;	/* the parameter's name */
	void *arg;		/* the variable */
	unsigned int type;	/* SHEAF_PARAM_* */
	unsigned short perm;	/* sysfs mode bits (0444, 0644; 0: hidden) */
	unsigned short flags;	/* 0 */
};
_Static_assert(sizeof(struct sheaf_param) == 24, "the loader reads 24-byte descriptors");

#define SHEAF_PARAM_int 1
#define SHEAF_PARAM_uint 2
#define SHEAF_PARAM_long 3
#define SHEAF_PARAM_ulong 4
#define SHEAF_PARAM_bool 5
#define SHEAF_PARAM_charp 6
typedef int __sheaf_param_ctype_int;
typedef unsigned int __sheaf_param_ctype_uint;
typedef long __sheaf_param_ctype_long;
typedef unsigned long __sheaf_param_ctype_ulong;
typedef bool __sheaf_param_ctype_bool;
typedef char *__sheaf_param_ctype_charp;

/*
 * module_param(name, type, perm): `name` is a variable of `type` (int, uint, long, ulong,
 * bool, charp) that `insmod m.ko name=value` sets before init_module runs.
 */
#define module_param(name, type, perm)                                                     \
	static inline __sheaf_param_ctype_##type *__param_check_##name(void)               \
	{                                                                                  \
		return &(name);                                                            \
	}                                                                                  \
	_Static_assert(((perm) & 0002) == 0, "parameters are never world-writable");       \
	static const char __param_str_##name[] = #name;                                    \
	static const struct sheaf_param __param_##name                                     \
		__attribute__((section(".sheaf.params"), used, aligned(8))) = {             \
			__param_str_##name, &(name), SHEAF_PARAM_##type, (perm), 0         \
		};                                                                         \
	__MODULE_INFO(parmtype, #name ":" #type)

#endif /* _SHEAF_MODULE_H */
