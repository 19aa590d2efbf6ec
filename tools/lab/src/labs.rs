//! The labs: one row each. Adding a lab is adding a row here, marking its solution regions
//! (`// LAB(name) BEGIN` ... `// LAB(name) END`) and writing its handout in `docs/labs/`.

/// A graded item of a lab, what it is worth and how it is judged.
#[derive(Debug, Clone, Copy)]
pub struct Graded {
    /// For an on-target test ([`Judge::Kernel`]), its full name as
    /// `cargo test --test kernel -- --list` shows it; for the others, the name the report
    /// prints.
    pub name: &'static str,
    /// Points for passing it.
    pub points: u32,
    /// How it is judged.
    pub judge: Judge,
}

/// How a [`Graded`] item is judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Judge {
    /// An on-target test (`#[ktest]`), run in QEMU with the lab's other on-target tests
    /// (`cargo test --test kernel -- FILTER`); its outcome is what libtest prints for it.
    Kernel,
    /// Host tests: passes if `cargo ARGS` succeeds in the tree (built first with `--no-run`,
    /// then given [`Lab::time_limit_secs`] to run).
    Host {
        /// The arguments after `cargo`, e.g. `["test", "-p", "sheaf-rcu", "--test", "model"]`.
        args: &'static [&'static str],
        /// A loom model check: built with `RUSTFLAGS="--cfg loom"` in a target directory of
        /// its own (`loom/` inside the tree's), as `.ci/run` does.
        loom: bool,
    },
    /// The slab fast path's cost, counted with callgrind by
    /// `kernel/crates/slab/examples/count_fastpath.sh MODE` (needs valgrind): passes if one
    /// allocation and free take at most `at_most` instructions.
    Instructions {
        /// The script's mode (`cache`: a `kmem_cache_alloc` + `kmem_cache_free` pair).
        mode: &'static str,
        /// The bound, in instructions per alloc+free pair.
        at_most: f64,
    },
}

/// An on-target test worth `points` ([`Judge::Kernel`]): keeps the table short.
const fn on_target(name: &'static str, points: u32) -> Graded {
    Graded {
        name,
        points,
        judge: Judge::Kernel,
    }
}

/// One lab.
#[derive(Debug, Clone, Copy)]
pub struct Lab {
    /// The name used on the command line and in the region markers: `LAB(01)`.
    pub name: &'static str,
    /// A one-line title.
    pub title: &'static str,
    /// What the lab covers, for `cargo lab list`.
    pub covers: &'static str,
    /// The handout, relative to the repository root.
    pub handout: &'static str,
    /// The files the student edits (the solution regions are in these).
    pub student_files: &'static [&'static str],
    /// The files holding the graded tests: the grader puts its pristine copies of these in
    /// the graded tree, so a student's edits to them change nothing.
    pub test_files: &'static [&'static str],
    /// The substring of the test names that selects the lab's tests
    /// (`cargo test --test kernel -- FILTER`).
    pub filter: &'static str,
    /// The graded tests.
    pub tests: &'static [Graded],
    /// The on-target tests, outside the lab's own, that a fresh student tree is expected to
    /// fail (the stubs refuse what they depend on: every module load, for the module loader's
    /// lab): substrings of their names, each passed to `cargo test --test kernel` as a
    /// `--skip` when the student tree's other tests are run (`tests/grade.rs`).
    pub breaks: &'static [&'static str],
    /// Time limit per test, in seconds: the on-target runner's watchdog
    /// (`SHEAF_TEST_TIMEOUT`), and the whole run's limit is this times (tests + 2).
    pub time_limit_secs: u64,
}

impl Lab {
    /// The lab's full score.
    pub fn max_points(&self) -> u32 {
        self.tests.iter().map(|t| t.points).sum()
    }
}

