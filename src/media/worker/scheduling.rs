//! How a worker thread asks the kernel to run it: on the CPU the operator pinned it to, if any
//! (`worker_cpus`), and under SCHED_FIFO when asked (`realtime_priority`), else under the fair
//! scheduler with a short time slice.
//!
//! A worker sleeps in epoll between packets, and a packet that wakes it should not wait for
//! whatever else runs on its core to use up its slice. Under EEVDF (Linux 6.6 and later) a task
//! woken with an earlier virtual deadline preempts the one running, and since 6.12 a task may
//! ask for a shorter slice (`sched_setattr` with `sched_runtime`, 0.1-100 ms, no privilege
//! needed), which brings its deadline forward. Older kernels accept and ignore the request.

use super::super::engine::WorkerSettings;

/// `struct sched_attr` of `sched_setattr(2)`, its first version (48 bytes).
#[repr(C)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime_ns: u64,
    deadline_ns: u64,
    period_ns: u64,
}

/// Applies `settings`' scheduling to the calling worker thread.
pub(super) fn apply(index: usize, settings: &WorkerSettings) {
    if let Some(&cpu) = settings.cpus.get(index) {
        pin_to_cpu(index, cpu);
    }
    let realtime = settings.realtime_priority > 0 && run_at_realtime_priority(index, settings.realtime_priority);
    if !realtime && settings.slice_us > 0 {
        ask_for_slice(index, settings.slice_us);
    }
}

/// Puts the calling worker thread under SCHED_FIFO at `priority`: a packet that wakes it then
/// preempts ordinary threads (signalling, logging, other processes) instead of waiting for their
/// time slice, as telephony servers run their media threads. The worker always blocks in epoll
/// when idle, and the kernel's real-time throttling leaves the rest of the machine its share
/// even so. Without the privilege (CAP_SYS_NICE or an RLIMIT_RTPRIO) the worker runs as usual,
/// with its short slice. True when it took the priority.
fn run_at_realtime_priority(index: usize, priority: u8) -> bool {
    let param = libc::sched_param { sched_priority: i32::from(priority) };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param for the call.
    let result = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if result == 0 {
        tracing::info!(worker = index, priority, "media worker at real-time priority (SCHED_FIFO)");
        return true;
    }
    let error = std::io::Error::last_os_error();
    tracing::warn!(worker = index, priority, %error, "media worker cannot take real-time priority (needs CAP_SYS_NICE or RLIMIT_RTPRIO); running at normal priority");
    false
}

/// Keeps the calling worker thread on `cpu`. A local process that sends to an unpinned worker
/// wakes it with a "sync" wake-up, and the scheduler then moves it onto the sender's core on the
/// guess that the sender is about to sleep; a sender that goes on running makes each wait for
/// the other there, while another core idles. A CPU outside the gateway's allowed set (taskset,
/// cgroup cpuset) or offline is refused by the kernel: the worker then runs unpinned.
fn pin_to_cpu(index: usize, cpu: usize) {
    match pin_current_thread(cpu) {
        Ok(()) => tracing::info!(worker = index, cpu, "media worker pinned to its CPU"),
        Err(error) => tracing::warn!(worker = index, cpu, %error, "media worker cannot be pinned to its CPU (not in the gateway's allowed CPUs?); running unpinned"),
    }
}

/// Keeps the calling thread on `cpu`; an error, with the thread left where it was, when the
/// kernel refuses (a CPU outside the allowed set, or offline) or `cpu` is past its set size.
/// Public so that the load tool places its own threads exactly as the workers are placed.
pub fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "a CPU past the kernel's set size"));
    }
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is within the set, checked above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t of the size passed.
    let result = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The layout `sched_setattr(2)` reads for a `size` of 48 (SCHED_ATTR_SIZE_VER0).
const _: () = assert!(std::mem::size_of::<SchedAttr>() == 48);

/// Asks the fair scheduler for a `slice_us` time slice for the calling thread, keeping its nice
/// value (a niced service must not be renice'd, which would also need privilege). A thread
/// not under SCHED_OTHER (a SCHED_BATCH or SCHED_IDLE service) is left as it is.
fn ask_for_slice(index: usize, slice_us: u32) {
    // SAFETY: plain calls about the calling thread (pid 0 / who 0).
    if unsafe { libc::sched_getscheduler(0) } != libc::SCHED_OTHER {
        tracing::debug!(worker = index, "media worker not under SCHED_OTHER; its slice is left alone");
        return;
    }
    // getpriority's -1 is also a valid nice value: errno tells them apart.
    // SAFETY: errno is thread-local; PRIO_PROCESS with 0 names the calling thread on Linux.
    let nice = unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, 0)
    };
    if nice == -1 && std::io::Error::last_os_error().raw_os_error().unwrap_or(0) != 0 {
        tracing::warn!(worker = index, "media worker cannot read its nice value; running with the kernel's default slice");
        return;
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        nice,
        priority: 0,
        runtime_ns: u64::from(slice_us) * 1_000,
        deadline_ns: 0,
        period_ns: 0,
    };
    // SAFETY: pid 0 is the calling thread; `attr` is a sched_attr whose `size` says how much of
    // it the kernel may read, and it outlives the call.
    let result = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if result == 0 {
        tracing::debug!(worker = index, slice_us, "media worker asked for a short time slice");
    } else {
        let error = std::io::Error::last_os_error();
        tracing::warn!(worker = index, slice_us, %error, "media worker cannot set its time slice; running with the kernel's default");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slice the kernel reports for the calling thread (`se.slice` in ns), where it says.
    fn reported_slice_ns() -> Option<u64> {
        let sched = std::fs::read_to_string("/proc/thread-self/sched").ok()?;
        sched.lines().find_map(|l| l.strip_prefix("se.slice")).and_then(|v| v.trim().trim_start_matches(':').trim().parse().ok())
    }

    #[test]
    fn a_worker_thread_gets_the_slice_it_asks_for() {
        let settings = WorkerSettings { slice_us: 250, ..Default::default() };
        let slice = std::thread::spawn(move || {
            apply(0, &settings);
            reported_slice_ns()
        })
        .join()
        .expect("thread");
        // Kernels before 6.12 keep their own slice; this machine's reports the one asked for.
        assert_eq!(slice, Some(250_000), "se.slice in /proc/thread-self/sched");
    }

    /// The CPUs the calling thread may run on, as `/proc/thread-self/status` lists them.
    fn allowed_cpus() -> Option<String> {
        let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
        status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).map(|v| v.trim().to_string())
    }

    #[test]
    fn a_pinned_worker_thread_runs_only_on_its_cpu_and_an_impossible_cpu_leaves_it_unpinned() {
        let before = allowed_cpus();
        let pinned = std::thread::spawn(|| {
            apply(1, &WorkerSettings { cpus: vec![5, 0], ..Default::default() });
            allowed_cpus()
        });
        assert_eq!(pinned.join().expect("thread").as_deref(), Some("0"), "worker 1 takes the second CPU listed");
        let refused = std::thread::spawn(|| {
            apply(0, &WorkerSettings { cpus: vec![1_023], ..Default::default() });
            allowed_cpus()
        });
        assert_eq!(refused.join().expect("thread"), before, "a CPU the machine lacks leaves the thread where it was");
    }
}
