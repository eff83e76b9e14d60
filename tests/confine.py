"""Run a command under the confinement a container runtime adds (for tests/test_isolation.py
and tests/test_deploy.py):
no_new_privs and a seccomp filter that refuses new user namespaces as Docker's and
containerd's default profiles do (unshare and clone(CLONE_NEWUSER) -> EPERM, clone3 ->
ENOSYS so that libc falls back to clone). x86_64 only.

    python tests/confine.py COMMAND [ARG ...]
"""
import ctypes
import os
import platform
import struct
import sys

AUDIT_ARCH_X86_64 = 0xC000003E
SYS_CLONE, SYS_UNSHARE, SYS_CLONE3 = 56, 272, 435
CLONE_NEWUSER = 0x10000000
LD_W_ABS, JEQ_K, JSET_K, RET_K = 0x20, 0x15, 0x45, 0x06
RET_ERRNO, RET_ALLOW = 0x00050000, 0x7FFF0000
EPERM, ENOSYS = 1, 38
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2

PROGRAM = [  # (code, jump if true, jump if false, k); jumps count from the next instruction
    (LD_W_ABS, 0, 0, 4),                  # 0: arch
    (JEQ_K, 0, 8, AUDIT_ARCH_X86_64),     # 1: another arch: allow (10)
    (LD_W_ABS, 0, 0, 0),                  # 2: syscall number
    (JEQ_K, 4, 0, SYS_UNSHARE),           # 3: -> EPERM (8)
    (JEQ_K, 4, 0, SYS_CLONE3),            # 4: -> ENOSYS (9)
    (JEQ_K, 0, 4, SYS_CLONE),             # 5: not clone: allow (10)
    (LD_W_ABS, 0, 0, 16),                 # 6: clone's flags (low half of args[0])
    (JSET_K, 0, 2, CLONE_NEWUSER),        # 7: a new user namespace -> EPERM, else allow
    (RET_K, 0, 0, RET_ERRNO | EPERM),     # 8
    (RET_K, 0, 0, RET_ERRNO | ENOSYS),    # 9
    (RET_K, 0, 0, RET_ALLOW),             # 10
]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def confine():
    if platform.machine() != "x86_64":
        raise SystemExit("tests/confine.py knows x86_64's syscall numbers only")
    libc = ctypes.CDLL(None, use_errno=True)
    code = b"".join(struct.pack("=HBBI", *op) for op in PROGRAM)
    prog = SockFprog(len(PROGRAM), code)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


def emulated_pod_args(mounts, env, uid):
    """bwrap arguments (a command follows) for an emulated pod: a fresh root with the system
    and this Python read-only (the image), `mounts` [(path, host folder or None for an
    emptyDir, read-only?)], everything else read-only, user `uid`, no capabilities, no
    network but loopback, its own process list, no_new_privs and seccomp (confine()), and
    exactly the environment `env`."""
    import sysconfig
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--uid", str(uid),
            "--gid", str(uid), "--cap-drop", "ALL", "--proc", "/proc", "--dev", "/dev"]
    image = {"/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin", "/etc", str(repo)}
    for key in ("prefix", "base_prefix", "exec_prefix", "base_exec_prefix"):
        image.add(getattr(sys, key))
    image |= {os.path.realpath(p) for p in list(image)}
    image.add(os.path.dirname(os.path.realpath(sys.executable)))
    image.add(sysconfig.get_paths()["stdlib"])
    for path in sorted(p for p in image if os.path.exists(p)):
        args += ["--ro-bind", path, path]
    for path, host, read_only in mounts:
        if host is None:
            args += ["--tmpfs", path]
        else:
            args += ["--ro-bind" if read_only else "--bind", str(host), path]
    args += ["--remount-ro", "/", sys.executable, __file__, "env", "-i"]
    return args + [f"{k}={v}" for k, v in env.items()]


if __name__ == "__main__":
    confine()
    os.execvp(sys.argv[1], sys.argv[1:])
