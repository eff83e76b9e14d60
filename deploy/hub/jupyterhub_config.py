# JupyterHub configuration for a class of this course: nbgrader's documented multi-course
# layout (one formgrader service per course), used as is by tests/test_hub.py.
#
#   jupyterhub -f deploy/hub/jupyterhub_config.py      (as root: it starts servers as Unix users)
#
# Everything site-specific comes from environment variables (defaults in brackets):
#   BNHUB_COURSE             course id = formgrader service name                    [bn101]
#   BNHUB_INSTRUCTOR         Unix user who owns the course root and runs the formgrader  (required)
#   BNHUB_STUDENTS           comma-separated Unix users of the class                      (required)
#   BNHUB_COURSE_ROOT        nbgrader course root, private to the instructor (mode 0700):
#                            source/ release/ submitted/ autograded/ feedback/ gradebook.db
#                            nbgrader_config.py  (see deploy/hub/README.md)          (required)
#   BNHUB_EXCHANGE           nbgrader exchange root (mode 1777)           [/srv/nbgrader/exchange]
#   BNHUB_JUPYTER_CONFIG     folder holding the global nbgrader_config.py (a copy of
#                            deploy/hub/global/nbgrader_config.py), readable by everyone
#   BNHUB_LEARNER_PYTHON     python of the learner environment (deploy/hub/learner_env.py):
#                            every server runs `<it> -m jupyterhub.singleuser`  [.venv-learner]
#   BNHUB_INSTRUCTOR_PYTHON  python of the instructor's servers         [BNHUB_LEARNER_PYTHON]
#                            The same environment serves both: it holds no grading package; the
#                            instructor's processes get theirs from BNHUB_GRADER_PATH, and their
#                            ~/.jupyter switches nbgrader's instructor extensions on
#                            (deploy/hub/instructor/jupyter/, as nbgrader's docs do per account)
#   BNHUB_GRADER_PATH        PYTHONPATH for the instructor's processes: their private copy of the
#                            grading code (autograder/, bncourse/, solutions/)       [unset]
#   BNHUB_PASSWORD           DummyAuthenticator's shared password (a test/workshop hub only;
#                            a real class uses its institution's authenticator)     (required)
#   BNHUB_IP, BNHUB_PORT     public address of the proxy                       [127.0.0.1, 8000]
#   BNHUB_HUB_PORT, BNHUB_PROXY_API_PORT, BNHUB_SERVICE_PORT   internal ports [8081, 8001, 9999]
#   BNHUB_PROXY_COMMAND      configurable-http-proxy binary    [.hub/node_modules/.bin/... of this repo]
#   BNHUB_STATE              folder for the hub's database, cookie secret and logs (root only)
#   BNHUB_DRIVER_TOKEN       optional: token of an automation service `bnhub-driver` allowed to
#                            manage users, servers and tokens (the test drives the hub with it)
import os
from pathlib import Path

c = get_config()  # noqa: F821  (provided by JupyterHub when it reads this file)

REPO = Path(__file__).resolve().parents[2]
env = os.environ.get


def _required(name):
    value = env(name)
    if not value:
        raise SystemExit(f"jupyterhub_config.py: set {name} (see the top of {__file__})")
    return value


COURSE = env("BNHUB_COURSE", "bn101")
INSTRUCTOR = _required("BNHUB_INSTRUCTOR")
STUDENTS = [s for s in _required("BNHUB_STUDENTS").split(",") if s]
COURSE_ROOT = _required("BNHUB_COURSE_ROOT")
EXCHANGE = env("BNHUB_EXCHANGE", "/srv/nbgrader/exchange")
JUPYTER_CONFIG = _required("BNHUB_JUPYTER_CONFIG")
LEARNER_PYTHON = env("BNHUB_LEARNER_PYTHON", str(REPO / ".venv-learner" / "bin" / "python"))
INSTRUCTOR_PYTHON = env("BNHUB_INSTRUCTOR_PYTHON", LEARNER_PYTHON)
GRADER_PATH = env("BNHUB_GRADER_PATH", "")
IP = env("BNHUB_IP", "127.0.0.1")
STATE = Path(env("BNHUB_STATE", "/srv/jupyterhub"))


def _env_for(python, extra=None):
    """What a user's processes see: their environment's bin first, the global nbgrader config,
    the exchange; nothing else of the hub's own environment (c.Spawner.env_keep below)."""
    out = {"PATH": f"{Path(python).parent}:/usr/local/bin:/usr/bin:/bin",
           "JUPYTER_CONFIG_PATH": JUPYTER_CONFIG,
           "BNHUB_EXCHANGE": EXCHANGE}
    out.update(extra or {})
    return out


