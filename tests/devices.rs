//! Device locality: `DeviceMap` from a simulated machine, from the captured tree that
//! machine writes, and from this host's `/sys` (checked against the kernel's own files);
//! numactl's device forms as node masks, and the typed errors for bad forms, absent
//! devices and corrupt files.

use numaperf::{
    DeviceClass, DeviceKind, DeviceMap, DeviceRef, Locality, NodeId, NodeMask, NumaError,
    PciAddress,
};
use numaperf_core::ParseErrorKind;
use numaperf_sim::{SimDevice, SimMachine};

fn mask(ids: &[u32]) -> NodeMask {
    ids.iter().copied().map(NodeId::new).collect()
}

/// Four nodes of two CPUs; a NIC on each of nodes 1 and 3, an NVMe on node 2, an NVMe
/// the firmware placed nowhere (`numa_node` -1) whose local CPUs are nodes 0 and 1's,
/// and a GPU on node 0 at a fixed address.
fn machine() -> SimMachine {
    let nvme_cpus = (0..4).collect();
    SimMachine::builder()
        .node(2, 256 << 20)
        .node(2, 256 << 20)
        .node(2, 256 << 20)
        .node(2, 256 << 20)
        .device(SimDevice::network("eth0", 1))
        .device(SimDevice::network("eth1", 3).interface("eth1.100"))
        .device(SimDevice::nvme("nvme0n1", 2))
        .device(
            SimDevice::nvme("nvme1n1", 0)
                .node_unknown()
                .local_cpus(nvme_cpus),
        )
        .device(SimDevice::gpu(0).at(PciAddress::new(0, 0x3b, 0, 0).unwrap()))
        .build()
        .unwrap()
}

#[test]
fn names_and_addresses_find_their_nodes_on_the_simulator() {
    let sim = machine();
    let map = DeviceMap::of(&sim).unwrap();
    assert_eq!(map.node_of("eth0"), Some(NodeId::new(1)));
    assert_eq!(map.node_of("eth1.100"), Some(NodeId::new(3)));
    assert_eq!(map.node_of("nvme0n1"), Some(NodeId::new(2)));
    assert_eq!(map.node_of("0000:3b:00.0"), Some(NodeId::new(0)));
    assert_eq!(map.node_of("3b:00.0"), Some(NodeId::new(0)));
    assert_eq!(map.node_of("eth9"), None);
    // -1 is unknown, not node 0: what local_cpulist covers is told instead.
    assert_eq!(map.node_of("nvme1n1"), None);
    assert_eq!(
        map.locality_of("nvme1n1"),
        Some(Locality::NearCpusOf(mask(&[0, 1])))
    );
    let nics: Vec<_> = map.pci_devices_of_class(DeviceClass::Network).collect();
    assert_eq!(nics.len(), 2);
    let gpus = map.pci_devices_of_class(DeviceClass::Accelerator).count();
    assert_eq!(gpus, 1);
    assert_eq!(map.pci_devices_of_class(DeviceClass::Storage).count(), 2);
    let eth1 = map.pci_device_of("eth1").unwrap().address;
    let names: Vec<&str> = map.names_on(eth1).collect();
    assert_eq!(names, ["eth1", "eth1.100"]);
    let shown = map.to_string();
    assert!(shown.contains("0000:3b:00.0 accelerator"), "{shown}");
    assert!(shown.contains("[eth0]"), "{shown}");
}

#[test]
fn numactl_device_forms_resolve_to_masks() {
    let map = DeviceMap::of(&machine()).unwrap();
    assert_eq!(map.nodes_for("netdev:eth0"), Ok(mask(&[1])));
    assert_eq!(map.nodes_for("block:nvme0n1"), Ok(mask(&[2])));
    assert_eq!(map.nodes_for("pci:0000:3b:00.0"), Ok(mask(&[0])));
    assert_eq!(map.nodes_for("block:nvme1n1"), Ok(mask(&[0, 1])));
    // Node lists still read as numactl reads them.
    assert_eq!(map.nodes_for("1-3,0"), Ok(mask(&[0, 1, 2, 3])));
    assert_eq!(map.nodes_for("!0"), Ok(mask(&[1, 2, 3])));
    assert_eq!(map.nodes_for("all"), Ok(mask(&[0, 1, 2, 3])));
}

