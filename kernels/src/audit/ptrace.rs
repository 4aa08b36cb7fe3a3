//! The tracer proper: ptrace(2) on Linux x86_64 (`PTRACE_TRACEME`, `PTRACE_SETOPTIONS`,
//! `PTRACE_SYSCALL`, `PTRACE_GETREGS`/`SETREGS`, `PTRACE_GETEVENTMSG`, `PTRACE_GETSIGINFO`), the x86_64
//! syscall ABI (number in `orig_rax`, arguments in `rdi rsi rdx r10 r8 r9`, result in `rax`) and
//! process_vm_readv(2) to read strings and socket addresses out of a tracee.
//!
//! One loop waits for every stop of every task (`waitpid(-1, __WALL | __WNOTHREAD)`: this thread's
//! tracees and its own child only, never another thread's children) and classifies it:
//! - `SIGTRAP | 0x80` (`PTRACE_O_TRACESYSGOOD`): a syscall stop, entry and exit alternating per task;
//! - `SIGTRAP` with an event in bits 16..: a fork/vfork/clone (the new task's id from
//!   `PTRACE_GETEVENTMSG`) or an exec (which may move a thread's state to the leader's id);
//! - the first `SIGSTOP` of a new task: suppressed (the kernel sends it to auto-attached tasks);
//! - anything else: a signal, re-injected on resume, or a group-stop (`PTRACE_GETSIGINFO` fails),
//!   resumed without one, as `strace` does without `PTRACE_SEIZE`.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::ptr::null_mut;
use std::time::Instant;

use libc::{c_int, c_void, pid_t};

use super::decode::{AF_INET, AF_INET6, AF_NETLINK, AF_UNIX, AF_UNSPEC, SockAddr, normalize_path};
use super::{
    Detail, Event, ExitKind, Origin, Recorder, Task, TraceConfig, TraceReport, Violation, check_policy, errno_name,
    syscall_name,
};
use crate::Error;

// ANCHOR: options
/// Every process and thread is followed from birth, syscall stops are marked, and the tree is killed
/// if the tracer dies.
const OPTIONS: c_int = libc::PTRACE_O_TRACESYSGOOD
    | libc::PTRACE_O_TRACEFORK
    | libc::PTRACE_O_TRACEVFORK
    | libc::PTRACE_O_TRACECLONE
    | libc::PTRACE_O_TRACEEXEC
    | libc::PTRACE_O_EXITKILL;
// ANCHOR_END: options

/// The stop signal of a syscall stop under `PTRACE_O_TRACESYSGOOD`.
const SYSCALL_STOP: c_int = libc::SIGTRAP | 0x80;

/// The longest string read from a tracee (`PATH_MAX`).
const MAX_STRING: usize = 4096;
/// The most `argv` entries read from an `execve`.
const MAX_ARGV: usize = 64;
/// The longest socket address read (`sizeof(struct sockaddr_storage)`).
const MAX_SOCKADDR: usize = 128;

/// A call between its entry and exit stops.
struct Pending {
    nr: u64,
    start: Instant,
    t_us: u64,
    detail: Detail,
    violation: Option<Violation>,
}

/// What the loop knows of one task.
#[derive(Default)]
struct TaskState {
    pending: Option<Pending>,
    /// Created by a fork/clone event: its first `SIGSTOP` is the kernel's and is suppressed.
    awaiting_first_stop: bool,
}

