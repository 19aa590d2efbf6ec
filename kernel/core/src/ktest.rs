//! On-target tests: registered with `#[ktest]`, listed and run on request of the test runner.
//!
//! Writing a test is like writing a host test:
//!
//! ```ignore
//! #[crate::ktest]
//! fn frames_are_aligned() {
//!     assert!(...);
//! }
//! ```
//!
//! The attribute (crate `ktest-macros`) places a [`KTest`] descriptor in the `ktests` linker
//! section; [`all`] sees every descriptor in the kernel as one slice. The host runner
//! (`boot/src/ktest/`) talks to this module through the initramfs `cmdline` file and
//! `@@ktest-` lines on the serial console:
//!
//! - `ktest=list`: print `@@ktest-list <name> <flags>` per test, then `@@ktest-end`. Flags are
//!   `-` or a comma-separated list of `fault=<kind>`, `uefi`, `smp=<cpus>`, `numa=<nodes>`.
//! - `ktest=run ktest.only=a,b`: run those tests in order, printing `@@ktest-start <name>` and
//!   then `@@ktest-pass <name>` or `@@ktest-fail <name> <reason>`; `@@ktest-done` at the end.
//!
//! A failing test panics, and the panic takes the kernel down: the runner boots again to run the
//! rest. A test declared with `fault = "kind"` passes when the exception handler for that fault
//! runs while it is the current test; the kernel then leaves QEMU with success.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicPtr, Ordering};
use drivers::qemu_exit::{ExitCode, exit};

/// One registered on-target test. Built by `#[ktest]`; not meant to be written by hand.
#[derive(Debug)]
pub struct KTest {
    /// `module_path!()` where the test is defined.
    pub module: &'static str,
    /// The test function's name.
    pub name: &'static str,
    /// The test body. It fails by panicking.
    pub func: fn(),
    /// The CPU fault the test expects (see [`Fault::name`]), if any.
    pub fault: Option<&'static str>,
    /// Whether the test must run in a UEFI boot.
    pub uefi: bool,
    /// The number of CPUs the test's machine must have (the runner's default otherwise).
    pub smp: Option<u32>,
    /// The number of NUMA nodes the test's machine must have (one otherwise).
    pub numa: Option<u32>,
}

impl KTest {
    /// The test's full name as the runner shows it: its module path below the crate, then its
    /// name, e.g. `memory::frame::frames_come_back`.
    pub fn full_name(&self) -> impl core::fmt::Display + '_ {
        struct FullName<'a>(&'a KTest);
        impl core::fmt::Display for FullName<'_> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                let module = self.0.module.split_once("::").map_or("", |(_, rest)| rest);
                if module.is_empty() {
                    f.write_str(self.0.name)
                } else {
                    write!(f, "{module}::{}", self.0.name)
                }
            }
        }
        FullName(self)
    }

    fn is_named(&self, name: &str) -> bool {
        let module = self.module.split_once("::").map_or("", |(_, rest)| rest);
        match name.rsplit_once("::") {
            Some((m, n)) => m == module && n == self.name,
            None => module.is_empty() && name == self.name,
        }
    }
}

/// The CPU exceptions the kernel knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Fault {
    DivideError,
    Debug,
    NonMaskableInterrupt,
    Overflow,
    BoundRangeExceeded,
    InvalidOpcode,
    DeviceNotAvailable,
    DoubleFault,
    InvalidTss,
    SegmentNotPresent,
    StackSegmentFault,
    GeneralProtection,
    PageFault,
    X87FloatingPoint,
    AlignmentCheck,
    MachineCheck,
    SimdFloatingPoint,
    Virtualization,
    ControlProtection,
    HypervisorInjection,
    VmmCommunication,
    Security,
}

impl Fault {
    /// The name a test uses in `#[ktest(fault = "...")]`, e.g. `page_fault`.
    pub fn name(self) -> &'static str {
        self.names().0
    }

    /// A human description, e.g. `page fault`.
    pub fn description(self) -> &'static str {
        self.names().1
    }

    fn names(self) -> (&'static str, &'static str) {
        match self {
            Fault::DivideError => ("divide_error", "divide error"),
            Fault::Debug => ("debug", "debug exception"),
            Fault::NonMaskableInterrupt => ("nmi", "non-maskable interrupt"),
            Fault::Overflow => ("overflow", "overflow"),
            Fault::BoundRangeExceeded => ("bound_range", "bound range exceeded"),
            Fault::InvalidOpcode => ("invalid_opcode", "invalid opcode"),
            Fault::DeviceNotAvailable => ("device_not_available", "device not available"),
            Fault::DoubleFault => ("double_fault", "double fault"),
            Fault::InvalidTss => ("invalid_tss", "invalid TSS"),
            Fault::SegmentNotPresent => ("segment_not_present", "segment not present"),
            Fault::StackSegmentFault => ("stack_segment", "stack-segment fault"),
            Fault::GeneralProtection => ("general_protection", "general protection fault"),
            Fault::PageFault => ("page_fault", "page fault"),
            Fault::X87FloatingPoint => ("x87_floating_point", "x87 floating-point exception"),
            Fault::AlignmentCheck => ("alignment_check", "alignment check"),
            Fault::MachineCheck => ("machine_check", "machine check"),
            Fault::SimdFloatingPoint => ("simd_floating_point", "SIMD floating-point exception"),
            Fault::Virtualization => ("virtualization", "virtualization exception"),
            Fault::ControlProtection => ("control_protection", "control protection exception"),
            Fault::HypervisorInjection => ("hv_injection", "hypervisor injection exception"),
            Fault::VmmCommunication => ("vmm_communication", "VMM communication exception"),
            Fault::Security => ("security", "security exception"),
        }
    }
}

