/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Static slab caches for C code (Linux's <linux/slab-static.h>, from the RFC "static
 * kmem_cache instances for core caches").
 *
 * struct kmem_cache is a Rust type whose fields C cannot see. struct kmem_cache_opaque has
 * exactly its size and alignment (include/generated/kmem_cache_size.h, generated from the
 * kernel build), so C code can give a cache static storage and hand it to kmem_cache_setup(),
 * which builds the cache in place: no allocation, and no pointer to load on every
 * allocation.
 *
 *     static DEFINE_KMEM_CACHE_STATIC(foo_cache);
 *     kmem_cache_setup(&foo_cache, "foo", sizeof(struct foo), 0, 0, NULL);
 *     struct foo *f = kmem_cache_alloc(to_kmem_cache(&foo_cache), GFP_KERNEL);
 */
#ifndef _SHEAF_SLAB_STATIC_H
#define _SHEAF_SLAB_STATIC_H

#include "../generated/kmem_cache_size.h"

struct kmem_cache;

/* Same size and alignment as struct kmem_cache. */
struct kmem_cache_opaque {
	unsigned char opaque[KMEM_CACHE_SIZE];
} __attribute__((aligned(KMEM_CACHE_ALIGN)));

/*
 * A static cache is placed in .data on purpose: an all-zero static would go to .bss, and
 * Sheaf checks (with the linker's section symbols) that static caches sit in .data.
 */
#define DEFINE_KMEM_CACHE_STATIC(name) \
	struct kmem_cache_opaque name __attribute__((section(".data")))

static inline struct kmem_cache *to_kmem_cache(struct kmem_cache_opaque *p)
{
	return (struct kmem_cache *)p;
}

#endif /* _SHEAF_SLAB_STATIC_H */
