//! Memory figures of a process from `/proc/PID/status` (Linux).

/// Resident set size now (`VmRSS`) and its peak (`VmHWM`), in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rss {
    pub rss_kib: u64,
    pub peak_kib: u64,
}

fn field(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix(name)?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// Reads the memory figures of `pid`; `None` if unavailable.
pub fn rss(pid: u32) -> Option<Rss> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Rss { rss_kib: field(&status, "VmRSS:")?, peak_kib: field(&status, "VmHWM:")? })
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_process() {
        let r = super::rss(std::process::id()).unwrap();
        assert!(r.rss_kib > 0 && r.peak_kib >= r.rss_kib);
    }
}
