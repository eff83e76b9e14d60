"""Numbers in the lessons' prose, checked against what the code computes.

A number that a lesson states as a fact carries a marker right after it, invisible in the
rendered notebook:

    about 35<!--= result("00/drift")["deep_ratio"] --> times smaller
    s = 0.25<!--= 0.5 / math.sqrt(4) -->, so ...
    97.8 %<!--= 100 * acc ~ 0.5 -->              (a percentage: compared as written, 97.8)
    within 5<!--= worst_ratio_percent ~ 20% --> %
    65<!--= 100 * acc ~ min --> to 85 %<!--= 100 * acc ~ max -->   (a range: the ends are bounds)

`EXPR` is a Python expression evaluated with `np`, `math`, `torch` and whatever the caller puts in
the namespace (tests/test_prose_numbers.NAMESPACE: `result(name)`, an experiment's return value,
see tests/experiment_runs.py; `default(fn, "arg")`, an argument's default; the modules `data`,
`plots`, `covariate_shift`, `why_it_works`, `experiments`). ` ~ TOL` is an absolute tolerance,
` ~ P%` a relative one; without it the value must round to the number as written
(|value - shown| <= half a unit of its last digit). ` ~ min` and ` ~ max` make the number a bound:
the value must not round to less (more) than it. A number that training produces moves with the
CPU (float32 training is chaotic); tests/test_prose_numbers.py evaluates every marker under two
of torch's kernel paths, and a tolerance or range must cover the spread that
tools/kernel_spread.py measures over several.

`unmarked(text, code)` lists the numbers a reader would take for measurements (decimals,
percentages, "N times", "N×") that carry no marker: numbers inside code spans, LaTeX, links and
comments do not count, nor numbers that the lesson's code cells contain literally (its inputs:
a learning rate, a momentum), nor versions and years.
"""
import math
import re
from dataclasses import dataclass

NUMBER = r"[-−]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"
MARKER = re.compile(rf"(?P<number>{NUMBER})(?P<percent>\s*%)?<!--=(?P<expr>.*?)-->", re.S)
TOLERANCE = re.compile(r"^(?P<expr>.*?)\s+~\s*(?P<tol>[0-9.e+-]+|min|max)\s*(?P<relative>%)?\s*$", re.S)

# what a reader takes for a measured number
MEASURED = re.compile(r"(?<![\w.])(?P<number>\d+\.\d+|\d+(?=\s*%)|\d+(?=\s*(?:times\b|×))|(?<=×)\d+(?:\.\d+)?)")
IGNORED = [  # regions of markdown whose numbers are not prose
    re.compile(r"```.*?```", re.S), re.compile(r"`[^`\n]*`"), re.compile(r"\$\$.*?\$\$", re.S),
    re.compile(r"\$[^$\n]+\$"), re.compile(r"<!--.*?-->", re.S), re.compile(r"\]\([^)]*\)"),
    re.compile(r"<[^>\n]+>"),
]
NOT_MEASURED = re.compile(r"(?:torch|PyTorch|Python|JupyterLab|nbgrader|version|v)\s*\d+(?:\.\d+)+"
                          r"|\b(?:19|20)\d\d\b")


@dataclass
class Claim:
    number: str      # as written
    expr: str
    value: float | None = None
    error: str | None = None  # why it does not hold

    def __str__(self):
        return f"{self.number} <- {self.expr.strip()}: {self.error}"


def shown(number):
    return float(number.replace("−", "-"))


def half_unit(number):
    """Half a unit of the last digit written: 0.2 -> 0.05, 35 -> 0.5, 1e-5 -> 5e-6."""
    mantissa, _, exponent = number.replace("−", "-").lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 0.5 * 10.0 ** (-decimals + (int(exponent) if exponent else 0))


def claims(text):
    """The markers of a markdown text, in order."""
    return [Claim(m["number"], m["expr"]) for m in MARKER.finditer(text)]


def check(claim, namespace):
    """claim, with .value and .error (None when the number holds)."""
    expr, tol, relative = claim.expr, None, False
    m = TOLERANCE.match(expr)
    if m:
        expr, tol, relative = m["expr"], m["tol"], bool(m["relative"])
    number = shown(claim.number)
    try:
        claim.value = float(eval(expr, {"np": _np(), "math": math, "torch": _torch(), **namespace}))
    except Exception as e:  # a marker that cannot be evaluated is a broken claim
        claim.error = f"could not evaluate: {type(e).__name__}: {e}"
        return claim
    if tol in ("min", "max"):
        slack = half_unit(claim.number) * (1 + 1e-9)
        outside = claim.value < number - slack if tol == "min" else claim.value > number + slack
        if outside:
            side = "below the least" if tol == "min" else "above the most"
            claim.error = f"the code gives {claim.value:.6g}, {side} the text allows ({claim.number})"
        return claim
    tol = float(tol) if tol is not None else None
    allowed = (abs(number) * tol / 100 if relative else tol) if tol is not None else half_unit(claim.number)
    if not abs(claim.value - number) <= allowed * (1 + 1e-9):
        claim.error = f"the code gives {claim.value:.6g}, the text says {claim.number} (allowed ±{allowed:.3g})"
    return claim


def prose(text):
    """text with the regions that are not prose blanked out (same length, so positions hold)."""
    for pattern in IGNORED:
        text = pattern.sub(lambda m: " " * len(m.group()), text)
    return NOT_MEASURED.sub(lambda m: " " * len(m.group()), text)


def unmarked(text, code=""):
    """The measured-looking numbers of `text` without a marker: [(number, the sentence around it)]."""
    literals = set(re.findall(NUMBER, code))
    marked = {m.start("number") + (m["number"][0] in "-−") for m in MARKER.finditer(text)}  # after a sign
    found = []
    for m in MEASURED.finditer(prose(text)):
        start, number = m.start("number"), m["number"]
        if start in marked or number in literals:
            continue
        found.append((number, " ".join(text[max(0, start - 60):start + 30].split())))
    return found


def _np():
    import numpy
    return numpy


def _torch():
    import torch
    return torch
