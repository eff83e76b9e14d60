"""Run a submission where it can touch nothing but its own folder.

`run_submission(nb, lesson, calls, ...)` copies the notebook and the grader's questions
(bncourse.answers) into a fresh scratch folder, runs it with bncourse.runner inside a
bubblewrap sandbox, and reads back the executed notebook and the recorded answers:

- an unprivileged identity in new user, PID, network, IPC and UTS namespaces: no network
  (loopback only), no view of other processes, no capabilities, a new session (no terminal
  injection), killed with everything it started when the run ends or the grader dies;
- a filesystem of read-only binds (the system, Python, the virtual environment, bncourse/
  with its data) on a read-only root, plus the scratch folder: the only writable place (it
  holds TMPDIR too). solutions/, autograder/ (the
  hidden reference), the gradebook, other students' work and the grading workspace are
  simply not there;
- limits: address space (RLIMIT_AS), file size, and a wall-clock deadline for the whole run
  on top of bncourse.runner's per-cell timeout.

Isolation is pluggable (`BNCOURSE_ISOLATION`, see `isolation()`):

- `bubblewrap` (the default wherever it works): as above; `Run.sandbox == "bubblewrap"`.
- `pod`: the grading process runs in a dedicated, locked-down Kubernetes pod (deploy/k8s/,
  autograder/k8s.py) that is itself the sandbox; the submission runs as a plain subprocess,
  and `Run.sandbox == "pod"` only after `pod_problems()` found none of the pod's properties
  missing (not root, read-only root, no capabilities, no privilege escalation, a seccomp
  filter, Landlock, no service-account token, no other users' processes, no network). Within
  the pod, Landlock keeps the submission to what bubblewrap would show it (the system,
  Python, bncourse/ with its data read-only; its scratch folder writable): the grading code,
  the hidden reference and the grader's workspace in the same pod are out of its reach, and
  it may not signal or trace the grader. Every process it left behind is killed after its run.
- `none`: a plain subprocess, said loudly (`Run.sandbox == UNSANDBOXED`).

With the variable unset, bubblewrap is used where it works and otherwise the submission
runs unsandboxed (macOS, Windows, no user namespaces), and every result says so;
`diagnose()` tells why bubblewrap failed and how to fix it. Asked for explicitly, a mode that
does not hold stops grading (IsolationError) instead of falling back. Nothing read back is
trusted: sizes are capped, links are refused, and grades come from the answers alone.
"""
import json
import os
import re
import resource
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import nbformat

import bncourse
import bncourse.data
from bncourse import answers, pieces, runner

SANDBOX = BUBBLEWRAP = "bubblewrap"
POD = "pod"
UNSANDBOXED = "NONE (unsandboxed)"
MEMORY_LIMIT = 6 << 30  # bytes of address space for everything in one submission's sandbox
MAX_NOTEBOOK_BYTES = 32 << 20
INSIDE = Path("/home/learner")  # where the submission's folder appears inside the sandbox
ENV_OFF = "BNCOURSE_SANDBOX"  # set to "off" to grade without a sandbox (and be told so)
ENV_ISOLATION = "BNCOURSE_ISOLATION"  # bubblewrap | pod | none; unset: bubblewrap where it works
MODES = ("bubblewrap", "pod", "none")


class IsolationError(RuntimeError):
    """The isolation asked for does not hold here: grading stops rather than fall back."""


@dataclass
class Run:
    notebook: object = None                       # the executed notebook, or None
    answers: dict = field(default_factory=dict)   # piece -> [Answer], for the pieces recorded
    problems: dict = field(default_factory=dict)  # piece -> why its answers are unusable
    stopped: str = ""                             # why the run ended early, if it did
    note: str = ""                                # what else the grader should say about the run
    sandbox: str = SANDBOX


