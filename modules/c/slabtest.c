// SPDX-License-Identifier: GPL-2.0
/*
 * slabtest: slub_kunit-style cases of the slab exports, run by init_module. Every slab
 * function of <sheaf/module.h> is called at least once; each case prints "slabtest: ok CASE"
 * or "slabtest: FAIL CASE ...", and init_module returns 0 only if all passed (else -EINVAL).
 * Three cases corrupt memory on purpose (a red zone, a poisoned free object, a double free):
 * each must be reported (slab_errors() grows) and the kernel must go on.
 *
 * Byte loops go through volatile pointers: gcc must neither turn them into memset/memcpy
 * calls (the kernel exports none) nor drop the deliberate out-of-bounds and after-free
 * writes.
 */
#include <sheaf/module.h>

#define SIZE_MAX ((size_t)-1)
#define ZERO_SIZE_PTR ((void *)16)

static int failures;

#define FAIL(name, fmt, ...)                                                        \
	do {                                                                        \
		pr_err("slabtest: FAIL " name " " fmt "\n", ##__VA_ARGS__);         \
		failures++;                                                         \
	} while (0)
#define CHECK(name, cond)                                                           \
	do {                                                                        \
		if (!(cond)) {                                                      \
			FAIL(name, "(line %d: %s)", __LINE__, #cond);               \
			return;                                                     \
		}                                                                   \
	} while (0)
#define OK(name) pr_info("slabtest: ok " name "\n")

static void fill(void *p, unsigned char v, size_t n)
{
	volatile unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		b[i] = v;
}

/* Whether bytes [from, to) of p all hold v. */
static bool all(const void *p, unsigned char v, size_t from, size_t to)
{
	const volatile unsigned char *b = p;

	for (size_t i = from; i < to; i++)
		if (b[i] != v)
			return false;
	return true;
}

/* Whether p[i] == (unsigned char)(i * 7 + 1) for i < n. */
static void pattern(void *p, size_t n)
{
	volatile unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)(i * 7 + 1);
}

static bool has_pattern(const void *p, size_t n)
{
	const volatile unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != (unsigned char)(i * 7 + 1))
			return false;
	return true;
}

static void test_kmalloc(void)
{
	void *p = kmalloc(100, GFP_KERNEL);

	CHECK("kmalloc", p);
	CHECK("kmalloc", ksize(p) >= 100);
	pattern(p, 100);
	CHECK("kmalloc", has_pattern(p, 100));
	kfree(p);
	/* kmalloc(0) is ZERO_SIZE_PTR, which kfree takes; kfree(NULL) does nothing. */
	p = kmalloc(0, GFP_KERNEL);
	CHECK("kmalloc", p == ZERO_SIZE_PTR);
	CHECK("kmalloc", ksize(p) == 0);
	kfree(p);
	kfree(NULL);
	/* A large allocation (whole pages). */
	p = kmalloc(20000, GFP_KERNEL);
	CHECK("kmalloc", p && ksize(p) >= 20000);
	pattern(p, 20000);
	CHECK("kmalloc", has_pattern(p, 20000));
	kfree(p);
	OK("kmalloc");
}

static void test_kzalloc(void)
{
	/* Dirty an object of the size class first, so that a zero is kzalloc's doing. */
	void *p = kmalloc(64, GFP_KERNEL);

	CHECK("kzalloc", p);
	fill(p, 0xff, 64);
	kfree(p);
	p = kzalloc(64, GFP_KERNEL);
	CHECK("kzalloc", p && all(p, 0, 0, 64));
	kfree(p);
	p = kmalloc(64, GFP_KERNEL | __GFP_ZERO);
	CHECK("kzalloc", p && all(p, 0, 0, 64));
	kfree(p);
	OK("kzalloc");
}

static void test_kcalloc(void)
{
	int *a = kcalloc(10, sizeof(int), GFP_KERNEL);

	CHECK("kcalloc", a && all(a, 0, 0, 10 * sizeof(int)));
	CHECK("kcalloc", ksize(a) >= 10 * sizeof(int));
	kfree(a);
	CHECK("kcalloc", kcalloc(SIZE_MAX / 2, 4, GFP_KERNEL) == NULL);
	CHECK("kcalloc", kcalloc(4, SIZE_MAX / 2, GFP_KERNEL) == NULL);
	OK("kcalloc");
}

