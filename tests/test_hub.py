"""A real class on a real JupyterHub: nbgrader's exchange, end to end.

The test starts JupyterHub (deploy/hub/jupyterhub_config.py) on loopback with
configurable-http-proxy from .hub/ (`make hub`), DummyAuthenticator, LocalProcessSpawner and
real Unix users it creates: one instructor, four students. Students' servers run the learner
environment (.venv-learner: no grading package); the instructor's formgrader is a hub service.
The class goes through one lesson:

  instructor: generate_assignment + release_assignment (course root built from solutions/)
  students:   fetch, work, submit -- through the hub's REST API and their own server's HTTP API
              (nbgrader's assignment_list handlers, the contents API, a kernel)
  instructor: collect, `python -m autograder grade submitted --workdir <course root>` (the
              grading code in the instructor's private copy), release_feedback
  students:   fetch_feedback

and checks the grades, the late penalty, the feedback, the learners' extensions, that grading
changes nothing in submitted/ or the exchange, and what a curious student can reach; then
Chromium (tests/offline_browser.py) opens the formgrader service as the instructor, in its own
tab, and as a student, who gets a 403 (screenshots in tests/artifacts/hub_formgrader/).

Run alone: `pytest -m hub -s` (timings are printed). Skipped only where Unix users cannot be
created (not root, no useradd) or node/npm is missing; users, homes, processes and the ACL it
sets are removed afterwards, also when it fails.
"""
import csv
import datetime
import grp
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import nbformat
import pytest

from autograder import submissions
from autograder.paths import REPO
from tests.catalogue import MUTANTS
from tests.offline_browser import offline_page, screenshots

pytestmark = pytest.mark.hub

LESSON = "01_batch_statistics"
COURSE = "bn101"
IP = "127.0.0.1"
CHP = REPO / ".hub" / "node_modules" / ".bin" / "configurable-http-proxy"
LEARNER_VENV = REPO / ".venv-learner"
HUB_CONFIG = REPO / "deploy" / "hub" / "jupyterhub_config.py"
UNBIASED = next(m for m in MUTANTS if m.name == "var_unbiased")
PLANS = {"s1": "model", "s2": "mistake", "s3": "untouched", "s4": "late"}  # student suffix -> work
TIMINGS = {}


def _skip_reason():
    if os.geteuid() != 0:
        return "the hub test creates Unix users: it must run as root"
    for tool in ("useradd", "userdel", "groupadd", "groupdel"):
        if not shutil.which(tool):
            return f"the hub test creates Unix users: no `{tool}` here"
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            return f"no `{tool}`: configurable-http-proxy (the hub's proxy) cannot run"
    return None


if _skip_reason():
    pytest.skip(_skip_reason(), allow_module_level=True)

requests = pytest.importorskip("requests")  # both come with jupyterhub / jupyter_server
websocket = pytest.importorskip("websocket")


def _timed(name, start):
    TIMINGS[name] = time.perf_counter() - start
    print(f"[hub timing] {name}: {TIMINGS[name]:.2f} s", flush=True)


# ------------------------------------------------------------------ Unix users, files, ACL