def _python_roots():
    """Folders Python needs to run: the venv, the interpreter's install, their real paths."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable))}
    roots |= {os.path.realpath(r) for r in roots}
    return sorted(r for r in roots if r and os.path.isdir(r))


def _package_dirs():
    """The folders a submission reads the learner package from: bncourse/ and, where it is not
    inside it, the course's data. A wheel carries the data in bncourse/datasets/; the editable
    install (make install, the grader image) reads it from the repository's top-level datasets/
    (pyproject.toml's package-dir maps it to bncourse.datasets)."""
    bncourse_dir = Path(bncourse.__file__).resolve().parent
    found = [bncourse_dir]
    if isinstance(bncourse.data.DATASETS, Path):  # on disk (a zipped package has no folder to bind)
        datasets = bncourse.data.DATASETS.resolve()
        if not datasets.is_relative_to(bncourse_dir):
            found.append(datasets)
    return found


def _bwrap_args(scratch):
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session",
            "--uid", "65534", "--gid", "65534", "--cap-drop", "ALL",
            "--proc", "/proc", "--dev", "/dev"]  # no /tmp: TMPDIR is in the scratch folder
    for system in ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin", "/etc"):
        if os.path.exists(system):
            args += ["--ro-bind", system, system]
    for root in _python_roots():
        args += ["--ro-bind", root, root]
    # bncourse and its data at their own paths, as the editable install finds them; nothing
    # else of the repo
    for folder in _package_dirs():
        args += ["--ro-bind", str(folder), str(folder)]
    args += ["--bind", str(scratch), str(INSIDE), "--chdir", str(INSIDE),
             "--remount-ro", "/"]  # the sandbox's own root too: only scratch takes writes
    return args


def requested():
    """The isolation asked for: "bubblewrap", "pod", "none", or "auto" (nothing asked:
    bubblewrap where it works, else unsandboxed and said so). BNCOURSE_SANDBOX=off is the
    older spelling of none."""
    value = os.environ.get(ENV_ISOLATION, "").strip().lower()
    if not value or value == "auto":
        return "none" if os.environ.get(ENV_OFF, "").lower() in ("off", "0", "no") else "auto"
    if value not in MODES:
        raise IsolationError(f"{ENV_ISOLATION}={value!r} is not one of {', '.join(MODES)}")
    return value


@lru_cache(maxsize=1)
def isolation():
    """How this process runs submissions: BUBBLEWRAP, POD or UNSANDBOXED (the value each
    Run and grades.csv's `sandbox` column carry). Raises IsolationError when the mode asked
    for does not hold: a claimed sandbox is never a guess."""
    mode = requested()
    if mode == "none":
        return UNSANDBOXED
    if mode == "pod":
        problems = pod_problems()
        if problems:
            raise IsolationError(f"{ENV_ISOLATION}=pod, but this is not a locked-down grading pod: "
                                 + "; ".join(problems))
        return POD
    probe = probe_bubblewrap()
    if probe.ok:
        return BUBBLEWRAP
    if mode == "bubblewrap":
        raise IsolationError(f"{ENV_ISOLATION}=bubblewrap, but {probe.diagnosis}")
    return UNSANDBOXED


def sandbox_available():
    """bubblewrap is what runs submissions here (installed, may create namespaces, and
    grading was not told to use another isolation)."""
    try:
        return isolation() == BUBBLEWRAP
    except IsolationError:
        return False


def diagnose():
    """A short sentence: why submissions here do not run in bubblewrap (or the pod), and the
    fix; "" when they do."""
    try:
        mode = requested()
    except IsolationError as e:
        return str(e)
    if mode == "none":
        return (f"isolation was switched off ({ENV_ISOLATION}=none or {ENV_OFF}=off); unset it to "
                "use bubblewrap.")
    if mode == "pod":
        problems = pod_problems()
        return "" if not problems else "the grading pod is not locked down: " + "; ".join(problems) + "."
    probe = probe_bubblewrap()
    return "" if probe.ok else probe.diagnosis


# ---------------------------------------------------------------------------------------
# Why bubblewrap fails: the probe's stderr and a few facts of the host, classified.

@dataclass
class Probe:
    ok: bool
    cause: str = ""     # a key of CAUSES ("" when ok)
    stderr: str = ""    # what bwrap said (its first lines)

    @property
    def diagnosis(self):
        if self.ok:
            return ""
        said, fix = CAUSES[self.cause]
        detail = self.stderr.strip().splitlines()[0][:160] if self.stderr.strip() else ""
        return (f"bubblewrap cannot run here: {said}" + (f' (bwrap said: "{detail}")' if detail else "")
                + f". Fix: {fix}")


