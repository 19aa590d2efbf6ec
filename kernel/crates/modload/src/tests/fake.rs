//! A fake kernel: an export table and module memory made of `Vec`s.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use crate::layout::{Layout, REGIONS, Region};
use crate::relocate::{Image, RegionMem};
use crate::resolve::{Exported, SymbolSource};
use crate::{Module, Resolved, Result};

/// Where the fake kernel's exports are (its image, the top 2 GiB).
pub const KBASE: u64 = 0xffff_ffff_8100_0000;
/// Where the first module goes (the `MODULES` range).
pub const MBASE: u64 = 0xffff_ffff_a000_0000;
/// The address `__this_module` resolves to.
pub const THIS: u64 = 0xffff_ffff_8200_0000;

/// The exports of issue 19, at made-up kernel addresses.
pub const EXPORTS: [(&str, bool); 11] = [
    ("printk", false),
    ("kmalloc", false),
    ("kzalloc", false),
    ("kfree", false),
    ("kmem_cache_create", false),
    ("kmem_cache_alloc", false),
    ("kmem_cache_free", false),
    ("kmem_cache_destroy", false),
    ("try_module_get", false),
    ("module_put", false),
    ("kernel_gpl_only", true),
];

pub struct Kernel {
    pub map: BTreeMap<String, Exported<u32>>,
}

impl Kernel {
    pub fn new() -> Self {
        let map = EXPORTS
            .iter()
            .enumerate()
            .map(|(i, &(n, gpl))| {
                (
                    n.to_string(),
                    Exported {
                        address: KBASE + 0x100 * i as u64,
                        gpl_only: gpl,
                        owner: None,
                    },
                )
            })
            .collect();
        Kernel { map }
    }

    pub fn addr(&self, name: &str) -> u64 {
        self.map[name].address
    }

    /// Adds a loaded module's exports, owned by `owner`.
    pub fn add_module(&mut self, m: &Module<'_>, image: &Image<'_>, owner: u32) {
        for x in m.exports() {
            let address = m.export_address(image, x).unwrap();
            self.map.insert(
                x.name.to_string(),
                Exported {
                    address,
                    gpl_only: x.gpl_only,
                    owner: Some(owner),
                },
            );
        }
    }
}

impl SymbolSource for Kernel {
    type Owner = u32;
    fn lookup(&self, name: &str) -> Option<Exported<u32>> {
        self.map.get(name).cloned()
    }
}

/// A module's memory: one buffer per region, placed one after another from `base`.
pub struct Mem {
    pub bufs: Vec<Vec<u8>>,
    pub addrs: [u64; REGIONS],
}

impl Mem {
    pub fn for_layout(l: &Layout, base: u64) -> Self {
        let mut addrs = [0; REGIONS];
        let mut at = base;
        let bufs = Region::ALL
            .iter()
            .map(|&r| {
                addrs[r.index()] = at;
                // A page of gap between regions, as separate allocations would have.
                at += l.size(r) + crate::PAGE_SIZE;
                vec![0xAAu8; l.size(r) as usize]
            })
            .collect();
        Mem { bufs, addrs }
    }

    pub fn image(&mut self, l: &Layout) -> Image<'_> {
        let addrs = self.addrs;
        let mut it = self.bufs.iter_mut().enumerate().map(|(i, b)| RegionMem {
            addr: addrs[i],
            bytes: b.as_mut_slice(),
        });
        let regions = core::array::from_fn(|_| it.next().unwrap());
        Image::new(l, regions).unwrap()
    }
}

/// Parses, resolves and writes a module at `base`.
pub fn load<'a>(
    data: &'a [u8],
    file: &str,
    k: &Kernel,
    base: u64,
) -> Result<(Module<'a>, Mem, Resolved<u32>)> {
    let m = Module::parse(data, file)?;
    let res = m.resolve(k, THIS)?;
    let mut mem = Mem::for_layout(m.layout(), base);
    m.write_image(&res, &mut mem.image(m.layout()))?;
    Ok((m, mem, res))
}