static void test_kmalloc_array(void)
{
	long *a = kmalloc_array(16, sizeof(long), GFP_KERNEL);

	CHECK("kmalloc_array", a && ksize(a) >= 16 * sizeof(long));
	for (int i = 0; i < 16; i++)
		((volatile long *)a)[i] = i;
	CHECK("kmalloc_array", ((volatile long *)a)[15] == 15);
	kfree(a);
	a = kmalloc_array(16, sizeof(long), GFP_KERNEL | __GFP_ZERO);
	CHECK("kmalloc_array", a && all(a, 0, 0, 16 * sizeof(long)));
	kfree(a);
	/* The product overflows: NULL, not a short buffer. */
	CHECK("kmalloc_array", kmalloc_array(SIZE_MAX / 8 + 2, 8, GFP_KERNEL) == NULL);
	CHECK("kmalloc_array", kmalloc_array(1ul << 33, 1ul << 33, GFP_KERNEL) == NULL);
	OK("kmalloc_array");
}

static void test_krealloc(void)
{
	/* Growing keeps the content. */
	char *p = kmalloc(16, GFP_KERNEL);
	char *q;

	CHECK("krealloc", p);
	pattern(p, 16);
	q = krealloc(p, 300, GFP_KERNEL);
	CHECK("krealloc", q && ksize(q) >= 300 && has_pattern(q, 16));
	/* Shrinking within the slot keeps the pointer and the content. */
	p = krealloc(q, 200, GFP_KERNEL);
	CHECK("krealloc", p == q && has_pattern(p, 16));
	kfree(p);
	/* krealloc(NULL) is kmalloc. */
	p = krealloc(NULL, 40, GFP_KERNEL);
	CHECK("krealloc", p && ksize(p) >= 40);
	/* With __GFP_ZERO (on every allocation of the object) the grown part is zero. */
	kfree(p);
	p = kzalloc(24, GFP_KERNEL);
	CHECK("krealloc", p);
	pattern(p, 24);
	q = krealloc(p, 600, GFP_KERNEL | __GFP_ZERO);
	CHECK("krealloc", q && has_pattern(q, 24) && all(q, 0, 24, 600));
	/* A size nothing serves: NULL, the old object untouched. */
	CHECK("krealloc", krealloc(q, SIZE_MAX, GFP_KERNEL) == NULL);
	CHECK("krealloc", has_pattern(q, 24));
	/* A new size of 0 frees and gives ZERO_SIZE_PTR. */
	p = krealloc(q, 0, GFP_KERNEL);
	CHECK("krealloc", p == ZERO_SIZE_PTR);
	kfree(p);
	OK("krealloc");
}

static void test_ksize(void)
{
	static const size_t sizes[] = { 1, 8, 13, 64, 100, 192, 1000, 4096, 8192, 9000 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		void *p = kmalloc(sizes[i], GFP_KERNEL);
		size_t n;

		CHECK("ksize", p);
		n = ksize(p);
		if (n < sizes[i]) {
			kfree(p);
			FAIL("ksize", "ksize(kmalloc(%zu)) = %zu", sizes[i], n);
			return;
		}
		/* All of it is usable. */
		fill(p, 0x5a, n);
		kfree(p);
	}
	CHECK("ksize", ksize(NULL) == 0);
	OK("ksize");
}

/* A cache with SLAB_RED_ZONE: a write one byte past an object is reported when it is freed. */
static void test_red_zone(void)
{
	struct kmem_cache *c = kmem_cache_create("slabtest_redzone", 40, 0, SLAB_RED_ZONE, NULL);
	unsigned long before;
	char *o;

	CHECK("red_zone", c);
	o = kmem_cache_alloc(c, GFP_KERNEL);
	if (!o) {
		kmem_cache_destroy(c);
		FAIL("red_zone", "no object");
		return;
	}
	fill(o, 1, 40);
	before = slab_errors();
	((volatile char *)o)[40] = 0x42;
	kmem_cache_free(c, o);
	if (slab_errors() <= before) {
		FAIL("red_zone", "the overwritten red zone was not reported");
		kmem_cache_destroy(c);
		return;
	}
	/* The cache goes on working. */
	o = kmem_cache_alloc(c, GFP_KERNEL);
	CHECK("red_zone", o);
	kmem_cache_free(c, o);
	/* The corrupted object is isolated, never freed: destroy reports and keeps the cache. */
	kmem_cache_destroy(c);
	OK("red_zone");
}

