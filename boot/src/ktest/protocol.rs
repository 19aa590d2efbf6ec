//! The protocol's text: parsing the kernel's `@@ktest-` lines and test lists, the tests'
//! flags, and the kinds of machine ([`Shape`]) they ask for.

use super::MARKER;
use crate::Firmware;
use crate::qemu::Machine;

/// One protocol message, parsed from a line of serial output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// `@@ktest-list <name> <flags>`: a registered test.
    List {
        /// The test's name.
        name: &'a str,
        /// Its flags, unparsed (`-` for none); see [`Flags::parse`].
        flags: &'a str,
    },
    /// `@@ktest-end`: the list is complete.
    ListEnd,
    /// `@@ktest-start <name>`: a test begins.
    Start(&'a str),
    /// `@@ktest-pass <name>`: a test passed.
    Pass(&'a str),
    /// `@@ktest-fail <name> <reason...>`: a test failed.
    Fail {
        /// The test's name.
        name: &'a str,
        /// Why, in the kernel's words (may be empty).
        reason: &'a str,
    },
    /// `@@ktest-done`: every requested test has run.
    Done,
}

/// Parses one line of serial output. The marker may appear anywhere in the line (other output
/// can share the line); trailing `\r` is ignored. Lines without a valid message give `None`.
pub fn parse_line(line: &str) -> Option<Event<'_>> {
    let start = line.find(MARKER)?;
    let message = line[start + MARKER.len()..].trim_end_matches(['\r', '\n']);
    let (kind, rest) = message.split_once(' ').unwrap_or((message, ""));
    let rest = rest.trim();
    let mut words = rest.split_whitespace();
    match kind {
        "list" => Some(Event::List {
            name: words.next()?,
            flags: words.next().unwrap_or("-"),
        }),
        "end" => Some(Event::ListEnd),
        "start" => Some(Event::Start(words.next()?)),
        "pass" => Some(Event::Pass(words.next()?)),
        "fail" => {
            let (name, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            (!name.is_empty()).then_some(Event::Fail {
                name,
                reason: reason.trim(),
            })
        }
        "done" => Some(Event::Done),
        // `@@ktest-progress NAME N`: a long test is alive; only the watchdog counts it.
        _ => None,
    }
}

/// A test's flags, from its `@@ktest-list` line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// `fault=<kind>`: the CPU exception the test expects, e.g. `page_fault`.
    pub fault: Option<String>,
    /// `uefi`: the test must run in a UEFI boot.
    pub uefi: bool,
    /// `smp=<cpus>`: the test needs a machine with this many CPUs.
    pub smp: Option<u32>,
    /// `numa=<nodes>`: the test needs a machine with this many NUMA nodes.
    pub numa: Option<u32>,
    /// Flags this runner does not know (the test fails, asking to update the runner).
    pub unknown: Vec<String>,
}

impl Flags {
    /// Parses `-` or a comma-separated list like `fault=page_fault,uefi` or `smp=8,numa=2`.
    pub fn parse(flags: &str) -> Self {
        let mut parsed = Flags::default();
        let count = |n: &str, max: u32| n.parse::<u32>().ok().filter(|n| (1..=max).contains(n));
        for flag in flags.split(',').filter(|f| !f.is_empty() && *f != "-") {
            match flag.split_once('=') {
                Some(("fault", kind)) if !kind.is_empty() => parsed.fault = Some(kind.to_owned()),
                Some(("smp", n)) if count(n, 255).is_some() => parsed.smp = count(n, 255),
                Some(("numa", n)) if count(n, 64).is_some() => parsed.numa = count(n, 64),
                None if flag == "uefi" => parsed.uefi = true,
                _ => parsed.unknown.push(flag.to_owned()),
            }
        }
        parsed
    }

    /// Whether the test can share a boot with other tests that need the same machine: any
    /// test but one that expects a fault (which ends the boot when it passes).
    pub fn is_batchable(&self) -> bool {
        self.fault.is_none() && self.unknown.is_empty()
    }

    /// The machine the test needs.
    pub fn shape(&self) -> Shape {
        let default = Shape::default();
        Shape {
            firmware: if self.uefi {
                Firmware::Uefi
            } else {
                Firmware::Bios
            },
            smp: self.smp.unwrap_or(default.smp),
            numa: self.numa,
        }
    }
}

/// The kind of machine a test needs. Tests needing the same shape share batch boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shape {
    /// BIOS or UEFI.
    pub firmware: Firmware,
    /// Number of CPUs.
    pub smp: u32,
    /// Number of NUMA nodes, if any.
    pub numa: Option<u32>,
}

impl Default for Shape {
    /// The launcher's default machine: BIOS, 4 CPUs, no NUMA.
    fn default() -> Self {
        let machine = Machine::default();
        Self {
            firmware: machine.firmware,
            smp: machine.smp,
            numa: machine.numa,
        }
    }
}

