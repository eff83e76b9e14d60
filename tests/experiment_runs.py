"""The lessons' experiments (00, 06, 07) as the tests run them, each result computed once per
test session: tests/test_experiments.py checks them, tests/test_prose_numbers.py reads the
numbers the lessons quote from them. Experiments that measure with a learner's function get
the solution's (the course does not ship the answers in bncourse).

Training in float32 is chaotic: the order in which the CPU's vector unit adds up a reduction
moves a run's final loss by several per cent, so another CPU gives other numbers. Each result
is therefore also computed under a second of torch's CPU kernel paths, `elsewhere(name)`: in a
child process (ATEN_CPU_CAPABILITY is read when torch is imported) that starts with the first
result() of the session and works through every experiment while this process computes its
own, on the other core. OTHER_CAPABILITY names that path: "default" (no vector instructions),
or the machine's own when this process already runs "default".

    python -m tests.experiment_runs --serve   # the child: says its kernel path, then answers each
                                              # "name seed" line with a line of JSON (the result, pickled);
                                              # "name seed now" jumps the queue
"""
import atexit
import base64
import copy
import functools
import json
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from autograder import submissions
from bncourse import covariate_shift, experiments, why_it_works

REPO = Path(__file__).resolve().parent.parent


def solution_functions(lesson):
    """The solutions' graded functions of a lesson, by name."""
    ns = {"np": np, "torch": torch, "F": F, "copy": copy}
    for source in submissions.solution_sources(lesson).values():
        exec(source, ns)
    return ns


def _with(run, lesson, names):
    def with_solutions(seed=0):
        ns = solution_functions(lesson)
        return run(seed=seed, **{name: ns[name] for name in names})
    return with_solutions


CASES = {f"07/{name}": pair for name, pair in experiments.EXPERIMENTS.items()}
CASES["07/folding"] = (lambda seed=0: experiments.folding_study(
    solution_functions("07_placement_and_alternatives")["fold_batchnorm"], seed), experiments.check_folding)
for _name, (_run, _check) in covariate_shift.EXPERIMENTS.items():
    CASES[f"00/{_name}"] = (_with(_run, "00_internal_covariate_shift", covariate_shift.HELPERS), _check)
for _name, (_run, _check) in why_it_works.EXPERIMENTS.items():
    CASES[f"06/{_name}"] = (_with(_run, "06_why_batchnorm_works", why_it_works.HELPERS), _check)

# what the child computes as soon as it starts, in the order the tests ask for them
# (tests/test_experiments.py goes through CASES; lesson 00's reflection quotes seed 1)
PREFETCH = [(name, 0) for name in CASES] + [("00/drift", 1)]
CAPABILITY = torch.backends.cpu.get_cpu_capability()   # this process's kernel path, e.g. "AVX512"
OTHER_CAPABILITY = "default" if CAPABILITY != "DEFAULT" else None   # None: the machine's own


@functools.cache
def _compute(name, seed):
    return CASES[name][0](seed=seed)


def result(name, seed=0):
    """What experiment `name` ("00/drift", "06/learning_rate", "07/placement", ...) returns."""
    _worker()  # the other kernel path starts on the other core
    return _compute(name, seed)


def elsewhere(name, seed=0):
    """What experiment `name` returns under OTHER_CAPABILITY's kernels (computed once)."""
    return _worker().result(name, seed)


def other_path():
    """A few words naming the second kernel path, for messages."""
    return f"ATEN_CPU_CAPABILITY={OTHER_CAPABILITY or 'unset (the machine’s own)'}"


class Worker:
    """A child process computing results under other environment variables; requests are sent
    at once and answered in order, and a thread collects the answers as they come (so the child
    never waits for this process to read)."""

    def __init__(self, env, prefetch=()):
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.experiment_runs", "--serve"],
                                     cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        self.asked, self.answers, self.results, self.done = set(), {}, {}, threading.Condition()
        threading.Thread(target=self._collect, daemon=True).start()
        self.ask(*prefetch)
        atexit.register(self.close)

    def _collect(self):
        for line in self.proc.stdout:
            answer = json.loads(line)
            with self.done:
                self.answers[answer.get("name"), answer.get("seed")] = answer
                self.done.notify_all()
        with self.done:
            self.answers["stopped"] = True
            self.done.notify_all()

    def ask(self, *keys):
        new = [k for k in keys if k not in self.asked]
        if new:
            self.proc.stdin.write("".join(f"{name} {seed}\n" for name, seed in new))
            self.proc.stdin.flush()
            self.asked.update(new)

    def _answer(self, key):
        with self.done:
            self.done.wait_for(lambda: key in self.answers or "stopped" in self.answers)
            if key not in self.answers:
                self.log.seek(0)
                tail = self.log.read().decode(errors="replace")[-3000:]
                raise RuntimeError(f"the experiments' child process ({other_path()}) stopped:\n{tail}")
            return self.answers[key]

    def capability(self):
        """The kernel path torch chose in the child, e.g. "DEFAULT"."""
        return self._answer((None, None))["capability"]

    def result(self, name, seed=0):
        if (name, seed) not in self.results:
            with self.done:
                waiting = (name, seed) not in self.answers
            if waiting:   # to the front of the child's queue
                self.proc.stdin.write(f"{name} {seed} now\n")
                self.proc.stdin.flush()
                self.asked.add((name, seed))
            answer = self._answer((name, seed))
            if "error" in answer:
                raise RuntimeError(f"{name} (seed {seed}) failed under {other_path()}:\n{answer['error']}")
            self.results[name, seed] = pickle.loads(base64.b64decode(answer["pickle"]))
        return self.results[name, seed]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@functools.cache
def _worker():
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    if OTHER_CAPABILITY:
        env["ATEN_CPU_CAPABILITY"] = OTHER_CAPABILITY
    return Worker(env, PREFETCH)


def serve():
    """The child's loop: for each "name seed" line on stdin, one line of JSON on stdout. A line
    ending in "now" (the parent is waiting for it) jumps the queue."""
    out, sys.stdout = sys.stdout, sys.stderr   # anything an experiment prints stays off the channel
    out.write(json.dumps({"capability": CAPABILITY}) + "\n")
    out.flush()
    queue, urgent, more = [], [], threading.Condition()

    def read():
        for line in sys.stdin:
            name, seed, *now = line.split()
            with more:
                (urgent if now else queue).append((name, int(seed)))
                more.notify()
        with more:
            queue.append(None)   # stdin closed: stop once the queue is done
            more.notify()

    threading.Thread(target=read, daemon=True).start()
    done = set()
    while True:
        with more:
            more.wait_for(lambda: urgent or queue)
            key = (urgent or queue).pop(0)
        if key is None:
            return
        if key in done:
            continue
        done.add(key)
        answer = {"name": key[0], "seed": key[1]}
        try:
            answer["pickle"] = base64.b64encode(pickle.dumps(_compute(*key))).decode()
        except Exception:
            answer["error"] = traceback.format_exc()
        out.write(json.dumps(answer) + "\n")
        out.flush()


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    serve()