/* A cache with SLAB_POISON: a write after free is found by the next allocation of the object, or
 * when its slab is checked (shrink). */
static void test_poison(void)
{
	struct kmem_cache *c = kmem_cache_create("slabtest_poison", 64, 0, SLAB_POISON, NULL);
	unsigned long before;
	char *o, *o2;

	CHECK("poison", c);
	o = kmem_cache_alloc(c, GFP_KERNEL);
	if (!o) {
		kmem_cache_destroy(c);
		FAIL("poison", "no object");
		return;
	}
	kmem_cache_free(c, o);
	before = slab_errors();
	((volatile char *)o)[10] = 0x42; /* use after free */
	o2 = kmem_cache_alloc(c, GFP_KERNEL);
	if (o2)
		kmem_cache_free(c, o2);
	kmem_cache_shrink(c);
	if (slab_errors() <= before) {
		FAIL("poison", "the write after free was not reported");
		kmem_cache_destroy(c);
		return;
	}
	kmem_cache_destroy(c);
	OK("poison");
}

/* A debug cache: the second free of an object is reported and dropped. */
static void test_double_free(void)
{
	struct kmem_cache *c =
		kmem_cache_create("slabtest_dfree", 48, 0, SLAB_RED_ZONE | SLAB_POISON, NULL);
	unsigned long before;
	void *o;

	CHECK("double_free", c);
	o = kmem_cache_alloc(c, GFP_KERNEL);
	if (!o) {
		kmem_cache_destroy(c);
		FAIL("double_free", "no object");
		return;
	}
	kmem_cache_free(c, o);
	before = slab_errors();
	kmem_cache_free(c, o);
	if (slab_errors() <= before) {
		FAIL("double_free", "the double free was not reported");
		kmem_cache_destroy(c);
		return;
	}
	/* The object is still free, once: allocated again, then freed, it is fine. */
	o = kmem_cache_alloc(c, GFP_KERNEL);
	CHECK("double_free", o);
	kmem_cache_free(c, o);
	kmem_cache_destroy(c);
	OK("double_free");
}

static void test_bulk(void)
{
	struct kmem_cache *c = kmem_cache_create("slabtest_bulk", 72, 0, 0, NULL);
	void *objs[16];
	int n;

	CHECK("bulk", c);
	n = kmem_cache_alloc_bulk(c, GFP_KERNEL, 16, objs);
	if (n != 16) {
		FAIL("bulk", "kmem_cache_alloc_bulk gave %d", n);
		kmem_cache_destroy(c);
		return;
	}
	for (int i = 0; i < 16; i++) {
		bool dup = false;

		for (int j = 0; j < i; j++)
			dup |= objs[j] == objs[i];
		if (!objs[i] || dup) {
			FAIL("bulk", "object %d is %p", i, objs[i]);
			kmem_cache_free_bulk(c, 16, objs);
			kmem_cache_destroy(c);
			return;
		}
		fill(objs[i], (unsigned char)i, 72);
	}
	for (int i = 0; i < 16; i++)
		if (!all(objs[i], (unsigned char)i, 0, 72))
			FAIL("bulk", "object %d overlaps another", i);
	kmem_cache_free_bulk(c, 16, objs);
	/* With __GFP_ZERO, zeroed. */
	n = kmem_cache_alloc_bulk(c, GFP_KERNEL | __GFP_ZERO, 16, objs);
	CHECK("bulk", n == 16);
	for (int i = 0; i < 16; i++)
		if (!all(objs[i], 0, 0, 72))
			FAIL("bulk", "object %d not zeroed", i);
	kmem_cache_free_bulk(c, 16, objs);
	/* A NULL cache frees kmalloc'ed objects (Linux's kfree_bulk). */
	for (int i = 0; i < 16; i++)
		objs[i] = kmalloc(24 * (i + 1), GFP_KERNEL);
	kmem_cache_free_bulk(NULL, 16, objs);
	kmem_cache_destroy(c);
	OK("bulk");
}

