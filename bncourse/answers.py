"""Answers recorded where the learner's code runs, judged where it cannot reach.

While a lesson is graded, the submission runs in a sandbox (see autograder/sandbox.py). The
grader writes the inputs it wants answered into the notebook's folder; each hidden test cell
calls `record_answers(piece, fn)`, which runs fn on every input and saves what came back. The
grader then judges those answers in its own process with `Replay`: a stand-in for fn that
returns the recorded answers, so the same judging code (bncourse.judge) runs on them.

Nothing in the learner's kernel decides a grade: patching numpy or the checks changes
nothing, and a forged answers file needs the right answers to inputs chosen at grading time.
"""
import contextlib
import json
import zipfile
from pathlib import Path

import numpy as np

from bncourse import judge, pieces, tripwire
from bncourse.adapters import report_changes, take_changes
from bncourse.cases import Case, changed_inputs, digest
from bncourse.cases import decode_input as _decode_arg
from bncourse.cases import encode_input as _encode_arg
from bncourse.verdicts import Raised

FOLDER = ".grading"  # in the notebook's folder, while grading
MAX_FILE_BYTES = 64 << 20  # what the grader will read back from one answers file
MAX_DEPTH = 4


def calls_path(folder, piece):
    return Path(folder) / FOLDER / f"{piece}.calls.npz"


def answers_path(folder, piece):
    return Path(folder) / FOLDER / f"{piece}.answers.npz"


# ---------------------------------------------------------------- files

def _save(path, arrays, meta):
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = dict(arrays, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _load(path, max_bytes=MAX_FILE_BYTES):
    """(arrays, meta) from a file written by _save; refuses anything odd or too big."""
    with zipfile.ZipFile(path) as z:
        if sum(info.file_size for info in z.infolist()) > max_bytes:
            raise ValueError(f"{path.name} is larger than {max_bytes >> 20} MB")
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays.pop("meta").tobytes().decode())
    return arrays, meta


class Calls(list):
    """[(args, kwargs)]: the test cases first, then (from `probes_from` on) the inputs that
    recognise misconceptions."""

    def __init__(self, calls=(), probes_from=None):
        super().__init__(calls)
        self.probes_from = len(self) if probes_from is None else probes_from


def save_calls(path, calls):
    """calls: Calls of (args, kwargs); args arrays, numbers, dicts of those, or Formula;
    kwargs JSON values."""
    arrays, meta = {}, []
    for i, (args, kwargs) in enumerate(calls):
        meta.append({"args": [_encode_arg(a, arrays, f"c{i}a{j}") for j, a in enumerate(args)],
                     "kwargs": kwargs})
    _save(Path(path), arrays, {"calls": meta, "probes_from": getattr(calls, "probes_from", len(calls))})


def load_calls(path):
    arrays, meta = _load(Path(path))
    calls = Calls(probes_from=meta["probes_from"])
    for m in meta["calls"]:
        calls.append((tuple(_decode_arg(d, arrays) for d in m["args"]), m["kwargs"]))
    return calls


# ---------------------------------------------------------------- one answer