#[test]
fn bad_forms_and_absent_devices_are_typed_errors() {
    let map = DeviceMap::of(&machine()).unwrap();
    let parse = |spec| match map.nodes_for(spec) {
        Err(NumaError::Parse(e)) => e.kind,
        other => panic!("{spec}: {other:?}"),
    };
    assert_eq!(parse("ip:10.0.0.1"), ParseErrorKind::UnknownDeviceForm);
    assert_eq!(parse("netdev:"), ParseErrorKind::Empty);
    assert_eq!(parse("netdev:a/b"), ParseErrorKind::UnexpectedChar('/'));
    assert_eq!(parse("pci:3b:20.0"), ParseErrorKind::NumberTooLarge);
    assert_eq!(
        parse("netdev:averyveryverylongname"),
        ParseErrorKind::NameTooLong(15)
    );
    assert_eq!(parse("7"), ParseErrorKind::NodeNotAvailable(7));
    let absent = map.nodes_for("netdev:eth9");
    let eth9 = DeviceRef::new(DeviceKind::Network, "eth9");
    assert_eq!(absent, Err(NumaError::DeviceNotFound(eth9)));
    assert_eq!(
        absent.unwrap_err().to_string(),
        "class/net/eth9: no such device"
    );
    let r = map.nodes_for("pci:0000:77:00.0");
    let pci = DeviceRef::new(DeviceKind::Pci, "0000:77:00.0");
    assert_eq!(r, Err(NumaError::DeviceNotFound(pci)));
    let io: std::io::Error = r.unwrap_err().into();
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
}

#[cfg(target_os = "linux")]
mod captured {
    use super::*;
    use numaperf::FileProblem;
    use std::fs;
    use std::path::{Path, PathBuf};

    /// `sim` written as a `/sys`-shaped tree: its node tree and its devices.
    fn write_tree(sim: &SimMachine, name: &str) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("numaperf-devtree-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        sim.write_sysfs(&root).unwrap();
        root
    }