impl Shape {
    /// The VM for this shape: the default machine (512 MiB, headless, serial on stdio) with
    /// this firmware, CPU count and NUMA nodes.
    pub fn machine(&self) -> Machine {
        Machine {
            firmware: self.firmware,
            smp: self.smp,
            numa: self.numa,
            ..Machine::default()
        }
    }
}

impl std::fmt::Display for Shape {
    /// E.g. `bios-smp4` or `uefi-smp8-numa2`, for log file names.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-smp{}", self.firmware.name(), self.smp)?;
        if let Some(nodes) = self.numa {
            write!(f, "-numa{nodes}")?;
        }
        Ok(())
    }
}

/// A test the kernel has registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelTest {
    /// Its full name, e.g. `memory::frame::frames_come_back`.
    pub name: String,
    /// Its flags.
    pub flags: Flags,
}

/// Reads the test list out of a `ktest=list` boot's output. Fails if `@@ktest-end` is missing
/// (the list would be incomplete).
pub fn parse_list(output: &str) -> Result<Vec<KernelTest>, String> {
    let mut tests: Vec<KernelTest> = Vec::new();
    for event in output.lines().filter_map(parse_line) {
        match event {
            Event::List { name, flags } => {
                if !tests.iter().any(|t| t.name == name) {
                    tests.push(KernelTest {
                        name: name.to_owned(),
                        flags: Flags::parse(flags),
                    });
                }
            }
            Event::ListEnd => return Ok(tests),
            _ => {}
        }
    }
    Err("the kernel did not finish the test list (no @@ktest-end)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_protocol_lines() {
        assert_eq!(
            parse_line("@@ktest-list memory::frame::reuse -\r"),
            Some(Event::List {
                name: "memory::frame::reuse",
                flags: "-"
            })
        );
        assert_eq!(
            parse_line("[ 0.1] log noise @@ktest-start a::b"),
            Some(Event::Start("a::b"))
        );
        assert_eq!(
            parse_line("@@ktest-pass a::b\r\n"),
            Some(Event::Pass("a::b"))
        );
        // A long test's liveness line: no event (the watchdog counts the marker).
        assert_eq!(parse_line("@@ktest-progress a::b 300"), None);
        assert_eq!(
            parse_line("@@ktest-fail a::b panicked: 1 != 2 at x.rs:3\r"),
            Some(Event::Fail {
                name: "a::b",
                reason: "panicked: 1 != 2 at x.rs:3"
            })
        );
        assert_eq!(
            parse_line("@@ktest-fail a::b"),
            Some(Event::Fail {
                name: "a::b",
                reason: ""
            })
        );
        assert_eq!(parse_line("@@ktest-end"), Some(Event::ListEnd));
        assert_eq!(parse_line("@@ktest-done\r"), Some(Event::Done));
        assert_eq!(parse_line("@@ktest-start"), None);
        assert_eq!(parse_line("@@ktest-bogus x"), None);
        assert_eq!(parse_line("plain output"), None);
    }

    #[test]
    fn parses_flags() {
        assert_eq!(Flags::parse("-"), Flags::default());
        assert!(Flags::parse("-").is_batchable());
        let flags = Flags::parse("fault=page_fault,uefi");
        assert_eq!(flags.fault.as_deref(), Some("page_fault"));
        assert!(flags.uefi);
        assert_eq!(flags.shape().firmware, Firmware::Uefi);
        assert!(!flags.is_batchable());
        let flags = Flags::parse("smp=8,numa=2");
        assert!(flags.is_batchable());
        assert_eq!(
            flags.shape(),
            Shape {
                firmware: Firmware::Bios,
                smp: 8,
                numa: Some(2)
            }
        );
        assert_eq!(flags.shape().to_string(), "bios-smp8-numa2");
        // smp=4 is the default machine: such a test joins the main batch.
        assert_eq!(Flags::parse("smp=4").shape(), Shape::default());
        assert_eq!(Flags::parse("smp=0").unknown, ["smp=0"]);
        assert_eq!(Flags::parse("colour=blue").unknown, ["colour=blue"]);
        assert!(!Flags::parse("colour=blue").is_batchable());
    }

    #[test]
    fn parses_a_list() {
        let output = "boot\r\n@@ktest-list a::x -\r\n@@ktest-list b::y fault=double_fault\r\n\
                      @@ktest-list c uefi\r\n@@ktest-end\r\n";
        let tests = parse_list(output).unwrap();
        assert_eq!(tests.len(), 3);
        assert_eq!(tests[1].name, "b::y");
        assert_eq!(tests[1].flags.fault.as_deref(), Some("double_fault"));
        assert!(tests[2].flags.uefi);
        assert!(parse_list("@@ktest-list a -\n").is_err());
    }
}
