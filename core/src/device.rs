//! Devices and the NUMA nodes they sit near: PCI addresses and classes, the kernel's
//! `numa_node` (where -1 means unknown, not node 0) and `local_cpulist`, and the names users
//! know (network interfaces, block devices) mapped to their PCI device. Pure: a backend fills
//! a [`DeviceTable`], this module answers lookups on it.

use core::fmt;

use crate::node::{NodeId, NodeMask};

/// A PCI function's address, `domain:bus:device.function` (`0000:3b:00.0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    domain: u32,
    bus: u8,
    device: u8,
    function: u8,
}

impl PciAddress {
    /// An address; `None` for a device number beyond 31 or a function beyond 7.
    pub const fn new(domain: u32, bus: u8, device: u8, function: u8) -> Option<Self> {
        if device > 0x1f || function > 7 {
            return None;
        }
        Some(PciAddress {
            domain,
            bus,
            device,
            function,
        })
    }

    /// The PCI domain (segment); above `0xffff` behind Intel VMD.
    pub const fn domain(self) -> u32 {
        self.domain
    }

    /// The bus number.
    pub const fn bus(self) -> u8 {
        self.bus
    }

    /// The device (slot) number, 0..=31.
    pub const fn device(self) -> u8 {
        self.device
    }

    /// The function number, 0..=7.
    pub const fn function(self) -> u8 {
        self.function
    }
}

/// The kernel's spelling: `0000:3b:00.0`.
impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl core::str::FromStr for PciAddress {
    type Err = crate::parse::ParseError;

    /// See [`crate::parse::parse_pci_address`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::parse::parse_pci_address(s)
    }
}

/// What a PCI device is, from the base class of its 24-bit class code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceClass {
    /// A network controller (base class `0x02`: Ethernet, InfiniBand, ...).
    Network,
    /// A mass-storage controller (base class `0x01`; NVMe is `0x010802`).
    Storage,
    /// A display controller or accelerator (base classes `0x03` and `0x12`, and the
    /// co-processor `0x0b40`): GPUs and their kin.
    Accelerator,
    /// Anything else (bridges, USB, audio, ...).
    Other,
}

impl DeviceClass {
    /// The class of a 24-bit PCI class code (`0x020000`: network).
    pub const fn from_code(code: u32) -> Self {
        match code >> 16 {
            0x02 => DeviceClass::Network,
            0x01 => DeviceClass::Storage,
            0x03 | 0x12 => DeviceClass::Accelerator,
            0x0b if (code >> 8) & 0xff == 0x40 => DeviceClass::Accelerator,
            _ => DeviceClass::Other,
        }
    }
}

impl fmt::Display for DeviceClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            DeviceClass::Network => "network",
            DeviceClass::Storage => "storage",
            DeviceClass::Accelerator => "accelerator",
            DeviceClass::Other => "other",
        })
    }
}

/// A block device's number, `major:minor` (what `stat` gives as `st_dev`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DevNumber {
    /// The major number (the driver).
    pub major: u32,
    /// The minor number (the device within it).
    pub minor: u32,
}

impl fmt::Display for DevNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// Which namespace a device name is in: it picks the sysfs directory errors name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// A PCI address, under `bus/pci/devices/`.
    Pci,
    /// A network interface, under `class/net/`.
    Network,
    /// A block device (disk) under `block/`, or a partition under `class/block/`.
    Block,
    /// A block device by number, under `dev/block/` (what `file:` forms look for).
    BlockNumber,
}

impl DeviceKind {
    /// The sysfs directory (relative to `/sys`) devices of this kind are listed in.
    pub const fn sysfs_dir(self) -> &'static str {
        match self {
            DeviceKind::Pci => "bus/pci/devices",
            DeviceKind::Network => "class/net",
            DeviceKind::Block => "block",
            DeviceKind::BlockNumber => "dev/block",
        }
    }
}

/// A device name kept inline (so errors stay `Copy` and need no allocation): the first
/// [`DeviceName::CAPACITY`] bytes of the name, cut at a character boundary. Every name
/// the kernel gives fits (interfaces 15 bytes, disks 31, PCI addresses 13).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceName {
    len: u8,
    bytes: [u8; DeviceName::CAPACITY],
}

impl DeviceName {
    /// Bytes kept.
    pub const CAPACITY: usize = 40;

