//! What the client reads from Linux: the server's CPU time and resident memory (/proc), its own
//! CPU time, and the file descriptor limit.

use std::fs;

/// User + system CPU seconds used so far by process `pid` (/proc/PID/stat).
pub fn cpu_seconds(pid: i64) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    // After the ")" of the command name: state is field 3, so utime (14) and stime (15) of
    // proc(5) are at indexes 11 and 12.
    let after = text.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |index: usize| -> Result<f64, String> {
        fields
            .get(index)
            .and_then(|field| field.parse::<u64>().ok())
            .map(|ticks| ticks as f64)
            .ok_or_else(|| format!("{path}: no CPU times"))
    };
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = if per_second > 0 {
        per_second as f64
    } else {
        100.0
    };
    Ok((tick(11)? + tick(12)?) / per_second)
}

/// Resident memory of process `pid` (VmRSS of /proc/PID/status).
pub fn rss_bytes(pid: i64) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| format!("no VmRSS for process {pid}"))
}

/// CPU seconds used so far by this process, every thread (Python's `time.process_time()`).
pub fn process_time() -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write to.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    if status != 0 {
        return 0.0;
    }
    now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
}

/// Raises the soft limit of open files to the hard limit (every connection is a descriptor).
pub fn raise_nofile_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit to read into and from.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let pid = i64::from(std::process::id());
        assert!(super::cpu_seconds(pid).is_ok());
        assert!(super::rss_bytes(pid).is_ok_and(|rss| rss > 0));
        assert!(super::cpu_seconds(-1).is_err());
    }
}
