//! The shell's file commands, `ls`, `cat` and `echo ... > FILE`, over the three trees it can
//! see: the initramfs (read-only), `/proc` (`slabinfo` and `modules`) and `/sys` (`sysfs.rs`).
//! They answer as a Linux shell does: a directory where a file is wanted is "Is a directory",
//! a path through a file (`FILE/`, `FILE/x`) is "Not a directory", a missing one "No such file
//! or directory"; `ls` lists each argument, files first, then each directory under a heading.

use crate::{print, println};

use super::sysfs;

/// What a path names in the initramfs or `/proc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    /// A directory: the initramfs root (`/`), a directory of the archive, or `/proc`.
    Dir(Tree),
    /// An initramfs file, with its contents.
    File(&'static [u8]),
    /// `/proc/slabinfo`.
    Slabinfo,
    /// `/proc/modules`.
    Modules,
}

/// Which directory tree a [`Node::Dir`] is in, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tree {
    /// A directory of the initramfs: its path in the archive (`""` for the root).
    Initramfs(&'static str),
    /// `/proc`.
    Proc,
}

/// Why a path names nothing (Linux's errno text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missing {
    NoEntry,
    NotADirectory,
}

impl Missing {
    fn text(self) -> &'static str {
        match self {
            Missing::NoEntry => "No such file or directory",
            Missing::NotADirectory => "Not a directory",
        }
    }
}

/// Resolves a path outside `/sys`. A trailing `/` asks for a directory.
fn lookup(path: &str) -> Result<Node, Missing> {
    let wants_dir = path.ends_with('/');
    let trimmed = path.trim_matches('/');
    let node = if path.starts_with('/') && (trimmed == "proc" || trimmed.starts_with("proc/")) {
        match trimmed {
            "proc" => Node::Dir(Tree::Proc),
            "proc/slabinfo" => Node::Slabinfo,
            "proc/modules" => Node::Modules,
            _ if trimmed.starts_with("proc/slabinfo/") || trimmed.starts_with("proc/modules/") => {
                return Err(Missing::NotADirectory);
            }
            _ => return Err(Missing::NoEntry),
        }
    } else {
        initramfs_lookup(trimmed.trim_start_matches("./"))?
    };
    match node {
        Node::File(_) | Node::Slabinfo | Node::Modules if wants_dir => Err(Missing::NotADirectory),
        node => Ok(node),
    }
}

/// Resolves `name` (no leading or trailing `/`) in the initramfs: a file, a directory (an entry
/// of that name, or the prefix of entries' names), or nothing. A path through a file is "Not a
/// directory".
fn initramfs_lookup(name: &str) -> Result<Node, Missing> {
    let archive = crate::initramfs::archive();
    if name.is_empty() || name == "." {
        return Ok(Node::Dir(Tree::Initramfs("")));
    }
    let mut is_dir = false;
    for entry in archive.entries().flatten() {
        let e = entry.name();
        if e == name {
            if entry.is_dir() {
                return Ok(Node::Dir(Tree::Initramfs(e)));
            }
            return Ok(Node::File(entry.data()));
        }
        if let Some(rest) = name.strip_prefix(e)
            && rest.starts_with('/')
            && entry.is_file()
        {
            return Err(Missing::NotADirectory);
        }
        if e.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('/'))
        {
            is_dir = true;
        }
    }
    match archive
        .entries()
        .flatten()
        .find(|e| e.name().starts_with(name))
    {
        Some(e) if is_dir => Ok(Node::Dir(Tree::Initramfs(&e.name()[..name.len()]))),
        _ => Err(Missing::NoEntry),
    }
}

/// Lists a directory of the initramfs or `/proc`: each entry with its size (`-` for a
/// directory), as the shell's `ls` always has; at the root, every entry of the archive.
fn list_dir(tree: Tree) {
    let prefix = match tree {
        Tree::Proc => {
            println!("{:>10}  modules", 0);
            println!("{:>10}  slabinfo", 0);
            return;
        }
        Tree::Initramfs(prefix) => prefix,
    };
    for entry in crate::initramfs::archive().entries() {
        let e = match entry {
            Ok(e) => e,
            Err(err) => {
                println!("ls: initramfs is damaged: {err}");
                return;
            }
        };
        let name = if prefix.is_empty() {
            e.name()
        } else {
            match e
                .name()
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('/'))
            {
                Some(rest) => rest,
                None => continue,
            }
        };
        if e.is_dir() {
            println!("{:>10}  {name}/", "-");
        } else {
            println!("{:>10}  {name}", e.data().len());
        }
    }
}

/// `ls [PATH...]`: the initramfs root without arguments; each file argument as a line, then
/// each directory's entries, under a `PATH:` heading when there are several arguments.
pub(super) fn ls(args: &[&str]) {
    if args.is_empty() {
        return list_dir(Tree::Initramfs(""));
    }
    let headings = args.len() > 1;
    let mut first = true;
    // Files (and errors) first, directories after, as Linux's `ls` orders its output.
    for &path in args {
        if sysfs::is_sysfs(path) {
            if !sysfs::is_dir(path) {
                sysfs::ls(path);
                first = false;
            }
            continue;
        }
        match lookup(path) {
            Ok(Node::File(data)) => {
                println!("{:>10}  {path}", data.len());
                first = false;
            }
            Ok(Node::Slabinfo | Node::Modules) => {
                println!("{:>10}  {path}", 0);
                first = false;
            }
            Ok(Node::Dir(_)) => {}
            Err(e) => println!("ls: cannot access '{path}': {}", e.text()),
        }
    }
    for &path in args {
        let dir = if sysfs::is_sysfs(path) {
            sysfs::is_dir(path).then_some(None)
        } else {
            match lookup(path) {
                Ok(Node::Dir(tree)) => Some(Some(tree)),
                _ => None,
            }
        };
        let Some(dir) = dir else { continue };
        if kcore::console::interrupted() {
            return;
        }
        if headings {
            if !first {
                println!();
            }
            println!("{path}:");
        }
        first = false;
        match dir {
            Some(tree) => list_dir(tree),
            None => sysfs::ls(path),
        }
    }
}

