"""Kubernetes manifests for grading where "the pod is the sandbox" (BNCOURSE_ISOLATION=pod).

bubblewrap cannot start inside a default pod (the runtime's seccomp profile refuses new user
namespaces; autograder.sandbox.diagnose() says so). On Kubernetes the grading therefore runs
one pod per submission run, and that pod is the sandbox: non-root, read-only root
filesystem, no capabilities, no privilege escalation, the runtime's default seccomp profile,
no service-account token, no service links, resource limits, a deadline, an emptyDir as its
only scratch space, and a NetworkPolicy that denies all ingress and egress of grading pods.
Inside, `python -m autograder grade` runs with BNCOURSE_ISOLATION=pod: the grader checks
those properties from inside (autograder.sandbox.pod_problems) before it claims "pod" in
grades.csv, and refuses to grade otherwise; within the pod, Landlock keeps the submission
away from the grading code and the grader's workspace (autograder.sandbox).

    python -m autograder.k8s [--out deploy/k8s] [--image IMAGE] [--student S --lesson L]

writes namespace.yaml, networkpolicy.yaml, serviceaccount.yaml, an example Job
(job-example.yaml) and the course's formgrader service (formgrader.yaml, in the hub's
namespace); `grading_job(student, lesson)` makes the Job for any submission. The
manifests are checked statically with the official `kubernetes` client's models
(tests/test_deploy.py); nothing here talks to a cluster.
"""
import argparse
import hashlib
import re
import sys
from pathlib import Path

from autograder.paths import REPO

NAMESPACE = "bncourse-grading"
GRADER_IMAGE = "bncourse-grader:0.1.0"  # deploy/grader/Dockerfile
SERVICE_ACCOUNT = "bncourse-grader"
ROLE_LABEL = {"bncourse.org/role": "grading"}  # what the NetworkPolicy selects
LABELS = {"app.kubernetes.io/name": "bncourse-grader", "app.kubernetes.io/part-of": "bncourse",
          **ROLE_LABEL}
UID = 65534  # nobody: owns nothing in the image
SUBMISSIONS_CLAIM = "bn101-course"  # the course root's share, bound in the grading namespace too;
# mounted read-only, only submitted/<student>/<lesson>/
RESULTS_CLAIM = "bncourse-grading-results"  # one folder per student and lesson
SCRATCH = "/scratch"  # the pod's only writable place besides its results folder
SUBMISSION = "/submission"
RESULTS = "/results"
RESOURCES = {"requests": {"cpu": "1", "memory": "2Gi", "ephemeral-storage": "1Gi"},
             "limits": {"cpu": "2", "memory": "6Gi", "ephemeral-storage": "2Gi"}}
DEADLINE_SECONDS = 1800  # the whole pod; the grader's own per-notebook deadline is shorter
# the hub side (deploy/z2jh/values.yaml): the course, its namespace and volumes
COURSE = "bn101"  # nbgrader course id = the formgrader service's name
HUB_NAMESPACE = "bn101"  # where the Z2JH chart is installed
COURSE_CLAIM = "bn101-course"  # the instructor's nbgrader course root (RWX)
EXCHANGE_CLAIM = "nbgrader-exchange"  # nbgrader's exchange (RWX, mode 1777), shared with learners
COURSE_ROOT = "/srv/course"
EXCHANGE_ROOT = "/srv/nbgrader/exchange"
INSTRUCTOR_UID = 2000  # the instructor's uid in values.yaml's uid table
FORMGRADER_PORT = 9999
OUT = REPO / "deploy" / "k8s"


def dns_name(*parts, limit=63):
    """A valid, unique Kubernetes object name from free text (student names may be anything)."""
    text = "-".join(parts)
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{name[:limit - 9].rstrip('-')}-{digest}"


def _security_context():
    return {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "privileged": False,
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def namespace():
    """The grading namespace, with Pod Security admission enforcing the "restricted" profile:
    the cluster itself refuses a grading pod that is not locked down."""
    level = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")}
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": {**level, "app.kubernetes.io/part-of": "bncourse"}}}


def network_policy():
    """No traffic in or out of grading pods (not even DNS): they need none."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "bncourse-grading-deny-all", "namespace": NAMESPACE},
            "spec": {"podSelector": {"matchLabels": dict(ROLE_LABEL)},
                     "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": []}}


def service_account():
    """The grading pods' identity: no token mounted, no role bound."""
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE},
            "automountServiceAccountToken": False}