def _encode(value, arrays, key, depth=0):
    """A JSON-able description of value; its arrays go into `arrays`."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        try:
            value = value.detach().cpu().numpy()
        except Exception:
            return {"t": "opaque", "type": type(value).__name__}
    if depth < MAX_DEPTH and isinstance(value, (tuple, list)) and not _numeric(value):
        return {"t": type(value).__name__,
                "items": [_encode(v, arrays, f"{key}_{i}", depth + 1) for i, v in enumerate(value[:16])]}
    if depth < MAX_DEPTH and isinstance(value, dict):
        return {"t": "dict", "items": {k: _encode(v, arrays, f"{key}_{n}", depth + 1)
                                       for n, (k, v) in enumerate(list(value.items())[:32])
                                       if isinstance(k, str)}}
    if _numeric(value):
        arrays[key] = np.asarray(value)
        return {"t": type(value).__name__ if isinstance(value, (list, tuple)) else "array", "k": key}
    return {"t": "opaque", "type": type(value).__name__}


def _numeric(value):
    if isinstance(value, (str, bytes, dict)) or value is None:
        return False
    try:
        a = np.asarray(value)
    except Exception:
        return False
    return a.dtype != object and (np.issubdtype(a.dtype, np.number) or a.dtype == bool)


class Opaque:
    """Stands for an answer that was not numbers (a string, None, a function...)."""

    def __init__(self, recorded_type):
        self.recorded_type = recorded_type

    def __repr__(self):
        return f"<{self.recorded_type}>"


def _decode(desc, arrays):
    t = desc.get("t")
    if t == "opaque":
        return Opaque(str(desc.get("type")))
    if "k" in desc:
        a = arrays[desc["k"]]
        return list(a) if t == "list" else tuple(a) if t == "tuple" else a
    if t in ("tuple", "list"):
        items = [_decode(d, arrays) for d in desc["items"]]
        return tuple(items) if t == "tuple" else items
    if t == "dict":
        return {k: _decode(d, arrays) for k, d in desc["items"].items()}
    raise ValueError(f"unknown answer type {t!r}")


# ---------------------------------------------------------------- recording (in the sandbox)

def answer_calls(piece, fn, calls, namespace=None):
    """Run fn on every call; return the contents of an answers file: (arrays, meta)."""
    arrays, meta = {}, []
    fn = judge.pure(piece, fn)
    bans = pieces.spec(piece).bans if tripwire.grading() else None  # in the grading sandbox
    with judge.trusted_parts(piece, namespace), \
            (tripwire.banned(bans) if bans is not None else contextlib.nullcontext()):
        for i, (args, kwargs) in enumerate(calls):
            if meta and "raised MemoryError" in str(meta[-1].get("error", [""])[-1]):
                # each call would fill the sandbox's memory again (seconds each): the verdict is in
                meta.append({"error": ["missing", "not asked: an earlier input ran out of memory"],
                             "mutated": []})
                continue
            if i < calls.probes_from and meta and "error" in meta[-1]:
                # judging stops at a case's first error: spare the other cases (not the probes)
                meta.append({"error": ["missing", "not asked: an earlier input already failed"],
                             "mutated": []})
                continue
            case = Case("", args, kwargs)
            args, before = case.fresh_args(), case.fresh_args()
            take_changes()
            out, error = judge.outcome(fn, args, kwargs)
            if tripwire.unwatched():  # fn reached torch past the import hook: again, armed
                args, before = case.fresh_args(), case.fresh_args()
                take_changes()
                try:
                    tripwire.watch()
                    out, error = judge.outcome(fn, args, kwargs)
                except tripwire.ForbiddenCall as e:
                    out, error = None, ("forbidden", f"{judge.name_of(fn)}: {e}")
            entry = {"error": list(error)} if error else {"out": _encode(out, arrays, f"r{i}")}
            entry["changed"] = take_changes()  # in the models and tensors its adapter handed it
            entry["mutated"] = []
            for j, key in changed_inputs(args, before):
                changed = args[j] if key is None else args[j].get(key)
                numeric = isinstance(changed, np.ndarray) and changed.dtype.kind in "biuf"
                arrays[f"r{i}m{len(entry['mutated'])}"] = changed if numeric else np.zeros(0)
                entry["mutated"].append([j, key])
            meta.append(entry)
    return arrays, meta


def record_answers(piece, fn, namespace=None):
    """Hidden test cells call this. While grading: answer the grader's inputs for `piece`.
    Elsewhere (an instructor running the solutions): grade in-process with the hidden tests."""
    calls_file = calls_path(".", piece)
    if not calls_file.is_file():
        grade = _in_process_grader()
        if grade is None:
            print(f"(the grader records {piece}'s answers here while grading)")
            return
        return grade(piece, fn, namespace)
    arrays, meta = answer_calls(piece, fn, load_calls(calls_file), namespace)
    _save(answers_path(".", piece), arrays, meta)
    print(f"{piece}: answers recorded; the grader judges them outside this notebook")


GRADERS = "bncourse.graders"  # entry-point group: a grading package plugs in here


def _in_process_grader():
    """The hidden tests' grade(piece, fn, namespace), where a grading package that registers
    one is installed (the instructor's edition: autograder.hidden.grade); else None. This
    package never imports the grader: the grader plugs itself in."""
    from importlib.metadata import entry_points
    for entry in entry_points(group=GRADERS):
        try:
            return entry.load()
        except ImportError:  # registered but not reachable (inside a sandbox)
            return None
    return None


# ---------------------------------------------------------------- judging (outside)

class Answer:
    def __init__(self, entry, arrays, i):
        self.error = tuple(entry["error"]) if "error" in entry else None
        self.out = None if self.error else _decode(entry["out"], arrays)
        # [(argument position, dict key or None, the argument as the function left it)]
        self.mutated = [(int(j), key, arrays[f"r{i}m{m}"])
                        for m, (j, key) in enumerate(entry.get("mutated", []))]
        self.changed = [(str(kind)[:20], str(words)[:200]) for kind, words in entry.get("changed", [])[:20]]


def load_answers(path, count):
    """The answers to `count` calls from a file the sandbox wrote (untrusted: checked)."""
    arrays, meta = _load(Path(path))
    if not isinstance(meta, list) or len(meta) != count:
        raise ValueError(f"{Path(path).name} answers {len(meta) if isinstance(meta, list) else '?'} "
                         f"calls, not {count}")
    return [Answer(entry, arrays, i) for i, entry in enumerate(meta)]


class Replay:
    """Behaves like the learner's function on the recorded calls, from its recorded answers."""

    def __init__(self, name, calls, answers, missing=None):
        self.__name__ = name
        self._index = {digest(args, kwargs): i for i, (args, kwargs) in enumerate(calls)}
        self._answers = answers
        self._missing = missing  # why there are no answers, when there are none

    def __call__(self, *args, **kwargs):
        if self._answers is None:
            raise Raised("missing", self._missing or f"no answers of {self.__name__} were recorded")
        i = self._index.get(digest(args, kwargs))
        if i is None:
            raise Raised("missing", f"the grader asked {self.__name__} about an input it had "
                                          "not recorded (a grader bug: please report it)")
        answer = self._answers[i]
        report_changes(answer.changed)  # what the call changed in the objects it was handed
        for j, key, after in answer.mutated:  # do to the inputs what the function did to them
            if j >= len(args):
                continue
            if key is None and isinstance(args[j], np.ndarray) and args[j].shape == after.shape:
                np.copyto(args[j], after, casting="unsafe")
            elif key is not None and isinstance(args[j], dict):
                args[j][key] = np.array(after)
        if answer.error:
            raise Raised(*answer.error)
        return answer.out

