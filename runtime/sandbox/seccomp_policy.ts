/**
 * The seccomp policy of every sandboxed job: default allow (Deno and V8 use a wide, shifting
 * set of syscalls) with a denylist of what a job never needs and an attacker who took over
 * the job process would want: network, new processes and programs, debugging other
 * processes, signals to anyone else, namespaces and mounts, kernel extension points, and
 * raising its own limits back.
 * @module
 */
import type { SeccompRule } from "../../ffi/seccomp.ts";

const EPERM = 1;
const ENOSYS = 38;
const CLONE_THREAD = 0x10000n;
const AF_UNIX = 1n;
const LOW_32_BITS = 0xffff_ffffn;
const PR_SET_DUMPABLE = 4n;
const PR_SET_PTRACER = 0x5961_6d61n;
const TIOCSTI = 0x5412n;
const TIOCLINUX = 0x541cn;

/** Denied outright with EPERM. */
const DENIED: readonly string[] = [
  // Network: no sockets of any kind (socketpair for AF_UNIX below, Deno uses it internally).
  "socket",
  "connect",
  "bind",
  "listen",
  "accept",
  "accept4",
  // New programs and processes (threads are allowed: see clone below).
  "execve",
  "execveat",
  "fork",
  "vfork",
  // Reading or steering other processes.
  "ptrace",
  "process_vm_readv",
  "process_vm_writev",
  "kcmp",
  "pidfd_open",
  "pidfd_getfd",
  "pidfd_send_signal",
  "tkill",
  // Namespaces and mounts: the way out of Landlock and of the process tree.
  "unshare",
  "setns",
  "mount",
  "umount2",
  "pivot_root",
  "chroot",
  "move_mount",
  "open_tree",
  "fsopen",
  "fsconfig",
  "fsmount",
  "fspick",
  "mount_setattr",
  "name_to_handle_at",
  "open_by_handle_at",
  // Kernel attack surface and system state a job has no business with.
  "bpf",
  "perf_event_open",
  "userfaultfd",
  "keyctl",
  "add_key",
  "request_key",
  "io_uring_setup",
  "io_uring_enter",
  "io_uring_register",
  "kexec_load",
  "kexec_file_load",
  "init_module",
  "finit_module",
  "delete_module",
  "reboot",
  "swapon",
  "swapoff",
  "syslog",
  "acct",
  "quotactl",
  "iopl",
  "ioperm",
  "settimeofday",
  "clock_settime",
  "clock_adjtime",
  "adjtimex",
  "sethostname",
  "setdomainname",
  "vhangup",
  "fanotify_init",
  "uselib",
  // personality(READ_IMPLIES_EXEC) would make every readable mapping executable.
  "personality",
  // Limits are set by the launcher and boot; the job must not raise them back.
  "setrlimit",
];

/**
 * The job's seccomp rules.
 * @param pid the job's own pid: signals may go to it and nowhere else
 * @returns rules for `Seccomp.loadDenyFilter`
 */
export function jobSeccompRules(pid: number): SeccompRule[] {
  const self = BigInt(pid);
  const rules: SeccompRule[] = DENIED.map((syscall) => ({ syscall, action: EPERM }));
  rules.push(
    // clone3 passes its flags in a struct the filter cannot read: ENOSYS makes glibc and Rust
    // fall back to clone(2), whose flags it can.
    { syscall: "clone3", action: ENOSYS },
    // clone without CLONE_THREAD is a fork.
    {
      syscall: "clone",
      action: EPERM,
      when: [{ arg: 0, op: "MASKED_EQ", value: CLONE_THREAD, masked: 0n }],
    },
    // prlimit64 with a new limit (arg 2) = setrlimit; reading (NULL) stays allowed.
    { syscall: "prlimit64", action: EPERM, when: [{ arg: 2, op: "NE", value: 0n }] },
    // Signals only to itself (V8 and Rust's abort use tgkill on their own pid). A full 64-bit
    // compare fails closed: any upper bits make it unequal.
    { syscall: "kill", action: EPERM, when: [{ arg: 0, op: "NE", value: self }] },
    { syscall: "tgkill", action: EPERM, when: [{ arg: 0, op: "NE", value: self }] },
    { syscall: "rt_sigqueueinfo", action: EPERM, when: [{ arg: 0, op: "NE", value: self }] },
    { syscall: "rt_tgsigqueueinfo", action: EPERM, when: [{ arg: 0, op: "NE", value: self }] },
    // socketpair only for AF_UNIX.
    { syscall: "socketpair", action: EPERM, when: [{ arg: 0, op: "NE", value: AF_UNIX }] },
    // Int arguments: the kernel reads the low 32 bits, so compare only those (an attacker
    // could set the upper ones to slip past a 64-bit equality).
    // Dumpable again would reopen core dumps and same-uid ptrace.
    {
      syscall: "prctl",
      action: EPERM,
      when: [{ arg: 0, op: "MASKED_EQ", value: LOW_32_BITS, masked: PR_SET_DUMPABLE }],
    },
    {
      syscall: "prctl",
      action: EPERM,
      when: [{ arg: 0, op: "MASKED_EQ", value: LOW_32_BITS, masked: PR_SET_PTRACER }],
    },
    // Injecting keystrokes into a terminal the job might have inherited.
    {
      syscall: "ioctl",
      action: EPERM,
      when: [{ arg: 1, op: "MASKED_EQ", value: LOW_32_BITS, masked: TIOCSTI }],
    },
    {
      syscall: "ioctl",
      action: EPERM,
      when: [{ arg: 1, op: "MASKED_EQ", value: LOW_32_BITS, masked: TIOCLINUX }],
    },
  );
  return rules;
}