    /// The name (its first [`DeviceName::CAPACITY`] bytes).
    pub fn new(name: &str) -> Self {
        let mut len = name.len().min(Self::CAPACITY);
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; Self::CAPACITY];
        bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
        DeviceName {
            len: len as u8,
            bytes,
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        // The bytes are a prefix of a `str` cut at a character boundary.
        core::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A device named in an error: its kind and name. Displays as its sysfs path,
/// `class/net/eth0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeviceRef {
    /// Which namespace the name is in.
    pub kind: DeviceKind,
    /// The name.
    pub name: DeviceName,
}

impl DeviceRef {
    /// A reference to `name` of `kind`.
    pub fn new(kind: DeviceKind, name: &str) -> Self {
        DeviceRef {
            kind,
            name: DeviceName::new(name),
        }
    }
}

impl fmt::Display for DeviceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.sysfs_dir(), self.name)
    }
}

/// Where a device sits, as the kernel tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Locality {
    /// Its `numa_node` names this node.
    Node(NodeId),
    /// Its `numa_node` is -1 (the firmware gave no proximity domain: a root-bus device in
    /// a VM, or a one-node machine) and its `local_cpulist` covers CPUs of these nodes:
    /// equally near all of them as far as the kernel knows. Not a node of its own.
    NearCpusOf(NodeMask),
    /// Nothing tells: not on PCI (a virtual interface, a loop device), or neither file
    /// says (no `numa_node`, no `local_cpulist` CPU on a known node).
    Unknown,
}

impl Locality {
    /// The node, when the kernel names one.
    pub fn node(&self) -> Option<NodeId> {
        match self {
            Locality::Node(n) => Some(*n),
            _ => None,
        }
    }

    /// The nodes a placement near the device may use: the named node, else the nodes
    /// `local_cpulist` covers; `None` when nothing tells.
    pub fn nodes(&self) -> Option<NodeMask> {
        match self {
            Locality::Node(n) => Some(NodeMask::single(*n)),
            Locality::NearCpusOf(m) => Some(*m),
            Locality::Unknown => None,
        }
    }
}

impl fmt::Display for Locality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Locality::Node(n) => write!(f, "node {n}"),
            Locality::NearCpusOf(m) => write!(f, "node unknown, near the CPUs of nodes {m}"),
            Locality::Unknown => f.write_str("node unknown"),
        }
    }
}

#[cfg(feature = "alloc")]
pub use table::*;

#[cfg(feature = "alloc")]
mod table {
    use alloc::string::String;
    use alloc::vec::Vec;

    use super::*;
    use crate::error::NumaError;
    use crate::node::CpuSet;
    use crate::parse::DeviceSpec;
    use crate::topology::TopologyInfo;

