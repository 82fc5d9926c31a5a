//! Reads the live `/sys` (or a captured copy of it) into a `DeviceTable` through core's
//! device reader, and `stat`s files for numactl's `file:` forms.

use std::path::Path;

use numaperf_core::device_sysfs::devices_from_sysfs;
use numaperf_core::sysfs_dir::SysfsDir;
use numaperf_core::{DevNumber, DeviceSource, DeviceTable, Errno, NumaError};

use crate::LinuxBackend;

/// Where the kernel publishes devices.
pub const SYSFS_ROOT: &str = "/sys";

/// Reads the devices under `root` ([`SYSFS_ROOT`], or a captured tree with the same
/// layout and relative links): PCI functions (`bus/pci/devices/*`: `class`, `numa_node`,
/// `local_cpulist`), network interfaces (`class/net/*`), disks (`block/*`) and partitions
/// (`class/block/*`), each name mapped to the PCI function above it. See
/// `numaperf_core::device_sysfs::devices_from_sysfs` for what counts as an error.
///
/// # Errors
/// [`NumaError::DeviceFile`] naming the device and file that is unreadable or malformed
/// (or a link that leads out of a captured tree); [`NumaError::Sysfs`] naming a listing
/// directory that cannot be read; for a `root` that cannot be resolved, `NumaError::Sysfs`
/// naming `bus/pci/devices`.
pub fn read_devices(root: impl AsRef<Path>) -> Result<DeviceTable, NumaError> {
    let mut tree = SysfsDir::open(root.as_ref())
        .map_err(|p| numaperf_core::SysfsFile::root("bus/pci/devices").error(p))?;
    devices_from_sysfs(&mut tree)
}

/// The number of the block device a numactl `file:` form stands for: the device node
/// itself when `path` is a block device, else the device holding its filesystem
/// (`st_dev`; a filesystem without one, such as tmpfs or overlayfs, has a major of 0,
/// which no disk has).
///
/// # Errors
/// What `stat` returned ([`NumaError::PermissionDenied`] or [`NumaError::Os`]).
pub fn file_device_number(path: impl AsRef<Path>) -> Result<DevNumber, NumaError> {
    let st = rustix::fs::stat(path.as_ref())
        .map_err(|e| NumaError::from_errno("stat", Errno::from_raw(e.raw_os_error())))?;
    let kind = rustix::fs::FileType::from_raw_mode(st.st_mode as _);
    let dev = if kind == rustix::fs::FileType::BlockDevice {
        st.st_rdev
    } else {
        st.st_dev
    };
    Ok(DevNumber {
        major: rustix::fs::major(dev as _),
        minor: rustix::fs::minor(dev as _),
    })
}

/// The live machine's devices (always `/sys`, whatever node tree the backend reads).
impl DeviceSource for LinuxBackend {
    fn devices(&self) -> Result<DeviceTable, NumaError> {
        read_devices(SYSFS_ROOT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use numaperf_core::{DeviceKind, DeviceRef, FileProblem, PciAddress};
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    /// A captured tree in a fresh temp directory: one NIC on node 1 with `eth0`, and `lo`.
    fn captured(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("numaperf-dev-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let nic = dir.join("devices/pci0000:00/0000:00:03.0");
        fs::create_dir_all(nic.join("net/eth0")).unwrap();
        fs::write(nic.join("class"), "0x020000\n").unwrap();
        fs::write(nic.join("numa_node"), "1\n").unwrap();
        fs::write(nic.join("local_cpulist"), "2-3\n").unwrap();
        fs::create_dir_all(dir.join("devices/virtual/net/lo")).unwrap();
        for d in ["bus/pci/devices", "class/net"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        let link = |to: &str, at: &str| symlink(to, dir.join(at)).unwrap();
        link(
            "../../../devices/pci0000:00/0000:00:03.0",
            "bus/pci/devices/0000:00:03.0",
        );
        link(
            "../../devices/pci0000:00/0000:00:03.0/net/eth0",
            "class/net/eth0",
        );
        link("../../devices/virtual/net/lo", "class/net/lo");
        dir
    }

    #[test]
    fn a_captured_tree_reads_through_its_links() {
        let dir = captured("good");
        let t = read_devices(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        let nic = PciAddress::new(0, 0, 3, 0).unwrap();
        assert_eq!(t.interface("eth0").unwrap().pci, Some(nic));
        assert_eq!(t.interface("lo").unwrap().pci, None);
        assert_eq!(
            t.pci_device(nic).unwrap().numa_node.map(|n| n.get()),
            Some(1)
        );
    }

    #[test]
    fn bad_files_and_links_out_of_the_tree_are_named() {
        let dir = captured("bad");
        fs::write(
            dir.join("devices/pci0000:00/0000:00:03.0/numa_node"),
            "one\n",
        )
        .unwrap();
        let r = read_devices(&dir);
        assert!(
            matches!(
                r,
                Err(NumaError::DeviceFile {
                    file: "numa_node",
                    problem: FileProblem::Malformed(_),
                    ..
                })
            ),
            "{r:?}"
        );
        fs::write(
            dir.join("devices/pci0000:00/0000:00:03.0/numa_node"),
            "-1\n",
        )
        .unwrap();
        fs::remove_file(dir.join("class/net/lo")).unwrap();
        symlink("/sys/devices/virtual/net/lo", dir.join("class/net/lo")).unwrap();
        let r = read_devices(&dir);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            r,
            Err(NumaError::DeviceFile {
                device: DeviceRef::new(DeviceKind::Network, "lo"),
                file: "",
                problem: FileProblem::Inconsistent("a link leads out of the tree"),
            })
        );
    }

    #[test]
    fn the_live_tree_reads_and_agrees_with_its_files() {
        let t = read_devices(SYSFS_ROOT).unwrap();
        for d in &t.pci {
            let raw = fs::read_to_string(format!("/sys/bus/pci/devices/{}/numa_node", d.address));
            let raw: i64 = raw.map_or(-1, |s| s.trim().parse().unwrap());
            assert_eq!(
                d.numa_node.map_or(-1, |n| n.get() as i64),
                raw,
                "{}",
                d.address
            );
        }
        let listed = fs::read_dir("/sys/class/net").map_or(0, |d| d.count());
        assert_eq!(t.net.len(), listed);
    }

    #[test]
    fn files_stat_to_their_block_device() {
        let absent = file_device_number("/nonexistent/numaperf");
        assert_eq!(absent.unwrap_err().errno(), Some(Errno::ENOENT));
        // /proc is no block device's filesystem: major 0.
        assert_eq!(file_device_number("/proc/self/status").unwrap().major, 0);
        let t = read_devices(SYSFS_ROOT).unwrap();
        for d in t.block.iter().filter(|d| d.number.is_some()) {
            let node = Path::new("/dev").join(&d.name);
            if let Ok(n) = file_device_number(&node) {
                assert_eq!(Some(n), d.number, "{node:?}");
            }
        }
    }
}
