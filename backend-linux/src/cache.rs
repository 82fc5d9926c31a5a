//! The CPUs' caches as sysfs describes them (`/sys/devices/system/cpu/cpuN/cache/indexM/`):
//! the largest data or unified cache of the highest level, which a memory benchmark must
//! outgrow to measure memory rather than cache.

use std::fs;
use std::path::Path;

use numaperf_core::byte_size::parse_byte_size;

/// Where the kernel lists the CPUs.
pub const SYSFS_CPU_ROOT: &str = "/sys/devices/system/cpu";

/// The size in bytes of the last-level cache (the highest `level` among the data and
/// unified caches of any CPU under `cpu_root`, the largest `size` at that level); `None`
/// when sysfs tells no cache (some virtual machines, some architectures). Unreadable or
/// malformed entries are skipped: this is a hint for sizing a buffer, not a fact to check.
pub fn last_level_cache(cpu_root: impl AsRef<Path>) -> Option<u64> {
    let mut best: Option<(u32, u64)> = None;
    for cpu in fs::read_dir(cpu_root.as_ref()).ok()?.flatten() {
        let name = cpu.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_prefix("cpu")) else {
            continue;
        };
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(indices) = fs::read_dir(cpu.path().join("cache")) else {
            continue;
        };
        for index in indices.flatten() {
            let dir = index.path();
            let read = |f: &str| fs::read_to_string(dir.join(f)).ok();
            let Some(kind) = read("type") else { continue };
            if kind.trim() == "Instruction" {
                continue;
            }
            let level = read("level").and_then(|l| l.trim().parse::<u32>().ok());
            let size = read("size").and_then(|s| parse_byte_size(&s).ok());
            if let (Some(level), Some(size)) = (level, size) {
                if best.is_none_or(|b| (level, size) > b) {
                    best = Some((level, size));
                }
            }
        }
    }
    best.map(|(_, size)| size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, cpu: usize, index: usize, kind: &str, level: u32, size: &str) {
        let dir = root.join(format!("cpu{cpu}/cache/index{index}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("type"), format!("{kind}\n")).unwrap();
        fs::write(dir.join("level"), format!("{level}\n")).unwrap();
        fs::write(dir.join("size"), format!("{size}\n")).unwrap();
    }

    #[test]
    fn highest_level_largest_size() {
        let root = std::env::temp_dir().join(format!("numaperf-llc-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        write(&root, 0, 0, "Data", 1, "32K");
        write(&root, 0, 1, "Instruction", 4, "64M"); // not data: ignored
        write(&root, 0, 2, "Unified", 2, "1024K");
        write(&root, 0, 3, "Unified", 3, "16384K");
        write(&root, 1, 3, "Unified", 3, "32768K");
        write(&root, 2, 3, "Unified", 3, "garbage"); // skipped
        fs::create_dir_all(root.join("cpufreq/cache")).unwrap(); // not a CPU
        assert_eq!(last_level_cache(&root), Some(32 << 20));
        fs::remove_dir_all(&root).unwrap();
        assert_eq!(last_level_cache(&root), None);
    }
}
