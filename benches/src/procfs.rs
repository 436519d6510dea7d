//! Figures of a process from `/proc` (Linux): memory (`/proc/PID/status`),
//! open file descriptors (`/proc/PID/fd`), CPU time (`schedstat`).

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

/// Open file descriptors of `pid` (entries of `/proc/PID/fd`); `None` if
/// unavailable.
pub fn fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Time all threads of `pid` have run on a CPU so far, in ns (the first
/// field of each `/proc/PID/task/TID/schedstat`); threads that already
/// ended are not counted. `None` if unavailable.
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += stat.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_process() {
        let r = super::rss(std::process::id()).unwrap();
        let open = super::fds(std::process::id()).unwrap();
        let f = std::fs::File::open("/proc/self/status").unwrap();
        assert_eq!(super::fds(std::process::id()), Some(open + 1));
        drop(f);
        assert!(r.rss_kib > 0 && r.peak_kib >= r.rss_kib);
        let a = super::cpu_ns(std::process::id()).unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(super::cpu_ns(std::process::id()).unwrap() > a, "{x}");
    }
}