KUBERNETES_FIX = (f"on Kubernetes, grade in the locked-down pod instead ({ENV_ISOLATION}=pod, "
                  "manifests in deploy/k8s/)")
CAUSES = {
    "not_installed": ("bwrap is not installed (not on PATH)",
                      "apt-get install bubblewrap (Debian/Ubuntu; `make sandbox` does it as root), "
                      "dnf install bubblewrap (Fedora); there is none for macOS or Windows"),
    "userns_limit": ("user namespaces are switched off: user.max_user_namespaces is 0 (or the "
                     "nesting limit is reached)",
                     "sysctl -w user.max_user_namespaces=15000, and the same line in "
                     "/etc/sysctl.d/ to keep it"),
    "userns_disabled": ("unprivileged user namespaces are switched off "
                        "(kernel.unprivileged_userns_clone = 0)",
                        "sysctl -w kernel.unprivileged_userns_clone=1 (and in /etc/sysctl.d/), or "
                        "make bwrap setuid root: chmod u+s $(command -v bwrap)"),
    "apparmor": ("AppArmor restricts unprivileged user namespaces "
                 "(kernel.apparmor_restrict_unprivileged_userns = 1, Ubuntu 23.10 and later)",
                 "give bwrap an AppArmor profile that allows `userns,` (a file "
                 "/etc/apparmor.d/bwrap naming /usr/bin/bwrap, then apparmor_parser -r it), or "
                 "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"),
    "seccomp": ("a seccomp filter on this process (a container runtime's default profile, as in "
                "Docker or a Kubernetes pod) refuses clone(CLONE_NEWUSER): Operation not permitted",
                "run the container with a profile that allows user namespaces (docker run "
                "--security-opt seccomp=unconfined --security-opt apparmor=unconfined), or "
                + KUBERNETES_FIX),
    "container": ("inside a container that may not create namespaces (no CAP_SYS_ADMIN, or its "
                  "runtime forbids it): Operation not permitted",
                  "give the container a seccomp/AppArmor profile that allows user namespaces, or "
                  + KUBERNETES_FIX),
    "userns_denied": ("the kernel refused to create a user namespace (Operation not permitted)",
                      "allow unprivileged user namespaces (sysctl -w kernel.unprivileged_userns_clone=1 "
                      "on Debian kernels; check user.max_user_namespaces and any LSM policy), or make "
                      "bwrap setuid root: chmod u+s $(command -v bwrap)"),
    "no_userns_kernel": ("this kernel has no user namespaces and bwrap is not setuid root",
                         "make bwrap setuid root (chmod u+s $(command -v bwrap)), or use a kernel "
                         "built with CONFIG_USER_NS"),
    "proc_masked": ("a new /proc cannot be mounted: the container masks parts of /proc "
                    "(Docker's and Kubernetes' default)",
                    "docker run --security-opt systempaths=unconfined, or " + KUBERNETES_FIX),
    "python": ("bwrap starts, but Python cannot start or import bncourse inside the sandbox "
               "(the interpreter, the virtual environment or a package it needs lives outside "
               "the folders bound into it)",
               "install Python and the virtual environment under /usr, /opt or the repository"),
    "timeout": ("the bwrap probe did not finish within 60 s", "run the probe by hand: "
                "bwrap --unshare-all --ro-bind / / true"),
    "unknown": ("bwrap failed for a reason this diagnosis does not know",
                "run the probe by hand and read its message: bwrap --unshare-all --ro-bind / / true"),
}


def _read(path):
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _status(field_name):
    """A field of /proc/self/status ("CapEff", "Seccomp", "NoNewPrivs"), or None."""
    found = re.search(rf"^{field_name}:\s*(\S+)", _read("/proc/self/status") or "", re.M)
    return found.group(1) if found else None


