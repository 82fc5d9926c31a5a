//! Devices attached to simulated nodes: PCI functions with a class, a node (or the
//! kernel's -1) and local CPUs, with network interfaces and disks on them. The machine
//! lists them as a `DeviceTable` and writes them as a sysfs device tree that the Linux
//! backend's reader loads.

#[cfg(unix)]
use std::io;
use std::path::Path;

use numaperf_core::device_sysfs::devices_from_sysfs;
use numaperf_core::sysfs_dir::SysfsDir;
use numaperf_core::{
    CpuSet, DevNumber, DeviceSource, DeviceTable, NamedDevice, NodeId, NumaError, OwnedTopology,
    PciAddress, PciDevice, TopologyInfo,
};

use crate::build::SimBuilder;
use crate::machine::SimMachine;

/// A PCI function of a simulated machine, for [`SimBuilder::device`].
///
/// ```
/// use numaperf_sim::{SimDevice, SimMachine};
/// let sim = SimMachine::builder()
///     .node(2, 1 << 30)
///     .node(2, 1 << 30)
///     .device(SimDevice::network("eth0", 1))
///     .device(SimDevice::nvme("nvme0n1", 0).node_unknown())
///     .build()?;
/// # Ok::<(), numaperf_core::NumaError>(())
/// ```
#[derive(Clone, Debug)]
pub struct SimDevice {
    address: Option<PciAddress>,
    class_code: u32,
    node: NodeId,
    known: bool,
    local_cpus: Option<CpuSet>,
    interfaces: Vec<String>,
    disks: Vec<String>,
}

impl SimDevice {
    /// A PCI function of class `class_code` (24 bits, `0x020000`) on `node`, at the next
    /// free address (`0000:<bus>:00.0`, buses from 1) unless [`SimDevice::at`] says.
    pub fn pci(class_code: u32, node: u32) -> Self {
        SimDevice {
            address: None,
            class_code: class_code & 0xff_ffff,
            node: NodeId::new(node),
            known: true,
            local_cpus: None,
            interfaces: Vec::new(),
            disks: Vec::new(),
        }
    }

    /// An Ethernet controller (`0x020000`) with interface `name`.
    pub fn network(name: &str, node: u32) -> Self {
        Self::pci(0x02_00_00, node).interface(name)
    }

    /// An NVMe controller (`0x010802`) with namespace `name` (`nvme0n1`).
    pub fn nvme(name: &str, node: u32) -> Self {
        Self::pci(0x01_08_02, node).disk(name)
    }

    /// A display controller (`0x030000`), a GPU.
    pub fn gpu(node: u32) -> Self {
        Self::pci(0x03_00_00, node)
    }

    /// At this address.
    pub fn at(mut self, address: PciAddress) -> Self {
        self.address = Some(address);
        self
    }

    /// The kernel does not know its node: `numa_node` is -1, as for a root-bus device in
    /// a VM. Its `local_cpulist` still says the node's CPUs (or what
    /// [`SimDevice::local_cpus`] sets).
    pub fn node_unknown(mut self) -> Self {
        self.known = false;
        self
    }

    /// Its `local_cpulist` (default: its node's CPUs).
    pub fn local_cpus(mut self, cpus: CpuSet) -> Self {
        self.local_cpus = Some(cpus);
        self
    }

    /// One more network interface on it.
    pub fn interface(mut self, name: &str) -> Self {
        self.interfaces.push(name.to_owned());
        self
    }

    /// One more disk on it (an NVMe namespace, or a disk behind a storage controller).
    pub fn disk(mut self, name: &str) -> Self {
        self.disks.push(name.to_owned());
        self
    }
}

impl SimBuilder {
    /// Attaches a PCI device to the machine (see [`SimDevice`]). [`SimBuilder::build`]
    /// refuses a device on a node the machine lacks ([`NumaError::NodeNotFound`]) and
    /// two devices with one address, or one interface or disk name
    /// ([`NumaError::InvalidTopology`]).
    pub fn device(mut self, device: SimDevice) -> Self {
        self.devices.push(device);
        self
    }
}

