//! Builds a [`DeviceTable`] from a sysfs tree (`/sys` or a captured copy) read through the
//! caller's [`SysfsTree`]: PCI functions from `bus/pci/devices`, network interfaces from
//! `class/net`, disks from `block`, their partitions from `class/block`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::device::{DeviceKind, DeviceRef, DeviceTable, NamedDevice, PciAddress, PciDevice};
use crate::error::{FileProblem, NumaError, SysfsFile};
use crate::parse::{parse_dev_number, parse_list, parse_numa_node, parse_pci_address};
use crate::parse::{parse_pci_class, ParseError};

/// A sysfs tree as the device reader sees it. Paths are relative to the tree's root
/// (`bus/pci/devices`, `class/net/eth0`).
pub trait SysfsTree {
    /// The text of a file.
    ///
    /// # Errors
    /// [`FileProblem::Missing`], [`FileProblem::Unreadable`] or [`FileProblem::NotText`]
    /// when it cannot be had.
    fn read(&mut self, path: &str) -> Result<String, FileProblem>;
    /// The names in a directory, in any order, without `.` and `..`.
    ///
    /// # Errors
    /// [`FileProblem::Missing`] when there is no such directory, else what kept it
    /// from being read.
    fn list(&mut self, dir: &str) -> Result<Vec<String>, FileProblem>;
    /// The path with every symbolic link followed, relative to the root
    /// (`devices/pci0000:00/0000:00:03.0/net/eth0`).
    ///
    /// # Errors
    /// [`FileProblem::Missing`] for a path or link target that does not exist,
    /// [`FileProblem::Inconsistent`] for a link that leads out of the tree.
    fn resolve(&mut self, path: &str) -> Result<String, FileProblem>;
}

/// Reads the devices of a sysfs tree, strictly: a file that is there but unreadable or
/// malformed is an error naming it. What a kernel may lack is no error: no
/// `bus/pci/devices` (no PCI), no `class/net`, `block` or `class/block`, a device without
/// `numa_node` (a kernel without NUMA) or `local_cpulist`, a disk without `dev`.
///
/// An interface or block device belongs to the nearest PCI function above it in the
/// device tree: the last `DDDD:BB:SS.F` component of its resolved sysfs path (an NVMe
/// namespace's controller, the PCI function under a virtio device, a USB NIC's host
/// controller). A multipath NVMe namespace (under `devices/virtual/nvme-subsystem`)
/// belongs to the controller of its first path (`block/<name>/multipath/*`).
///
/// # Errors
/// [`NumaError::DeviceFile`] naming the device and file that is unreadable, not text or
/// malformed (a `class` that is not `0x` and six hex digits, a `numa_node` that is
/// neither -1 nor a node id, a `local_cpulist` or `dev` that does not parse), an entry of
/// `bus/pci/devices` that is not a PCI address, or a device whose PCI function is not in
/// `bus/pci/devices` ([`FileProblem::Inconsistent`]); [`NumaError::Sysfs`] naming a
/// listing directory that exists but cannot be read.
pub fn devices_from_sysfs(tree: &mut impl SysfsTree) -> Result<DeviceTable, NumaError> {
    let mut table = DeviceTable::default();
    for name in listing(tree, DeviceKind::Pci.sysfs_dir())? {
        table.pci.push(pci_device(tree, &name)?);
    }
    table.sort();
    for name in listing(tree, DeviceKind::Network.sysfs_dir())? {
        let device = DeviceRef::new(DeviceKind::Network, &name);
        let path = resolve(tree, device, &format!("class/net/{name}"))?;
        let pci = on_pci(&table, device, &path)?;
        table.net.push(NamedDevice {
            name,
            pci,
            number: None,
            disk: None,
        });
    }
    let disks = listing(tree, DeviceKind::Block.sysfs_dir())?;
    for name in &disks {
        let device = DeviceRef::new(DeviceKind::Block, name);
        let mut path = resolve(tree, device, &format!("block/{name}"))?;
        if last_pci_component(&path).is_none() {
            // A multipath namespace: its first path's controller.
            if let Some(first) = multipath_first(tree, name) {
                path = resolve(tree, device, &format!("block/{name}/multipath/{first}"))?;
            }
        }
        let pci = on_pci(&table, device, &path)?;
        let number = dev_number(tree, device, &format!("block/{name}/dev"))?;
        table.block.push(NamedDevice {
            name: name.clone(),
            pci,
            number,
            disk: None,
        });
    }
    table.sort();
    for name in listing(tree, "class/block")? {
        if table.block_device(&name).is_some() {
            continue;
        }
        let device = DeviceRef::new(DeviceKind::Block, &name);
        let path = resolve(tree, device, &format!("class/block/{name}"))?;
        // A partition's directory is inside its disk's.
        let parent = path.rsplit('/').nth(1).unwrap_or("");
        let Some(disk) = table.block.iter().find(|d| d.name == parent) else {
            continue;
        };
        let (pci, disk) = (disk.pci, Some(disk.name.clone()));
        let number = dev_number(tree, device, &format!("class/block/{name}/dev"))?;
        table.partitions.push(NamedDevice {
            name,
            pci,
            number,
            disk,
        });
    }
    table.sort();
    Ok(table)
}

