"""deploy/: checked statically, since neither Docker, Helm nor a cluster runs here.

- deploy/k8s/ (written by autograder.k8s): what the generator writes, every object a valid
  model of the official `kubernetes` client (deserialized into V1Job, V1NetworkPolicy, ...,
  and serialized back without losing a key, so a misspelt field fails), and the grading pod's
  security properties asserted one by one, with a hand-written subset of Pod Security's
  "restricted" rules. The Job's own container command, environment and mounts then grade a
  submission in an emulated pod (bubblewrap + tests/confine.py), with BNCOURSE_ISOLATION=pod.
- deploy/singleuser/Dockerfile and deploy/grader/Dockerfile: their pip lines pin exactly the
  packages of pyproject.toml (parsed, not built), torch first from the CPU-only index.
- deploy/z2jh/values.yaml: parses, and every key is in Z2JH_KEYS, a HAND-KEPT list of the
  Zero to JupyterHub chart's keys (copied by hand from the chart's values.schema.yaml, source
  of July 2026): not the chart's schema, which pip and npm do not ship.
"""
import csv
import json
import platform
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from autograder import k8s, sandbox
from autograder.paths import REPO
from tests.confine import emulated_pod_args
from tests.test_grading import hand_in

kubernetes = pytest.importorskip(
    "kubernetes", reason="the `deploy` extra is not installed: pip install -e '.[deploy]' (make test does)")
from kubernetes.client import ApiClient  # noqa: E402

DEPLOY = REPO / "deploy"
LESSON = "01_batch_statistics"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
API = ApiClient()


def model(doc):
    """doc as the kubernetes client's model of its kind, and back: nothing may be lost."""
    obj = API.deserialize(json.dumps(doc), f"V1{doc['kind']}", "application/json")
    assert API.sanitize_for_serialization(obj) == doc, f"{doc['kind']}: a field the API does not know"
    return obj


def written():
    return {path.name: list(yaml.safe_load_all(path.read_text()))
            for path in sorted((DEPLOY / "k8s").glob("*.yaml"))}


# ------------------------------------------------------------------------------- deploy/k8s

def test_deploy_k8s_is_what_the_generator_writes():
    expected = {name: k8s.render(docs) for name, docs in k8s.manifests().items()}
    found = {p.name: p.read_text() for p in (DEPLOY / "k8s").glob("*.yaml")}
    assert found == expected, "deploy/k8s/ is out of date: run `make k8s`"


def test_every_manifest_is_a_valid_kubernetes_object():
    docs = [d for ds in written().values() for d in ds]
    assert sorted(d["kind"] for d in docs) == sorted(
        ["Namespace", "NetworkPolicy", "ServiceAccount", "Job", "Deployment", "Service"])
    for doc in docs:
        model(doc)


def test_a_misspelt_field_is_caught():
    job = k8s.grading_job("ada", LESSON)
    job["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesytem"] = True
    with pytest.raises(AssertionError, match="a field the API does not know"):
        model(job)


def restricted_violations(pod):
    """A hand-written subset of Kubernetes' Pod Security "restricted" profile (and of what
    the grading pod needs beyond it), for a V1PodSpec."""
    found = []
    if pod.host_network or pod.host_pid or pod.host_ipc:
        found.append("host namespaces")
    allowed_volumes = ("config_map", "csi", "downward_api", "empty_dir", "ephemeral",
                       "persistent_volume_claim", "projected", "secret")
    for v in pod.volumes or []:
        kinds = [k for k, val in v.to_dict().items() if k != "name" and val is not None]
        if any(k not in allowed_volumes for k in kinds):
            found.append(f"volume {v.name}: {kinds}")
    for c in (pod.containers or []) + (pod.init_containers or []):
        sc = c.security_context
        if sc is None:
            found.append(f"{c.name}: no securityContext")
            continue
        if sc.privileged:
            found.append(f"{c.name}: privileged")
        if sc.allow_privilege_escalation is not False:
            found.append(f"{c.name}: allowPrivilegeEscalation")
        if not (sc.capabilities and sc.capabilities.drop == ["ALL"]) or (sc.capabilities.add or []):
            found.append(f"{c.name}: capabilities")
        non_root = sc.run_as_non_root if sc.run_as_non_root is not None else (
            pod.security_context and pod.security_context.run_as_non_root)
        if not non_root:
            found.append(f"{c.name}: may run as root")
        seccomp = sc.seccomp_profile or (pod.security_context and pod.security_context.seccomp_profile)
        if not seccomp or seccomp.type not in ("RuntimeDefault", "Localhost"):
            found.append(f"{c.name}: seccomp")
        if any(p.host_port for p in c.ports or []):
            found.append(f"{c.name}: hostPort")
    return found


