#!/bin/sh
# Instructions per fast-path alloc+free pair of Sheaf's slab allocator, counted with callgrind.
#
#   kernel/crates/slab/examples/count_fastpath.sh [MODE] [N1] [N2]
#   MODE: cache (default) | cache-inline | cache-batch | cache-nohardened | kmalloc | kmalloc-nohardened |
#         kmalloc-const | static |
#         dynamic | alias | system | mimalloc | all
#
# Builds examples/count_fastpath.rs in release, runs it under
#   valgrind --tool=callgrind --callgrind-out-file=DIR/cg.%p <binary> N MODE
# for N = N1 and N = N2 pairs (default 1,000,000 and 2,000,000) and prints
#   (Ir(N2) - Ir(N1)) / (N2 - N1)
# i.e. the instructions executed per pair, setup and exit cancelling out.
#
# Modes:
# * cache: alloc + free of a kmem_cache_create'd 64-byte cache through a non-inlined pair
#   function called in a loop (the figure the project target is about). It includes the loop
#   and the call, frame and return of the pair function: about 10 instructions.
# * cache-inline: the same alloc + free inlined into one loop: the allocator's own
#   instructions plus the loop's decrement and branch.
# * cache-batch: rounds of 200 allocations, then their 200 frees (N a multiple of 200), so that
#   main empties and fills every 60 objects: the figure includes the sheaf exchanges
#   (alloc_refill, free_flush, the barn) amortised over each sheaf. 58.26 on December 8; the
#   sheaves lab's student tree, whose stubs send every such allocation and free to the slabs,
#   443.65. The lab grades it (bound 80, tools/lab/src/labs.rs).
# * cache-nohardened, kmalloc-nohardened: `cache` and `kmalloc` with `slab_nohardened` (the
#   default free checks off: no page-owner lookup in kmem_cache_free, no boundary test).
# * kmalloc: kmalloc(size) + kfree, like `cache`, the size (64) known only at run time (it goes
#   through black_box once, before the loop): the size-class table lookup is counted.
# * kmalloc-const: kmalloc(64) + kfree with the size a constant, as most kernel callers write
#   it: the class is chosen at compile time (as Linux's kmalloc does for a constant size), like
#   the constant layout of the system and mimalloc modes.
# * static, dynamic: the static-cache RFC's comparison: a pair through a static cache
#   (kmem_cache_setup; its address a constant) against one through a dynamic cache whose
#   address is loaded from a global variable first.
# * alias: `cache` through a merged cache (an alias of kmalloc-64, which has no sheaves of
#   its own and forwards to its primary).
# * system, mimalloc: glibc malloc and mimalloc through GlobalAlloc, same loop as `cache`,
#   for scale.
# * all: each of the above.
#
# Project target: <= 20 per pair for the fast path itself (for scale, malloc(64)+free measured
# through calls: jemalloc 78, mimalloc 116, glibc 139). Measured here (December 1, with the
# double-free test and the fast-path statistics): cache-inline 24, cache 34 (the same 24 plus
# the call, frame and loop of the pair function), kmalloc 51 (was 90), kmalloc-const 45,
# mimalloc 80, system 143. With the default free checks (issue #18; December 7): cache 52
# (cache-nohardened 36), cache-inline 42, kmalloc 58 (kmalloc-nohardened 53), kmalloc-const 52,
# static and dynamic 52, alias 110 (its free looks the page up twice: as the alias, whose fast
# path then fails, and as the primary).
# Needs valgrind (apt-get install -y valgrind) and awk. Can be run from any directory.
set -eu
mode=${1:-cache}
if [ "$mode" = all ]; then
    for m in cache cache-nohardened cache-inline cache-batch kmalloc kmalloc-nohardened kmalloc-const static dynamic alias system mimalloc; do "$0" "$m" ${2:+"$2"} ${3:+"$3"}; done
    exit
fi
n1=${2:-1000000}
n2=${3:-2000000}
cd "$(dirname "$0")"
cargo build -q -p sheaf-slab --release --example count_fastpath
target=$(cargo metadata --format-version 1 --no-deps |
    sed 's/.*"target_directory":"\([^"]*\)".*/\1/')
bin=$target/release/examples/count_fastpath
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
ir() {
    rm -f "$dir"/cg.*
    valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" "$bin" "$1" "$mode" 2>/dev/null
    # The "summary:" line of the output file holds the total instruction count (Ir).
    sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$dir"/cg.*
}
ir1=$(ir "$n1")
ir2=$(ir "$n2")
echo "mode $mode: Ir($n1) = $ir1, Ir($n2) = $ir2"
awk -v a="$ir1" -v b="$ir2" -v n1="$n1" -v n2="$n2" \
    'BEGIN { printf "instructions per alloc+free pair: %.2f\n", (b - a) / (n2 - n1) }'