/// The device table of `devices` on a machine of `topo`.
pub(crate) fn device_table(
    devices: &[SimDevice],
    topo: &OwnedTopology,
) -> Result<DeviceTable, NumaError> {
    let all_cpus = topo
        .nodes()
        .iter()
        .filter_map(|n| topo.node_cpus(n))
        .fold(CpuSet::new(), |a, c| a.union(c));
    let mut table = DeviceTable::default();
    let mut next_bus = 1u16;
    let (mut nvme, mut other_disks) = (0, 0);
    for d in devices {
        let node = d.node;
        let cpus = topo.node_cpus(node).ok_or(NumaError::NodeNotFound(node))?;
        let address = match d.address {
            Some(a) => a,
            None => loop {
                let too_many = NumaError::InvalidTopology("more than 255 simulated buses");
                let bus = u8::try_from(next_bus).map_err(|_| too_many)?;
                next_bus += 1;
                let a = PciAddress::new(0, bus, 0, 0).ok_or(too_many)?;
                if !devices.iter().any(|o| o.address == Some(a)) {
                    break a;
                }
            },
        };
        let local_cpus = d
            .local_cpus
            .unwrap_or(if d.known { *cpus } else { all_cpus });
        table.pci.push(PciDevice {
            address,
            class_code: d.class_code,
            numa_node: d.known.then_some(node),
            local_cpus: Some(local_cpus),
        });
        for name in &d.interfaces {
            table.net.push(named(name, address, None));
        }
        for name in &d.disks {
            // Linux's numbers: NVMe namespaces are 259:n, SCSI disks 8:16n.
            let number = if d.class_code == 0x01_08_02 {
                nvme += 1;
                DevNumber {
                    major: 259,
                    minor: nvme - 1,
                }
            } else {
                other_disks += 1;
                DevNumber {
                    major: 8,
                    minor: 16 * (other_disks - 1),
                }
            };
            table.block.push(named(name, address, Some(number)));
        }
    }
    table.sort();
    let dup = |names: Vec<&str>| names.windows(2).any(|w| w[0] == w[1]);
    if table.pci.windows(2).any(|w| w[0].address == w[1].address)
        || dup(table.net.iter().map(|d| d.name.as_str()).collect())
        || dup(table.block.iter().map(|d| d.name.as_str()).collect())
    {
        return Err(NumaError::InvalidTopology(
            "two simulated devices share an address, interface or disk name",
        ));
    }
    Ok(table)
}

fn named(name: &str, pci: PciAddress, number: Option<DevNumber>) -> NamedDevice {
    NamedDevice {
        name: name.to_owned(),
        pci: Some(pci),
        number,
        disk: None,
    }
}

/// The devices attached with [`SimBuilder::device`] (none for a machine from a spec or
/// a captured node tree).
impl DeviceSource for SimMachine {
    fn devices(&self) -> Result<DeviceTable, NumaError> {
        Ok(self.devices.clone())
    }
}

impl SimMachine {
    /// Writes this machine's devices under `root` as the kernel lays them out in `/sys`,
    /// with relative links, so `numaperf_linux::read_devices(root)` reads them back:
    /// `devices/pci<domain>:<bus>/<address>/{class,numa_node,local_cpulist}` and
    /// `bus/pci/devices/<address>` linking there; interfaces at `<address>/net/<name>`
    /// with `class/net/<name>` linking there; NVMe namespaces at
    /// `<address>/nvme/nvme<k>/<name>` (other disks at `<address>/block/<name>`) with
    /// their `dev`, linked from `block/<name>` and `class/block/<name>`.
    ///
    /// # Errors
    /// The [`io::Error`] of the first directory, file or link that could not be made.
    #[cfg(unix)]
    pub fn write_sysfs_devices(&self, root: impl AsRef<Path>) -> io::Result<()> {
        use std::fs;
        use std::os::unix::fs::symlink;
        let root = root.as_ref();
        let link = |target: &str, at: &str| -> io::Result<()> {
            let at = root.join(at);
            fs::create_dir_all(at.parent().unwrap_or(root))?;
            match fs::remove_file(&at) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            symlink(target, at)
        };
        for dir in ["bus/pci/devices", "class/net", "block", "class/block"] {
            fs::create_dir_all(root.join(dir))?;
        }
        for (k, d) in self.devices.pci.iter().enumerate() {
            let a = d.address;
            let dir = format!("devices/pci{:04x}:{:02x}/{a}", a.domain(), a.bus());
            fs::create_dir_all(root.join(&dir))?;
            fs::write(
                root.join(&dir).join("class"),
                format!("{:#08x}\n", d.class_code),
            )?;
            let node = d.numa_node.map_or(-1, |n| i64::from(n.get()));
            fs::write(root.join(&dir).join("numa_node"), format!("{node}\n"))?;
            let cpus = d.local_cpus.unwrap_or_default();
            fs::write(root.join(&dir).join("local_cpulist"), format!("{cpus}\n"))?;
            link(&format!("../../../{dir}"), &format!("bus/pci/devices/{a}"))?;
            for i in self.devices.net.iter().filter(|i| i.pci == Some(a)) {
                let at = format!("{dir}/net/{}", i.name);
                fs::create_dir_all(root.join(&at))?;
                link(&format!("../../../{a}"), &format!("{at}/device"))?;
                link(&format!("../../{at}"), &format!("class/net/{}", i.name))?;
            }
            for b in self.devices.block.iter().filter(|b| b.pci == Some(a)) {
                // `device` names the controller, as the kernel's does.
                let (at, device) = if d.is_nvme() {
                    let at = format!("{dir}/nvme/nvme{k}/{}", b.name);
                    (at, format!("../../nvme{k}"))
                } else {
                    (format!("{dir}/block/{}", b.name), format!("../../../{a}"))
                };
                fs::create_dir_all(root.join(&at))?;
                link(&device, &format!("{at}/device"))?;
                if let Some(n) = b.number {
                    fs::write(root.join(&at).join("dev"), format!("{n}\n"))?;
                }
                link(&format!("../{at}"), &format!("block/{}", b.name))?;
                link(&format!("../../{at}"), &format!("class/block/{}", b.name))?;
            }
        }
        Ok(())
    }
}