/// The names in a listing directory; none when it does not exist.
fn listing(tree: &mut impl SysfsTree, dir: &'static str) -> Result<Vec<String>, NumaError> {
    match tree.list(dir) {
        Ok(mut names) => {
            names.sort();
            Ok(names)
        }
        Err(FileProblem::Missing) => Ok(Vec::new()),
        Err(p) => Err(SysfsFile::root(dir).error(p)),
    }
}

fn file_error(device: DeviceRef, file: &'static str) -> impl Fn(FileProblem) -> NumaError {
    move |problem| NumaError::DeviceFile {
        device,
        file,
        problem,
    }
}

fn malformed(device: DeviceRef, file: &'static str) -> impl Fn(ParseError) -> NumaError {
    move |e| file_error(device, file)(FileProblem::Malformed(e))
}

/// A file of `device`; `None` when it does not exist.
fn optional(
    tree: &mut impl SysfsTree,
    device: DeviceRef,
    path: &str,
    file: &'static str,
) -> Result<Option<String>, NumaError> {
    match tree.read(path) {
        Ok(text) => Ok(Some(text)),
        Err(FileProblem::Missing) => Ok(None),
        Err(p) => Err(file_error(device, file)(p)),
    }
}

fn pci_device(tree: &mut impl SysfsTree, name: &str) -> Result<PciDevice, NumaError> {
    let device = DeviceRef::new(DeviceKind::Pci, name);
    let address = parse_pci_address(name).map_err(malformed(device, ""))?;
    let dir = format!("bus/pci/devices/{name}");
    let class = tree
        .read(&format!("{dir}/class"))
        .map_err(file_error(device, "class"))?;
    let class_code = parse_pci_class(&class).map_err(malformed(device, "class"))?;
    let numa_node = match optional(tree, device, &format!("{dir}/numa_node"), "numa_node")? {
        Some(text) => parse_numa_node(&text).map_err(malformed(device, "numa_node"))?,
        None => None,
    };
    let file = "local_cpulist";
    let local_cpus = match optional(tree, device, &format!("{dir}/{file}"), file)? {
        Some(text) => Some(parse_list(&text).map_err(malformed(device, file))?),
        None => None,
    };
    Ok(PciDevice {
        address,
        class_code,
        numa_node,
        local_cpus,
    })
}

fn resolve(tree: &mut impl SysfsTree, device: DeviceRef, path: &str) -> Result<String, NumaError> {
    tree.resolve(path).map_err(file_error(device, ""))
}

/// The PCI function above `path`, which must be listed.
fn on_pci(
    table: &DeviceTable,
    device: DeviceRef,
    path: &str,
) -> Result<Option<PciAddress>, NumaError> {
    let Some(address) = last_pci_component(path) else {
        return Ok(None);
    };
    if table.pci_device(address).is_none() {
        return Err(file_error(device, "")(FileProblem::Inconsistent(
            "its PCI function is not in bus/pci/devices",
        )));
    }
    Ok(Some(address))
}

/// The last component of a resolved path that is a full PCI address (`0000:3b:00.0`;
/// `pci0000:00`, a root bus, is not one).
fn last_pci_component(path: &str) -> Option<PciAddress> {
    path.rsplit('/')
        .skip(1)
        .filter(|c| c.bytes().filter(|&b| b == b':').count() == 2 && c.contains('.'))
        .find_map(|c| parse_pci_address(c).ok())
}