def host_facts(path=None):
    """What the classification looks at besides bwrap's own words."""
    bwrap = shutil.which("bwrap", path=path)
    cap_eff = _status("CapEff")
    return {
        "bwrap": bwrap,
        "setuid": bool(bwrap and os.stat(bwrap).st_mode & stat.S_ISUID),
        "unprivileged_userns_clone": _read("/proc/sys/kernel/unprivileged_userns_clone"),
        "max_user_namespaces": _read("/proc/sys/user/max_user_namespaces"),
        "apparmor_restrict_unprivileged_userns": _read(
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
        "seccomp": _status("Seccomp"),
        "cap_sys_admin": bool(cap_eff and int(cap_eff, 16) & (1 << 21)),
        "container": any(os.path.exists(p) for p in ("/.dockerenv", "/run/.containerenv"))
                     or "KUBERNETES_SERVICE_HOST" in os.environ,
    }


def classify(stderr, facts, timed_out=False):
    """The key in CAUSES of a failed bwrap probe, from bwrap's stderr and host_facts()."""
    said = stderr or ""
    denied = re.search(r"No permissions to creat|Operation not permitted|Permission denied|"
                       r"setting up uid map|RTM_NEWADDR|Specifying --uid requires", said)
    if not facts.get("bwrap"):
        return "not_installed"
    if timed_out:
        return "timeout"
    if "ENOSPC" in said or "max_*_namespaces" in said or facts.get("max_user_namespaces") == "0":
        return "userns_limit"
    if facts.get("unprivileged_userns_clone") == "0" and not facts.get("setuid"):
        return "userns_disabled"
    if facts.get("apparmor_restrict_unprivileged_userns") == "1" and denied:
        return "apparmor"
    if "kernel does not support user namespaces" in said:
        return "no_userns_kernel"
    if "Can't mount proc" in said:
        return "proc_masked"
    if denied:
        if facts.get("seccomp") == "2":
            return "seccomp"
        if facts.get("container") and not facts.get("cap_sys_admin"):
            return "container"
        return "userns_denied"
    if re.search(r"execvp|No such file|ModuleNotFoundError|can't open file", said):
        return "python"
    return "unknown"


def probe_bubblewrap(path=None):
    """Start the real sandbox once with `import bncourse` in it; a Probe says whether it
    worked and, if not, why. path: a PATH to look for bwrap in (default: this one's)."""
    if path is None:
        return _default_probe()
    return _probe(path)


@lru_cache(maxsize=1)
def _default_probe():
    return _probe(None)


def _probe(path):
    facts = host_facts(path)
    if facts["bwrap"] is None:
        return Probe(False, "not_installed")
    with tempfile.TemporaryDirectory() as tmp:
        args = _bwrap_args(tmp)
        args[0] = facts["bwrap"]
        try:
            # bncourse found as a real run finds it (_run's PYTHONPATH)
            env = dict(os.environ, PYTHONPATH=str(Path(bncourse.__file__).resolve().parents[1]))
            probe = subprocess.run(args + [sys.executable, "-c", "import bncourse"],
                                   capture_output=True, timeout=60, env=env)
        except subprocess.TimeoutExpired:
            return Probe(False, classify("", facts, timed_out=True))
        except OSError as e:
            return Probe(False, classify(str(e), facts), str(e))
    if probe.returncode == 0:
        return Probe(True)
    err = probe.stderr.decode(errors="replace")[-2000:]
    return Probe(False, classify(err, facts), err)


# ---------------------------------------------------------------------------------------
# The pod as the sandbox: what can be checked cheaply from inside the grading process.

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def _egress_targets():
    """Places a pod with network could reach: the cluster's API server and the DNS server."""
    targets = []
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        targets.append((os.environ["KUBERNETES_SERVICE_HOST"],
                        int(os.environ.get("KUBERNETES_SERVICE_PORT", "443"))))
    for line in (_read("/etc/resolv.conf") or "").splitlines():
        if line.startswith("nameserver"):
            targets.append((line.split()[1], 53))
    return targets


def reachable(targets, timeout=1.0):
    """The (host, port) of targets that accept a TCP connection within timeout."""
    found = []
    for host, port in targets:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                found.append((host, port))
        except OSError:
            pass
    return found


def pod_problems():
    """What keeps this process from being a locked-down grading pod (deploy/k8s/), as a list
    of sentences; [] when every property checked holds. Checked: not root, read-only root
    filesystem, no capabilities, no_new_privs (allowPrivilegeEscalation: false), a seccomp
    filter (its content is not inspected), Landlock available (to keep the submission from
    the grader's files), no service-account token, no processes of other users in sight (no
    shared process namespace), and no network: either only loopback, or no TCP connection
    to the API server or the DNS server (a deny-all NetworkPolicy) within a second."""
    problems = []
    if os.geteuid() == 0 or os.getuid() == 0:
        problems.append("it runs as root (uid 0): set runAsNonRoot and runAsUser")
    if not os.statvfs("/").f_flag & os.ST_RDONLY:
        problems.append("the root filesystem is writable: set readOnlyRootFilesystem: true")
    cap_eff = _status("CapEff")
    if cap_eff is None or int(cap_eff, 16):
        problems.append(f"it holds capabilities (CapEff {cap_eff}): drop ALL")
    if _status("NoNewPrivs") != "1":
        problems.append("it may gain privileges (no_new_privs is off): set "
                        "allowPrivilegeEscalation: false")
    if _status("Seccomp") in (None, "0"):
        problems.append("no seccomp filter: set seccompProfile type RuntimeDefault")
    if landlock_abi() < 1:
        problems.append("Landlock is not available (Linux 5.13 or later with landlock among its "
                        "LSMs, and a seccomp profile that allows the landlock_* system calls): "
                        "without it the submission could read the grading code in the pod")
    if (SERVICE_ACCOUNT / "token").exists():
        problems.append("a service-account token is mounted: set automountServiceAccountToken: false")
    strangers = _processes(lambda uid: uid != os.getuid())
    if strangers:
        problems.append(f"{len(strangers)} process(es) of other users are visible (e.g. pid "
                        f"{strangers[0]}): the pod must grade alone, without shareProcessNamespace")
    nics = sorted(name for _, name in socket.if_nameindex() if name != "lo")
    if nics:
        open_ = reachable(_egress_targets())
        if open_:
            problems.append(f"it has network ({', '.join(nics)}) and reaches "
                            + ", ".join(f"{h}:{p}" for h, p in open_)
                            + ": apply the deny-all NetworkPolicy of deploy/k8s/")
        elif not _egress_targets():
            problems.append(f"it has network interfaces ({', '.join(nics)}) and no known place "
                            "to prove egress is blocked")
    return problems


def _ancestors():
    pids, pid = set(), os.getpid()
    while pid > 0 and pid not in pids:
        pids.add(pid)
        found = re.search(r"^PPid:\s*(\d+)", _read(f"/proc/{pid}/status") or "", re.M)
        pid = int(found.group(1)) if found else 0
    return pids


def _processes(owner=lambda uid: True):
    """Pids in sight whose owner passes `owner`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if owner(os.stat(f"/proc/{entry}").st_uid):
                    found.append(int(entry))
            except OSError:
                pass
    return sorted(found)


def _kill_strays(before):
    """In the pod: every process that appeared during the run and is not the grader's own
    (a submission's detached leftovers; the pod grades one notebook at a time)."""
    keep = set(before) | _ancestors()
    for pid in _processes(lambda uid: uid == os.getuid()):
        if pid not in keep:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


# ---------------------------------------------------------------------------------------
# Landlock, in the pod: the submission's process tree may read the system, Python and the
# learner package, and write its scratch folder - nothing else (not the grading code nor the
# hidden reference in the image, not the grader's workspace), and may not signal or trace
# the grader. Landlock needs no privileges (Linux >= 5.13 with landlock among its LSMs, and a
# seccomp profile that lets its three system calls through).

SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
FS_RIGHTS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1,
                    5: (1 << 16) - 1}
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1
PR_SET_NO_NEW_PRIVS = 38


def _libc():
    import ctypes
    return ctypes, ctypes.CDLL(None, use_errno=True)


def landlock_abi():
    """The Landlock ABI version this kernel offers to this process (0: none)."""
    if not sys.platform.startswith("linux"):
        return 0
    ctypes, libc = _libc()
    version = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                           ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    return max(int(version), 0)


def _landlock_ruleset(readable, listable, writable):
    """A ruleset fd: `readable` folders may be read and executed, `listable` only listed,
    `writable` used fully; everything else of the filesystem is refused. Raises OSError."""
    ctypes, libc = _libc()
    abi = landlock_abi()
    if abi < 1:
        raise OSError("Landlock is not available here")
    everything = FS_RIGHTS_BY_ABI.get(abi, FS_RIGHTS_BY_ABI[5])
    # struct landlock_ruleset_attr: handled_access_fs, handled_access_net (ABI 4), scoped (ABI 6)
    fields = [everything] + ([0] if abi >= 4 else []) + (
        [SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL] if abi >= 6 else [])
    attr = (ctypes.c_uint64 * len(fields))(*fields)
    fd = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
                      ctypes.c_uint32(0))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    try:
        for paths, rights in ((readable, FS_READ), (listable, FS_READ_DIR), (writable, everything)):
            for path in paths:
                if not os.path.isdir(path):
                    continue
                parent = os.open(path, os.O_PATH | os.O_CLOEXEC)
                try:
                    rule = PathBeneath(rights, parent)
                    if libc.syscall(SYS_LANDLOCK_ADD_RULE, ctypes.c_int(fd),
                                    ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH), ctypes.byref(rule),
                                    ctypes.c_uint32(0)) != 0:
                        raise OSError(ctypes.get_errno(), f"landlock_add_rule {path}")
                finally:
                    os.close(parent)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _pod_ruleset(scratch):
    """What a submission may touch in the pod: as much as bubblewrap shows it, no more."""
    bncourse_dir, *data_dirs = map(str, _package_dirs())
    readable = ["/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin", "/etc", "/proc", "/sys",
                *_python_roots(), bncourse_dir, *data_dirs]
    listable = [str(Path(bncourse_dir).parent)]  # Python lists it to find bncourse; no files read
    writable = [str(scratch), "/dev"]
    return _landlock_ruleset(readable, listable, writable)