def grading_job(student, lesson, image=GRADER_IMAGE,
                submissions_claim=SUBMISSIONS_CLAIM, results_claim=RESULTS_CLAIM):
    """The Job that grades one student's lesson in a pod of its own.

    The submission (nbgrader's submitted/<student>/<lesson>/, from the course's volume) is
    mounted read-only; the grader writes grades.csv, the gradebook and feedback into
    results/<student>/<lesson>/ of the results volume; HOME, TMPDIR and the grader's
    scratch are on the emptyDir. One notebook at a time (--workers 1): after each run the
    grader kills whatever the submission left running in the pod."""
    work = f"{RESULTS}/work"
    env = {"BNCOURSE_ISOLATION": "pod", "HOME": SCRATCH, "TMPDIR": f"{SCRATCH}/tmp",
           "MPLCONFIGDIR": f"{SCRATCH}/matplotlib", "PYTHONDONTWRITEBYTECODE": "1",
           "OMP_NUM_THREADS": "1"}
    container = {
        "name": "grade",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", 'mkdir -p "$TMPDIR" "$MPLCONFIGDIR" && exec "$@"', "grade",
                    "python", "-m", "autograder", "grade", SUBMISSION, "--workdir", work,
                    "--workers", "1"],
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "resources": {kind: dict(values) for kind, values in RESOURCES.items()},
        "securityContext": _security_context(),
        "volumeMounts": [
            {"name": "submission", "mountPath": f"{SUBMISSION}/{student}/{lesson}",
             "subPath": f"submitted/{student}/{lesson}", "readOnly": True},
            {"name": "results", "mountPath": RESULTS, "subPath": f"{student}/{lesson}"},
            {"name": "scratch", "mountPath": SCRATCH},
        ],
    }
    labels = {**LABELS, "bncourse.org/lesson": dns_name(lesson)[:63]}
    pod = {
        "metadata": {"labels": dict(labels)},
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": SERVICE_ACCOUNT,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "hostNetwork": False, "hostPID": False, "hostIPC": False,
            "shareProcessNamespace": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                                "fsGroup": UID, "seccompProfile": {"type": "RuntimeDefault"}},
            "activeDeadlineSeconds": DEADLINE_SECONDS,
            "terminationGracePeriodSeconds": 5,
            "containers": [container],
            "volumes": [
                {"name": "submission", "persistentVolumeClaim": {"claimName": submissions_claim,
                                                                 "readOnly": True}},
                {"name": "results", "persistentVolumeClaim": {"claimName": results_claim}},
                {"name": "scratch", "emptyDir": {"sizeLimit": "2Gi"}},
            ],
        },
    }
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": dns_name("grade", student, lesson), "namespace": NAMESPACE,
                         "labels": labels,
                         "annotations": {"bncourse.org/student": student, "bncourse.org/lesson": lesson}},
            "spec": {"backoffLimit": 0, "activeDeadlineSeconds": DEADLINE_SECONDS,
                     "ttlSecondsAfterFinished": 86400, "template": pod}}


