//! The errno values the module calls return (Linux's numbers), with their names and texts.

/// Operation not permitted.
pub const EPERM: i32 = 1;
/// No such file or directory (Linux: an unknown symbol, no such module).
pub const ENOENT: i32 = 2;
/// Exec format error (a file the loader refuses).
pub const ENOEXEC: i32 = 8;
/// Operation would block (Linux: unloading a module that others use).
pub const EWOULDBLOCK: i32 = 11;
/// Out of memory.
pub const ENOMEM: i32 = 12;
/// Bad address.
pub const EFAULT: i32 = 14;
/// Device or resource busy (a module in use, or being loaded or unloaded).
pub const EBUSY: i32 = 16;
/// File exists (a module of that name is loaded).
pub const EEXIST: i32 = 17;
/// No such device.
pub const ENODEV: i32 = 19;
/// Invalid argument.
pub const EINVAL: i32 = 22;
/// No space left on device.
pub const ENOSPC: i32 = 28;

/// Linux's errno names and texts, for the ones modules return most.
const TABLE: &[(i32, &str, &str)] = &[
    (EPERM, "EPERM", "Operation not permitted"),
    (ENOENT, "ENOENT", "No such file or directory"),
    (3, "ESRCH", "No such process"),
    (4, "EINTR", "Interrupted system call"),
    (5, "EIO", "Input/output error"),
    (6, "ENXIO", "No such device or address"),
    (7, "E2BIG", "Argument list too long"),
    (ENOEXEC, "ENOEXEC", "Exec format error"),
    (9, "EBADF", "Bad file descriptor"),
    (
        EWOULDBLOCK,
        "EWOULDBLOCK",
        "Resource temporarily unavailable",
    ),
    (ENOMEM, "ENOMEM", "Cannot allocate memory"),
    (13, "EACCES", "Permission denied"),
    (EFAULT, "EFAULT", "Bad address"),
    (EBUSY, "EBUSY", "Device or resource busy"),
    (EEXIST, "EEXIST", "File exists"),
    (ENODEV, "ENODEV", "No such device"),
    (20, "ENOTDIR", "Not a directory"),
    (21, "EISDIR", "Is a directory"),
    (EINVAL, "EINVAL", "Invalid argument"),
    (ENOSPC, "ENOSPC", "No space left on device"),
    (34, "ERANGE", "Numerical result out of range"),
    (38, "ENOSYS", "Function not implemented"),
    (95, "EOPNOTSUPP", "Operation not supported"),
    (110, "ETIMEDOUT", "Connection timed out"),
];

/// The name of errno `e` (`"ENODEV"`), or `"E?"` for one not in the table.
pub fn name(e: i32) -> &'static str {
    TABLE.iter().find(|t| t.0 == e).map_or("E?", |t| t.1)
}

/// The text of errno `e` (`"No such device"`), or `"Unknown error"`.
pub fn describe(e: i32) -> &'static str {
    TABLE
        .iter()
        .find(|t| t.0 == e)
        .map_or("Unknown error", |t| t.2)
}

/// Writes an error as the kmod tools print one: `-ENODEV (No such device): message`.
pub(super) fn write_error(
    f: &mut core::fmt::Formatter<'_>,
    errno: i32,
    message: &str,
) -> core::fmt::Result {
    write!(f, "-{} ({}): {message}", name(errno), describe(errno))
}