impl SimMachine {
    /// Writes this machine as a `/sys`-shaped tree under `root`: its node tree at
    /// `root/devices/system/node` ([`SimMachine::write_sysfs_tree`]) and its devices
    /// ([`SimMachine::write_sysfs_devices`]). [`SimMachine::from_sysfs`] and the Linux
    /// backend's readers load it back.
    ///
    /// # Errors
    /// The [`io::Error`] of the first directory, file or link that could not be made.
    #[cfg(unix)]
    pub fn write_sysfs(&self, root: impl AsRef<Path>) -> io::Result<()> {
        let root = root.as_ref();
        self.write_sysfs_tree(root.join("devices/system/node"))?;
        self.write_sysfs_devices(root)
    }

    /// Replays a `/sys`-shaped capture: the node tree at `root/devices/system/node` (as
    /// [`SimMachine::from_sysfs_dir`] reads it) with the devices under `root`, read by
    /// the strict device reader the Linux backend uses.
    ///
    /// # Errors
    /// As [`SimMachine::from_sysfs_dir`]; `NumaError::DeviceFile` naming the device and
    /// file that is unreadable or malformed, `NumaError::Sysfs` for a listing directory
    /// that cannot be read (see `numaperf_core::device_sysfs::devices_from_sysfs`).
    pub fn from_sysfs(root: impl AsRef<Path>) -> Result<Self, NumaError> {
        let root = root.as_ref();
        let mut machine = Self::from_sysfs_dir(root.join("devices/system/node"))?;
        let mut tree = SysfsDir::open(root)
            .map_err(|p| numaperf_core::SysfsFile::root("bus/pci/devices").error(p))?;
        machine.devices = devices_from_sysfs(&mut tree)?;
        Ok(machine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_nodes() -> SimBuilder {
        SimMachine::builder().node(2, 1 << 30).node(2, 1 << 30)
    }

    #[test]
    fn devices_sit_on_their_nodes() {
        let sim = two_nodes()
            .device(SimDevice::network("eth0", 1))
            .device(SimDevice::nvme("nvme0n1", 0).node_unknown())
            .device(SimDevice::gpu(1).at(PciAddress::new(0, 1, 0, 0).unwrap()))
            .build()
            .unwrap();
        let t = sim.devices().unwrap();
        // The GPU took bus 1: the NIC and the NVMe got 2 and 3.
        let eth0 = t.interface("eth0").unwrap().pci.unwrap();
        assert_eq!(eth0, PciAddress::new(0, 2, 0, 0).unwrap());
        assert_eq!(t.pci_device(eth0).unwrap().numa_node, Some(NodeId::new(1)));
        let nvme = t.pci_device(t.block_device("nvme0n1").unwrap().pci.unwrap());
        let nvme = nvme.unwrap();
        assert_eq!(nvme.numa_node, None);
        assert_eq!(nvme.local_cpus.unwrap().count(), 4);
        let n = t.block_device("nvme0n1").unwrap().number.unwrap();
        assert_eq!((n.major, n.minor), (259, 0));
    }

    #[test]
    fn bad_devices_are_refused() {
        let r = two_nodes().device(SimDevice::network("eth0", 2)).build();
        assert_eq!(r.err(), Some(NumaError::NodeNotFound(NodeId::new(2))));
        let r = two_nodes()
            .device(SimDevice::network("eth0", 0))
            .device(SimDevice::network("eth0", 1))
            .build();
        assert!(matches!(r, Err(NumaError::InvalidTopology(_))));
        let a = PciAddress::new(0, 5, 0, 0).unwrap();
        let r = two_nodes()
            .device(SimDevice::gpu(0).at(a))
            .device(SimDevice::gpu(1).at(a))
            .build();
        assert!(matches!(r, Err(NumaError::InvalidTopology(_))));
        assert_eq!(
            SimMachine::from_spec("1 nodes x 1 cpus x 64 MiB")
                .unwrap()
                .devices(),
            Ok(DeviceTable::default())
        );
    }
}