    fn remove(root: &Path) {
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn the_tree_the_simulator_writes_reads_back_the_same() {
        let sim = machine();
        let root = write_tree(&sim, "same");
        let read = DeviceMap::from_sysfs(&root);
        // The `device` links lead where the kernel's do: an interface's to its PCI
        // function, a namespace's to its controller.
        let real = |p: &str| fs::canonicalize(root.join(p)).unwrap();
        let eth0 = read
            .as_ref()
            .unwrap()
            .pci_device_of("eth0")
            .unwrap()
            .address;
        assert_eq!(
            real("class/net/eth0/device"),
            real(&format!("bus/pci/devices/{eth0}"))
        );
        let controller = real("block/nvme0n1/device");
        assert_eq!(real("block/nvme0n1").parent(), Some(controller.as_path()));
        // The simulator replays the capture, devices included.
        let replayed = SimMachine::from_sysfs(&root).map(|m| DeviceMap::of(&m));
        remove(&root);
        assert_eq!(replayed.unwrap(), DeviceMap::of(&sim));
        assert_eq!(read, DeviceMap::of(&sim));
        let read = read.unwrap();
        assert_eq!(read.node_of("eth1.100"), Some(NodeId::new(3)));
        assert_eq!(read.nodes_for("block:nvme1n1"), Ok(mask(&[0, 1])));
    }

    #[test]
    fn corrupt_files_are_errors_naming_the_device_and_file() {
        let sim = machine();
        let root = write_tree(&sim, "corrupt");
        let gpu = root.join("devices/pci0000:3b/0000:3b:00.0");
        fs::write(gpu.join("numa_node"), "zero\n").unwrap();
        let r = DeviceMap::from_sysfs(&root);
        fs::write(gpu.join("numa_node"), "0\n").unwrap();
        fs::write(gpu.join("class"), b"0x03\xff\n").unwrap();
        let not_text = DeviceMap::from_sysfs(&root);
        remove(&root);
        let e = r.unwrap_err();
        assert!(
            matches!(
                e,
                NumaError::DeviceFile {
                    file: "numa_node",
                    problem: FileProblem::Malformed(_),
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("bus/pci/devices/0000:3b:00.0/numa_node: malformed"),
            "{e}"
        );
        let gpu = DeviceRef::new(DeviceKind::Pci, "0000:3b:00.0");
        assert_eq!(
            not_text,
            Err(NumaError::DeviceFile {
                device: gpu,
                file: "class",
                problem: FileProblem::NotText
            })
        );
    }

    #[test]
    fn interfaces_off_pci_are_known_but_placed_nowhere() {
        let sim = machine();
        let root = write_tree(&sim, "lo");
        fs::create_dir_all(root.join("devices/virtual/net/lo")).unwrap();
        std::os::unix::fs::symlink("../../devices/virtual/net/lo", root.join("class/net/lo"))
            .unwrap();
        let map = DeviceMap::from_sysfs(&root);
        remove(&root);
        let map = map.unwrap();
        assert_eq!(map.locality_of("lo"), Some(Locality::Unknown));
        let lo = DeviceRef::new(DeviceKind::Network, "lo");
        assert_eq!(
            map.nodes_for("netdev:lo"),
            Err(NumaError::DeviceLocalityUnknown(lo))
        );
        assert!(map.to_string().contains("not on PCI (node unknown): lo"));
    }
}

#[cfg(target_os = "linux")]
mod live {
    use super::*;
    use std::fs;

    /// This host's `/sys` as the map reads it, checked file by file against what the
    /// kernel publishes, read here independently.
    #[test]
    fn discovery_agrees_with_the_kernels_files() {
        let map = DeviceMap::discover().unwrap();
        let topo = numaperf::Topology::discover().unwrap();
        let Ok(dir) = fs::read_dir("/sys/bus/pci/devices") else {
            println!("SKIP: no /sys/bus/pci/devices here; the map is empty");
            assert_eq!(map.pci_devices().count(), 0);
            return;
        };
        let mut seen = 0;
        for entry in dir.flatten() {
            let name = entry.file_name().into_string().unwrap();
            let path = entry.path();
            let raw: i64 = fs::read_to_string(path.join("numa_node"))
                .map_or(-1, |t| t.trim().parse().unwrap());
            let locality = map.locality_of(&name).unwrap();
            if raw >= 0 {
                assert_eq!(locality, Locality::Node(NodeId::new(raw as u32)), "{name}");
                assert_eq!(
                    map.nodes_for(&format!("pci:{name}")),
                    Ok(mask(&[raw as u32]))
                );
            } else {
                assert_eq!(map.node_of(&name), None, "{name}: -1 is not node 0");
                let cpus = fs::read_to_string(path.join("local_cpulist")).unwrap_or_default();
                let cpus: numaperf::CpuSet = numaperf_core::parse::parse_list(&cpus).unwrap();
                let nodes: NodeMask = cpus.iter().filter_map(|c| topo.cpu_node(c)).collect();
                let want = if nodes.is_empty() {
                    Locality::Unknown
                } else {
                    Locality::NearCpusOf(nodes)
                };
                assert_eq!(locality, want, "{name}");
            }
            let code = fs::read_to_string(path.join("class")).unwrap();
            let code = u32::from_str_radix(code.trim().trim_start_matches("0x"), 16).unwrap();
            assert_eq!(map.pci_device_of(&name).unwrap().class_code, code);
            seen += 1;
        }
        assert_eq!(map.pci_devices().count(), seen);
        // Every interface whose sysfs path runs through a PCI function maps to that one.
        for entry in fs::read_dir("/sys/class/net").unwrap().flatten() {
            let name = entry.file_name().into_string().unwrap();
            let real = fs::canonicalize(entry.path()).unwrap();
            let on = map.pci_device_of(&name).map(|d| d.address.to_string());
            match on {
                Some(a) => assert!(real.to_str().unwrap().contains(&format!("/{a}/")), "{name}"),
                None => assert!(!real.starts_with("/sys/devices/pci"), "{name}: {real:?}"),
            }
        }
        println!("{map}");
    }

    #[test]
    fn file_forms_find_the_disk_under_a_path() {
        let map = DeviceMap::discover().unwrap();
        let r = map.nodes_for("file:/nonexistent/numaperf");
        assert_eq!(r.unwrap_err().errno(), Some(numaperf::Errno::ENOENT));
        // /proc is on no disk: its device number is 0:N, which no disk has.
        let r = map.nodes_for("file:/proc/self/status");
        assert!(
            matches!(r, Err(NumaError::DeviceNotFound(d)) if d.kind == DeviceKind::BlockNumber),
            "{r:?}"
        );
        // The root filesystem: on a disk here or in an overlay; either way a typed answer
        // that agrees with the disk's own form.
        match map.nodes_for("file:/") {
            Ok(nodes) => {
                let st = numaperf_linux::file_device_number("/").unwrap();
                let disk = map
                    .table()
                    .block_by_number(st)
                    .expect("a disk of that number");
                let name = disk.disk.as_deref().unwrap_or(&disk.name);
                assert_eq!(map.nodes_for(&format!("block:{name}")), Ok(nodes));
                println!("file:/ is on {} (disk {name}): nodes {nodes}", disk.name);
            }
            Err(e) => {
                assert!(
                    matches!(
                        e,
                        NumaError::DeviceNotFound(_) | NumaError::DeviceLocalityUnknown(_)
                    ),
                    "{e:?}"
                );
                println!("file:/ : {e}");
            }
        }
    }
}
