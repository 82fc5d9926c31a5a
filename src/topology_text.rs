//! A [`Topology`] as text: the layout of `numactl --hardware`, whole (`Display`) or in
//! parts ([`Topology::text`]), for the `topology` example and `numaperf info`.

use core::fmt;

use numaperf_core::memattrs::{AccessClass, MemoryAttributes};
use numaperf_core::NodeId;

use crate::Topology;

/// One part of a [`Topology`]'s text ([`Topology::text`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopologyPart {
    /// `available: N nodes (list)`, then per node its CPUs, size and free memory in MB.
    Nodes,
    /// `node distances:` and the matrix, rows and columns in node order.
    Distances,
    /// One line per node the firmware described: tier, and per access class the
    /// initiators and figures (nothing when no node has any).
    MemoryAttributes,
    /// The kernel's weighted-interleave weights and mode (nothing before Linux 6.9).
    Weights,
}

/// A part of a [`Topology`]'s text; `Display` prints it.
#[derive(Clone, Copy, Debug)]
pub struct TopologyText<'a> {
    topology: &'a Topology,
    part: TopologyPart,
}

impl Topology {
    /// One part of the text `Display` prints, printable alone.
    pub fn text(&self, part: TopologyPart) -> TopologyText<'_> {
        TopologyText {
            topology: self,
            part,
        }
    }
}

impl fmt::Display for TopologyText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.topology;
        match self.part {
            TopologyPart::Nodes => {
                writeln!(f, "available: {} nodes ({})", t.node_count(), t.nodes())?;
                for n in t.numa_nodes() {
                    write!(f, "node {} cpus:", n.id())?;
                    for c in n.cpus() {
                        write!(f, " {c}")?;
                    }
                    writeln!(f)?;
                    writeln!(f, "node {} size: {} MB", n.id(), n.mem_total() >> 20)?;
                    writeln!(f, "node {} free: {} MB", n.id(), n.mem_free() >> 20)?;
                }
            }
            TopologyPart::Distances => {
                writeln!(f, "node distances:")?;
                write!(f, "node ")?;
                for n in t.numa_nodes() {
                    write!(f, "{:>3} ", n.id())?;
                }
                writeln!(f)?;
                for a in t.numa_nodes() {
                    write!(f, "{:>3}: ", a.id())?;
                    for b in t.numa_nodes() {
                        write!(f, "{:>3} ", t.distance(a.id(), b.id()).unwrap_or(0))?;
                    }
                    writeln!(f)?;
                }
            }
            TopologyPart::MemoryAttributes => {
                for n in t.numa_nodes() {
                    if let Some(a) = t.memory_attributes(n.id()) {
                        write_attributes(f, n.id(), a)?;
                    }
                }
            }
            TopologyPart::Weights => {
                if let Some(k) = t.kernel_weights() {
                    write!(f, "weighted interleave weights:")?;
                    for n in t.numa_nodes() {
                        write!(f, " {}={}", n.id(), k.weights.weight(n.id()).max(1))?;
                    }
                    match k.auto {
                        Some(true) => writeln!(f, " (auto)")?,
                        Some(false) => writeln!(f, " (manual)")?,
                        None => writeln!(f)?,
                    }
                }
            }
        }
        Ok(())
    }
}

/// The layout of `numactl --hardware`: nodes, their CPUs, size and free memory in MB,
/// and the distance matrix; then what is known of memory attributes (one line per node:
/// tier, and per access class the initiators and figures) and the kernel's weights.
impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in [
            TopologyPart::Nodes,
            TopologyPart::Distances,
            TopologyPart::MemoryAttributes,
            TopologyPart::Weights,
        ] {
            self.text(part).fmt(f)?;
        }
        Ok(())
    }
}

/// `node 2 memory: tier 22; access0 from 0: read 2048 MB/s 40 ns, write 2048 MB/s 40 ns`.
fn write_attributes(f: &mut fmt::Formatter<'_>, node: NodeId, a: &MemoryAttributes) -> fmt::Result {
    write!(f, "node {node} memory:")?;
    let mut sep = " ";
    if let Some(t) = a.tier {
        write!(f, " tier {t}")?;
        sep = "; ";
    }
    let figure = |v: Option<u32>, unit: &str| v.map_or("?".into(), |v| format!("{v} {unit}"));
    for class in AccessClass::ALL {
        let Some(x) = a.figures(class) else { continue };
        write!(
            f,
            "{sep}{} from {}: read {} {}, write {} {}",
            class.dir_name(),
            x.initiators,
            figure(x.read_bandwidth, "MB/s"),
            figure(x.read_latency, "ns"),
            figure(x.write_bandwidth, "MB/s"),
            figure(x.write_latency, "ns")
        )?;
        sep = "; ";
    }
    writeln!(f)
}