def _restrict_self(fd):
    """In the child, before exec: enter the ruleset for good."""
    ctypes, libc = _libc()
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self")


def _limits():
    """In the child, before exec: its own process group, and resource limits."""
    os.setsid()
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 30, 1 << 30))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _matplotlib_cache(scratch):
    """A copy of the grader's font cache, so each run does not rebuild it (~seconds)."""
    import matplotlib
    target = scratch / ".matplotlib"
    target.mkdir()
    for f in Path(matplotlib.get_cachedir()).glob("fontlist-*.json"):
        shutil.copy(f, target / f.name)
    os.chmod(target, 0o777)
    return target


def _read_back(scratch, name, limit):
    """A regular file the sandbox left in scratch (no links, no escapes), or None."""
    path = scratch / name
    try:
        if scratch not in Path(os.path.realpath(path)).parents:
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        return f.read(limit + 1)[:limit]


def _size(path):
    """A regular file's size (0 for anything else), without following a link."""
    try:
        info = os.lstat(path)
    except OSError:
        return 0
    return info.st_size if stat.S_ISREG(info.st_mode) else 0


def run_submission(nb, lesson, calls, cell_timeout=60, scratch_root=None, carried=None, skip=()):
    """Execute nb (a NotebookNode) in a sandbox; calls: {piece: [(args, kwargs)]}; skip: the
    indices of cells not to run (demonstrations, chosen by the grader).
    carried: {relative path: bytes} of the submission's other files (a learner's data), put
    beside the notebook as nbgrader puts them beside it in autograded/."""
    scratch = Path(tempfile.mkdtemp(prefix="submission-", dir=scratch_root)).resolve()
    try:
        for rel, data in (carried or {}).items():
            rel = Path(rel)
            if rel.parts[0].startswith((".", "judged-")) or str(rel) in (
                    runner.EXECUTED, runner.REPORT, f"{lesson}.ipynb"):
                continue  # never a file the grader reads back or writes itself
            (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
            (scratch / rel).write_bytes(data)
        return _run(nb, lesson, calls, cell_timeout, scratch, skip)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(nb, lesson, calls, cell_timeout, scratch, skip=()):
    os.chmod(scratch, 0o777)  # the sandbox's unprivileged user writes here
    notebook = scratch / f"{lesson}.ipynb"
    nbformat.write(nb, notebook)
    (scratch / answers.FOLDER).mkdir()
    for piece, piece_calls in calls.items():
        answers.save_calls(answers.calls_path(scratch, piece), piece_calls)
    os.chmod(scratch / answers.FOLDER, 0o777)
    (scratch / ".tmp").mkdir(mode=0o777)
    os.chmod(scratch / ".tmp", 0o777)
    mode = isolation()  # raises IsolationError when the isolation asked for does not hold
    sandboxed = mode == BUBBLEWRAP
    inside = INSIDE if sandboxed else scratch
    command = [sys.executable, "-m", "bncourse.runner", str(inside / notebook.name),
               "--lesson", lesson, "--timeout", str(cell_timeout), "--ban", ",".join(pieces.lesson_bans(lesson)),
               "--skip", ",".join(map(str, sorted(skip)))]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           # the kernel's inline backend, as in JupyterLab: figures become image/png outputs,
           # which the feedback shows (with agg they were the text "<Figure size ...>")
           "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "MPLCONFIGDIR": str(inside / _matplotlib_cache(scratch).name),
           "JUPYTER_PLATFORM_DIRS": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "OMP_NUM_THREADS": "1", "HOME": str(inside), "TMPDIR": str(inside / ".tmp")}
    # bncourse from where the grader has it: that folder is all the sandbox sees of the repo
    env["PYTHONPATH"] = str(Path(bncourse.__file__).resolve().parents[1])
    if sandboxed:
        command = _bwrap_args(scratch) + command
    code_cells = sum(c.cell_type == "code" for c in nb.cells) - len(skip)
    deadline = min(cell_timeout * code_cells, 1200) + 60
    run = Run(sandbox=mode)
    before = _processes() if mode == POD else ()
    preexec, ruleset = _limits, None
    if mode == POD:  # the pod keeps the submission from the world; Landlock from the grader
        ruleset = _pod_ruleset(scratch)

        def preexec():
            _limits()
            _restrict_self(ruleset)
    try:
        process = subprocess.Popen(command, cwd=scratch, env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   preexec_fn=preexec)  # the ruleset fd closes at exec
    finally:
        if ruleset is not None:
            os.close(ruleset)
    try:
        _, err = process.communicate(timeout=deadline)
    except subprocess.TimeoutExpired:
        err = b""
        run.stopped = f"the notebook ran longer than {deadline} s in all and was stopped"
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # whatever it left behind (unsandboxed)
        except ProcessLookupError:
            pass
        process.wait()
        if mode == POD:
            _kill_strays(before)  # and what left its process group
    _collect(run, scratch, calls, err)
    return run


