//! `FirmwareMachine`: `PlacementBackend` over the static memory map, as a kernel-adjacent
//! allocator would write it. No heap: fixed tables, a virtual window and frames per node.
//!
//! A mapping is a run of pages of a static virtual window (real memory the caller may
//! use). Like a kernel, the machine gives a page a frame only when the page is faulted
//! in (`prefault`), choosing the node by the page's policy with the core's
//! `allocation_order`; a software page table records the frame's physical address.
//! User space cannot program the MMU, so that table is the translation; `page_locations`
//! derives each page's node from its frame's address through the memory map, and checks
//! that the frame names the page as its owner.

use core::cell::{Cell, RefCell};

use numaperf_core::policy::{allocation_order, interleave_index};
use numaperf_core::region::round_to_unit;
use numaperf_core::{
    CpuLocation, CpuSet, Errno, FixedTopology, HugePages, KernelWeights, Mapping, MemPolicy,
    NodeId, NodeMask, NodeMode, NodeWeights, NumaError, PageLocation, PageRange, PlacementBackend,
    Prefault, RegionOptions, TopologyInfo,
};

use crate::memmap::{self, Arena, Frames, PAGE};

/// Nodes of the machine.
pub const NODES: usize = 4;
/// Pages of the virtual window (4 MiB).
const VPAGES: usize = 1024;
/// Live mappings at most.
const MAX_MAPS: usize = 32;
/// Distinct policies live at once at most (a weighted layout uses one per node).
const POLICY_SLOTS: usize = 16;

/// The address space mappings are made in.
static VIRT: Arena<{ VPAGES * PAGE }> = Arena::new();

/// Set once the statics have their owner.
static TAKEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The machine's bookkeeping, all fixed-size.
struct Tables {
    frames: Frames,
    /// Virtual pages handed out by `map`.
    virt_used: [u64; VPAGES / 64],
    /// The physical address of the frame backing each virtual page (0: not present).
    pte: [usize; VPAGES],
    /// Each virtual page's policy, as a slot of `policies`.
    policy_of: [u8; VPAGES],
    policies: [Option<(MemPolicy, RegionOptions)>; POLICY_SLOTS],
    /// Live mappings: (first virtual page, pages).
    maps: [Option<(usize, usize)>; MAX_MAPS],
}

/// A four-node machine whose memory is the static map of [`crate::memmap`].
pub struct FirmwareMachine {
    topo: FixedTopology<NODES>,
    weights: Option<KernelWeights>,
    cpu: Cell<usize>,
    affinity: Cell<CpuSet>,
    apply_calls: Cell<u32>,
    map_calls: Cell<u32>,
    t: RefCell<Tables>,
}

fn vaddr(page: usize) -> usize {
    VIRT.base() + page * PAGE
}

