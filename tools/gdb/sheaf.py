# GDB commands for Sheaf (Linux's scripts/gdb/linux/symbols.py, `lx-symbols`, does the same).
#
#     gdb -ex 'symbol-file KERNEL' -ex 'source tools/gdb/sheaf.py' -ex 'target remote :1234'
#
# sheaf-symbols [DIR...]
#     Reads the loaded modules and their sections' addresses from the kernel's memory (the
#     table `SHEAF_MODULES`, kernel/core/src/module/debug.rs) and, for each module, finds
#     NAME.ko in the directories given (default: kernel/crates/modload/tests/fixtures and
#     target/modules/ko of this repository) and runs
#     `add-symbol-file NAME.ko -s SECTION ADDR ...` with every loaded section.
# sheaf-modules
#     Lists the loaded modules and their sections' addresses, from the same table.
#
# Run it with the kernel stopped after the module was loaded (Ctrl-C, or a breakpoint);
# `hbreak kcore::module::debug::publish` stops each time the list of modules changes.

import os
import struct

import gdb

MAGIC = int.from_bytes(b"SheafMod", "little")
VERSION = 1
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_PATH = [
    os.path.join(REPO, "kernel/crates/modload/tests/fixtures"),
    os.path.join(REPO, "target/modules/ko"),
]


def _read(addr, size):
    return bytes(gdb.selected_inferior().read_memory(addr, size))


def _words(addr, n):
    return struct.unpack("<%dQ" % n, _read(addr, 8 * n))


def _table_address():
    sym = gdb.lookup_global_symbol("SHEAF_MODULES") or gdb.lookup_static_symbol(
        "SHEAF_MODULES"
    )
    if sym is not None:
        return int(sym.value().address)
    # No debug info for it: the ELF symbol.
    out = gdb.execute("info address SHEAF_MODULES", to_string=True)
    for word in out.replace(".", " ").split():
        if word.startswith("0x"):
            return int(word, 16)
    raise gdb.GdbError("no symbol SHEAF_MODULES: load the kernel's symbols first")


def read_modules():
    """[(name, [(section, addr), ...]), ...], oldest module first."""
    base = _table_address()
    magic, version, count, modules = _words(base, 4)
    if magic != MAGIC:
        raise gdb.GdbError("SHEAF_MODULES at %#x has a bad magic %#x" % (base, magic))
    if version != VERSION:
        raise gdb.GdbError("SHEAF_MODULES is version %d, this script reads %d" % (version, VERSION))
    result = []
    for i in range(count):
        name, name_len, sections, section_count = _words(modules + 32 * i, 4)
        mod = _read(name, name_len).decode()
        secs = []
        for j in range(section_count):
            sname, sname_len, saddr = _words(sections + 24 * j, 3)
            secs.append((_read(sname, sname_len).decode(), saddr))
        result.append((mod, secs))
    return result


def find_ko(name, path):
    for d in path:
        for n in (name, name.replace("_", "-"), name.replace("-", "_")):
            f = os.path.join(d, n + ".ko")
            if os.path.isfile(f):
                return f
    return None


class SheafModules(gdb.Command):
    """List the loaded modules and their sections' addresses (from SHEAF_MODULES)."""

    def __init__(self):
        super().__init__("sheaf-modules", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        for name, secs in read_modules():
            gdb.write("%s\n" % name)
            for s, a in secs:
                gdb.write("    %#x %s\n" % (a, s))


class SheafSymbols(gdb.Command):
    """Load the symbols of every loaded module: sheaf-symbols [DIR...].

Reads the modules and their sections from the kernel's memory (SHEAF_MODULES), finds
NAME.ko in DIR... (default: kernel/crates/modload/tests/fixtures and target/modules/ko) and
runs add-symbol-file NAME.ko -s SECTION ADDR ... for each."""

    def __init__(self):
        super().__init__("sheaf-symbols", gdb.COMMAND_FILES, gdb.COMPLETE_FILENAME)

    def invoke(self, arg, from_tty):
        path = gdb.string_to_argv(arg) or DEFAULT_PATH
        modules = read_modules()
        if not modules:
            gdb.write("sheaf-symbols: no module loaded\n")
        for name, secs in modules:
            ko = find_ko(name, path)
            if ko is None:
                gdb.write("sheaf-symbols: %s.ko not found in %s\n" % (name, " ".join(path)))
                continue
            cmd = "add-symbol-file %s" % ko
            for s, a in secs:
                cmd += " -s %s %#x" % (s, a)
            gdb.write("loading %s (%d sections) from %s\n" % (name, len(secs), ko))
            confirm = gdb.parameter("confirm")
            gdb.execute("set confirm off")
            try:
                gdb.execute(cmd, to_string=True)
            finally:
                gdb.execute("set confirm %s" % ("on" if confirm else "off"))


SheafModules()
SheafSymbols()
