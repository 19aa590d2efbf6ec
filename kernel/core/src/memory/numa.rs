//! NUMA topology: which CPUs and which memory belong to which node.
//!
//! The ACPI SRAT says so; without one, everything is node 0. Both answers come from the ACPI
//! tables read at boot (`arch::acpi`), the one source of topology: `cpu_to_node` through the
//! CPU's logical id, `page_to_nid` through the memory ranges.

/// Number of NUMA nodes (at least 1).
pub fn node_count() -> usize {
    crate::arch::acpi::platform().node_count()
}

/// The node of CPU `cpu` (0 if it does not exist). Known from ACPI's set-up on, before the
/// CPU itself is started (the slab allocator sizes its per-node state with it at boot); before
/// that only the boot CPU runs, and everything is node 0.
pub fn cpu_to_node(cpu: usize) -> usize {
    crate::arch::acpi::try_platform().map_or(0, |p| p.node_of_cpu(cpu))
}

/// The node of the page at physical address `addr`.
pub fn page_to_nid(addr: x86_64::PhysAddr) -> usize {
    crate::arch::acpi::platform().node_of_addr(addr.as_u64()) as usize
}

/// Memory of one node, in 4 KiB pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeMemory {
    /// Pages the page allocator manages on this node.
    pub total_pages: usize,
    /// Of those, pages free now.
    pub free_pages: usize,
}

/// Memory of node `node`.
pub fn node_memory(node: usize) -> NodeMemory {
    let stats = super::page_alloc::node_stats(node);
    NodeMemory {
        total_pages: stats.total_pages,
        free_pages: stats.free_pages(),
    }
}

#[crate::ktest(numa = 2)]
fn two_nodes_with_their_cpus_and_memory() {
    assert_eq!(node_count(), 2);
    for node in 0..2 {
        assert!(
            crate::cpu::all().any(|c| cpu_to_node(c.id) == node),
            "node {node} has CPUs"
        );
        assert!(node_memory(node).total_pages > 0, "node {node} has memory");
    }
    // A page asked for on a node comes from that node.
    for node in 0..2 {
        let page = super::page_alloc::alloc_pages(0, Some(node)).expect("memory");
        assert_eq!(page_to_nid(page), node);
        // SAFETY: just allocated, unused.
        unsafe { super::page_alloc::free_pages(page, 0) }.expect("give back");
    }
}