/// Traces `argv` to the end of its process tree.
pub(super) fn run(argv: &[&OsStr], config: &TraceConfig) -> Result<TraceReport, Error> {
    let program = resolve(argv[0])?;
    let spawn_err = |reason: String| Error::AuditSpawn { program: argv[0].to_string_lossy().into_owned(), reason };
    let c_program =
        CString::new(program.as_os_str().as_bytes()).map_err(|_| spawn_err("the path holds a NUL byte".into()))?;
    let c_args = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| spawn_err("an argument holds a NUL byte".into()))?;
    let mut c_argv: Vec<*const libc::c_char> = c_args.iter().map(|c| c.as_ptr()).collect();
    c_argv.push(std::ptr::null());
    let mut recorder = Recorder::new(argv, config)?;
    let started = Instant::now();

    // SAFETY: fork(2) has no memory-safety preconditions. In the child (a copy of a possibly
    // multi-threaded process) only async-signal-safe calls are made before execv: signal, ptrace,
    // raise, execv, _exit, on pointers prepared before the fork (c_program, c_argv and the CStrings
    // they point into stay alive in the child's copy of this frame).
    let root = unsafe { libc::fork() };
    if root == -1 {
        return Err(spawn_err(format!("fork: {}", std::io::Error::last_os_error())));
    }
    if root == 0 {
        // SAFETY: see above; every call here is async-signal-safe and the child never returns.
        unsafe {
            // Rust ignores SIGPIPE in its binaries; a command expects the default.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            if libc::ptrace(libc::PTRACE_TRACEME, 0, null_mut::<c_void>(), null_mut::<c_void>()) == -1 {
                libc::_exit(126);
            }
            // Stop until the tracer has set its options: the execve below is then the first traced call.
            libc::raise(libc::SIGSTOP);
            libc::execv(c_program.as_ptr(), c_argv.as_ptr());
            libc::_exit(127);
        }
    }

    let status = wait_for(root)?;
    if libc::WIFEXITED(status) {
        let code = libc::WEXITSTATUS(status);
        let reason = if code == 126 {
            "ptrace(PTRACE_TRACEME) was refused (a container without CAP_SYS_PTRACE, a seccomp filter, or Yama)"
                .to_owned()
        } else {
            format!("exited with {code} before its first stop")
        };
        return Err(spawn_err(reason));
    }
    if !(libc::WIFSTOPPED(status) && libc::WSTOPSIG(status) == libc::SIGSTOP) {
        return Err(spawn_err(format!("unexpected first wait status {status:#x}")));
    }
    // SAFETY: root is our stopped tracee; PTRACE_SETOPTIONS takes the options in `data`.
    if unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, root, null_mut::<c_void>(), OPTIONS as usize as *mut c_void) }
        == -1
    {
        let source = std::io::Error::last_os_error();
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(root, libc::SIGKILL) };
        let _ = wait_for(root);
        return Err(Error::AuditPtrace { op: "PTRACE_SETOPTIONS", pid: root, source });
    }
    recorder.tasks.push(Task { pid: root, parent: None, origin: Origin::Root });
    let mut tasks: HashMap<pid_t, TaskState> = HashMap::new();
    tasks.insert(root, TaskState::default());
    resume(root, 0);

    let mut root_exit = None;
    loop {
        let mut status: c_int = 0;
        // SAFETY: waitpid(2) writes the status into our local.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL | libc::__WNOTHREAD) };
        if pid == -1 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => break, // every tracee is gone
                _ => return Err(Error::AuditPtrace { op: "waitpid", pid: -1, source: e }),
            }
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            // A call still pending (exit_group, or cut by SIGKILL) never completed: not counted.
            tasks.remove(&pid);
            if pid == root {
                root_exit = Some(if libc::WIFEXITED(status) {
                    ExitKind::Code(libc::WEXITSTATUS(status))
                } else {
                    ExitKind::Signal(libc::WTERMSIG(status))
                });
            }
            continue;
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        let sig = libc::WSTOPSIG(status);
        let event = status >> 16;
        let mut inject = 0;
        if sig == SYSCALL_STOP {
            let state = tasks.entry(pid).or_default();
            if let Err(e) = syscall_stop(pid, state, config, &mut recorder, started) {
                // The log cannot be written: stop the tree rather than run it unaudited.
                for &task in tasks.keys() {
                    // SAFETY: kill(2) on our own tracees.
                    unsafe { libc::kill(task, libc::SIGKILL) };
                }
                return Err(e);
            }
        } else if sig == libc::SIGTRAP && event != 0 {
            match event {
                libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE => {
                    if let Some(child) = event_msg(pid) {
                        let child = child as pid_t;
                        let origin = match event {
                            libc::PTRACE_EVENT_FORK => Origin::Fork,
                            libc::PTRACE_EVENT_VFORK => Origin::Vfork,
                            _ => Origin::Clone,
                        };
                        recorder.tasks.push(Task { pid: child, parent: Some(pid), origin });
                        // Its first stop may already have been seen (then it is known and running).
                        tasks.entry(child).or_insert(TaskState { pending: None, awaiting_first_stop: true });
                    }
                }
                libc::PTRACE_EVENT_EXEC => {
                    // A non-leader thread that execs takes the leader's id: move its state there.
                    if let Some(former) = event_msg(pid).map(|f| f as pid_t)
                        && former != pid
                        && let Some(state) = tasks.remove(&former)
                    {
                        tasks.insert(pid, state);
                    }
                }
                _ => {}
            }
        } else {
            match tasks.get_mut(&pid) {
                // A new task whose first stop came before its creator's event.
                None => {
                    tasks.insert(pid, TaskState::default());
                    if sig != libc::SIGSTOP {
                        inject = sig;
                    }
                }
                Some(state) if state.awaiting_first_stop && sig == libc::SIGSTOP => state.awaiting_first_stop = false,
                Some(_) => {
                    if !is_group_stop(pid, sig) {
                        inject = sig;
                    }
                }
            }
        }
        resume(pid, inject);
    }
    let exit = root_exit.unwrap_or(ExitKind::Code(0));
    recorder.finish(exit, started.elapsed())
}