def _run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind((IP, 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _chown_tree(path, user):
    pw = pwd.getpwnam(user)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [dirpath] + [os.path.join(dirpath, f) for f in dirnames + filenames]:
            os.lchown(name, pw.pw_uid, pw.pw_gid)


ACL_XATTR = "system.posix_acl_access"


def _deny_group(path, gid):
    """A POSIX ACL entry `group:<gid>:---` on `path` (mode bits kept): members of that group
    cannot enter it, everyone else is unaffected. Refuses to replace an existing ACL."""
    try:
        old = os.getxattr(path, ACL_XATTR)
    except OSError as e:
        if e.errno not in (61, 95):  # ENODATA (no ACL); EOPNOTSUPP: setxattr below says so
            raise
    else:
        named = [struct.unpack_from("<HHI", old, 4 + 8 * i) for i in range((len(old) - 4) // 8)]
        named = [(tag, ident) for tag, _, ident in named if tag in (0x02, 0x08)]
        if not named or any(tag != 0x08 or _group_exists(ident) for tag, ident in named):
            raise RuntimeError(f"{path} already has an ACL; not replacing it")
        os.removexattr(path, ACL_XATTR)  # left by a run that was killed: its group is gone
    mode = os.stat(path).st_mode
    undefined = 0xFFFFFFFF
    entries = [(0x01, (mode >> 6) & 7, undefined), (0x04, (mode >> 3) & 7, undefined),
               (0x08, 0, gid), (0x10, (mode >> 3) & 7, undefined), (0x20, mode & 7, undefined)]
    os.setxattr(path, ACL_XATTR, struct.pack("<I", 2)
                + b"".join(struct.pack("<HHI", tag, perm, ident) for tag, perm, ident in entries))


def _group_exists(gid):
    try:
        grp.getgrgid(gid)
        return True
    except KeyError:
        return False


def _snapshot(*roots):
    """Every file and folder under the roots: mode, owner, and content hash (links: target)."""
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in [dirpath] + [os.path.join(dirpath, f) for f in dirnames + filenames]:
                st = os.lstat(name)
                if stat.S_ISREG(st.st_mode):
                    digest = hashlib.sha256(Path(name).read_bytes()).hexdigest()
                elif stat.S_ISLNK(st.st_mode):
                    digest = "link:" + os.readlink(name)
                else:
                    digest = ""
                out[name] = (stat.filemode(st.st_mode), st.st_uid, st.st_gid, digest)
    return out


class Users:
    """Unix users and a group made for one run, removed with their homes and processes."""

    def __init__(self, tag):
        self.tag = tag
        self.group = f"{tag}l"  # every student is in it (the repository checkout denies it)
        self.names = []

    def make_group(self):
        _run(["groupadd", self.group])
        self.group_made = True
        return grp.getgrnam(self.group).gr_gid

    def add(self, name, learner):
        cmd = ["useradd", "--create-home", "--shell", "/bin/bash", "--user-group"]
        if learner:
            cmd += ["--groups", self.group]
        _run(cmd + [name])
        self.names.append(name)
        home = Path(pwd.getpwnam(name).pw_dir)
        home.chmod(0o700)
        return home

    def kill_processes(self):
        uids = set()
        for name in self.names:
            try:
                uids.add(pwd.getpwnam(name).pw_uid)
            except KeyError:
                pass
        for _ in range(3):
            found = []
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        if entry.stat().st_uid in uids:
                            found.append(int(entry.name))
                    except OSError:
                        pass
            for pid in found:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            if not found:
                return
            time.sleep(0.5)

    @classmethod
    def clean_stale_runs(cls, min_age=3600):
        """Remove what a killed run left (its hub gone, its folder older than an hour)."""
        for folder in Path("/tmp").glob("bnhub-bnt*"):
            tag = folder.name[len("bnhub-"):]
            pid = folder / "state" / "jupyterhub.pid"
            try:
                os.kill(int(pid.read_text()), 0)
                continue  # that run's hub is still running
            except (OSError, ValueError):
                pass
            if time.time() - folder.stat().st_mtime < min_age:
                continue
            users = cls(tag)
            users.names = [p.pw_name for p in pwd.getpwall() if re.fullmatch(rf"{tag}(i|s\d+)", p.pw_name)]
            users.group_made = True
            users.remove()
            shutil.rmtree(folder, ignore_errors=True)

    def remove(self):
        self.kill_processes()
        for name in self.names:
            subprocess.run(["userdel", "--force", "--remove", name], capture_output=True, check=False)
        if getattr(self, "group_made", False):
            subprocess.run(["groupdel", self.group], capture_output=True, check=False)


# ------------------------------------------------------------------ talking to the hub

class Hub:
    def __init__(self, port):
        self.url = f"http://{IP}:{port}"
        self.api = self.url + "/hub/api"

    def call(self, method, path, token, **kw):
        kw.setdefault("timeout", 120)
        kw.setdefault("allow_redirects", False)
        return requests.request(method, self.url + path, headers={"Authorization": f"token {token}"}, **kw)

    def ok(self, method, path, token, **kw):
        r = self.call(method, path, token, **kw)
        assert r.status_code < 300, f"{method} {path}: HTTP {r.status_code} {r.text[:500]}"
        return r.json() if r.content else None

    def token_for(self, driver, user):
        return self.ok("POST", f"/hub/api/users/{user}/tokens", driver,
                       json={"note": "tests/test_hub.py", "expires_in": 3600})["token"]

    def wait_ready(self, driver, user, timeout=180):
        deadline = time.time() + timeout
        while time.time() < deadline:
            model = self.ok("GET", f"/hub/api/users/{user}", driver)
            server = model.get("servers", {}).get("")
            if server and server.get("ready"):
                return
            time.sleep(0.5)
        raise AssertionError(f"{user}'s server did not become ready in {timeout} s")

    def run_code(self, user, token, code):
        """Run `code` in a new kernel of the user's own server; return its stdout."""
        kernel = self.ok("POST", f"/user/{user}/api/kernels", token, json={"name": "python3"})
        try:
            ws = websocket.create_connection(
                f"ws://{IP}:{self.url.rsplit(':', 1)[1]}/user/{user}/api/kernels/{kernel['id']}/channels",
                header=[f"Authorization: token {token}"], timeout=120)
            msg_id, session = uuid.uuid4().hex, uuid.uuid4().hex
            ws.send(json.dumps({
                "header": {"msg_id": msg_id, "username": user, "session": session,
                           "msg_type": "execute_request", "version": "5.3",
                           "date": datetime.datetime.now(datetime.UTC).isoformat()},
                "parent_header": {}, "metadata": {}, "buffers": [], "channel": "shell",
                "content": {"code": code, "silent": False, "store_history": False,
                            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
            out, errors = [], []
            while True:
                msg = json.loads(ws.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if kind == "stream":
                    out.append(msg["content"]["text"])
                elif kind == "error":
                    errors.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    break
            ws.close()
        finally:
            self.call("DELETE", f"/user/{user}/api/kernels/{kernel['id']}", token)
        assert not errors, errors
        return "".join(out)


# ------------------------------------------------------------------ the class, once

def _work(nb_json, plan):
    """The student's fetched notebook, edited as the plan says (None: left untouched)."""
    if plan in ("model", "late"):
        answers = None
    elif plan == "mistake":
        answers = {UNBIASED.piece: UNBIASED.source}
    else:
        return None
    filled = submissions.filled_notebook(LESSON, answers)
    code = {submissions.grade_id(c): c.source for c in filled.cells if submissions.is_solution(c)}
    nb = nbformat.from_dict(nb_json)
    changed = 0
    for cell in nb.cells:
        if submissions.is_solution(cell):
            cell.source = code[submissions.grade_id(cell)]
            changed += 1
    assert changed == len(code)
    return nb


PROBE = r"""
import json, os, importlib.util, sys
def probe(path, kind):
    try:
        if kind == "list":
            os.listdir(path)
        else:
            with open(path, "rb") as f:
                f.read(1)
        return "READ"
    except PermissionError:
        return "denied"
    except FileNotFoundError:
        return "missing"
    except Exception as e:
        return type(e).__name__
result = {name: probe(path, kind) for name, (path, kind) in TARGETS.items()}
result["import autograder"] = "READ" if importlib.util.find_spec("autograder") else "denied"
result["import bncourse"] = "READ" if importlib.util.find_spec("bncourse") else "denied"
result["sys.path has the repository"] = "READ" if any(p.startswith(REPO) for p in sys.path) else "denied"
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def hub_class(tmp_path_factory):
    if not CHP.exists():
        pytest.fail(f"{CHP} is missing: run `make hub` (installs configurable-http-proxy locally)")
    if not (LEARNER_VENV / "bin" / "python").exists():
        pytest.fail(f"{LEARNER_VENV} is missing: run `make hub` (builds the learner environment)")
    Users.clean_stale_runs()
    tag = "bnt" + secrets.token_hex(3)
    users = Users(tag)
    root = Path(f"/tmp/bnhub-{tag}")
    hub_proc, acl_set, facts = None, False, {"tag": tag}
    try:
        start = time.perf_counter()
        root.mkdir(mode=0o755)
        root.chmod(0o755)
        gid = users.make_group()
        instructor = f"{tag}i"
        students = {key: f"{tag}{key}" for key in PLANS}
        homes = {instructor: users.add(instructor, learner=False)}
        for name in students.values():
            homes[name] = users.add(name, learner=True)
        # the checkout (solutions/, autograder/, .git) is closed to the students' group
        _deny_group(REPO, gid)
        acl_set = True

        # the learners' environment, outside the checkout (hard links: instant, same files)
        learner = root / "learner"
        if subprocess.run(["cp", "-al", str(LEARNER_VENV), str(learner)], capture_output=True,
                          check=False).returncode:
            shutil.rmtree(learner, ignore_errors=True)  # another file system: copy it
            _run(["cp", "-a", str(LEARNER_VENV), str(learner)])
        exchange = root / "exchange"
        exchange.mkdir()
        exchange.chmod(0o1777)
        etc = root / "etc-jupyter"
        etc.mkdir()
        shutil.copy(REPO / "deploy" / "hub" / "global" / "nbgrader_config.py", etc / "nbgrader_config.py")
        state = root / "state"
        state.mkdir(mode=0o700)

        # the instructor: a private copy of the grading code, and the course root (0700)
        ihome = homes[instructor]
        grader = ihome / "grader"
        for part in ("autograder", "bncourse", "solutions"):
            shutil.copytree(REPO / part, grader / part,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        # nbgrader's instructor extensions, switched on for this account only
        shutil.copytree(REPO / "deploy" / "hub" / "instructor" / "jupyter", ihome / ".jupyter")
        course_root = ihome / COURSE
        (course_root / "source").mkdir(parents=True)
        shutil.copytree(REPO / "solutions" / LESSON, course_root / "source" / LESSON)
        text = (REPO / "deploy" / "hub" / "course_nbgrader_config.py").read_text()
        (course_root / "nbgrader_config.py").write_text(text.replace('"bn101"', f'"{COURSE}"'))
        _chown_tree(ihome, instructor)
        course_root.chmod(0o700)
        _timed("users, learner environment copy, course root", start)

        python = learner / "bin" / "python"  # everyone's servers, and the instructor's commands
        ipw = pwd.getpwnam(instructor)
        ienv = {"HOME": str(ihome), "USER": instructor, "LOGNAME": instructor,
                "PATH": f"{python.parent}:/usr/bin:/bin", "PYTHONPATH": str(grader),
                "JUPYTER_CONFIG_PATH": str(etc), "BNHUB_EXCHANGE": str(exchange), "LANG": "C.UTF-8"}

        def as_instructor(*args, timeout=900):
            r = subprocess.run(list(args), cwd=course_root, env=ienv, user=ipw.pw_uid, group=ipw.pw_gid,
                               extra_groups=[], capture_output=True, text=True, timeout=timeout, check=False)
            assert r.returncode == 0, f"{args} as the instructor failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
            return r.stdout + r.stderr

        facts.update(students=students, instructor=instructor, homes=homes, exchange=exchange,
                     course_root=course_root, grader=grader, root=root, as_instructor=as_instructor)

        # ---- the hub
        port, hub_port, api_port, service_port = _free_ports(4)
        driver, password = secrets.token_hex(16), secrets.token_hex(8)
        env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "HOME": "/root",
               "BNHUB_COURSE": COURSE, "BNHUB_INSTRUCTOR": instructor,
               "BNHUB_STUDENTS": ",".join(students.values()), "BNHUB_COURSE_ROOT": str(course_root),
               "BNHUB_EXCHANGE": str(exchange), "BNHUB_JUPYTER_CONFIG": str(etc),
               "BNHUB_LEARNER_PYTHON": str(python), "BNHUB_GRADER_PATH": str(grader),
               "BNHUB_PASSWORD": password, "BNHUB_IP": IP, "BNHUB_PORT": str(port),
               "BNHUB_HUB_PORT": str(hub_port), "BNHUB_PROXY_API_PORT": str(api_port),
               "BNHUB_SERVICE_PORT": str(service_port), "BNHUB_PROXY_COMMAND": str(CHP),
               "BNHUB_STATE": str(state), "BNHUB_DRIVER_TOKEN": driver}
        start = time.perf_counter()
        with open(root / "jupyterhub.log", "w") as log:  # the hub keeps its own descriptor
            hub_proc = subprocess.Popen([str(Path(sys.prefix) / "bin" / "jupyterhub"), "-f", str(HUB_CONFIG)],
                                        cwd=state, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        facts.update(hub_proc=hub_proc, log=root / "jupyterhub.log")
        hub = Hub(port)
        while True:
            assert hub_proc.poll() is None, "JupyterHub exited:\n" + (root / "jupyterhub.log").read_text()[-4000:]
            try:
                if requests.get(hub.api + "/", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.perf_counter() - start < 120, "JupyterHub did not answer in 120 s"
            time.sleep(0.3)
        # the formgrader service answers too (it is a whole notebook server)
        itoken = hub.token_for(driver, instructor)
        while hub.call("GET", f"/services/{COURSE}/formgrader/api/assignments", itoken).status_code != 200:
            assert time.perf_counter() - start < 180, "the formgrader service did not answer"
            time.sleep(0.5)
        _timed("hub start (hub, proxy, formgrader service)", start)
        facts.update(hub=hub, driver=driver, itoken=itoken, password=password)

        # ---- instructor: release
        start = time.perf_counter()
        as_instructor(str(python), "-m", "nbgrader", "generate_assignment", LESSON, "--force")
        as_instructor(str(python), "-m", "nbgrader", "release_assignment", LESSON)
        _timed("generate + release_assignment", start)

        # ---- students: servers, fetch, work
        tokens = {name: hub.token_for(driver, name) for name in students.values()}
        facts["tokens"] = tokens
        start = time.perf_counter()
        for name in students.values():
            hub.ok("POST", f"/hub/api/users/{name}/server", tokens[name])
        for name in students.values():
            hub.wait_ready(driver, name)
        _timed("4 student servers started", start)
        nb_path = f"{COURSE}/{LESSON}/{LESSON}.ipynb"
        listed = {}
        for key, name in students.items():
            listed[name] = hub.ok("GET", f"/user/{name}/assignments?course_id={COURSE}", tokens[name])
            fetched = hub.ok("POST", f"/user/{name}/assignments/fetch", tokens[name],
                             json={"course_id": COURSE, "assignment_id": LESSON})
            assert fetched["success"], fetched
            model = hub.ok("GET", f"/user/{name}/api/contents/{nb_path}?content=1", tokens[name])
            nb = _work(model["content"], PLANS[key])
            if nb is not None:
                hub.ok("PUT", f"/user/{name}/api/contents/{nb_path}", tokens[name],
                       json={"type": "notebook", "format": "json", "content": nb})
        facts["listed"] = listed

        def submit(name):
            t0 = time.perf_counter()
            out = hub.ok("POST", f"/user/{name}/assignments/submit", tokens[name],
                         json={"course_id": COURSE, "assignment_id": LESSON})
            assert out["success"], out
            _timed(f"submit {name}", t0)

        for key in ("s1", "s2", "s3"):
            submit(students[key])
        # the due date passes; then the late student submits
        due = datetime.datetime.now(datetime.UTC).replace(microsecond=0) + datetime.timedelta(seconds=1)
        as_instructor(str(python), "-m", "nbgrader", "db", "assignment", "add", LESSON,
                      f"--duedate={due.strftime('%Y-%m-%d %H:%M:%S')} UTC")
        time.sleep(max(0.0, (due - datetime.datetime.now(datetime.UTC)).total_seconds()) + 1.0)
        submit(students["s4"])

        # ---- instructor: collect, grade, feedback
        inbound = exchange / COURSE / "inbound"
        as_instructor(str(python), "-m", "nbgrader", "collect", LESSON)
        before = _snapshot(course_root / "submitted", inbound, exchange / COURSE / "outbound")
        start = time.perf_counter()
        facts["grade_output"] = as_instructor(str(python), "-m", "autograder", "grade",
                                              str(course_root / "submitted"), "--workdir",
                                              str(course_root), "--lessons", LESSON)
        _timed("grading (python -m autograder grade, 4 notebooks)", start)
        print(facts["grade_output"][-2500:], flush=True)
        facts["unchanged"] = (before, _snapshot(course_root / "submitted", inbound,
                                                exchange / COURSE / "outbound"))
        if not all((course_root / "feedback" / n / LESSON / f"{LESSON}.html").exists()
                   for n in students.values()):
            as_instructor(str(python), "-m", "nbgrader", "generate_feedback", LESSON)
        start = time.perf_counter()
        as_instructor(str(python), "-m", "nbgrader", "release_feedback", LESSON)
        for name in students.values():
            out = hub.ok("POST", f"/user/{name}/assignments/fetch_feedback", tokens[name],
                         json={"course_id": COURSE, "assignment_id": LESSON})
            assert out["success"], out
        _timed("release_feedback + 4 fetch_feedback", start)
        with open(course_root / "grades.csv", newline="") as f:
            facts["grades"] = {row["student"]: row for row in csv.DictReader(f)}
    except BaseException:
        log = root / "jupyterhub.log"
        if log.exists():  # the folder goes below: show why the hub or a server failed
            print("[hub] end of jupyterhub.log:\n" + log.read_text(errors="replace")[-6000:], flush=True)
        raise
    else:
        yield facts
    finally:
        start = time.perf_counter()
        users.kill_processes()  # servers and the service first: the hub then stops at once
        if hub_proc is not None:
            hub_proc.send_signal(signal.SIGTERM)  # stops what is left, and the proxy
            try:
                hub_proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(hub_proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            hub_proc.wait()
        users.remove()
        if acl_set:
            os.removexattr(REPO, ACL_XATTR)
        shutil.rmtree(root, ignore_errors=True)
        _timed("clean-up", start)
        assert not any(n in {p.pw_name for p in pwd.getpwall()} for n in users.names)


# ------------------------------------------------------------------ what the class must show

def test_grades_and_late_penalty(hub_class):
    grades, s = hub_class["grades"], hub_class["students"]
    assert set(grades) == set(s.values())
    full = float(grades[s["s1"]]["max_score"])
    assert full == 5  # lesson 01: batch_mean 2 points, batch_variance 3 points
    score = {key: float(grades[name]["score"]) for key, name in s.items()}
    penalty = {key: float(grades[name]["late_penalty"]) for key, name in s.items()}
    assert score["s1"] == full and penalty["s1"] == 0
    assert score["s2"] == full - 3 and penalty["s2"] == 0  # unbiased variance: exactly its piece
    assert score["s3"] == 0
    # late by seconds: one started hour at autograder.late's 1 point per hour
    assert penalty["s4"] == 1 and score["s4"] == full - 1
    for key in ("s1", "s2", "s4"):
        assert grades[s[key]]["status"].startswith("graded"), grades[s[key]]
    sandboxes = {k: grades[n]["sandbox"] for k, n in s.items() if k != "s3" or grades[n]["sandbox"]}
    print("[hub] how each notebook ran (grades.csv sandbox column):", sandboxes)
    assert set(sandboxes.values()) <= {"bubblewrap", "NONE (unsandboxed)"}, sandboxes
    if "NONE (unsandboxed)" in sandboxes.values():  # bwrap could not start for the instructor
        assert "WARNING" in hub_class["grade_output"] and "WITHOUT A SANDBOX" in hub_class["grade_output"]


def test_grading_changed_nothing_in_submitted_or_the_exchange(hub_class):
    before, after = hub_class["unchanged"]
    students = hub_class["students"].values()
    # the snapshot really holds the four collected submissions and their timestamps
    assert sum(p.endswith(f"/{LESSON}.ipynb") and "/submitted/" in p for p in before) == 4
    assert sum(p.endswith("timestamp.txt") and "/submitted/" in p for p in before) == 4
    assert sum(any(f"/inbound/{n}+{LESSON}+" in p for n in students) and p.endswith(".ipynb")
               for p in before) == 4
    assert before == after


def test_feedback_reaches_each_student_without_hidden_tests(hub_class):
    hub, students, tokens = hub_class["hub"], hub_class["students"], hub_class["tokens"]
    source = nbformat.read(REPO / "solutions" / LESSON / f"{LESSON}.ipynb", as_version=4)
    hidden = []
    for cell in source.cells:
        inside = False
        for line in cell.source.splitlines():
            if "BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "END HIDDEN TESTS" in line:
                inside = False
            elif inside and len(line.strip()) > 12:
                hidden.append(line.strip())
    assert hidden
    reference = (REPO / "autograder" / "reference.py").read_text()
    answers = "\n".join(submissions.solution_sources(LESSON).values())  # a learner may write these
    ref_lines = [ln.strip() for ln in reference.splitlines()
                 if len(ln.strip()) > 25 and ln.strip() not in answers
                 and not ln.strip().startswith(("#", '"""', "def ", "import", "from"))]
    assert ref_lines
    for name in students.values():
        folder = f"{COURSE}/{LESSON}/feedback"
        stamps = hub.ok("GET", f"/user/{name}/api/contents/{folder}", tokens[name])["content"]
        assert len(stamps) == 1, (name, stamps)
        html = hub.ok("GET", f"/user/{name}/api/contents/{stamps[0]['path']}/{LESSON}.html"
                      "?type=file&format=text", tokens[name])["content"]
        assert LESSON in html and len(html) > 10_000
        for marker in ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "autograder.reference"):
            assert marker not in html, (name, marker)
        leaked = [ln for ln in hidden + ref_lines if ln in html]
        assert not leaked, (name, leaked[:3])
        # and it is in the student's own home, on disk
        assert (hub_class["homes"][name] / COURSE / LESSON / "feedback").is_dir()


def test_learners_get_no_formgrader_course_list_or_create_assignment(hub_class):
    hub, students, tokens = hub_class["hub"], hub_class["students"], hub_class["tokens"]
    name = students["s2"]
    for path in ("/formgrader", "/formgrader/api/assignments", "/formgraders"):
        r = hub.call("GET", f"/user/{name}{path}", tokens[name])
        assert r.status_code in (403, 404), (path, r.status_code)
    # the assignment list (fetch / submit / feedback) is there: it served the whole flow
    assert hub_class["listed"][name]["success"]
    page = hub.call("GET", f"/user/{name}/lab", tokens[name])
    assert page.status_code == 200
    config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                  page.text, re.DOTALL).group(1))
    disabled = config.get("disabledExtensions", [])
    disabled = list(disabled) if not isinstance(disabled, dict) else [k for k, v in disabled.items() if v]
    for plugin in ("formgrader", "create-assignment", "course-list"):
        assert f"@jupyter/nbgrader:{plugin}" in disabled, (plugin, disabled)
    assert "@jupyter/nbgrader:assignment-list" not in disabled
    # the instructor's formgrader service does serve the course (and only to the instructor)
    itoken = hub_class["itoken"]
    r = hub.call("GET", f"/services/{COURSE}/formgrader/api/assignments", itoken)
    assert r.status_code == 200 and LESSON in r.text


def test_a_curious_student_reaches_nothing_of_others_through_the_hub(hub_class):
    hub, students, tokens = hub_class["hub"], hub_class["students"], hub_class["tokens"]
    me, other = students["s2"], students["s1"]
    mine = tokens[me]
    assert hub.call("GET", f"/user/{me}/api/contents", mine).status_code == 200  # control
    codes = {}
    for method, path in [("GET", f"/user/{other}/api/contents"),
                         ("GET", f"/user/{other}/api/contents/{COURSE}/{LESSON}/{LESSON}.ipynb"),
                         ("GET", f"/user/{other}/assignments?course_id={COURSE}"),
                         ("GET", "/hub/api/users"),
                         ("GET", f"/hub/api/users/{other}"),
                         ("POST", f"/hub/api/users/{other}/tokens"),
                         ("DELETE", f"/hub/api/users/{other}/server"),
                         ("GET", f"/services/{COURSE}/formgrader"),
                         ("GET", f"/services/{COURSE}/formgrader/api/assignments"),
                         ("GET", f"/services/{COURSE}/api/contents/gradebook.db"),
                         ("GET", f"/services/{COURSE}/files/gradebook.db")]:
        r = hub.call(method, path, mine)
        codes[f"{method} {path}"] = r.status_code
        assert r.status_code in (302, 403, 404), (method, path, r.status_code, r.text[:200])
    print("[hub] a student's token elsewhere:", json.dumps(codes, indent=1))


def test_a_curious_student_reaches_nothing_of_others_on_disk(hub_class):
    hub, students, tokens = hub_class["hub"], hub_class["students"], hub_class["tokens"]
    me, other = students["s2"], students["s1"]
    homes, exchange, course_root = hub_class["homes"], hub_class["exchange"], hub_class["course_root"]
    grader = hub_class["grader"]
    theirs = homes[other] / COURSE / LESSON
    inbound = exchange / COURSE / "inbound"
    submission = next(p for p in inbound.iterdir() if p.name.startswith(f"{other}+"))
    targets = {
        "own notebook (control)": (str(homes[me] / COURSE / LESSON / f"{LESSON}.ipynb"), "open"),
        "released assignment (control)": (str(exchange / COURSE / "outbound" / LESSON), "list"),
        "another student's home": (str(homes[other]), "list"),
        "another student's notebook": (str(theirs / f"{LESSON}.ipynb"), "open"),
        "another student's feedback": (str(theirs / "feedback"), "list"),
        "the exchange inbound": (str(inbound), "list"),
        "the exchange feedback folder": (str(exchange / COURSE / "feedback"), "list"),
        "the instructor's home": (str(homes[hub_class["instructor"]]), "list"),
        "the course root": (str(course_root), "list"),
        "the gradebook": (str(course_root / "gradebook.db"), "open"),
        "another student's collected submission": (
            str(course_root / "submitted" / other / LESSON / f"{LESSON}.ipynb"), "open"),
        "another student's feedback (instructor)": (
            str(course_root / "feedback" / other / LESSON / f"{LESSON}.html"), "open"),
        "the course source": (str(course_root / "source" / LESSON / f"{LESSON}.ipynb"), "open"),
        "the hidden reference (instructor's copy)": (str(grader / "autograder" / "reference.py"), "open"),
        "solutions/ (instructor's copy)": (str(grader / "solutions" / LESSON / f"{LESSON}.ipynb"), "open"),
        "solutions/ (the repository)": (str(REPO / "solutions" / LESSON / f"{LESSON}.ipynb"), "open"),
        "the hidden reference (the repository)": (str(REPO / "autograder" / "reference.py"), "open"),
        "the repository's git history": (str(REPO / ".git"), "list"),
    }
    code = f"TARGETS = {targets!r}\nREPO = {str(REPO)!r}\n" + PROBE
    result = json.loads(hub.run_code(me, tokens[me], code).strip().splitlines()[-1])
    print("[hub] what the curious student reached:", json.dumps(result, indent=1))
    assert result.pop("own notebook (control)") == "READ"
    assert result.pop("released assignment (control)") == "READ"
    assert result.pop("import bncourse") == "READ"
    assert result.pop("import autograder") == "denied"
    assert result.pop("sys.path has the repository") == "denied"
    reached = {k: v for k, v in result.items() if v != "denied"}
    assert not reached, reached
    # nbgrader's exchange: inbound cannot be listed, so another's submission folder (named with a
    # random part) cannot be found; say so here rather than hide it
    assert re.fullmatch(rf"{other}\+{LESSON}\+.+\+[\w-]{{8,}}", submission.name), submission.name


# ------------------------------------------------------------------ the formgrader, in a browser

def _log_in(page, hub, user, password):
    """Log in on the hub's own form; land on the hub's home page (no server is started)."""
    page.goto(f"{hub.url}/hub/login?next=%2Fhub%2Fhome")
    page.fill("#username_input", user)
    page.fill("#password_input", password)
    with page.expect_navigation():
        page.click("#login_submit")
    assert urlsplit(page.url).path == "/hub/home", page.url


def test_the_instructor_grades_in_the_formgrader_in_a_browser_and_a_student_gets_none(hub_class):
    """Chromium (offline: nothing off this machine) as the instructor: log in on the hub, find the
    course's formgrader among the hub's services, open it in its own tab (JupyterHub >= 4.1 forbids
    framing a service, so JupyterLab's formgrader panel cannot show it on a hub), see the lesson with
    its four submissions, the graded scores in the gradebook, and open one submission. Then a
    student, with a fresh session: no formgrader among the services, and the service's address
    answers 403. Screenshots: tests/artifacts/hub_formgrader/ (docs/images/formgrader.png is a
    copy of gradebook.png)."""
    hub, students, password = hub_class["hub"], hub_class["students"], hub_class["password"]
    grades = hub_class["grades"]
    service = f"/services/{COURSE}/"
    shots = screenshots("hub_formgrader")
    start = time.perf_counter()
    problems = []  # the browser's own account, shown when a step fails
    with offline_page(viewport=(1200, 760)) as (page, blocked):
        page.context.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
        page.context.on("weberror", lambda e: problems.append(f"script error: {e.error}"))
        page.context.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status} {r.url}"))
        _log_in(page, hub, hub_class["instructor"], password)
        links = page.eval_on_selector_all("a.dropdown-item", "els => els.map(e => e.getAttribute('href'))")
        assert service in links, links

        # ---- its own tab: the service's link, opened beside the hub's page
        tab = page.context.new_page()
        tab.goto(hub.url + service)  # the service's default URL: /formgrader -> manage_assignments
        assert urlsplit(tab.url).path == f"{service}formgrader/manage_assignments", tab.url
        row = tab.locator("#main-table tr", has_text=LESSON)  # nbgrader: <tbody id="main-table">
        try:
            row.wait_for(timeout=30_000)
        except Exception:
            tab.screenshot(path=str(shots / "manage_assignments_failed.png"))
            raise AssertionError(f"no row for {LESSON}: {problems}\n{tab.inner_html('#main-table')[:2000]}") from None
        cells = [c.strip() for c in row.locator("td").all_inner_texts()]
        headers = [h.strip() for h in tab.locator("table thead th").all_inner_texts()]
        assert LESSON in cells[0] and cells[headers.index("# Submissions")] == "4", (headers, cells)
        tab.screenshot(path=str(shots / "manage_assignments.png"))

        # ---- the graded submissions of the lesson's notebook, with their scores
        tab.goto(f"{hub.url}{service}formgrader/gradebook/{LESSON}/{LESSON}")
        rows = tab.locator("#main-table tr")
        tab.locator("#main-table tr td.score", has_text="/").first.wait_for(timeout=30_000)
        shown, hrefs = {}, {}
        for i in range(rows.count()):
            text = rows.nth(i).text_content()  # the names are hidden on screen (nbgrader's default)
            name = next((n for n in students.values() if n in text), None)
            if name:
                shown[name] = rows.nth(i).locator("td.score").inner_text().strip()
                hrefs[name] = rows.nth(i).locator("a[href*='/formgrader/submissions/']").first.get_attribute("href")
        assert set(shown) == set(students.values()), (shown, rows.all_text_contents())
        for name, score in shown.items():  # the formgrader's score is before the late penalty
            row = grades[name]
            points = float(row["score"]) + float(row["late_penalty"])
            assert score == f"{points:g} / {float(row['max_score']):g}", (name, score, row)
        tab.screenshot(path=str(shots / "gradebook.png"))

        # ---- open one: the student who divided by N-1 (unbiased variance)
        tab.goto(urljoin(tab.url, hrefs[students["s2"]]))
        tab.wait_for_selector(".nbgrader_cell", timeout=30_000)
        # the graded cells' score boxes: the autograder's score is the box's placeholder (a manual
        # score would be its value)
        boxes = {"test_batch_mean": "2", "test_batch_variance": "0"}
        tab.wait_for_function("ids => ids.every(i => (document.getElementById(i) || {}).placeholder)",
                              arg=list(boxes), timeout=30_000)
        shown = {i: tab.get_attribute(f"input.score[id='{i}']", "placeholder") for i in boxes}
        assert shown == boxes, (shown, problems)
        assert "def batch_variance" in tab.inner_text("body")
        tab.evaluate("document.getElementById('test_batch_variance').closest('.nbgrader_cell').scrollIntoView();"
                     "window.scrollBy(0, -70)")  # below nbgrader's fixed navigation bar
        tab.screenshot(path=str(shots / "submission.png"))
        tab.close()

        # ---- a student, in a fresh session
        page.goto(f"{hub.url}/hub/logout")
        page.context.clear_cookies()
        student = students["s1"]
        _log_in(page, hub, student, password)
        links = page.eval_on_selector_all("a.dropdown-item", "els => els.map(e => e.getAttribute('href'))")
        assert service not in links, links
        answers = {}
        for path in (f"{service}formgrader", f"{service}formgrader/manage_assignments",
                     f"{service}formgrader/gradebook/{LESSON}/{LESSON}", f"/user/{student}/formgrader"):
            response = page.goto(hub.url + path)
            answers[path] = (response.status, urlsplit(page.url).path)
            assert response.status in (403, 404), (path, response.status, page.url)
            assert "Manage Assignments" not in page.content() and "Gradebook" not in page.inner_text("body")
            assert page.locator("#main-table").count() == 0
        page.goto(hub.url + f"{service}formgrader")
        page.screenshot(path=str(shots / "student_403.png"))
    _timed("formgrader in Chromium (instructor and student)", start)
    print("[hub] a student's browser at the formgrader:", answers)
    # nbgrader's own pages: what they asked of the network (blocked; the grading view works without it)
    print("[hub] requests off this machine, blocked:", blocked)
