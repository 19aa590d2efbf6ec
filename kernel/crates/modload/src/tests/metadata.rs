//! `.modinfo`, module names and parameter values.

use crate::ErrorKind;
use crate::modinfo::{ModInfo, license_is_gpl_compatible, module_name};
use crate::params::{ParamType, ParamValue};

#[test]
fn gpl_compatible_licenses_are_linux_list_exactly() {
    for l in [
        "GPL",
        "GPL v2",
        "GPL and additional rights",
        "Dual BSD/GPL",
        "Dual MIT/GPL",
        "Dual MPL/GPL",
    ] {
        assert!(license_is_gpl_compatible(l), "{l}");
    }
    for l in [
        "GPL v3",
        "gpl",
        "Proprietary",
        "MIT",
        "Dual BSD/GPL ",
        "",
        "BSD",
    ] {
        assert!(!license_is_gpl_compatible(l), "{l}");
    }
    assert!(
        !ModInfo::default().is_gpl_compatible(),
        "no license is not GPL-compatible"
    );
}

#[test]
fn modinfo_entries_skip_padding_and_keep_repeats() {
    let i = ModInfo::parse(b"license=GPL\0\0\0author=A\0author=B\0depends=x,,y\0parmtype=n:int\0")
        .unwrap();
    assert_eq!(i.license(), Some("GPL"));
    assert_eq!(i.authors().collect::<alloc::vec::Vec<_>>(), ["A", "B"]);
    assert_eq!(i.depends().collect::<alloc::vec::Vec<_>>(), ["x", "y"]);
    assert_eq!(
        i.parm_types().collect::<alloc::vec::Vec<_>>(),
        [("n", "int")]
    );
    for bad in [
        &b"=GPL\0"[..],
        b"license=GPL\0license=MIT\0",
        b"license=GPL",
        b"name=a\0name=b\0",
        b"noequals\0",
    ] {
        assert_eq!(
            ModInfo::parse(bad).unwrap_err().kind,
            ErrorKind::BadModinfo,
            "{bad:?}"
        );
    }
}

#[test]
fn module_names_come_from_modinfo_or_the_file() {
    let none = ModInfo::default();
    assert_eq!(
        module_name(&none, "/lib/modules/my-mod.ko").unwrap(),
        "my_mod"
    );
    let named = ModInfo::parse(b"name=real\0").unwrap();
    assert_eq!(module_name(&named, "other.ko").unwrap(), "real");
    let long = "a".repeat(56);
    for bad in [".ko", "a b.ko", "é.ko", long.as_str()] {
        assert_eq!(
            module_name(&none, bad).unwrap_err().kind,
            ErrorKind::BadName,
            "{bad}"
        );
    }
    assert!(module_name(&none, &"a".repeat(55)).is_ok());
}

#[test]
fn parameter_values_parse_as_linux() {
    use ParamType::*;
    assert_eq!(Int.parse(Some("42")), Ok(ParamValue::Int(42)));
    assert_eq!(Int.parse(Some("-0x2a")), Ok(ParamValue::Int(-42)));
    assert_eq!(Int.parse(Some("052")), Ok(ParamValue::Int(42)));
    assert_eq!(Int.parse(Some("+7\n")), Ok(ParamValue::Int(7)));
    assert!(Int.parse(Some("2147483648")).is_err());
    assert_eq!(
        Int.parse(Some("-2147483648")),
        Ok(ParamValue::Int(i32::MIN))
    );
    assert!(Uint.parse(Some("-1")).is_err());
    assert_eq!(
        Uint.parse(Some("4294967295")),
        Ok(ParamValue::Uint(u32::MAX))
    );
    assert_eq!(
        Long.parse(Some("-9223372036854775808")),
        Ok(ParamValue::Long(i64::MIN))
    );
    assert_eq!(
        Ulong.parse(Some("0xffffffffffffffff")),
        Ok(ParamValue::Ulong(u64::MAX))
    );
    assert!(Ulong.parse(Some("0x1ffffffffffffffff")).is_err());
    for (v, b) in [
        ("y", true),
        ("Y", true),
        ("1", true),
        ("on", true),
        ("n", false),
        ("N", false),
        ("0", false),
        ("off", false),
    ] {
        assert_eq!(Bool.parse(Some(v)), Ok(ParamValue::Bool(b)), "{v}");
    }
    assert_eq!(Bool.parse(None), Ok(ParamValue::Bool(true)));
    for bad in [
        "",
        "x",
        "o",
        "12a",
        "0x",
        "-",
        "--1",
        "9".repeat(41).as_str(),
    ] {
        assert!(Int.parse(Some(bad)).is_err(), "{bad:?}");
    }
    assert!(Bool.parse(Some("maybe")).is_err());
    assert!(Int.parse(None).is_err());
    assert_eq!(Charp.parse(Some("a b")), Ok(ParamValue::Charp("a b")));
    assert_eq!(ParamValue::Bool(true).scalar_bytes().unwrap(), [1]);
    assert_eq!(
        ParamValue::Long(-2).scalar_bytes().unwrap(),
        (-2i64).to_le_bytes()
    );
    assert!(ParamValue::Charp("x").scalar_bytes().is_none());
}