def _collect(run, scratch, calls, err):
    data = _read_back(scratch, runner.EXECUTED, MAX_NOTEBOOK_BYTES)
    size = _size(scratch / runner.EXECUTED)
    if data is None and size > MAX_NOTEBOOK_BYTES:
        run.note = (f"its executed notebook ({size / 2**20:.0f} MiB) is more than the {MAX_NOTEBOOK_BYTES >> 20} MiB "
                    "the grader reads back: its outputs are not shown; grades come from the recorded answers")
    try:
        run.notebook = nbformat.reads(data.decode(), as_version=4) if data else None
    except Exception:
        run.notebook = None
    report = _read_back(scratch, runner.REPORT, 1 << 16)
    try:
        reason = json.loads(report).get("reason") if report else None
    except Exception:
        reason = None
    if not run.stopped:
        run.stopped = str(reason)[:300] if reason else ""
    if run.notebook is None and not run.stopped and not run.note:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] if err else []
        run.stopped = "the notebook could not be run" + (f": {tail[0][:200]}" if tail else "")
    for piece, piece_calls in calls.items():
        data = _read_back(scratch, str(answers.answers_path(".", piece)), answers.MAX_FILE_BYTES)
        if data is None:
            continue
        kept = scratch / f"judged-{piece}.npz"  # the grader's own copy of what it read
        kept.write_bytes(data)
        try:
            run.answers[piece] = answers.load_answers(kept, len(piece_calls))
        except Exception as e:
            run.problems[piece] = f"its recorded answers could not be read ({type(e).__name__})"
