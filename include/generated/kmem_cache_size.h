/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Generated from the kernel build by `cargo run -- --gen-headers`: do not edit.
 * The size and alignment of the kernel's struct kmem_cache (a Rust type), so that C
 * code can declare static caches (struct kmem_cache_opaque, sheaf/slab-static.h).
 */
#ifndef _GENERATED_KMEM_CACHE_SIZE_H
#define _GENERATED_KMEM_CACHE_SIZE_H

#define KMEM_CACHE_SIZE 5504
#define KMEM_CACHE_ALIGN 64

#endif /* _GENERATED_KMEM_CACHE_SIZE_H */
