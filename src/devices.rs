//! `DeviceMap`: the NUMA node each PCI device, network interface and disk sits near, read
//! from the kernel's sysfs (live or captured) or a simulated machine; and numactl's device
//! forms (`netdev:eth0`, `block:nvme0n1`, `pci:0000:3b:00.0`, `file:PATH`) as node masks.

use core::fmt;

use numaperf_core::parse::{parse_device_spec, parse_node_spec};
use numaperf_core::{
    CpuSet, DevNumber, DeviceClass, DeviceSource, DeviceTable, Locality, NamedDevice, NodeId,
    NodeMask, NumaError, PciAddress, PciDevice, PlacementBackend, TopologyInfo,
};

/// Which node each device sits near.
///
/// Unlike a map read from `/sys/class/net` and `/sys/block` alone, this one starts from
/// the PCI functions (`/sys/bus/pci/devices`: class, `numa_node`, `local_cpulist`), so
/// GPUs and NICs without a driver are in it too, and maps every interface and disk
/// (partitions included, NVMe namespaces through their controller) to the PCI function
/// above it. A `numa_node` of -1 is *unknown*, never node 0: [`DeviceMap::node_of`] is
/// then `None` and [`DeviceMap::locality_of`] tells the nodes whose CPUs the device's
/// `local_cpulist` covers ([`Locality::NearCpusOf`]).
///
/// ```
/// use numaperf::{DeviceMap, NodeId};
/// use numaperf_sim::{SimDevice, SimMachine};
/// let sim = SimMachine::builder()
///     .node(2, 1 << 30)
///     .node(2, 1 << 30)
///     .device(SimDevice::network("eth0", 1))
///     .build()?;
/// let devices = DeviceMap::of(&sim)?;
/// assert_eq!(devices.node_of("eth0"), Some(NodeId::new(1)));
/// assert_eq!(devices.nodes_for("netdev:eth0")?.first(), Some(NodeId::new(1)));
/// # Ok::<(), numaperf::NumaError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceMap {
    table: DeviceTable,
    /// `table.pci[i]`'s locality.
    localities: Vec<Locality>,
    /// The nodes a numactl node list may name (the process's allowed nodes).
    available: NodeMask,
    /// Each node's CPUs, for the nodes a `local_cpulist` covers.
    node_cpus: Vec<(NodeId, CpuSet)>,
}

impl DeviceMap {
    /// This machine's devices now: on Linux `/sys` through the Linux backend, their
    /// nodes on the backend's topology. Where there is no Linux backend (or with the
    /// `portable` feature) no device is known: the map is empty.
    ///
    /// # Errors
    /// [`NumaError::DeviceFile`] naming the device and file that is unreadable or
    /// malformed, [`NumaError::Sysfs`] for a listing directory that cannot be read, and
    /// the backend's errors reading the topology.
    pub fn discover() -> Result<Self, NumaError> {
        let backend = crate::DefaultBackend::shared()?;
        #[cfg(all(target_os = "linux", not(feature = "portable")))]
        {
            Self::of(&backend)
        }
        #[cfg(any(not(target_os = "linux"), feature = "portable"))]
        {
            Ok(Self::from_table(DeviceTable::default(), backend.topology()))
        }
    }

    /// The devices of a captured sysfs tree: `root` is laid out as `/sys`, with its node
    /// tree at `root/devices/system/node` (what `numaperf_sim::SimMachine` writes, or a
    /// copy of a machine's `/sys` with relative links).
    ///
    /// # Errors
    /// As [`DeviceMap::discover`], and `numaperf_linux::read_topology`'s errors for the
    /// node tree.
    #[cfg(target_os = "linux")]
    pub fn from_sysfs(root: impl AsRef<std::path::Path>) -> Result<Self, NumaError> {
        let root = root.as_ref();
        let topology = numaperf_linux::read_topology(root.join("devices/system/node"))?;
        let table = numaperf_linux::read_devices(root)?;
        Ok(Self::from_table(table, &topology))
    }

    /// The devices a backend lists (the Linux backend's `/sys`, a simulator's attached
    /// devices), their nodes on its topology.
    ///
    /// # Errors
    /// The backend's errors listing its devices.
    pub fn of<B: DeviceSource + PlacementBackend + ?Sized>(backend: &B) -> Result<Self, NumaError> {
        Ok(Self::from_table(backend.devices()?, backend.topology()))
    }

    /// A map of `table`'s devices on `topology`'s machine.
    pub fn from_table(table: DeviceTable, topology: &(impl TopologyInfo + ?Sized)) -> Self {
        let localities = table.pci.iter().map(|d| d.locality(topology)).collect();
        let node_cpus = topology
            .nodes()
            .iter()
            .filter_map(|n| Some((n, *topology.node_cpus(n)?)))
            .collect();
        DeviceMap {
            table,
            localities,
            available: *topology.allowed_nodes(),
            node_cpus,
        }
    }

