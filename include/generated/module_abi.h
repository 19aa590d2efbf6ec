/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Generated from the kernel build by `cargo run -- --gen-headers`: do not edit.
 * The size and alignment of each structure a C module embeds whose layout is the
 * kernel's (Rust types; sheaf/module.h sizes the structures with them).
 */
#ifndef _GENERATED_MODULE_ABI_H
#define _GENERATED_MODULE_ABI_H

/* struct rcu_head */
#define SHEAF_RCU_HEAD_SIZE 24
#define SHEAF_RCU_HEAD_ALIGN 8
/* struct work_struct */
#define SHEAF_WORK_STRUCT_SIZE 16
#define SHEAF_WORK_STRUCT_ALIGN 8
/* struct delayed_work */
#define SHEAF_DELAYED_WORK_SIZE 16
#define SHEAF_DELAYED_WORK_ALIGN 8
/* struct kmem_free_q_head */
#define SHEAF_KMEM_FREE_Q_HEAD_SIZE 24
#define SHEAF_KMEM_FREE_Q_HEAD_ALIGN 8

#endif /* _GENERATED_MODULE_ABI_H */