/// Handles one syscall stop: an entry (decode, check, maybe deny) or an exit (record).
// ANCHOR: syscall_stop
fn syscall_stop(
    pid: pid_t,
    state: &mut TaskState,
    config: &TraceConfig,
    recorder: &mut Recorder,
    started: Instant,
) -> Result<(), Error> {
    let Some(mut regs) = get_regs(pid) else {
        return Ok(()); // the task was killed under us
    };
    match state.pending.take() {
        None => {
            let nr = regs.orig_rax;
            let args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9];
            let name = syscall_name(nr).unwrap_or("");
            let detail = decode_entry(pid, name, &args);
            let violation = check_policy(&config.policy, pid, name, &detail);
            if let Some(v) = &violation {
                recorder.violations.push(v.clone());
                if v.denied {
                    // The kernel skips a call whose number is -1 (it then returns -ENOSYS; the exit
                    // stop replaces that with -EACCES).
                    regs.orig_rax = u64::MAX;
                    set_regs(pid, &regs);
                }
            }
            state.pending = Some(Pending {
                nr,
                start: Instant::now(),
                t_us: started.elapsed().as_micros() as u64,
                detail,
                violation,
            });
        }
        Some(p) => {
            let dur_ns = p.start.elapsed().as_nanos() as u64;
            let mut ret = regs.rax as i64;
            if p.violation.as_ref().is_some_and(|v| v.denied) {
                ret = -i64::from(libc::EACCES);
                regs.rax = ret as u64;
                set_regs(pid, &regs);
            }
            let errno =
                (-4095..0).contains(&ret).then(|| errno_name(-ret).map_or_else(|| format!("E{}", -ret), str::to_owned));
            let event = Event {
                pid,
                t_us: p.t_us,
                dur_ns,
                nr: p.nr,
                name: syscall_name(p.nr).map_or_else(|| format!("syscall_{}", p.nr), str::to_owned),
                ret,
                errno,
                detail: p.detail,
                violation: p.violation.map(|v| v.to_string()),
            };
            recorder.call(&event)?;
        }
    }
    Ok(())
}
// ANCHOR_END: syscall_stop

/// Decodes the arguments of interest of call `name` at its entry.
fn decode_entry(pid: pid_t, name: &str, a: &[u64; 6]) -> Detail {
    let mut d = Detail::default();
    match name {
        "open" | "creat" | "stat" | "lstat" | "access" | "readlink" | "truncate" | "chdir" | "mkdir" | "rmdir"
        | "unlink" | "chmod" | "chown" | "lchown" | "statfs" | "mknod" | "utime" | "utimes" | "chroot" | "rename"
        | "link" | "getxattr" | "lgetxattr" | "setxattr" | "lsetxattr" | "listxattr" | "llistxattr" | "removexattr"
        | "lremovexattr" | "uselib" | "acct" | "swapon" | "swapoff" => {
            d.path = read_path(pid, libc::AT_FDCWD, a[0]);
        }
        "openat" | "openat2" | "newfstatat" | "statx" | "faccessat" | "faccessat2" | "readlinkat" | "mkdirat"
        | "unlinkat" | "fchmodat" | "fchmodat2" | "fchownat" | "mknodat" | "utimensat" | "futimesat" | "renameat"
        | "renameat2" | "linkat" | "name_to_handle_at" | "open_tree" => {
            d.path = read_path(pid, a[0] as i32, a[1]);
        }
        "execve" => {
            d.path = read_path(pid, libc::AT_FDCWD, a[0]);
            d.argv = read_argv(pid, a[1]);
        }
        "execveat" => {
            d.path = read_path(pid, a[0] as i32, a[1]);
            d.argv = read_argv(pid, a[2]);
        }
        "connect" | "bind" => d.addr = read_sockaddr(pid, a[1], a[2]),
        "sendto" if a[4] != 0 => d.addr = read_sockaddr(pid, a[4], a[5]),
        "sendmsg" => {
            // struct msghdr { void *msg_name; socklen_t msg_namelen; … }
            if let Some(h) = read_mem(pid, a[1], 12)
                && h.len() == 12
            {
                let name = u64::from_ne_bytes(h[0..8].try_into().unwrap_or_default());
                let len = u32::from_ne_bytes(h[8..12].try_into().unwrap_or_default());
                if name != 0 && len > 0 {
                    d.addr = read_sockaddr(pid, name, u64::from(len));
                }
            }
        }
        "socket" | "socketpair" => d.domain = Some(family_name(a[0] as u16)),
        _ => {}
    }
    d
}

