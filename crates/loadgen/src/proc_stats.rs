//! Reading a process's memory and CPU time from Linux's `/proc`.
//!
//! Only parsing lives here, tested on captured text; reading the files is
//! the caller's, and on a system without `/proc` the figures are absent.

use std::time::Duration;

/// Linux reports CPU time in clock ticks of `USER_HZ`, which the kernel's
/// user-space ABI fixes at 100 on every architecture payhook runs on.
const USER_HZ: u64 = 100;

/// The value in KiB of a `Name:   1234 kB` line of `/proc/<pid>/status`,
/// e.g. `VmRSS` (resident now) or `VmHWM` (resident high-water mark).
pub fn status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// User plus system CPU time from the text of `/proc/<pid>/stat`.
pub fn cpu_time(stat: &str) -> Option<Duration> {
    // The command name (field 2) is in parentheses and may hold spaces, so
    // count fields from the last `)`: utime and stime are fields 14 and 15,
    // i.e. the 12th and 13th after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    let ticks = user + system;
    Some(Duration::from_millis(ticks * 1000 / USER_HZ))
}

/// Reads `/proc/<pid>/status` and returns `(VmRSS, VmHWM)` in KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((status_kib(&status, "VmRSS")?, status_kib(&status, "VmHWM")?))
}

/// Reads `/proc/<pid>/stat` and returns the process's CPU time so far.
pub fn process_cpu_time(pid: u32) -> Option<Duration> {
    cpu_time(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tpayhook\nUmask:\t0022\nState:\tS (sleeping)\n\
VmPeak:\t  612340 kB\nVmSize:\t  547000 kB\nVmHWM:\t   23456 kB\nVmRSS:\t   21000 kB\n\
RssAnon:\t    9000 kB\nThreads:\t5\n";

    #[test]
    fn status_fields_are_read_in_kib() {
        assert_eq!(status_kib(STATUS, "VmHWM"), Some(23_456));
        assert_eq!(status_kib(STATUS, "VmRSS"), Some(21_000));
        assert_eq!(status_kib(STATUS, "VmSwap"), None);
        // A field whose name starts like another is not confused with it.
        assert_eq!(status_kib(STATUS, "Vm"), None);
    }

    #[test]
    fn cpu_time_counts_user_and_system_ticks() {
        let stat = "4242 (pay hook) S 1 4242 4242 0 -1 4194560 1500 0 0 0 \
                    250 130 0 0 20 0 5 0 123456 547000000 5250 18446744073709551615";
        assert_eq!(cpu_time(stat), Some(Duration::from_millis(3800)));
        assert_eq!(cpu_time("garbage"), None);
    }
}