def formgrader(course=COURSE, hub_namespace=HUB_NAMESPACE, image=GRADER_IMAGE,
               course_claim=COURSE_CLAIM, exchange_claim=EXCHANGE_CLAIM, port=FORMGRADER_PORT):
    """The course's formgrader as an external JupyterHub service of the Z2JH hub
    (deploy/z2jh/values.yaml registers `hub.services.<course>` at this Service's URL; the
    chart generates the service's API token into its `hub` Secret). nbgrader's formgrader in
    the instructor's course root; the exchange mounted as on learners' servers. Its
    autograde button runs with BNCOURSE_ISOLATION=pod and so refuses to grade here (this pod
    has network): grading is the Jobs' work (grading_job)."""
    name = f"{course}-formgrader"
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "bncourse"}
    prefix = f"/services/{course}/"
    env = [{"name": k, "value": v} for k, v in {
        "BNCOURSE_ISOLATION": "pod", "HOME": SCRATCH, "TMPDIR": f"{SCRATCH}/tmp",
        "MPLCONFIGDIR": f"{SCRATCH}/matplotlib", "PYTHONDONTWRITEBYTECODE": "1",
        "JUPYTERHUB_SERVICE_NAME": course, "JUPYTERHUB_USER": f"{course}-grader",
        "JUPYTERHUB_API_URL": "http://hub:8081/hub/api", "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_SERVICE_URL": f"http://0.0.0.0:{port}", "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_CLIENT_ID": f"service-{course}",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": f'["access:services!service={course}"]',
        "JUPYTERHUB_DEFAULT_URL": "/formgrader"}.items()]
    env.append({"name": "JUPYTERHUB_API_TOKEN", "valueFrom": {"secretKeyRef": {
        "name": "hub", "key": f"hub.services.{course}.apiToken"}}})
    container = {
        "name": "formgrader", "image": image, "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", 'mkdir -p "$TMPDIR" "$MPLCONFIGDIR" && exec "$@"', "formgrader",
                    "python", "-m", "jupyterhub.singleuser", f"--ServerApp.root_dir={COURSE_ROOT}",
                    f"--ServerApp.port={port}", "--ServerApp.ip=0.0.0.0"],
        "workingDir": COURSE_ROOT,
        "env": env,
        "ports": [{"name": "http", "containerPort": port}],
        "resources": {"requests": {"cpu": "250m", "memory": "1Gi"},
                      "limits": {"cpu": "1", "memory": "2Gi"}},
        "securityContext": {k: v for k, v in _security_context().items()
                            if k not in ("runAsUser", "runAsGroup")},
        "volumeMounts": [{"name": "course", "mountPath": COURSE_ROOT},
                         {"name": "exchange", "mountPath": EXCHANGE_ROOT},
                         {"name": "scratch", "mountPath": SCRATCH}],
    }
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": hub_namespace, "labels": dict(labels)},
        "spec": {"replicas": 1, "strategy": {"type": "Recreate"},
                 "selector": {"matchLabels": dict(labels)},
                 "template": {"metadata": {"labels": dict(labels)}, "spec": {
                     "automountServiceAccountToken": False, "enableServiceLinks": False,
                     "securityContext": {"runAsNonRoot": True, "runAsUser": INSTRUCTOR_UID,
                                         "runAsGroup": INSTRUCTOR_UID, "fsGroup": INSTRUCTOR_UID,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [container],
                     "volumes": [
                         {"name": "course", "persistentVolumeClaim": {"claimName": course_claim}},
                         {"name": "exchange", "persistentVolumeClaim": {"claimName": exchange_claim}},
                         {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}]}}},
    }
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": name, "namespace": hub_namespace, "labels": dict(labels)},
               "spec": {"selector": dict(labels),
                        "ports": [{"name": "http", "port": port, "targetPort": "http"}]}}
    return [deployment, service]


def manifests(image=GRADER_IMAGE, student="example-student", lesson="01_batch_statistics"):
    """{file name: [manifest, ...]} as written into deploy/k8s/."""
    return {"namespace.yaml": [namespace()],
            "networkpolicy.yaml": [network_policy()],
            "serviceaccount.yaml": [service_account()],
            "job-example.yaml": [grading_job(student, lesson, image=image)],
            "formgrader.yaml": formgrader(image=image)}


HEADER = ("# GENERATED by `python -m autograder.k8s` (make k8s) from autograder/k8s.py: edit that,\n"
          "# not this file. Checked statically by tests/test_deploy.py (kubernetes client models).\n")


def render(docs):
    import yaml
    return HEADER + "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def write(out=OUT, **kwargs):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, docs in manifests(**kwargs).items():
        (out / name).write_text(render(docs))
        written.append(out / name)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder.k8s", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--image", default=GRADER_IMAGE)
    parser.add_argument("--student", help="write only the Job of this student (with --lesson) to stdout")
    parser.add_argument("--lesson")
    args = parser.parse_args(argv)
    if args.student or args.lesson:
        if not (args.student and args.lesson):
            parser.error("--student and --lesson go together")
        sys.stdout.write(render([grading_job(args.student, args.lesson, image=args.image)]))
        return 0
    for path in write(args.out, image=args.image):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