/// The name of an address family.
fn family_name(family: u16) -> String {
    match family {
        AF_UNSPEC => "AF_UNSPEC".into(),
        AF_UNIX => "AF_UNIX".into(),
        AF_INET => "AF_INET".into(),
        AF_INET6 => "AF_INET6".into(),
        AF_NETLINK => "AF_NETLINK".into(),
        17 => "AF_PACKET".into(),
        40 => "AF_VSOCK".into(),
        n => format!("AF_{n}"),
    }
}

/// A NUL-terminated path at `addr`, made absolute against `dirfd` (or the task's working folder)
/// and lexically normal; kept as given when that folder cannot be read.
fn read_path(pid: pid_t, dirfd: i32, addr: u64) -> Option<String> {
    let raw = read_cstr(pid, addr)?;
    if raw.is_empty() {
        return None; // `AT_EMPTY_PATH`: the call is on `dirfd` itself (fstat through statx, …)
    }
    let path = Path::new(OsStr::from_bytes(&raw));
    let full = if path.is_absolute() {
        normalize_path(Path::new("/"), path)
    } else {
        let link = if dirfd == libc::AT_FDCWD { format!("/proc/{pid}/cwd") } else { format!("/proc/{pid}/fd/{dirfd}") };
        match std::fs::read_link(link) {
            Ok(base) if base.is_absolute() => normalize_path(&base, path),
            _ => path.to_path_buf(),
        }
    };
    Some(full.to_string_lossy().into_owned())
}

/// The strings of a NULL-terminated `char *argv[]` at `addr`.
fn read_argv(pid: pid_t, addr: u64) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for i in 0..MAX_ARGV as u64 {
        let ptr = read_mem(pid, addr.checked_add(8 * i)?, 8)?;
        let ptr = u64::from_ne_bytes(ptr.as_slice().try_into().ok()?);
        if ptr == 0 {
            break;
        }
        out.push(String::from_utf8_lossy(&read_cstr(pid, ptr)?).into_owned());
    }
    Some(out)
}

/// The socket address of `len` bytes at `addr`.
fn read_sockaddr(pid: pid_t, addr: u64, len: u64) -> Option<SockAddr> {
    if addr == 0 {
        return None;
    }
    let bytes = read_mem(pid, addr, (len as usize).min(MAX_SOCKADDR))?;
    Some(SockAddr::decode(&bytes))
}

/// A NUL-terminated string at `addr` (at most [`MAX_STRING`] bytes), read page by page so a string
/// that ends just before an unmapped page is still read.
fn read_cstr(pid: pid_t, addr: u64) -> Option<Vec<u8>> {
    if addr == 0 {
        return None;
    }
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < MAX_STRING {
        let to_page_end = 4096 - (at % 4096) as usize;
        let chunk = read_mem(pid, at, to_page_end.min(MAX_STRING - out.len()))?;
        if let Some(end) = chunk.iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..end]);
            return Some(out);
        }
        out.extend_from_slice(&chunk);
        at = at.checked_add(chunk.len() as u64)?;
    }
    Some(out)
}