    /// The node the kernel names for `name`: a network interface (`eth0`), a disk or
    /// partition (`nvme0n1`, `sda1`), or a PCI address (`0000:3b:00.0`). `None` when there
    /// is no such device, when it is not on PCI, or when its `numa_node` is -1 (see
    /// [`DeviceMap::locality_of`] for what is known then).
    pub fn node_of(&self, name: &str) -> Option<NodeId> {
        self.locality_of(name)?.node()
    }

    /// Where `name` sits (as [`DeviceMap::node_of`] names it); `None`: no such device.
    pub fn locality_of(&self, name: &str) -> Option<Locality> {
        let (_, pci) = self.table.lookup(name)?;
        Some(pci.map_or(Locality::Unknown, |d| self.locality(d.address)))
    }

    /// The PCI function `name` hangs from (or is, for an address).
    pub fn pci_device_of(&self, name: &str) -> Option<&PciDevice> {
        self.table.lookup(name)?.1
    }

    /// Every PCI function with its locality, by address.
    pub fn pci_devices(&self) -> impl Iterator<Item = (&PciDevice, Locality)> + '_ {
        self.table.pci.iter().zip(self.localities.iter().copied())
    }

    /// The PCI functions of one class (network controllers, storage, accelerators).
    pub fn pci_devices_of_class(
        &self,
        class: DeviceClass,
    ) -> impl Iterator<Item = (&PciDevice, Locality)> + '_ {
        self.pci_devices().filter(move |(d, _)| d.class() == class)
    }

    /// The network interfaces, by name.
    pub fn interfaces(&self) -> &[NamedDevice] {
        &self.table.net
    }

    /// The disks, by name (their partitions: [`DeviceMap::table`]).
    pub fn block_devices(&self) -> &[NamedDevice] {
        &self.table.block
    }

    /// The names (interfaces, disks) on the PCI function at `address`.
    pub fn names_on(&self, address: PciAddress) -> impl Iterator<Item = &str> + '_ {
        self.table
            .net
            .iter()
            .chain(&self.table.block)
            .filter(move |d| d.pci == Some(address))
            .map(|d| d.name.as_str())
    }

    /// Everything that was read.
    pub fn table(&self) -> &DeviceTable {
        &self.table
    }

    /// Nodes from numactl's syntax: a node list (`"0-3,!2"`, `"all"`, within the
    /// process's allowed nodes) or one device form standing for the nodes near a device:
    /// `netdev:eth0`, `block:nvme0n1`, `pci:0000:3b:00.0`, or `file:PATH` (the disk
    /// holding `PATH`'s filesystem, or `PATH` itself when it is a block device node; Linux
    /// only). A device whose `numa_node` is -1 stands for the nodes its `local_cpulist`
    /// covers.
    ///
    /// # Errors
    /// [`NumaError::Parse`] for malformed text (an unknown `word:` form, a bad name or
    /// PCI address, a bad node list); [`NumaError::DeviceNotFound`] for a device that is
    /// not in the map; [`NumaError::DeviceLocalityUnknown`] for one whose node nothing
    /// tells; for `file:`, what `stat` returned (elsewhere than Linux:
    /// [`NumaError::Unsupported`]).
    pub fn nodes_for(&self, spec: &str) -> Result<NodeMask, NumaError> {
        match parse_device_spec(spec)? {
            Some(device) => {
                self.table
                    .nodes_of(&device, |cpu| self.cpu_node(cpu), file_device_number)
            }
            None => Ok(parse_node_spec(spec, &self.available)?),
        }
    }

    fn locality(&self, address: PciAddress) -> Locality {
        self.table
            .pci
            .binary_search_by_key(&address, |d| d.address)
            .map_or(Locality::Unknown, |i| self.localities[i])
    }

    fn cpu_node(&self, cpu: usize) -> Option<NodeId> {
        self.node_cpus
            .iter()
            .find(|(_, cpus)| cpus.contains(cpu))
            .map(|&(n, _)| n)
    }
}

#[cfg(target_os = "linux")]
fn file_device_number(path: &str) -> Result<DevNumber, NumaError> {
    numaperf_linux::file_device_number(path)
}

#[cfg(not(target_os = "linux"))]
fn file_device_number(_: &str) -> Result<DevNumber, NumaError> {
    Err(NumaError::Unsupported {
        feature: "file: device forms",
        since: "Linux",
    })
}

/// One line per PCI function: address, class and code, locality, and its names.
impl fmt::Display for DeviceMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (d, locality) in self.pci_devices() {
            write!(
                f,
                "{} {:<11} {:#08x}  {locality}",
                d.address,
                d.class(),
                d.class_code
            )?;
            let names: Vec<&str> = self.names_on(d.address).collect();
            if !names.is_empty() {
                write!(f, "  [{}]", names.join(", "))?;
            }
            writeln!(f)?;
        }
        let off_pci: Vec<&str> = self
            .table
            .net
            .iter()
            .chain(&self.table.block)
            .filter(|d| d.pci.is_none())
            .map(|d| d.name.as_str())
            .collect();
        if !off_pci.is_empty() {
            writeln!(f, "not on PCI (node unknown): {}", off_pci.join(", "))?;
        }
        Ok(())
    }
}