# ------------------------------------------------------------------ hub, proxy, state
c.JupyterHub.ip = IP
c.JupyterHub.port = int(env("BNHUB_PORT", "8000"))
c.JupyterHub.hub_ip = IP
c.JupyterHub.hub_port = int(env("BNHUB_HUB_PORT", "8081"))
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every single-user server
c.ConfigurableHTTPProxy.command = [env("BNHUB_PROXY_COMMAND",
                                       str(REPO / ".hub" / "node_modules" / ".bin" / "configurable-http-proxy"))]
c.ConfigurableHTTPProxy.api_url = f"http://{IP}:{int(env('BNHUB_PROXY_API_PORT', '8001'))}"
c.ConfigurableHTTPProxy.pid_file = str(STATE / "proxy.pid")

# ------------------------------------------------------------------ who may log in
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = _required("BNHUB_PASSWORD")
c.Authenticator.allowed_users = {INSTRUCTOR, *STUDENTS}
c.Authenticator.admin_users = set()  # nobody is a hub admin: the instructor reaches students
#                                      only through nbgrader's exchange, never their servers

# ------------------------------------------------------------------ single-user servers
# real Unix users: each server runs as its user (the hub runs as root), so nbgrader's exchange
# permissions are the operating system's
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [LEARNER_PYTHON, "-m", "jupyterhub.singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.env_keep = ["LANG", "LC_ALL"]  # not the hub's PATH, PYTHONPATH, VIRTUAL_ENV...
c.Spawner.environment = _env_for(LEARNER_PYTHON)
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
# nbgrader's JupyterHubAuthPlugin asks the hub which courses the server's user is in
c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server",
                                 "read:users:name!user", "read:users:groups!user"]


def _instructor_environment(spawner):
    """The instructor's own server runs the instructor environment (assignment and course
    lists); everybody else runs the learner environment (no grading package)."""
    if spawner.user.name == INSTRUCTOR:
        spawner.cmd = [INSTRUCTOR_PYTHON, "-m", "jupyterhub.singleuser"]
        spawner.environment = _env_for(INSTRUCTOR_PYTHON, {"PYTHONPATH": GRADER_PATH} if GRADER_PATH else {})


c.Spawner.pre_spawn_hook = _instructor_environment

# ------------------------------------------------------------------ the course (nbgrader)
# groups named as nbgrader's JupyterHubAuthPlugin expects: formgrade-<course> for instructors
# and graders, nbgrader-<course> for students
c.JupyterHub.load_groups = {
    f"formgrade-{COURSE}": {"users": [INSTRUCTOR]},
    f"nbgrader-{COURSE}": {"users": STUDENTS},
}
service_env = _env_for(INSTRUCTOR_PYTHON, {"JUPYTERHUB_DEFAULT_URL": "/formgrader"})
if GRADER_PATH:
    service_env["PYTHONPATH"] = GRADER_PATH
services = [{
    # the formgrader: a notebook server run by the hub as the instructor, in the course root
    "name": COURSE,
    "url": f"http://{IP}:{int(env('BNHUB_SERVICE_PORT', '9999'))}",
    "command": [INSTRUCTOR_PYTHON, "-m", "jupyterhub.singleuser", f"--ServerApp.root_dir={COURSE_ROOT}"],
    "user": INSTRUCTOR,
    "cwd": COURSE_ROOT,
    "environment": service_env,
    "oauth_no_confirm": True,
}]
roles = [
    # only the course's instructors and graders reach its formgrader
    {"name": f"formgrade-{COURSE}", "groups": [f"formgrade-{COURSE}"],
     "scopes": [f"access:services!service={COURSE}"]},
    # the formgrader service itself: nbgrader's JupyterHubAuthPlugin reads and manages the
    # course's groups (e.g. `nbgrader db student add` puts a student into nbgrader-<course>)
    {"name": f"{COURSE}-formgrader", "services": [COURSE],
     "scopes": ["list:users", "read:users:name", "read:users:groups", "list:groups",
                "read:groups", f"groups!group=nbgrader-{COURSE}"]},
]
if env("BNHUB_DRIVER_TOKEN"):
    services.append({"name": "bnhub-driver", "api_token": env("BNHUB_DRIVER_TOKEN")})
    roles.append({"name": "bnhub-driver", "services": ["bnhub-driver"],
                  "scopes": ["list:users", "read:users", "admin:servers", "tokens", "read:groups"]})
c.JupyterHub.services = services
c.JupyterHub.load_roles = roles