/// The files of the on-target test runner: restored from the grader's tree before every
/// grading, as the labs' test files are, so a tree cannot change how its tests are judged.
pub const RUNNER_FILES: &[&str] = &[
    "tests/kernel.rs",
    "boot/src/ktest/mod.rs",
    "boot/src/ktest/boot_log.rs",
    "boot/src/ktest/protocol.rs",
    "boot/src/ktest/runner.rs",
    "kernel/core/src/ktest.rs",
    "kernel/crates/ktest-macros/src/lib.rs",
];

/// Every lab, in course order.
pub const LABS: &[Lab] = &[
    Lab {
        name: "01",
        title: "watching the slab allocator",
        covers: "slabs, objects per slab, sheaves and the barn, min_partial, statistics; \
             graded through the student's predictions of numbers the kernel then measures",
        handout: "docs/labs/01-watching-the-slab-allocator.md",
        student_files: &["kernel/core/src/selftest/lab01/predictions.rs"],
        test_files: &["kernel/core/src/selftest/lab01.rs"],
        filter: "selftest::lab01::",
        tests: &[
            on_target("selftest::lab01::objects_per_slab", 2),
            on_target("selftest::lab01::slabs_for_1000_objects", 2),
            on_target("selftest::lab01::sheaf_capacity_of_a_300_byte_cache", 2),
            on_target("selftest::lab01::objects_cached_after_freeing_all", 2),
            on_target("selftest::lab01::empty_slabs_kept_after_freeing_all", 2),
        ],
        breaks: &[],
        time_limit_secs: 60,
    },
    Lab {
        name: "sheaves",
        title: "sheaves, the per-CPU layer",
        covers: "SLUB with sheaves: what a CPU does when its main sheaf is empty or full: swap \
             with the spare, trade at the node's barn, refill and flush whole sheaves; graded \
             by what `sheaves CACHE` and the statistics show after each move, the slab \
             crate's host tests and loom model, and the fast path's instruction count",
        handout: "docs/labs/02-sheaves.md",
        student_files: &["kernel/crates/slab/src/cache/sheaves.rs"],
        test_files: &[
            "kernel/core/src/selftest/lab_sheaves.rs",
            "kernel/crates/slab/tests/basic.rs",
            "kernel/crates/slab/tests/threads.rs",
            "kernel/crates/slab/tests/common/mod.rs",
            "kernel/crates/slab/src/loom_tests.rs",
            "kernel/crates/slab/examples/count_fastpath.rs",
            "kernel/crates/slab/examples/count_fastpath.sh",
        ],
        filter: "selftest::lab_sheaves::",
        tests: &[
            on_target(
                "selftest::lab_sheaves::the_first_allocation_fills_main_and_the_next_ones_pop_it",
                2,
            ),
            on_target("selftest::lab_sheaves::a_full_main_becomes_the_spare", 2),
            on_target(
                "selftest::lab_sheaves::an_empty_main_swaps_with_a_non_empty_spare",
                2,
            ),
            on_target(
                "selftest::lab_sheaves::full_main_and_spare_trade_main_at_the_barn",
                2,
            ),
            on_target(
                "selftest::lab_sheaves::empty_main_and_spare_take_a_full_sheaf_from_the_barn",
                2,
            ),
            Graded {
                name: "host: the exchanges and the barn's bound (kernel/crates/slab/tests/basic.rs)",
                points: 2,
                judge: Judge::Host {
                    args: &["test", "-p", "sheaf-slab", "--test", "basic"],
                    loom: false,
                },
            },
            Graded {
                name: "host: four threads as CPUs, objects freed across them (tests/threads.rs)",
                points: 2,
                judge: Judge::Host {
                    args: &["test", "-p", "sheaf-slab", "--test", "threads"],
                    loom: false,
                },
            },
            Graded {
                name: "loom: every interleaving of two CPUs trading sheaves at the barn",
                points: 2,
                judge: Judge::Host {
                    args: &[
                        "test",
                        "-p",
                        "sheaf-slab",
                        "--release",
                        "--lib",
                        "loom_cache_sheaf_barn_exchange",
                    ],
                    loom: true,
                },
            },
            Graded {
                name: "fast path: at most 80 instructions per allocation and free, in rounds of 200",
                points: 2,
                judge: Judge::Instructions {
                    mode: "cache-batch",
                    at_most: 80.0,
                },
            },
        ],
        // Without the exchanges no sheaf refills, no spare or barn sheaf exists: lab 01's
        // measurements of them and the pressure test's full barn (seen in a student tree's
        // full run: these 4 tests failed, the other 157 passed).
        breaks: &[
            "selftest::lab01::slabs_for_1000_objects",
            "selftest::lab01::objects_cached_after_freeing_all",
            "selftest::lab01::sheaf_capacity_of_a_300_byte_cache",
            "selftest::slab::memory_pressure_empties_the_barns_and_gives_their_pages_back",
        ],
        time_limit_secs: 60,
    },
    Lab {
        name: "rcu",
        title: "RCU and the asynchronous destroy",
        covers: "grace-period detection from quiescent states (the QS bookkeeping, starting and \
             ending grace periods, gp_seq) and the slab allocator's destroy work item that \
             waits for kfree_rcu objects and retries; graded by a private RCU driven by hand, \
             synchronize_rcu against a reader on another CPU, call_rcu on every CPU, \
             destroys with objects in flight, the RCU crate's unit tests, model and loom \
             model, and the slab crate's destroy tests",
        handout: "docs/labs/03-rcu.md",
        student_files: &[
            "kernel/crates/rcu/src/gp.rs",
            "kernel/crates/slab/src/registry/owned.rs",
        ],
        test_files: &[
            "kernel/core/src/selftest/lab_rcu.rs",
            // Its helper that frees objects with kfree_rcu on every CPU.
            "kernel/core/src/selftest/kfree_rcu.rs",
            "kernel/crates/rcu/src/gp/tests.rs",
            "kernel/crates/rcu/tests/model.rs",
            "kernel/crates/rcu/src/loom_tests.rs",
            "kernel/crates/slab/tests/destroy.rs",
            "kernel/crates/slab/tests/common/mod.rs",
        ],
        filter: "selftest::lab_rcu::",
        tests: &[
            on_target(
                "selftest::lab_rcu::call_rcu_starts_a_grace_period_that_every_online_cpu_owes_a_qs_to",
                2,
            ),
            on_target(
                "selftest::lab_rcu::a_grace_period_ends_only_when_every_online_cpu_has_reported",
                3,
            ),
            on_target(
                "selftest::lab_rcu::a_callback_queued_during_a_grace_period_waits_for_the_next_one",
                2,
            ),
            on_target(
                "selftest::lab_rcu::synchronize_rcu_waits_for_a_reader_on_another_cpu",
                3,
            ),
            on_target(
                "selftest::lab_rcu::call_rcu_callbacks_run_after_their_grace_period_on_every_cpu",
                2,
            ),
            on_target(
                "selftest::lab_rcu::a_cache_destroyed_with_kfree_rcu_objects_in_flight_goes_at_once_and_is_freed_later",
                3,
            ),
            on_target(
                "selftest::lab_rcu::the_destroy_work_keeps_a_cache_whose_objects_are_still_allocated",
                2,
            ),
            Graded {
                name: "host: the grace-period unit tests (kernel/crates/rcu/src/gp/tests.rs)",
                points: 2,
                judge: Judge::Host {
                    args: &["test", "-p", "sheaf-rcu", "--lib"],
                    loom: false,
                },
            },
            Graded {
                name: "host: the RCU model, random read sections, calls and reports (tests/model.rs)",
                points: 2,
                judge: Judge::Host {
                    args: &["test", "-p", "sheaf-rcu", "--test", "model"],
                    loom: false,
                },
            },
            Graded {
                name: "loom: every interleaving of quiescent-state reports and call_rcu",
                points: 2,
                judge: Judge::Host {
                    args: &["test", "-p", "sheaf-rcu", "--release", "--lib", "loom"],
                    loom: true,
                },
            },
            Graded {
                name: "host: the slab crate's destroy tests (kernel/crates/slab/tests/destroy.rs)",
                points: 2,
                judge: Judge::Host {
                    args: &["test", "-p", "sheaf-slab", "--test", "destroy"],
                    loom: false,
                },
            },
        ],
        // Without grace periods every wait for RCU hangs until the runner's watchdog stops it
        // (seen in a student tree's full run, SHEAF_TEST_TIMEOUT=30: these 35 failed, each
        // timed out, the other 137 passed): `synchronize_rcu`, `rcu_barrier`,
        // `kvfree_rcu_barrier`, `quiesce` (the memory-exhaustion and baseline tests, the
        // module tests' slab counts), a module unload waiting for its static cache's destroy,
        // the kfree_rcu destroys, and `destroybench` in the shell's Ctrl-C test.
        breaks: &[
            "sync::rcu::gp::",
            "selftest::rcu::",
            "selftest::kfree_rcu::",
            "selftest::oom::",
            "selftest::module_rcuwq::",
            "selftest::module_static::a_static_cache_in_kfree_rcu_flight_keeps_the_module_s_memory_until_its_destroy_ends",
            "selftest::module_static::a_thousand_cycles_with_kfree_rcu_traffic_stay_at_baseline",
            "selftest::module_static::slabdemo_walks_through_every_step",
            "selftest::module_static::storage_smaller_than_the_kernel_s_cache_is_refused",
            "selftest::module_static::the_same_with_a_rust_module_s_static_cache",
            "selftest::module_static::the_unload_also_waits_for_a_kobject_reference_held_elsewhere",
            "selftest::module::a_failing_init_module_leaves_nothing_behind",
            "selftest::module::a_thousand_load_unload_cycles_leave_pages_slab_and_kobjects_at_baseline",
            "selftest::module::malformed_modules_are_refused_each_with_its_own_error",
            "selftest::lab_modules::overflowing_relocations_are_refused_leaving_nothing",
            "selftest::slab::memory_pressure_empties_the_barns_and_gives_their_pages_back",
            "selftest::slab::typesafe_by_rcu_slabs_stay_allocated_and_intact_until_a_grace_period",
            "selftest::workqueue::a_reclaim_queue_runs_its_items_while_memory_is_exhausted_and_the_pool_recovers",
            "selftest::workqueue::the_slab_destroy_work_runs_through_its_rescuer_while_memory_is_exhausted",
            "memory::page_alloc::frames_are_distinct_aligned_and_come_back",
            "memory::vmap::a_mapping_that_runs_out_of_memory_gives_its_range_back",
            "shell::tests::ctrl_c_stops_a_long_command_and_the_prompt_returns",
            "shell::tests::every_command_answers_while_memory_is_exhausted_and_works_once_it_is_back",
            "soak::create_fill_kfree_rcu_destroy_and_storm_soak_gives_every_frame_back",
        ],
        time_limit_secs: 60,
    },
    Lab {
        name: "modules",
        title: "a module loader",
        covers: "ELF relocatable objects, symbol resolution against the kernel's and other \
             modules' exports (GPL-only, weak, unknown), the x86_64 relocations S + A, \
             S + A - P and the GOT with their overflow checks; graded by loading the example \
             modules and refusing malformed ones",
        handout: "docs/labs/04-module-loader.md",
        student_files: &[
            "kernel/crates/modload/src/relocate.rs",
            "kernel/crates/modload/src/resolve.rs",
        ],
        test_files: &["kernel/core/src/selftest/lab_modules.rs"],
        filter: "selftest::lab_modules::",
        tests: &[
            on_target(
                "selftest::lab_modules::compute_gives_each_relocation_its_value_or_refuses_it",
                3,
            ),
            on_target("selftest::lab_modules::hello_c_loads_prints_and_unloads", 3),
            on_target(
                "selftest::lab_modules::the_rust_hello_loads_prints_and_unloads",
                3,
            ),
            on_target(
                "selftest::lab_modules::user_links_against_the_exporter_s_symbols",
                3,
            ),
            on_target(
                "selftest::lab_modules::unknown_and_gpl_only_symbols_are_refused",
                2,
            ),
            on_target(
                "selftest::lab_modules::overflowing_relocations_are_refused_leaving_nothing",
                2,
            ),
        ],
        // Every test that loads a module: the stubs refuse them all.
        breaks: &[
            "selftest::module",
            "selftest::dmesg::dmesg_keeps_log_records_and_module_printk",
            "shell::tests::every_command_answers_while_memory_is_exhausted",
            "shell::tests::modules_load_list_and_unload_from_the_shell",
        ],
        time_limit_secs: 60,
    },
    Lab {
        name: "freeq",
        title: "the deferred free queue (optional)",
        covers: "kmem_free_q_add and kmem_free_up_q: an intrusive queue through the objects \
             themselves, built under a lock and freed after it, in order; a second add of a \
             queued object refused as a double free, a corrupted list reported, not followed; \
             graded by queueing a private cache's objects, the kernel's DeferFrees guard and \
             the slab crate's host tests",
        handout: "docs/labs/05-free-queue.md",
        student_files: &["kernel/crates/slab/src/free_q.rs"],
        test_files: &[
            "kernel/core/src/selftest/lab_free_q.rs",
            "kernel/crates/slab/tests/free_q.rs",
            "kernel/crates/slab/tests/common/mod.rs",
        ],
        filter: "selftest::lab_free_q::",
        tests: &[
            on_target(
                "selftest::lab_free_q::queued_objects_stay_allocated_until_freed_up",
                3,
            ),
            on_target(
                "selftest::lab_free_q::objects_are_freed_in_the_order_queued",
                2,
            ),
            on_target(
                "selftest::lab_free_q::queueing_an_object_twice_is_a_double_free_and_frees_it_once",
                2,
            ),
            on_target(
                "selftest::lab_free_q::kmalloc_objects_go_back_through_kfree",
                2,
            ),
            on_target(
                "selftest::lab_free_q::a_list_cut_short_is_reported_not_followed",
                2,
            ),
            on_target(
                "selftest::lab_free_q::boxes_dropped_under_a_guard_wait_for_its_drop",
                2,
            ),
            Graded {
                name: "host: the free queue's tests (kernel/crates/slab/tests/free_q.rs)",
                points: 2,
                judge: Judge::Host {
                    args: &["test", "-p", "sheaf-slab", "--test", "free_q"],
                    loom: false,
                },
            },
        ],
        // With the stubs nothing is ever queued: the kernel's own tests of the queue (the
        // benchmark crate's and the DeferFrees guard's) fail, as the graded ones do, and the
        // shell's `freeqbench` refuses, which the shell's test of every command sees, and the
        // Ctrl-C test too when the refusal comes before its Ctrl-C (in a student tree's full
        // run: the first 3 and the 6 graded failed, the other 169 passed; the Ctrl-C test
        // failed in a later CI run, passed in an earlier one).
        breaks: &[
            "freeq::objects_queued_under_a_lock_on_every_cpu_are_all_freed_after_it",
            "memory::free_q::frees_under_a_guard_wait_for_its_drop",
            "shell::tests::every_command_answers_while_memory_is_exhausted",
            "shell::tests::ctrl_c_stops_a_long_command_and_the_prompt_returns",
        ],
        time_limit_secs: 60,
    },
];

/// The lab called `name`.
pub fn find(name: &str) -> Option<&'static Lab> {
    LABS.iter().find(|lab| lab.name == name)
}