fn is_set(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

fn set(bits: &mut [u64], i: usize, on: bool) {
    if on {
        bits[i / 64] |= 1 << (i % 64);
    } else {
        bits[i / 64] &= !(1 << (i % 64));
    }
}

impl Tables {
    /// The slot of a policy, stored if new; unused slots are collected when full.
    fn intern(&mut self, policy: MemPolicy, opts: RegionOptions) -> Result<u8, NumaError> {
        let entry = Some((policy, opts));
        if let Some(i) = self.policies.iter().position(|p| *p == entry) {
            return Ok(i as u8);
        }
        if !self.policies.iter().any(Option::is_none) {
            let mut live = [false; POLICY_SLOTS];
            live[0] = true;
            self.policy_of.iter().for_each(|&s| live[s as usize] = true);
            for (slot, live) in self.policies.iter_mut().zip(live) {
                if !live {
                    *slot = None;
                }
            }
        }
        let free = self
            .policies
            .iter()
            .position(Option::is_none)
            .ok_or(NumaError::Os {
                op: "mbind",
                errno: Errno::ENOMEM,
            })?;
        self.policies[free] = entry;
        Ok(free as u8)
    }

    /// The first virtual page of a live mapping `m`.
    fn first_page(&self, m: &Mapping) -> Result<usize, NumaError> {
        let addr = m.as_ptr() as usize;
        if !VIRT.contains(addr) || m.page_size() != PAGE {
            return Err(NumaError::ForeignMapping);
        }
        let first = (addr - VIRT.base()) / PAGE;
        self.maps
            .iter()
            .flatten()
            .find(|&&(f, n)| f == first && n == m.page_count())
            .map(|&(f, _)| f)
            .ok_or(NumaError::ForeignMapping)
    }
}

impl FirmwareMachine {
    /// The machine, once per process: it owns the static arenas.
    ///
    /// # Errors
    /// [`NumaError::InvalidConfig`] on a second call.
    pub fn take(
        topo: FixedTopology<NODES>,
        weights: Option<KernelWeights>,
    ) -> Result<Self, NumaError> {
        if TAKEN.swap(true, core::sync::atomic::Ordering::Relaxed) {
            return Err(NumaError::InvalidConfig {
                field: "FirmwareMachine",
                reason: "the static memory has one owner",
            });
        }
        let cpus = *topo.allowed_cpus();
        let mut tables = Tables {
            frames: Frames::new(),
            virt_used: [0; VPAGES / 64],
            pte: [0; VPAGES],
            policy_of: [0; VPAGES],
            policies: [const { None }; POLICY_SLOTS],
            maps: [None; MAX_MAPS],
        };
        // Slot 0: the policy a fresh mapping has, the default one.
        tables.intern(MemPolicy::Local, RegionOptions::default())?;
        Ok(FirmwareMachine {
            weights,
            cpu: Cell::new(cpus.first().unwrap_or(0)),
            affinity: Cell::new(cpus),
            apply_calls: Cell::new(0),
            map_calls: Cell::new(0),
            topo,
            t: RefCell::new(tables),
        })
    }

    /// `apply_policy` calls so far (how the core laid out a weighted interleave).
    pub fn apply_calls(&self) -> u32 {
        self.apply_calls.get()
    }

    /// `map` calls so far (whether a refused region got as far as mapping).
    pub fn map_calls(&self) -> u32 {
        self.map_calls.get()
    }

    /// Virtual pages in use by live mappings.
    pub fn mapped_pages(&self) -> u32 {
        self.t
            .borrow()
            .virt_used
            .iter()
            .map(|w| w.count_ones())
            .sum()
    }

    fn local_node(&self) -> NodeId {
        self.topo.cpu_node(self.cpu.get()).unwrap_or(NodeId::new(0))
    }

    /// Faults virtual page `vp` of the mapping starting at `first` in, if not present:
    /// the first node of the policy's allocation order with a free frame backs it.
    fn fault(&self, t: &mut Tables, first: usize, vp: usize) -> Result<(), NumaError> {
        if t.pte[vp] != 0 {
            return Ok(());
        }
        let slot = t.policy_of[vp] as usize;
        let (policy, opts) = t.policies[slot].as_ref().ok_or(NumaError::Os {
            op: "fault",
            errno: Errno::EFAULT,
        })?;
        let eff = policy.validate(opts, &self.topo)?;
        let ilx = interleave_index(vaddr(first), vaddr(vp), PAGE.trailing_zeros(), 0);
        let mut order = [NodeId::new(0); NODES];
        let k = allocation_order(
            policy,
            opts,
            &eff,
            &self.topo,
            self.local_node(),
            ilx,
            &mut order,
        );
        for &n in &order[..k] {
            if let Some(frame) = t.frames.take(n, vaddr(vp)) {
                t.pte[vp] = frame;
                return Ok(());
            }
        }
        let available = order[..k]
            .iter()
            .map(|&n| t.frames.free_on(n) * PAGE as u64)
            .sum();
        Err(NumaError::InsufficientMemory {
            requested: PAGE as u64,
            available,
        })
    }

    /// Gives `pages` of the mapping at `first` a policy; with `strict`, moves the present
    /// pages not on its nodes (a new frame first, then the old one is released).
    fn set_policy(
        &self,
        t: &mut Tables,
        first: usize,
        pages: PageRange,
        policy: MemPolicy,
        opts: RegionOptions,
        strict: bool,
    ) -> Result<(), NumaError> {
        let eff = policy.validate(&opts, &self.topo)?;
        let slot = t.intern(policy, opts)?;
        let range = first + pages.first..first + pages.first + pages.count;
        t.policy_of[range.clone()].fill(slot);
        if !strict {
            return Ok(());
        }
        for vp in range {
            let old = t.pte[vp];
            if old == 0 || memmap::node_of(old).is_some_and(|n| eff.contains(n)) {
                continue;
            }
            t.pte[vp] = 0;
            if let Err(e) = self.fault(t, first, vp) {
                t.pte[vp] = old;
                return Err(e);
            }
            t.frames.release(old);
        }
        Ok(())
    }
}

impl PlacementBackend for FirmwareMachine {
    type Topology = FixedTopology<NODES>;

    fn topology(&self) -> &Self::Topology {
        &self.topo
    }

    fn base_page_size(&self) -> usize {
        PAGE
    }

    fn free_memory(&self, node: NodeId, huge: HugePages) -> Result<u64, NumaError> {
        if !self.topo.nodes().contains(node) {
            return Err(NumaError::NodeNotFound(node));
        }
        Ok(match huge {
            HugePages::None | HugePages::Transparent => {
                self.t.borrow().frames.free_on(node) * PAGE as u64
            }
            HugePages::Explicit2M | HugePages::Explicit1G => 0,
        })
    }

    fn map(&self, len: usize, huge: HugePages) -> Result<Mapping, NumaError> {
        self.map_calls.set(self.map_calls.get() + 1);
        if huge.is_explicit() {
            return Err(NumaError::HugePagesUnavailable {
                page_size: huge.unit(PAGE),
            });
        }
        let mapped = round_to_unit(len, PAGE)?;
        let pages = mapped / PAGE;
        let mut t = self.t.borrow_mut();
        let no_room = NumaError::Os {
            op: "map",
            errno: Errno::ENOMEM,
        };
        let rec = t.maps.iter().position(Option::is_none).ok_or(no_room)?;
        // First fit in the virtual window.
        let mut run = 0;
        let mut start = None;
        for i in 0..VPAGES {
            run = if is_set(&t.virt_used, i) { 0 } else { run + 1 };
            if run == pages {
                start = Some(i + 1 - pages);
                break;
            }
        }
        let first = start.ok_or(no_room)?;
        for vp in first..first + pages {
            set(&mut t.virt_used, vp, true);
            t.policy_of[vp] = 0;
        }
        t.maps[rec] = Some((first, pages));
        let addr = vaddr(first) as *mut u8;
        // SAFETY: `addr..addr + mapped` is inside VIRT and was free, so nothing refers to
        // it; zeroing makes it fresh anonymous memory.
        unsafe { addr.write_bytes(0, mapped) };
        let addr = core::ptr::NonNull::new(addr).ok_or(no_room)?;
        // SAFETY: the pages stay reserved in `virt_used` until `unmap` gets this token;
        // PAGE divides `mapped`, and `len <= mapped`.
        Ok(unsafe { Mapping::from_raw_parts(addr, len, mapped, PAGE) })
    }

    unsafe fn apply_policy(
        &self,
        m: &Mapping,
        pages: PageRange,
        policy: &MemPolicy,
        opts: &RegionOptions,
        strict: bool,
    ) -> Result<(), NumaError> {
        self.apply_calls.set(self.apply_calls.get() + 1);
        m.range(pages)?;
        let eff = policy.validate(opts, &self.topo)?;
        // As the kernel: weighted interleave takes its weights from the machine's table.
        let (policy, opts) = match policy {
            MemPolicy::WeightedInterleave(_) => {
                let table = self.weights.ok_or(NumaError::Unsupported {
                    feature: "MPOL_WEIGHTED_INTERLEAVE",
                    since: "a weight table",
                })?;
                let mut w = NodeWeights::new();
                for n in eff.iter() {
                    w.set(n, table.weights.weight(n).max(1))?;
                }
                let mut o = *opts;
                o.node_mode = NodeMode::Default;
                (MemPolicy::WeightedInterleave(w), o)
            }
            p => (p.clone(), *opts),
        };
        let mut t = self.t.borrow_mut();
        let first = t.first_page(m)?;
        self.set_policy(&mut t, first, pages, policy, opts, strict)
    }

    unsafe fn prefault(
        &self,
        m: &Mapping,
        pages: PageRange,
        how: Prefault,
    ) -> Result<(), NumaError> {
        let (addr, _) = m.range(pages)?;
        if how == Prefault::None {
            return Ok(());
        }
        let mut t = self.t.borrow_mut();
        let first = t.first_page(m)?;
        for i in 0..pages.count {
            self.fault(&mut t, first, first + pages.first + i)?;
            if how == Prefault::Touch {
                let page = addr.wrapping_add(i * PAGE);
                // SAFETY: `page` is inside the caller's mapping (checked by `m.range`),
                // which the caller owns with no reference to it live (the trait's
                // contract); a fresh page holds 0, so writing 0 is the first touch
                // without changing what it holds.
                unsafe { page.write_volatile(0) };
            }
        }
        Ok(())
    }

    fn page_locations(
        &self,
        m: &Mapping,
        first: usize,
        out: &mut [PageLocation],
    ) -> Result<(), NumaError> {
        m.range(PageRange {
            first,
            count: out.len(),
        })?;
        let t = self.t.borrow();
        let start = t.first_page(m)?;
        for (i, o) in out.iter_mut().enumerate() {
            let vp = start + first + i;
            let frame = t.pte[vp];
            *o = match (frame, t.frames.owner(frame), memmap::node_of(frame)) {
                (0, _, _) => PageLocation::NotPresent,
                (_, Some(owner), Some(node)) if owner == vaddr(vp) => PageLocation::Node(node),
                _ => PageLocation::Error(Errno::EFAULT),
            };
        }
        Ok(())
    }

    unsafe fn migrate(&self, m: &Mapping, to: &NodeMask, mode: NodeMode) -> Result<(), NumaError> {
        let policy = MemPolicy::Bind(*to);
        let mut opts = RegionOptions::default();
        opts.node_mode = mode;
        let mut t = self.t.borrow_mut();
        let first = t.first_page(m)?;
        self.set_policy(&mut t, first, m.all_pages(), policy, opts, true)
    }

    unsafe fn unmap(&self, m: &Mapping) -> Result<(), NumaError> {
        let mut t = self.t.borrow_mut();
        let first = t.first_page(m)?;
        for vp in first..first + m.page_count() {
            let frame = core::mem::take(&mut t.pte[vp]);
            if frame != 0 {
                t.frames.release(frame);
            }
            t.policy_of[vp] = 0;
            set(&mut t.virt_used, vp, false);
        }
        if let Some(rec) = t
            .maps
            .iter_mut()
            .find(|r| r.is_some_and(|(f, _)| f == first))
        {
            *rec = None;
        }
        Ok(())
    }

    fn kernel_weights(&self) -> Result<Option<KernelWeights>, NumaError> {
        Ok(self.weights)
    }

    fn current_cpu(&self) -> Result<CpuLocation, NumaError> {
        let cpu = self.cpu.get();
        let node = self
            .topo
            .cpu_node(cpu)
            .ok_or(NumaError::InvalidCpu(cpu as u32))?;
        Ok(CpuLocation { cpu, node })
    }

    fn thread_affinity(&self) -> Result<CpuSet, NumaError> {
        Ok(self.affinity.get())
    }

    fn set_thread_affinity(&self, cpus: &CpuSet) -> Result<(), NumaError> {
        if let Some(bad) = cpus.out_of_range() {
            return Err(NumaError::InvalidCpu(bad));
        }
        if cpus.is_empty() {
            return Err(NumaError::EmptyCpuSet);
        }
        let usable = cpus.intersection(self.topo.allowed_cpus());
        let first = usable
            .first()
            .ok_or(NumaError::CpuNotAllowed(cpus.first().unwrap_or(0) as u32))?;
        if !usable.contains(self.cpu.get()) {
            self.cpu.set(first);
        }
        self.affinity.set(usable);
        Ok(())
    }
}