def _quantity(text):
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "": 1}
    number, unit = re.fullmatch(r"([\d.]+)([A-Za-z]*)", text).groups()
    return float(number) * units[unit]


def test_the_grading_pod_is_locked_down():
    job = model(k8s.grading_job("ada", LESSON))
    assert job.spec.backoff_limit == 0 and job.spec.active_deadline_seconds
    pod = job.spec.template.spec
    assert restricted_violations(pod) == []
    assert pod.restart_policy == "Never" and pod.active_deadline_seconds
    assert pod.automount_service_account_token is False and pod.enable_service_links is False
    assert pod.share_process_namespace is False
    assert pod.security_context.run_as_non_root and pod.security_context.run_as_user != 0
    [c] = pod.containers
    sc = c.security_context
    assert sc.read_only_root_filesystem is True and sc.allow_privilege_escalation is False
    assert sc.run_as_non_root is True and sc.run_as_user == k8s.UID != 0
    assert sc.capabilities.drop == ["ALL"] and not sc.capabilities.add
    assert sc.seccomp_profile.type == "RuntimeDefault"
    for kind in ("cpu", "memory", "ephemeral-storage"):
        assert _quantity(c.resources.requests[kind]) <= _quantity(c.resources.limits[kind])
    env = {e.name: e.value for e in c.env}
    assert env["BNCOURSE_ISOLATION"] == "pod"  # the grader checks the pod before it says "pod"
    assert "--workers" in c.command and c.command[c.command.index("--workers") + 1] == "1"
    volumes = {v.name: v for v in pod.volumes}
    assert volumes["scratch"].empty_dir.size_limit
    mounts = {m.name: m for m in c.volume_mounts}
    assert mounts["submission"].read_only is True and volumes["submission"].persistent_volume_claim.read_only
    # everything the grader writes is on the scratch emptyDir or the results volume
    writable = [m.mount_path for m in c.volume_mounts if not m.read_only]
    for var in ("HOME", "TMPDIR", "MPLCONFIGDIR"):
        assert any(env[var].startswith(w) for w in writable), var
    # and a Job without its read-only root is not accepted by these checks
    loose = k8s.grading_job("ada", LESSON)
    sc_loose = loose["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    del sc_loose["allowPrivilegeEscalation"], sc_loose["capabilities"]
    assert len(restricted_violations(model(loose).spec.template.spec)) == 2


def test_the_network_policy_denies_all_traffic_of_grading_pods():
    policy = model(k8s.network_policy())
    assert sorted(policy.spec.policy_types) == ["Egress", "Ingress"]
    assert policy.spec.ingress == [] and policy.spec.egress == []
    assert policy.metadata.namespace == k8s.NAMESPACE
    selector = policy.spec.pod_selector.match_labels
    labels = model(k8s.grading_job("ada", LESSON)).spec.template.metadata.labels
    assert selector and selector.items() <= labels.items()


def test_the_grading_namespace_enforces_the_restricted_profile():
    ns = model(k8s.namespace())
    assert ns.metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"
    sa = model(k8s.service_account())
    assert sa.automount_service_account_token is False


@pytest.mark.parametrize("student", ["ada", "Ada Lovelace", "jo_smith@uni.example", "x" * 100, "δ"])
def test_job_names_are_valid_and_distinct_for_any_student(student):
    job = model(k8s.grading_job(student, LESSON))
    assert DNS_LABEL.match(job.metadata.name) and len(job.metadata.name) <= 63
    other = k8s.grading_job(student + "2", LESSON)
    assert other["metadata"]["name"] != job.metadata.name
    assert all(DNS_LABEL.match(v) and len(v) <= 63 for v in job.metadata.labels.values()
               if "/" not in v)


def test_the_formgrader_service_matches_the_hub_values():
    deployment, service = (model(d) for d in k8s.formgrader())
    values = yaml.safe_load((DEPLOY / "z2jh" / "values.yaml").read_text())
    url = values["hub"]["services"][k8s.COURSE]["url"]
    assert url == f"http://{service.metadata.name}:{service.spec.ports[0].port}"
    assert service.spec.selector.items() <= deployment.spec.template.metadata.labels.items()
    pod = deployment.spec.template.spec
    assert restricted_violations(pod) == []
    [c] = pod.containers
    token = next(e for e in c.env if e.name == "JUPYTERHUB_API_TOKEN")
    assert token.value_from.secret_key_ref.key == f"hub.services.{k8s.COURSE}.apiToken"
    assert pod.security_context.run_as_user == k8s.INSTRUCTOR_UID
    assert f"BNCOURSE_UIDS = {{\"instructor\": {k8s.INSTRUCTOR_UID}," in values["hub"]["extraConfig"]["bncourse-uids"]


def job_in_emulated_pod(tmp_path, student, lesson, inbox, after=""):
    """Run the generated Job's container (its command, environment, mounts and user) in an
    emulated pod; `after`: Python run in the pod once the Job's command is done."""
    job = k8s.grading_job(student, lesson)
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    results = tmp_path / "results"
    results.mkdir()
    host = {"submission": inbox / student / lesson, "results": results}
    mounts = [(m["mountPath"], host.get(m["name"]), m.get("readOnly", False))
              for m in container["volumeMounts"]]
    env = {e["name"]: e["value"] for e in container["env"]}
    env["PATH"] = f"{Path(sys.executable).parent}:/usr/bin:/bin"  # the image's python on PATH
    script = ("import subprocess, sys\n"
              "code = subprocess.call(sys.argv[1:])\n" + after + "\nsys.exit(code)\n")
    command = [sys.executable, "-c", script, *container["command"]]
    uid = container["securityContext"]["runAsUser"]
    out = subprocess.run(emulated_pod_args(mounts, env, uid) + command,
                         capture_output=True, text=True, timeout=600)
    return out, results


needs_pod = pytest.mark.skipif(
    not (sandbox.probe_bubblewrap().ok and platform.machine() == "x86_64"),
    reason="the pod is emulated with bubblewrap and tests/confine.py (x86_64 seccomp filter)")


@needs_pod
def test_the_generated_job_grades_in_a_pod_and_leaves_nothing_running(tmp_path):
    """A submission that starts a process of its own in a new session (out of reach of its
    process group): graded in full, sandbox "pod", and that process is gone afterwards."""
    leaver = ("def batch_mean(x):\n    import subprocess\n"
              "    subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
              "    return x.mean(axis=0)\n")
    hand_in(tmp_path / "inbox", "leaver", LESSON, {"batch_mean": leaver})
    after = ("from autograder import sandbox\n"
             "left = [open(f'/proc/{p}/cmdline').read() for p in sandbox._processes() "
             "if p not in sandbox._ancestors()]\n"
             "print('left running:', left)\n")
    out, results = job_in_emulated_pod(tmp_path, "leaver", LESSON, tmp_path / "inbox", after)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "left running: []" in out.stdout and "WARNING" not in out.stdout
    [row] = csv.DictReader((results / "work" / "grades.csv").open())
    assert row["sandbox"] == sandbox.POD and row["student"] == "leaver"
    assert row["score"] == row["max_score"] != "0", row


# ------------------------------------------------------------------------------ the images

def pip_installs(dockerfile):
    """[(arguments, [name==version, ...])] of each `pip install` in the Dockerfile's RUN lines."""
    text = re.sub(r"\\\n", " ", Path(dockerfile).read_text())
    found = []
    for line in text.splitlines():
        if not line.startswith("RUN "):
            continue
        lexer = shlex.shlex(line[4:], posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command = []
        for token in list(lexer) + [";"]:
            if token not in ("&&", ";", "||", "|"):
                command.append(token)
                continue
            if command[:2] == ["pip", "install"]:
                words = command[2:]
                found.append((words, [w for w in words if "==" in w]))
            command = []
    return found


def project():
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _names(pins):
    return {p.split("==")[0].lower(): p for p in pins}


@pytest.mark.parametrize("image, expected", [
    ("singleuser", lambda p: [d for d in p["dependencies"] + p["optional-dependencies"]["hub"]
                              if not d.startswith("pytest==")]),
    ("grader", lambda p: p["dependencies"] + p["optional-dependencies"]["hub"]),
])
def test_an_image_pins_exactly_the_projects_packages(image, expected):
    installs = pip_installs(DEPLOY / image / "Dockerfile")
    pinned = [p for _, pins in installs for p in pins]
    assert len(pinned) == len(set(pinned))
    assert _names(pinned) == _names(expected(project()))
    words, first = installs[0]
    assert first == ["torch==2.13.0"]
    assert words[words.index("--index-url") + 1] == "https://download.pytorch.org/whl/cpu"
    # nothing unpinned is installed (the in-place install of the course takes no dependencies)
    for words, pins in installs[1:]:
        assert len(pins) == len(words) or words[:2] == ["--no-deps", "-e"], words


def test_the_learner_image_has_no_grader_and_runs_as_a_user():
    text = (DEPLOY / "singleuser" / "Dockerfile").read_text()
    copies = re.findall(r"^COPY (\S+)", text, re.M)
    assert copies and all((REPO / c).exists() for c in copies)
    assert not any(c.split("/")[0] in ("autograder", "solutions", "tests", "course") for c in copies)
    assert "find_spec('autograder') is None" in text
    assert re.search(r"^USER \$\{NB_UID\}$", text, re.M) and "ARG NB_UID=1000" in text


def test_the_grader_image_runs_as_the_jobs_user():
    text = (DEPLOY / "grader" / "Dockerfile").read_text()
    copies = [w for line in re.findall(r"^COPY (.+) /opt/bncourse/?\S*$", text, re.M) for w in line.split()]
    assert copies and all((REPO / c).exists() for c in copies)
    assert re.search(rf"^USER {k8s.UID}:{k8s.UID}$", text, re.M)
    assert k8s.GRADER_IMAGE in text and "bncourse-singleuser:0.1.0" in (
        DEPLOY / "singleuser" / "Dockerfile").read_text()


@pytest.mark.parametrize("image, copied_to", [
    ("singleuser", "/opt/bncourse-learner/bncourse/datasets"),  # plain files: where a wheel puts the data
    ("grader", "/opt/bncourse/datasets"),  # beside the editable install, which maps it (pyproject.toml)
])
def test_an_image_carries_the_courses_data_and_checks_it(image, copied_to):
    """The data lives at the top of the repository (datasets/), outside bncourse/: each image
    copies it where its install of bncourse finds it, and its build fails if it does not."""
    text = (DEPLOY / image / "Dockerfile").read_text()
    assert re.findall(r"^COPY datasets (\S+)$", text, re.M) == [copied_to]
    assert "from bncourse import data; data.verify()" in re.sub(r"\\\n", " ", text)
    if image == "grader":
        assert tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"] == {
            "bncourse.datasets": "datasets"}


# ------------------------------------------------------------------- deploy/z2jh/values.yaml

# HAND-KEPT list of Zero to JupyterHub chart keys this course may set, copied by hand from the
# chart's values.schema.yaml (source of July 2026). It is NOT the chart's schema: a key that
# the chart gained or renamed later is not known here. "*" admits any keys below it (the
# chart passes those through: JupyterHub traitlets, roles, services, env, volume specs).
Z2JH_KEYS = {
    "hub.config.*", "hub.loadRoles.*", "hub.services.*", "hub.extraConfig.*",
    "hub.networkPolicy.enabled", "hub.resources.*", "hub.image.name", "hub.image.tag",
    "hub.db.type", "hub.db.pvc.storage", "hub.extraVolumes", "hub.extraVolumeMounts",
    "singleuser.image.name", "singleuser.image.tag", "singleuser.image.pullPolicy",
    "singleuser.cmd", "singleuser.defaultUrl", "singleuser.uid", "singleuser.fsGid",
    "singleuser.allowPrivilegeEscalation", "singleuser.startTimeout",
    "singleuser.cpu.limit", "singleuser.cpu.guarantee",
    "singleuser.memory.limit", "singleuser.memory.guarantee",
    "singleuser.storage.type", "singleuser.storage.capacity", "singleuser.storage.homeMountPath",
    "singleuser.storage.dynamic.storageClass", "singleuser.storage.extraVolumes",
    "singleuser.storage.extraVolumeMounts", "singleuser.extraFiles.*", "singleuser.extraEnv.*",
    "singleuser.networkPolicy.enabled", "singleuser.networkPolicy.egressAllowRules.nonPrivateIPs",
    "singleuser.networkPolicy.egressAllowRules.privateIPs",
    "singleuser.networkPolicy.egressAllowRules.cloudMetadataServer",
    "cull.enabled", "cull.users", "cull.adminUsers", "cull.timeout", "cull.every",
    "cull.concurrency", "cull.maxAge", "cull.removeNamedServers",
    "proxy.service.type", "proxy.https.enabled", "proxy.https.hosts",
    "scheduling.userScheduler.enabled", "prePuller.hook.enabled",
}


def admitted(path):
    return path in Z2JH_KEYS or any(k.endswith(".*") and path.startswith(k[:-1]) for k in Z2JH_KEYS)


def unknown_keys(values, prefix=""):
    """Dotted keys of values that Z2JH_KEYS does not admit."""
    found = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if admitted(path):
            continue
        if isinstance(value, dict) and any(k.startswith(path + ".") for k in Z2JH_KEYS):
            found += unknown_keys(value, path + ".")
        else:
            found.append(path)
    return found



def test_z2jh_values_use_only_known_chart_keys():
    values = yaml.safe_load((DEPLOY / "z2jh" / "values.yaml").read_text())
    assert unknown_keys(values) == []
    typo = {**values, "singleuser": {**values["singleuser"], "memmory": {"limit": "4G"}},
            "cul": {"enabled": True}}
    assert sorted(unknown_keys(typo)) == ["cul", "singleuser.memmory"]


def test_z2jh_values_describe_this_course():
    values = yaml.safe_load((DEPLOY / "z2jh" / "values.yaml").read_text())
    single = values["singleuser"]
    assert f"{single['image']['name']}:{single['image']['tag']}" in (
        DEPLOY / "singleuser" / "Dockerfile").read_text()
    [volume] = single["storage"]["extraVolumes"]
    [mount] = single["storage"]["extraVolumeMounts"]
    assert volume["persistentVolumeClaim"]["claimName"] == k8s.EXCHANGE_CLAIM == "nbgrader-exchange"
    assert mount["mountPath"] == k8s.EXCHANGE_ROOT
    nbgrader = single["extraFiles"]["nbgrader-config"]["stringData"]
    assert f'c.Exchange.root = "{k8s.EXCHANGE_ROOT}"' in nbgrader
    hub_global = (DEPLOY / "hub" / "global" / "nbgrader_config.py").read_text()
    for line in ("c.Exchange.path_includes_course = True",
                 "c.Authenticator.plugin_class = JupyterHubAuthPlugin"):
        assert line in nbgrader and line in hub_global
    assert single["memory"]["limit"] and single["cpu"]["limit"] and values["cull"]["enabled"]
    roles = values["hub"]["loadRoles"]
    assert roles[f"formgrade-{k8s.COURSE}"]["scopes"] == [f"access:services!service={k8s.COURSE}"]
    uids = values["hub"]["extraConfig"]["bncourse-uids"]
    users = values["hub"]["config"]["Authenticator"]["allowed_users"]
    assert all(f'"{u}":' in uids for u in users)
    numbers = re.findall(r'"\w+": (\d+)', uids)
    assert len(numbers) == len(set(numbers)) == len(users)