static void test_zalloc(void)
{
	/* A dirty object freed first: a zero is kmem_cache_zalloc's doing. */
	struct kmem_cache *c = kmem_cache_create("slabtest_zalloc", 56, 0, 0, NULL);
	void *o;

	CHECK("zalloc", c);
	o = kmem_cache_alloc(c, GFP_KERNEL);
	if (!o) {
		FAIL("zalloc", "no object");
		kmem_cache_destroy(c);
		return;
	}
	fill(o, 0xff, 56);
	kmem_cache_free(c, o);
	o = kmem_cache_zalloc(c, GFP_KERNEL);
	if (!o || !all(o, 0, 0, 56)) {
		FAIL("zalloc", "not zeroed");
		kmem_cache_free(c, o);
		kmem_cache_destroy(c);
		return;
	}
	kmem_cache_free(c, o);
	kmem_cache_destroy(c);
	OK("zalloc");
}

static void ctor_mark(void *p)
{
	fill(p, 0x77, 32);
}

static void test_ctor(void)
{
	struct kmem_cache *c = kmem_cache_create("slabtest_ctor", 32, 0, 0, ctor_mark);
	void *o;

	CHECK("ctor", c);
	o = kmem_cache_alloc(c, GFP_KERNEL);
	if (!o || !all(o, 0x77, 0, 32))
		FAIL("ctor", "the constructor's bytes are not there");
	else
		OK("ctor");
	kmem_cache_free(c, o);
	kmem_cache_destroy(c);
}

static void test_size_and_shrink(void)
{
	struct kmem_cache *c = kmem_cache_create("slabtest_size", 40, 8, SLAB_ACCOUNT, NULL);
	void *objs[64];
	int r;

	CHECK("size", c);
	CHECK("size", kmem_cache_size(c) == 40);
	OK("size");
	for (int i = 0; i < 64; i++)
		objs[i] = kmem_cache_alloc(c, GFP_KERNEL);
	for (int i = 0; i < 64; i++)
		if (!objs[i]) {
			FAIL("shrink", "no object %d", i);
			goto out;
		}
	/* Objects in use keep a slab. */
	r = kmem_cache_shrink(c);
	if (r != 1) {
		FAIL("shrink", "with objects: %d", r);
		goto out;
	}
	for (int i = 0; i < 64; i++) {
		kmem_cache_free(c, objs[i]);
		objs[i] = NULL;
	}
	/* None in use: every slab is given back (the cache may be merged with another,
	 * whose objects keep slabs: 1 is right then). */
	r = kmem_cache_shrink(c);
	if (r != 0 && r != 1) {
		FAIL("shrink", "without objects: %d", r);
		goto out;
	}
	pr_info("slabtest: shrink of an unused cache: %d\n", r);
	OK("shrink");
out:
	for (int i = 0; i < 64; i++)
		kmem_cache_free(c, objs[i]);
	kmem_cache_destroy(c);
}

static void test_usercopy(void)
{
	struct kmem_cache *c = kmem_cache_create_usercopy("slabtest_usercopy", 64, 0,
							   SLAB_HWCACHE_ALIGN, 8, 16, NULL);
	void *o;

	CHECK("usercopy", c);
	CHECK("usercopy", kmem_cache_size(c) == 64);
	o = kmem_cache_alloc(c, GFP_KERNEL);
	if (!o)
		FAIL("usercopy", "no object");
	kmem_cache_free(c, o);
	kmem_cache_destroy(c);
	/* A region outside the object is refused. */
	c = kmem_cache_create_usercopy("slabtest_usercopy_bad", 64, 0, 0, 60, 16, NULL);
	if (c) {
		FAIL("usercopy", "a region past the object was accepted");
		kmem_cache_destroy(c);
		return;
	}
	OK("usercopy");
}