    /// One PCI function, as `bus/pci/devices/<address>/` describes it.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct PciDevice {
        /// Its address.
        pub address: PciAddress,
        /// Its 24-bit class code (`class`, `0x020000`).
        pub class_code: u32,
        /// Its `numa_node`: `None` for -1 (unknown) or a kernel without the file.
        pub numa_node: Option<NodeId>,
        /// Its `local_cpulist` (`None`: no such file).
        pub local_cpus: Option<CpuSet>,
    }

    impl PciDevice {
        /// What it is.
        pub fn class(&self) -> DeviceClass {
            DeviceClass::from_code(self.class_code)
        }

        /// An NVMe controller (class `0x010802`).
        pub fn is_nvme(&self) -> bool {
            self.class_code == 0x01_08_02
        }

        /// Where it sits on `topology`'s machine: `numa_node` when the kernel names a
        /// node, else the nodes whose CPUs `local_cpulist` covers.
        pub fn locality(&self, topology: &(impl TopologyInfo + ?Sized)) -> Locality {
            self.locality_by(|c| topology.cpu_node(c))
        }

        /// [`PciDevice::locality`] with `cpu_node` telling each CPU's node.
        pub fn locality_by(&self, cpu_node: impl Fn(usize) -> Option<NodeId>) -> Locality {
            if let Some(n) = self.numa_node {
                return Locality::Node(n);
            }
            let cpus = self.local_cpus.unwrap_or_default();
            let nodes: NodeMask = cpus.iter().filter_map(cpu_node).collect();
            if nodes.is_empty() {
                Locality::Unknown
            } else {
                Locality::NearCpusOf(nodes)
            }
        }
    }

    /// A network interface or block device and the PCI device it hangs from.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct NamedDevice {
        /// `eth0`, `nvme0n1`, `sda1`.
        pub name: String,
        /// The nearest PCI function above it in the device tree (an NVMe namespace's
        /// controller, a virtio device's PCI function, a USB NIC's host controller);
        /// `None` when it is not on PCI.
        pub pci: Option<PciAddress>,
        /// A block device's number (`None` for interfaces, or no `dev` file).
        pub number: Option<DevNumber>,
        /// For a partition, the disk holding it.
        pub disk: Option<String>,
    }

    /// Everything a backend found: PCI functions, interfaces, disks and partitions.
    /// Each list is sorted by address or name.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct DeviceTable {
        /// PCI functions, by address.
        pub pci: Vec<PciDevice>,
        /// Network interfaces, by name.
        pub net: Vec<NamedDevice>,
        /// Block devices (disks), by name.
        pub block: Vec<NamedDevice>,
        /// Partitions of those disks, by name.
        pub partitions: Vec<NamedDevice>,
    }

    impl DeviceTable {
        /// Sorts every list (a backend may fill them in any order).
        pub fn sort(&mut self) {
            self.pci.sort_by_key(|d| d.address);
            for list in [&mut self.net, &mut self.block, &mut self.partitions] {
                list.sort_by(|a, b| a.name.cmp(&b.name));
            }
        }

        /// The PCI function at `address`.
        pub fn pci_device(&self, address: PciAddress) -> Option<&PciDevice> {
            self.pci
                .binary_search_by_key(&address, |d| d.address)
                .ok()
                .map(|i| &self.pci[i])
        }

        /// The network interface `name`.
        pub fn interface(&self, name: &str) -> Option<&NamedDevice> {
            find(&self.net, name)
        }

        /// The disk or partition `name`.
        pub fn block_device(&self, name: &str) -> Option<&NamedDevice> {
            find(&self.block, name).or_else(|| find(&self.partitions, name))
        }

        /// The disk or partition with this number.
        pub fn block_by_number(&self, number: DevNumber) -> Option<&NamedDevice> {
            self.block
                .iter()
                .chain(&self.partitions)
                .find(|d| d.number == Some(number))
        }

        /// What `name` is: an interface, then a disk or partition, then a PCI address.
        /// `None`: no such device. `Some((kind, None))`: it exists but is not on PCI.
        pub fn lookup(&self, name: &str) -> Option<(DeviceKind, Option<&PciDevice>)> {
            let on_pci = |d: &NamedDevice| d.pci.and_then(|a| self.pci_device(a));
            if let Some(d) = self.interface(name) {
                return Some((DeviceKind::Network, on_pci(d)));
            }
            if let Some(d) = self.block_device(name) {
                return Some((DeviceKind::Block, on_pci(d)));
            }
            let address = name.parse().ok()?;
            self.pci_device(address).map(|d| (DeviceKind::Pci, Some(d)))
        }

        /// Where the device a numactl form names sits; `cpu_node` tells each CPU's node
        /// (`|c| topology.cpu_node(c)`). A `file:` form asks `stat` for the number of the
        /// block device holding the file (the backend's call), then looks that number up.
        ///
        /// # Errors
        /// [`NumaError::DeviceNotFound`] when no such device is listed;
        /// [`NumaError::DeviceLocalityUnknown`] when it is, but nothing tells its nodes;
        /// for `file:`, what `stat` returned.
        pub fn nodes_of(
            &self,
            spec: &DeviceSpec<'_>,
            cpu_node: impl Fn(usize) -> Option<NodeId>,
            stat: impl FnOnce(&str) -> Result<DevNumber, NumaError>,
        ) -> Result<NodeMask, NumaError> {
            let (kind, found) = match spec {
                DeviceSpec::NetDev(name) => (
                    DeviceRef::new(DeviceKind::Network, name),
                    self.interface(name).map(|d| d.pci),
                ),
                DeviceSpec::Block(name) => (
                    DeviceRef::new(DeviceKind::Block, name),
                    self.block_device(name).map(|d| d.pci),
                ),
                DeviceSpec::Pci(address) => {
                    let mut text = heapless::String::<16>::new();
                    let _ = fmt::write(&mut text, format_args!("{address}"));
                    (
                        DeviceRef::new(DeviceKind::Pci, &text),
                        self.pci_device(*address).map(|_| Some(*address)),
                    )
                }
                DeviceSpec::File(path) => return self.nodes_of_number(stat(path)?, cpu_node),
            };
            self.nodes_at(kind, found, cpu_node)
        }

        /// Where the block device numbered `number` sits.
        ///
        /// # Errors
        /// As [`DeviceTable::nodes_of`], naming `dev/block/<major>:<minor>`.
        pub fn nodes_of_number(
            &self,
            number: DevNumber,
            cpu_node: impl Fn(usize) -> Option<NodeId>,
        ) -> Result<NodeMask, NumaError> {
            let mut text = heapless::String::<24>::new();
            let _ = fmt::write(&mut text, format_args!("{number}"));
            let device = DeviceRef::new(DeviceKind::BlockNumber, &text);
            let found = self.block_by_number(number).map(|d| d.pci);
            self.nodes_at(device, found, cpu_node)
        }

        fn nodes_at(
            &self,
            device: DeviceRef,
            found: Option<Option<PciAddress>>,
            cpu_node: impl Fn(usize) -> Option<NodeId>,
        ) -> Result<NodeMask, NumaError> {
            let found = found.ok_or(NumaError::DeviceNotFound(device))?;
            found
                .and_then(|a| self.pci_device(a))
                .and_then(|d| d.locality_by(cpu_node).nodes())
                .ok_or(NumaError::DeviceLocalityUnknown(device))
        }
    }

    fn find<'a>(list: &'a [NamedDevice], name: &str) -> Option<&'a NamedDevice> {
        list.binary_search_by(|d| d.name.as_str().cmp(name))
            .ok()
            .map(|i| &list[i])
    }

    /// Anything that can list its devices: the Linux backend (sysfs), the simulator.
    pub trait DeviceSource {
        /// The devices now.
        ///
        /// # Errors
        /// The source's: for sysfs, [`NumaError::DeviceFile`] or [`NumaError::Sysfs`]
        /// naming the file that is unreadable or malformed.
        fn devices(&self) -> Result<DeviceTable, NumaError>;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn classes_from_codes() {
        assert_eq!(DeviceClass::from_code(0x020000), DeviceClass::Network);
        assert_eq!(DeviceClass::from_code(0x020700), DeviceClass::Network);
        assert_eq!(DeviceClass::from_code(0x010802), DeviceClass::Storage);
        assert_eq!(DeviceClass::from_code(0x030000), DeviceClass::Accelerator);
        assert_eq!(DeviceClass::from_code(0x120000), DeviceClass::Accelerator);
        assert_eq!(DeviceClass::from_code(0x0b4000), DeviceClass::Accelerator);
        assert_eq!(DeviceClass::from_code(0x0b0000), DeviceClass::Other);
        assert_eq!(DeviceClass::from_code(0x060400), DeviceClass::Other);
        assert_eq!(DeviceClass::from_code(0xffff00), DeviceClass::Other);
    }

    #[test]
    fn addresses_print_as_the_kernel_does() {
        let a = PciAddress::new(0, 0x3b, 0, 0).unwrap();
        assert_eq!(a.to_string(), "0000:3b:00.0");
        let a = PciAddress::new(0x10000, 1, 0x1f, 7).unwrap();
        assert_eq!(a.to_string(), "10000:01:1f.7");
        assert_eq!(PciAddress::new(0, 0, 0x20, 0), None);
        assert_eq!(PciAddress::new(0, 0, 0, 8), None);
    }

    #[test]
    fn names_are_cut_at_a_character_boundary() {
        let long = "é".repeat(30);
        let n = DeviceName::new(&long);
        assert_eq!(n.as_str().len(), DeviceName::CAPACITY);
        assert!(long.starts_with(n.as_str()));
        let n = DeviceName::new("a".repeat(39).as_str().to_string().as_str());
        assert_eq!(n.as_str().len(), 39);
        let odd = std::format!("a{long}");
        assert_eq!(DeviceName::new(&odd).as_str().len(), 39);
        let r = DeviceRef::new(DeviceKind::Network, "eth0");
        assert_eq!(r.to_string(), "class/net/eth0");
    }

    #[cfg(feature = "alloc")]
    mod table {
        use super::*;
        use crate::error::NumaError;
        use crate::parse::DeviceSpec;
        use std::string::String;
        use std::vec;

        /// Two nodes, CPUs 0-1 on node 0 and 2-3 on node 1.
        fn topo(cpu: usize) -> Option<NodeId> {
            (cpu < 4).then(|| NodeId::new(cpu as u32 / 2))
        }

        fn named(name: &str, pci: Option<PciAddress>, number: Option<(u32, u32)>) -> NamedDevice {
            NamedDevice {
                name: String::from(name),
                pci,
                number: number.map(|(major, minor)| DevNumber { major, minor }),
                disk: None,
            }
        }

        fn no_stat(path: &str) -> Result<DevNumber, NumaError> {
            panic!("stat({path}) for a form that names no file")
        }

        fn table() -> DeviceTable {
            let a = |bus| PciAddress::new(0, bus, 0, 0);
            let dev = |bus, code, node: Option<u32>, cpus: &str| PciDevice {
                address: a(bus).unwrap(),
                class_code: code,
                numa_node: node.map(NodeId::new),
                local_cpus: crate::parse::parse_list(cpus).ok(),
            };
            let mut t = DeviceTable {
                pci: vec![
                    dev(0x3b, 0x020000, Some(1), "2-3"),
                    dev(0x01, 0x010802, None, "0-1"),
                    dev(0x02, 0x030000, None, ""),
                ],
                net: vec![named("eth0", a(0x3b), None), named("lo", None, None)],
                block: vec![named("nvme0n1", a(0x01), Some((259, 0)))],
                partitions: vec![named("nvme0n1p1", a(0x01), Some((259, 1)))],
            };
            t.sort();
            t
        }

        #[test]
        fn names_resolve_through_their_pci_device() {
            let t = table();
            let one = NodeMask::single(NodeId::new(1));
            assert_eq!(
                t.nodes_of(&DeviceSpec::NetDev("eth0"), topo, no_stat),
                Ok(one)
            );
            let pci = DeviceSpec::Pci(PciAddress::new(0, 0x3b, 0, 0).unwrap());
            assert_eq!(t.nodes_of(&pci, topo, no_stat), Ok(one));
            // numa_node -1: the nodes local_cpulist covers, never node 0 by default.
            let nvme = t.nodes_of(&DeviceSpec::Block("nvme0n1p1"), topo, no_stat);
            assert_eq!(nvme, Ok(NodeMask::single(NodeId::new(0))));
            let d = t.lookup("nvme0n1").unwrap().1.unwrap();
            assert_eq!(d.locality_by(topo), Locality::NearCpusOf(nvme.unwrap()));
            assert_eq!(d.locality_by(topo).node(), None);
            assert!(d.is_nvme());
            let p1 = DevNumber {
                major: 259,
                minor: 1,
            };
            assert_eq!(t.nodes_of_number(p1, topo), nvme);
            let file = DeviceSpec::File("/data/x");
            let stat = |p: &str| if p == "/data/x" { Ok(p1) } else { no_stat(p) };
            assert_eq!(t.nodes_of(&file, topo, stat), nvme);
            let e = NumaError::PermissionDenied { op: "stat" };
            assert_eq!(t.nodes_of(&file, topo, |_| Err(e)), Err(e));
        }

        #[test]
        fn unknown_names_and_unknown_nodes_are_told_apart() {
            let t = table();
            let lo = t.nodes_of(&DeviceSpec::NetDev("lo"), topo, no_stat);
            let r = DeviceRef::new(DeviceKind::Network, "lo");
            assert_eq!(lo, Err(NumaError::DeviceLocalityUnknown(r)));
            let eth9 = t.nodes_of(&DeviceSpec::NetDev("eth9"), topo, no_stat);
            let r = DeviceRef::new(DeviceKind::Network, "eth9");
            assert_eq!(eth9, Err(NumaError::DeviceNotFound(r)));
            // A display controller with -1 and an empty local_cpulist: unknown.
            let gpu = DeviceSpec::Pci(PciAddress::new(0, 2, 0, 0).unwrap());
            let r = DeviceRef::new(DeviceKind::Pci, "0000:02:00.0");
            assert_eq!(
                t.nodes_of(&gpu, topo, no_stat),
                Err(NumaError::DeviceLocalityUnknown(r))
            );
            let absent = DevNumber { major: 8, minor: 0 };
            let r = DeviceRef::new(DeviceKind::BlockNumber, "8:0");
            assert_eq!(
                t.nodes_of_number(absent, topo),
                Err(NumaError::DeviceNotFound(r))
            );
            assert_eq!(t.lookup("0000:3b:00.0").unwrap().0, DeviceKind::Pci);
            assert_eq!(t.lookup("lo"), Some((DeviceKind::Network, None)));
            assert_eq!(t.lookup("sda"), None);
        }
    }
}