/// `cat FILE...`: each file's contents; a directory is refused ("Is a directory").
pub(super) fn cat(args: &[&str]) {
    if args.is_empty() {
        println!("usage: cat FILE...");
    }
    for &path in args {
        if kcore::console::interrupted() {
            return;
        }
        if sysfs::is_sysfs(path) {
            sysfs::cat(path);
            continue;
        }
        match lookup(path) {
            Ok(Node::File(data)) => print_bytes(data),
            Ok(Node::Slabinfo) => {
                // Written line by line to the console: nothing to allocate.
                let _ = crate::memory::kmalloc::slab().slabinfo_show(&mut Console);
            }
            Ok(Node::Modules) => {
                let _ = kcore::module::proc_modules(&mut Console);
            }
            Ok(Node::Dir(_)) => println!("cat: {path}: Is a directory"),
            Err(e) => println!("cat: {path}: {}", e.text()),
        }
    }
}

/// Prints a file's bytes as they are (text that is not UTF-8 included, as `cat` does).
fn print_bytes(data: &[u8]) {
    kcore::console::write_bytes(data);
}

/// The console as a [`core::fmt::Write`].
struct Console;

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        print!("{s}");
        Ok(())
    }
}

/// The longest text `echo ... > FILE` writes (a sysfs attribute takes at most a page).
const MAX_ECHO: usize = 4096;

/// `echo WORD...`, or `echo WORD... > FILE` (also `>FILE`) to write the words and a newline
/// into a writable `/sys` file, as a shell redirection does. Allocates nothing.
pub(super) fn echo(args: &[&str]) {
    let redirect = args.iter().position(|a| a.starts_with('>'));
    let Some(at) = redirect else {
        for (i, word) in args.iter().enumerate() {
            print!("{}{word}", if i == 0 { "" } else { " " });
        }
        println!();
        return;
    };
    let target = match args[at].strip_prefix('>') {
        Some("") => args.get(at + 1).copied(),
        rest => rest,
    };
    let rest_ok = args.len() == at + 1 + usize::from(args[at] == ">");
    let Some(path) = target.filter(|_| rest_ok) else {
        println!("usage: echo [WORD...] > FILE");
        return;
    };
    let mut text = [0u8; MAX_ECHO];
    let mut len = 0;
    for (i, word) in args[..at].iter().enumerate() {
        let sep = if i == 0 { "" } else { " " };
        for part in [sep, word] {
            let Some(room) = text.get_mut(len..len + part.len()) else {
                println!("echo: {path}: text longer than {} bytes", MAX_ECHO - 1);
                return;
            };
            room.copy_from_slice(part.as_bytes());
            len += part.len();
        }
    }
    if len == MAX_ECHO {
        println!("echo: {path}: text longer than {} bytes", MAX_ECHO - 1);
        return;
    }
    text[len] = b'\n';
    len += 1;
    // Whole words of a `&str` and a newline: UTF-8.
    let text = core::str::from_utf8(&text[..len]).unwrap_or_default();
    if sysfs::is_sysfs(path) {
        return sysfs::write(path, text);
    }
    match lookup(path) {
        Ok(Node::Dir(_)) => println!("echo: {path}: Is a directory"),
        Err(Missing::NotADirectory) => println!("echo: {path}: Not a directory"),
        // A new file or an existing one: every tree outside `/sys` is read-only.
        _ => println!("echo: {path}: Read-only file system"),
    }
}

#[crate::ktest]
fn paths_resolve_as_on_linux() {
    assert_eq!(lookup("/"), Ok(Node::Dir(Tree::Initramfs(""))));
    assert_eq!(lookup("etc"), Ok(Node::Dir(Tree::Initramfs("etc"))));
    assert_eq!(lookup("/etc/"), Ok(Node::Dir(Tree::Initramfs("etc"))));
    assert!(matches!(lookup("/etc/motd"), Ok(Node::File(_))));
    assert!(matches!(lookup("etc/motd"), Ok(Node::File(_))));
    assert_eq!(lookup("etc/motd/"), Err(Missing::NotADirectory));
    assert_eq!(lookup("etc/motd/x"), Err(Missing::NotADirectory));
    assert_eq!(lookup("etc/mot"), Err(Missing::NoEntry));
    assert_eq!(lookup("/nothing"), Err(Missing::NoEntry));
    assert_eq!(lookup("/proc"), Ok(Node::Dir(Tree::Proc)));
    assert_eq!(lookup("/proc/slabinfo"), Ok(Node::Slabinfo));
    assert_eq!(lookup("/proc/slabinfo/"), Err(Missing::NotADirectory));
    assert_eq!(lookup("/proc/modules"), Ok(Node::Modules));
    assert_eq!(lookup("/proc/modules/x"), Err(Missing::NotADirectory));
    assert_eq!(lookup("/proc/meminfo"), Err(Missing::NoEntry));
}