#[cfg(feature = "ktest")]
unsafe extern "Rust" {
    // Defined by the linker around the `ktests` section that `#[ktest]` fills.
    static __start_ktests: KTest;
    static __stop_ktests: KTest;
}

/// Every test registered in the kernel, in link order: none in a kernel built without the
/// `ktest` feature (the one `cargo run` boots).
#[cfg(not(feature = "ktest"))]
pub fn all() -> &'static [KTest] {
    &[]
}

/// Every test registered in the kernel, in link order.
#[cfg(feature = "ktest")]
pub fn all() -> &'static [KTest] {
    let start = &raw const __start_ktests;
    let stop = &raw const __stop_ktests;
    // SAFETY: the linker places every `KTest` static of the `ktests` section back to back
    // (same type, so same size and alignment) between these two symbols; the section is
    // read-only data that lives as long as the kernel.
    unsafe {
        let len = stop.offset_from(start) as usize;
        core::slice::from_raw_parts(start, len)
    }
}

/// The test running now, for the panic and fault handlers. Null when none runs.
static CURRENT: AtomicPtr<KTest> = AtomicPtr::new(core::ptr::null_mut());

fn current() -> Option<&'static KTest> {
    // SAFETY: CURRENT is null or points into the `all()` slice, which is 'static.
    unsafe { CURRENT.load(Ordering::SeqCst).as_ref() }
}

/// Tells the runner a long test is still making progress (`@@ktest-progress NAME DONE`): the
/// runner's watchdog kills a boot after `SHEAF_TEST_TIMEOUT` seconds (60 by default) without
/// a `@@ktest-` line, which a test of a thousand load cycles, each waiting for RCU grace
/// periods, can exceed on a loaded machine. The line is otherwise ignored.
pub fn progress(done: usize) {
    if let Some(test) = current() {
        crate::println!("@@ktest-progress {}::{} {done}", test.module, test.name);
    }
}

/// Serves a `ktest=...` request from the command line (`only` is the value of `ktest.only`,
/// the comma-separated names to run). Never returns: exits QEMU.
pub fn run_request(request: &str, only: &str) -> ! {
    if !cfg!(feature = "ktest") {
        crate::println!(
            "@@ktest-fail - this kernel was built without its on-target tests \
             (the `ktest` feature, which `cargo test` turns on)"
        );
        exit(ExitCode::Failure)
    }
    match request {
        "list" => {
            for test in all() {
                use alloc::format;
                let mut flags = alloc::vec::Vec::new();
                if let Some(fault) = test.fault {
                    flags.push(format!("fault={fault}"));
                }
                if test.uefi {
                    flags.push("uefi".into());
                }
                if let Some(n) = test.smp {
                    flags.push(format!("smp={n}"));
                }
                if let Some(n) = test.numa {
                    flags.push(format!("numa={n}"));
                }
                let flags = if flags.is_empty() {
                    "-".into()
                } else {
                    flags.join(",")
                };
                crate::println!("@@ktest-list {} {}", test.full_name(), flags);
            }
            crate::println!("@@ktest-end");
            exit(ExitCode::Success)
        }
        "run" => {
            let names = only;
            for name in names.split(',').filter(|n| !n.is_empty()) {
                run_one(name);
            }
            crate::println!("@@ktest-done");
            exit(ExitCode::Success)
        }
        other => {
            crate::println!("@@ktest-fail - unknown ktest request `{other}` (want list or run)");
            exit(ExitCode::Failure)
        }
    }
}

/// Runs the test called `name`, reporting start and result.
fn run_one(name: &str) {
    crate::println!("@@ktest-start {name}");
    let Some(test) = all().iter().find(|t| t.is_named(name)) else {
        crate::println!("@@ktest-fail {name} no such test");
        return;
    };
    CURRENT.store(core::ptr::from_ref(test).cast_mut(), Ordering::SeqCst);
    (test.func)();
    CURRENT.store(core::ptr::null_mut(), Ordering::SeqCst);
    match test.fault {
        Some(fault) => crate::println!("@@ktest-fail {name} returned without the expected {fault}"),
        None => crate::println!("@@ktest-pass {name}"),
    }
}

/// Called by exception handlers: if the running test expects `fault`, it passes and the kernel
/// leaves QEMU with success. Otherwise returns, and the handler goes on to panic.
pub fn fault_expected(fault: Fault) {
    if let Some(test) = current()
        && test.fault == Some(fault.name())
    {
        crate::println!("ktest: caught the expected {}", fault.description());
        crate::println!("@@ktest-pass {}", test.full_name());
        exit(ExitCode::Success);
    }
}

/// Called by the panic handler: reports the running test, if any, as failed, or as passed
/// if it expects a panic (`#[ktest(fault = "panic")]`, which the runner checks for the
/// panic's backtrace).
pub fn report_panic(info: &PanicInfo<'_>) {
    if let Some(test) = current()
        && test.fault == Some("panic")
    {
        crate::println!("ktest: caught the expected panic");
        crate::println!("@@ktest-pass {}", test.full_name());
        exit(ExitCode::Success);
    }
    if let Some(test) = current() {
        crate::println!(
            "@@ktest-fail {} panicked: {}",
            test.full_name(),
            info.message()
        );
    }
}