static void test_bad_args(void)
{
	struct kmem_cache *c = kmem_cache_create("slabtest_bad", 32, 0, 0, NULL);
	long stack_word = 0;
	struct kmem_cache *bogus = (struct kmem_cache *)&stack_word;
	void *o, *objs[2] = { NULL, NULL };

	CHECK("bad_args", c);
	/* Not a cache: NULL, 0 or -EINVAL, nothing done. */
	CHECK("bad_args", kmem_cache_alloc(NULL, GFP_KERNEL) == NULL);
	CHECK("bad_args", kmem_cache_zalloc(bogus, GFP_KERNEL) == NULL);
	CHECK("bad_args", kmem_cache_size(NULL) == 0);
	CHECK("bad_args", kmem_cache_size(bogus) == 0);
	CHECK("bad_args", kmem_cache_shrink(bogus) == -EINVAL);
	CHECK("bad_args", kmem_cache_alloc_bulk(bogus, GFP_KERNEL, 2, objs) == 0);
	CHECK("bad_args", kmem_cache_alloc_bulk(c, GFP_KERNEL, 0, objs) == 0);
	CHECK("bad_args", objs[0] == NULL && objs[1] == NULL);
	o = kmem_cache_alloc(c, GFP_KERNEL);
	CHECK("bad_args", o);
	objs[0] = o;
	kmem_cache_free_bulk(bogus, 1, objs); /* refused: o stays allocated */
	kmem_cache_free(bogus, o);           /* refused */
	kmem_cache_free(NULL, o);            /* refused */
	kmem_cache_destroy(bogus);           /* refused */
	((volatile char *)o)[0] = 1;         /* still ours */
	kmem_cache_free(c, o);
	kmem_cache_free(c, NULL);
	/* Not a kmalloc'ed object: reported, nothing freed. */
	kfree(&stack_word);
	CHECK("bad_args", ksize(&stack_word) == 0);
	CHECK("bad_args", krealloc(&stack_word, 64, GFP_KERNEL) == NULL);
	/* Sizes nothing serves. */
	CHECK("bad_args", kmalloc(SIZE_MAX, GFP_KERNEL) == NULL);
	CHECK("bad_args", kzalloc(SIZE_MAX - 4095, GFP_KERNEL) == NULL);
	CHECK("bad_args", kmalloc(1ul << 40, GFP_KERNEL | __GFP_NOWARN) == NULL);
	/* Unknown gfp bits are ignored. */
	o = kmalloc(32, GFP_KERNEL | 0x80000000u);
	CHECK("bad_args", o);
	kfree(o);
	/* Unknown slab flags, or the allocator's own, refuse the creation. */
	CHECK("bad_args", kmem_cache_create("slabtest_flags", 32, 0, 1u << 20, NULL) == NULL);
	CHECK("bad_args", kmem_cache_create("slabtest_flags", 32, 0, 1u << 11, NULL) == NULL);
	CHECK("bad_args", kmem_cache_create("slabtest_flags", 32, 0, 1u << 31, NULL) == NULL);
	/* No name, a name that is not UTF-8, a bad alignment. */
	CHECK("bad_args", kmem_cache_create(NULL, 32, 0, 0, NULL) == NULL);
	CHECK("bad_args", kmem_cache_create("slabtest_\xff", 32, 0, 0, NULL) == NULL);
	CHECK("bad_args", kmem_cache_create("slabtest_align", 32, 3, 0, NULL) == NULL);
	kmem_cache_destroy(NULL);
	kmem_cache_destroy(c);
	/* A destroyed cache is no cache any more. */
	CHECK("bad_args", kmem_cache_alloc(c, GFP_KERNEL) == NULL);
	OK("bad_args");
}

static int __init slabtest_init(void)
{
	unsigned long start = slab_errors();

	test_kmalloc();
	test_kzalloc();
	test_kcalloc();
	test_kmalloc_array();
	test_krealloc();
	test_ksize();
	test_red_zone();
	test_poison();
	test_double_free();
	test_bulk();
	test_zalloc();
	test_ctor();
	test_size_and_shrink();
	test_usercopy();
	test_bad_args();
	pr_info("slabtest: %d failures, %lu slab errors reported\n", failures,
		slab_errors() - start);
	return failures ? -EINVAL : 0;
}

static void __exit slabtest_exit(void)
{
	pr_info("slabtest: unloaded\n");
}

module_init(slabtest_init);
module_exit(slabtest_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("slub_kunit-style tests of the slab exports");