/// `len` bytes of the tracee's memory at `addr` (fewer at an unmapped page), by process_vm_readv(2),
/// or word by word with `PTRACE_PEEKDATA` where that is refused.
fn read_mem(pid: pid_t, addr: u64, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: len };
    let remote = libc::iovec { iov_base: addr as usize as *mut c_void, iov_len: len };
    // SAFETY: `local` describes `buf`, which we own and which outlives the call; the remote range is
    // only read by the kernel from the tracee's address space (a bad address fails, it cannot fault us).
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if n >= 0 {
        buf.truncate(n as usize);
        return (n > 0).then_some(buf);
    }
    buf.clear();
    let mut at = addr;
    while buf.len() < len {
        // SAFETY: errno is thread-local; PEEKDATA returns the word, so -1 is told from an error by errno.
        let word = unsafe {
            *libc::__errno_location() = 0;
            libc::ptrace(libc::PTRACE_PEEKDATA, pid, at as usize as *mut c_void, null_mut::<c_void>())
        };
        // SAFETY: reading our own thread's errno.
        if word == -1 && unsafe { *libc::__errno_location() } != 0 {
            break;
        }
        let bytes = word.to_ne_bytes();
        buf.extend_from_slice(&bytes[..(len - buf.len()).min(8)]);
        at += 8;
    }
    (!buf.is_empty()).then_some(buf)
}

/// The registers of a stopped tracee (`None` if it vanished).
fn get_regs(pid: pid_t) -> Option<libc::user_regs_struct> {
    // SAFETY: user_regs_struct is plain integers, valid when zeroed.
    let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    // SAFETY: PTRACE_GETREGS writes one user_regs_struct at `data`, which points to ours.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGS,
            pid,
            null_mut::<c_void>(),
            (&mut regs as *mut libc::user_regs_struct).cast::<c_void>(),
        )
    };
    (rc != -1).then_some(regs)
}

/// Writes the registers of a stopped tracee (a vanished tracee is ignored).
fn set_regs(pid: pid_t, regs: &libc::user_regs_struct) {
    // SAFETY: PTRACE_SETREGS reads one user_regs_struct from `data`, which points to a valid one.
    unsafe {
        libc::ptrace(
            libc::PTRACE_SETREGS,
            pid,
            null_mut::<c_void>(),
            (regs as *const libc::user_regs_struct).cast_mut().cast::<c_void>(),
        );
    }
}

/// `PTRACE_GETEVENTMSG`: the new task's id after a fork/clone event, the former id after an exec.
fn event_msg(pid: pid_t) -> Option<u64> {
    let mut msg: libc::c_ulong = 0;
    // SAFETY: PTRACE_GETEVENTMSG writes one unsigned long at `data`, which points to ours.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_GETEVENTMSG,
            pid,
            null_mut::<c_void>(),
            (&mut msg as *mut libc::c_ulong).cast::<c_void>(),
        )
    };
    (rc != -1).then_some(msg)
}

/// True for a group-stop (a stop signal that stopped the whole process): `PTRACE_GETSIGINFO` fails
/// with `EINVAL` there, and succeeds at a signal-delivery stop.
fn is_group_stop(pid: pid_t, sig: c_int) -> bool {
    if !matches!(sig, libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU) {
        return false;
    }
    // SAFETY: siginfo_t is plain data, valid when zeroed; GETSIGINFO writes one at `data`.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_GETSIGINFO,
            pid,
            null_mut::<c_void>(),
            (&mut info as *mut libc::siginfo_t).cast::<c_void>(),
        )
    };
    rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
}

/// Resumes a stopped tracee to its next syscall stop, delivering `sig` (0: none). A tracee that
/// vanished meanwhile (`ESRCH`) is left to its exit report.
fn resume(pid: pid_t, sig: c_int) {
    // SAFETY: PTRACE_SYSCALL takes the signal to deliver in `data`; no memory is passed.
    unsafe {
        libc::ptrace(libc::PTRACE_SYSCALL, pid, null_mut::<c_void>(), sig as usize as *mut c_void);
    }
}

/// Waits for a stop or the end of `pid`, retrying on `EINTR`.
fn wait_for(pid: pid_t) -> Result<c_int, Error> {
    loop {
        let mut status: c_int = 0;
        // SAFETY: waitpid(2) writes the status into our local.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        if r == pid {
            return Ok(status);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::AuditPtrace { op: "waitpid", pid, source: e });
        }
    }
}

/// The program to exec: a path with a `/` as given, else the first executable file named so on
/// `PATH` (as execvp(3) searches, but before the fork).
fn resolve(program: &OsStr) -> Result<PathBuf, Error> {
    let err =
        |reason: &str| Error::AuditSpawn { program: program.to_string_lossy().into_owned(), reason: reason.into() };
    let executable = |p: &Path| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.as_bytes().contains(&b'/') {
        let p = Path::new(program);
        return if executable(p) { Ok(p.to_path_buf()) } else { Err(err("not an executable file")) };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
        .ok_or_else(|| err("not found on PATH"))
}
