//! Device locality: which node each PCI device sits near, and a buffer pool on the node of
//! each PCI network device (its I/O buffers local to the NIC's DMA), first on this machine
//! (read from `/sys`), then on a simulated 4-node machine with NICs on nodes 1 and 3 and one
//! the firmware placed nowhere (`numa_node` -1), whose pool goes where its local CPUs are.

use numaperf::pool::BufferPoolConfig;
use numaperf::{
    BufferPool, DefaultBackend, DeviceClass, DeviceMap, NodeMask, NumaError, PlacementBackend,
    TopologyInfo,
};
use numaperf_sim::{SimDevice, SimMachine};

fn pools_near_nics<B>(backend: B, map: &DeviceMap) -> Result<(), NumaError>
where
    B: PlacementBackend + Clone + Send + Sync + 'static,
{
    print!("{map}");
    let memory = *backend.topology().memory_nodes();
    let config = BufferPoolConfig {
        buffer_size: 2048,
        initial_per_node: 64,
        max_per_node: 256,
        ..Default::default()
    };
    let mut nics = 0;
    for (nic, locality) in map.pci_devices_of_class(DeviceClass::Network) {
        nics += 1;
        let names: Vec<&str> = map.names_on(nic.address).collect();
        let what = format!("NIC {} {names:?} ({locality})", nic.address);
        let Some(near) = locality.nodes() else {
            println!(" {what}: nothing tells its node, no pool");
            continue;
        };
        let nodes: NodeMask = near.intersection(&memory);
        let Some(home) = nodes.first() else {
            println!(" {what}: its nodes {near} have no memory, no pool");
            continue;
        };
        let pool = BufferPool::on_nodes(backend.clone(), &nodes, config)?;
        let mut buf = pool.get(home)?;
        buf.fill(0xa5);
        println!(
            " {what}: pool of {} x {} B on nodes {}; a buffer from node {}; node {home}'s pages: {}",
            config.initial_per_node,
            pool.buffer_size(),
            pool.nodes(),
            buf.home(),
            pool.placement(home)?
        );
    }
    if nics == 0 {
        println!(" no PCI network device here: no pool to place");
    }
    for i in map.interfaces() {
        let spec = format!("netdev:{}", i.name);
        match map.nodes_for(&spec) {
            Ok(nodes) => println!(" {spec} -> nodes {nodes}"),
            Err(e) => println!(" {spec} -> {e}"),
        }
    }
    Ok(())
}

fn main() -> Result<(), NumaError> {
    let host = DefaultBackend::shared()?;
    let map = DeviceMap::discover()?;
    println!(
        "=== this machine: {} node(s), {} PCI function(s) ===",
        host.topology().nodes().count(),
        map.pci_devices().count()
    );
    pools_near_nics(host, &map)?;
    match map.nodes_for("file:.") {
        Ok(nodes) => println!(" file:. (the disk under this directory) -> nodes {nodes}"),
        Err(e) => println!(" file:. -> {e}"),
    }

    println!("\n=== simulated machine: 4 nodes x 2 cpus x 256 MiB, 3 NICs and an NVMe ===");
    let sim = SimMachine::builder()
        .node(2, 256 << 20)
        .node(2, 256 << 20)
        .node(2, 256 << 20)
        .node(2, 256 << 20)
        .device(SimDevice::network("eth0", 1))
        .device(SimDevice::network("eth1", 3))
        .device(
            SimDevice::network("eth2", 2)
                .node_unknown()
                .local_cpus((4..6).collect()),
        )
        .device(SimDevice::nvme("nvme0n1", 0))
        .build()?;
    let map = DeviceMap::of(&sim)?;
    pools_near_nics(std::sync::Arc::new(sim), &map)?;
    Ok(())
}