fn multipath_first(tree: &mut impl SysfsTree, disk: &str) -> Option<String> {
    let mut paths = tree.list(&format!("block/{disk}/multipath")).ok()?;
    paths.sort();
    paths.into_iter().next()
}

fn dev_number(
    tree: &mut impl SysfsTree,
    device: DeviceRef,
    path: &str,
) -> Result<Option<crate::device::DevNumber>, NumaError> {
    match optional(tree, device, path, "dev")? {
        Some(text) => Ok(Some(
            parse_dev_number(&text).map_err(malformed(device, "dev"))?,
        )),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::device::DevNumber;
    use crate::errno::Errno;
    use crate::node::NodeId;
    use crate::parse::ParseErrorKind;
    use alloc::string::ToString;

    use crate::sysfs_mem::MemTree as Tree;

    const NIC: &str = "devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0";
    const NVME: &str = "devices/pci0000:00/0000:00:1d.0/0000:01:00.0";

    fn machine() -> Tree {
        Tree::default()
            .file(&format!("{NIC}/class"), "0x020000\n")
            .file(&format!("{NIC}/numa_node"), "1\n")
            .file(&format!("{NIC}/local_cpulist"), "2-3\n")
            .link("bus/pci/devices/0000:3b:00.0", NIC)
            .file(&format!("{NVME}/class"), "0x010802\n")
            .file(&format!("{NVME}/numa_node"), "-1\n")
            .file(&format!("{NVME}/local_cpulist"), "0-3\n")
            .link("bus/pci/devices/0000:01:00.0", NVME)
            .file(&format!("{NIC}/net/eth0/device"), "")
            .link("class/net/eth0", &format!("{NIC}/net/eth0"))
            .file("devices/virtual/net/lo/flags", "0x9\n")
            .link("class/net/lo", "devices/virtual/net/lo")
            .file(&format!("{NVME}/nvme/nvme0/nvme0n1/dev"), "259:0\n")
            .file(
                &format!("{NVME}/nvme/nvme0/nvme0n1/nvme0n1p1/dev"),
                "259:1\n",
            )
            .link("block/nvme0n1", &format!("{NVME}/nvme/nvme0/nvme0n1"))
            .link("class/block/nvme0n1", &format!("{NVME}/nvme/nvme0/nvme0n1"))
            .link(
                "class/block/nvme0n1p1",
                &format!("{NVME}/nvme/nvme0/nvme0n1/nvme0n1p1"),
            )
    }

    #[test]
    fn a_machine_reads_whole() {
        let t = devices_from_sysfs(&mut machine()).unwrap();
        assert_eq!(t.pci.len(), 2);
        let nic = PciAddress::new(0, 0x3b, 0, 0).unwrap();
        let nvme = PciAddress::new(0, 1, 0, 0).unwrap();
        assert_eq!(t.pci_device(nic).unwrap().numa_node, Some(NodeId::new(1)));
        assert_eq!(t.pci_device(nvme).unwrap().numa_node, None);
        assert!(t.pci_device(nvme).unwrap().is_nvme());
        assert_eq!(t.interface("eth0").unwrap().pci, Some(nic));
        assert_eq!(t.interface("lo").unwrap().pci, None);
        assert_eq!(t.block_device("nvme0n1").unwrap().pci, Some(nvme));
        let p1 = t.block_device("nvme0n1p1").unwrap();
        assert_eq!((p1.pci, p1.disk.as_deref()), (Some(nvme), Some("nvme0n1")));
        let n = DevNumber {
            major: 259,
            minor: 1,
        };
        assert_eq!(t.block_by_number(n).unwrap().name, "nvme0n1p1");
    }

    #[test]
    fn multipath_namespaces_take_their_first_paths_controller() {
        let shared = "devices/virtual/nvme-subsystem/nvme-subsys0/nvme0n1";
        let tree = machine()
            .link("block/nvme0n1", shared)
            .file(&format!("{shared}/dev"), "259:0\n")
            .file(
                &format!("{NVME}/nvme/nvme0/nvme0c0n1/ana_state"),
                "optimized\n",
            )
            .link(
                &format!("{shared}/multipath/nvme0c0n1"),
                &format!("{NVME}/nvme/nvme0/nvme0c0n1"),
            );
        let t = devices_from_sysfs(&mut { tree }).unwrap();
        let nvme = PciAddress::new(0, 1, 0, 0);
        assert_eq!(t.block_device("nvme0n1").unwrap().pci, nvme);
    }

    #[test]
    fn what_a_kernel_may_lack_is_no_error() {
        assert_eq!(
            devices_from_sysfs(&mut Tree::default()),
            Ok(DeviceTable::default())
        );
        let tree = Tree::default()
            .file("bus/pci/devices/0000:00:01.0/class", "0x060000\n")
            .link("class/net/lo", "devices/virtual/net/lo")
            .file("devices/virtual/net/lo/flags", "0x9");
        let t = devices_from_sysfs(&mut { tree }).unwrap();
        assert_eq!((t.pci[0].numa_node, t.pci[0].local_cpus), (None, None));
    }

    fn nic_error(file: &'static str, problem: FileProblem) -> Result<DeviceTable, NumaError> {
        Err(NumaError::DeviceFile {
            device: DeviceRef::new(DeviceKind::Pci, "0000:3b:00.0"),
            file,
            problem,
        })
    }

    #[test]
    fn bad_files_are_errors_naming_the_device_and_file() {
        let r = devices_from_sysfs(&mut machine().file(&format!("{NIC}/numa_node"), "0\n1"));
        let e = ParseError {
            kind: ParseErrorKind::UnexpectedChar('\n'),
            pos: 1,
        };
        assert_eq!(r, nic_error("numa_node", FileProblem::Malformed(e)));
        assert_eq!(
            r.unwrap_err().to_string(),
            "bus/pci/devices/0000:3b:00.0/numa_node: malformed: parse error at byte 1: unexpected character '\\n'"
        );
        let r = devices_from_sysfs(&mut machine().file(&format!("{NIC}/numa_node"), "-2\n"));
        assert!(matches!(
            r,
            Err(NumaError::DeviceFile {
                file: "numa_node",
                ..
            })
        ));
        let r = devices_from_sysfs(&mut machine().file(&format!("{NIC}/class"), "020000\n"));
        assert!(matches!(
            r,
            Err(NumaError::DeviceFile { file: "class", .. })
        ));
        let eacces = FileProblem::Unreadable(Errno::EACCES);
        let r = devices_from_sysfs(&mut machine().bad(&format!("{NIC}/local_cpulist"), eacces));
        assert_eq!(r, nic_error("local_cpulist", eacces));
        let r =
            devices_from_sysfs(&mut machine().bad(&format!("{NIC}/class"), FileProblem::Missing));
        assert_eq!(r, nic_error("class", FileProblem::Missing));
        let r = devices_from_sysfs(
            &mut machine().file(&format!("{NVME}/nvme/nvme0/nvme0n1/dev"), "259-0\n"),
        );
        let nvme = DeviceRef::new(DeviceKind::Block, "nvme0n1");
        assert!(
            matches!(r, Err(NumaError::DeviceFile { device, file: "dev", .. }) if device == nvme)
        );
        let r = devices_from_sysfs(&mut machine().file("bus/pci/devices/junk/class", "0x0\n"));
        let junk = DeviceRef::new(DeviceKind::Pci, "junk");
        assert!(matches!(r, Err(NumaError::DeviceFile { device, file: "", .. }) if device == junk));
    }

    #[test]
    fn a_device_under_an_unlisted_pci_function_is_inconsistent() {
        let ghost = "devices/pci0000:00/0000:00:09.0/net/eth1";
        let tree = machine()
            .link("class/net/eth1", ghost)
            .file(&format!("{ghost}/x"), "");
        let r = devices_from_sysfs(&mut { tree });
        let why = "its PCI function is not in bus/pci/devices";
        assert_eq!(
            r,
            Err(NumaError::DeviceFile {
                device: DeviceRef::new(DeviceKind::Network, "eth1"),
                file: "",
                problem: FileProblem::Inconsistent(why),
            })
        );
    }

    #[test]
    fn pci_components_are_full_addresses() {
        let a = last_pci_component("devices/pci0000:00/0000:00:03.0/virtio2/net/eth0");
        assert_eq!(a, PciAddress::new(0, 0, 3, 0));
        assert_eq!(last_pci_component("devices/pci0000:00/net/x"), None);
        assert_eq!(last_pci_component("devices/virtual/net/lo"), None);
        // The device itself is never its own PCI function's component.
        assert_eq!(last_pci_component("0000:00:03.0"), None);
    }
}
