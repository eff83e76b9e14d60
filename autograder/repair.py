"""Damaged nbgrader metadata in a submission, put back from the release before grading.

A learner who edits a cell's metadata by hand (a renamed grade id, points changed, the nbgrader
entry deleted or copied onto another cell) makes nbgrader refuse the whole notebook, honest
pieces included. Before grading, on the grader's staged copy only, each cell whose nbgrader
metadata is not exactly one of the release's gets the release cell's metadata back, when the
cell's source, or else its position between intact cells, identifies exactly one release cell
that no other cell claims. A damaged cell that nothing identifies loses its nbgrader metadata:
it is graded as an ordinary cell (a test cell so lost scores 0, as a deleted one does).

This never adds points: nbgrader scores only the release's test cells, with the release's
points (autograde overwrites them from the gradebook), and a grade id is given back at most once.
"""
import copy
import json


def _meta(cell):
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, dict) else None


def _key(meta):
    return json.dumps(meta, sort_keys=True, default=str)


def repair(nb, release):
    """Repair nb (a NotebookNode, changed in place) from release; return notes, one per change."""
    wanted = [(i, c) for i, c in enumerate(release.cells) if _meta(c) is not None]
    by_key = {_key(_meta(c)): i for i, c in wanted}
    claimed, home = set(), {}  # release cells owned by intact cells; nb index -> release index
    damaged = []
    for j, cell in enumerate(nb.cells):
        meta = _meta(cell)
        i = by_key.get(_key(meta)) if meta is not None else None
        if i is not None and i not in claimed and release.cells[i].cell_type == cell.cell_type:
            claimed.add(i)
            home[j] = i
        elif meta is not None or "nbgrader" in cell.get("metadata", {}):
            damaged.append(j)
    for j, cell in enumerate(nb.cells):  # cells that lost their metadata: a release cell's exact source
        if j not in home and j not in damaged and any(
                c.source == cell.source and c.cell_type == cell.cell_type and i not in claimed for i, c in wanted):
            damaged.append(j)
    notes = []
    for rule in ("its source", "its position"):  # every match by source first
        for j in sorted(set(damaged) - set(home)):
            cell = nb.cells[j]
            free = [(i, c) for i, c in wanted if i not in claimed and c.cell_type == cell.cell_type]
            if rule == "its source":
                found = [i for i, c in free if c.source == cell.source]
            else:
                before = max((home[k] for k in home if k < j), default=-1)
                after = min((home[k] for k in home if k > j), default=len(release.cells))
                found = [i for i, c in free if before < i < after]
            if len(found) != 1:
                continue
            i, had = found[0], _meta(cell)
            cell.metadata["nbgrader"] = copy.deepcopy(_meta(release.cells[i]))
            claimed.add(i)
            home[j] = i
            if had != _meta(release.cells[i]):
                notes.append(f"repaired the nbgrader metadata of {_name(had, j)} from the release's "
                             f"{_meta(release.cells[i]).get('grade_id')} (identified by {rule})")
    for j in sorted(set(damaged) - set(home)):
        cell = nb.cells[j]
        if "nbgrader" in cell.get("metadata", {}):
            name = _name(_meta(cell), j)
            del cell.metadata["nbgrader"]
            notes.append(f"ignored the damaged nbgrader metadata of {name}: no single release cell matches it")
    return notes


def _name(meta, index):
    return f"cell {index} ({meta['grade_id']})" if meta and meta.get("grade_id") else f"cell {index}"
