"""The auditor: an attacker with every table an audience is released, trying to recover hidden counts.

Two attacks, on the values read back from the files about to be swapped in:

* **Linear programming** (the audit of τ-ARGUS, generalised to perturbed cells): every released
  count is a variable the attacker knows to within its perturbation (a released 40 is 37 to 43, at
  least 11); a hidden one is 1 to 10, or 11 and more when it was hidden as a complement (the
  attacker is granted which); zero is zero. Every relation between cells is a constraint: a
  breakdown adds up to its total, subgroups to their study, histogram bins to their arm, attrition
  steps to each other, and what a total holds beyond its listed parts (a remainder, such as the
  small départements of a région) is one more variable. For each hidden count of 1 to 10, and each
  remainder of 1 to 10, the attacker's tightest bounds are two linear programmes (HiGHS); the
  count is **recovered** when fewer than ``PROTECTION_WIDTH + 1`` values remain possible.
* **Rules**, for what is not a sum: every column is classified; every released count is 0 or at
  least 11; every derived value (rates, intervals, shares) recomputes from released values only;
  every estimate is empty where a count it rests on is hidden; every curve point rests on at least
  11 events since the previous one; every estimate is written to its declared unit
  (``precision.py``), and none narrows a tally it is a function of (``tallies.py``: the integer search).

Findings name the audience, table, column and kind of cell; never a value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np
import polars as pl
from scipy.sparse import csc_array

from pipelines.publication.errors import PublicationError
from pipelines.publication.ledger import Cell, CellId, Ledger, Relation
from pipelines.publication.precision import precision_problems, round_to, unit_of
from pipelines.publication.rules import MIN_CELL, PROTECTION_WIDTH
from pipelines.publication.schema import TableSchema, same
from pipelines.publication.tallies import tally_problems


@dataclass(frozen=True)
class Target:
    """Something the attacker must not pin down: a hidden cell, or the remainder of a relation."""

    cell: CellId
    relation: Relation | None = None

    def describe(self) -> str:
        if self.relation is None:
            return f"hidden count {self.cell.describe()}"
        return f"what {self.cell.describe()} holds beyond the parts of '{self.relation.kind}' shown"


@dataclass(frozen=True)
class Recovery:
    target: Target
    width: float
    relations: tuple[str, ...]

    def message(self, audience: str) -> str:
        return (
            f"{audience}: {self.target.describe()} can be narrowed to fewer than {PROTECTION_WIDTH + 1} values "
            f"from {', '.join(sorted(set(self.relations)))}"
        )


@dataclass
class AuditReport:
    audience: str
    cells: int = 0
    released: int = 0
    perturbed: int = 0
    hidden: int = 0
    targets: int = 0
    recovered: list[Recovery] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.recovered and not self.problems

    def messages(self) -> list[str]:
        return [*self.problems, *(r.message(self.audience) for r in self.recovered)]


def _count_box(true: float) -> tuple[float, float]:
    """What the attacker is granted about a hidden count: its class (zero, small, or not small)."""
    if true == 0:
        return 0.0, 0.0
    if true < MIN_CELL:
        return 1.0, float(MIN_CELL - 1)
    return float(MIN_CELL), math.inf


def masked_parts(ledger: Ledger) -> set[CellId]:
    """Counts that are parts of a relation whose total is hidden and 1 to 10.

    Each such part is at most 10: it is either 0 or hidden, so releasing its zeros says that every blank
    part holds at least one (nine readmissions blank in eight régions, the others 0, pin the total to 8 to
    10 and each région to 1 to 3). The release hides their zeros too (``zeros_to_mask``), and a blank part
    is then 0 to 10 for the attacker.
    """
    found: set[CellId] = set()
    for relation in ledger.relations:
        total = ledger.cells[relation.total]
        if total.kind == "count" and total.released is None and 0 < total.true < MIN_CELL:
            found.update(p for p in relation.parts if ledger.cells[p].kind == "count" and not ledger.cells[p].implicit)
    return found


def zeros_to_mask(ledger: Ledger) -> set[CellId]:
    """The released zeros among ``masked_parts``: to hide as well."""
    return {c for c in masked_parts(ledger) if ledger.cells[c].released == 0}


def _bounds(cell: Cell, released: float | None, masked: bool = False) -> tuple[float, float]:
    if masked and released is None and cell.kind == "count" and cell.true < MIN_CELL:
        return 0.0, float(MIN_CELL - 1)
    if cell.implicit or released is None:
        return _count_box(cell.true) if cell.kind == "count" else (0.0, math.inf)
    if cell.kind == "count":
        return (
            (released, released) if cell.noise == 0 else (max(MIN_CELL, released - cell.noise), released + cell.noise)
        )
    return max(0.0, released - cell.noise), released + cell.noise


def _known(box: tuple[float, float], known: tuple[float, float] | None) -> tuple[float, float]:
    """The attacker's box for a cell, narrowed by what else the release says about it."""
    if known is None:
        return box
    return max(box[0], known[0]), min(box[1], known[1])


def _components(ledger: Ledger) -> list[tuple[set[CellId], list[Relation]]]:
    parent: dict[CellId, CellId] = {c: c for c in ledger.cells}

    def find(c: CellId) -> CellId:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    for relation in ledger.relations:
        for part in relation.parts:
            parent[find(part)] = find(relation.total)
    groups: dict[CellId, set[CellId]] = {}
    for c in ledger.cells:
        groups.setdefault(find(c), set()).add(c)
    relations: dict[CellId, list[Relation]] = {}
    for relation in ledger.relations:
        relations.setdefault(find(relation.total), []).append(relation)
    return [(members, relations.get(root, [])) for root, members in groups.items()]


def attack(ledger: Ledger, values: Mapping[CellId, float | None] | None = None) -> tuple[int, list[Recovery]]:
    """(number of targets, the targets the attacker narrows too much), from ``values`` (released values read
    back from the files; the ledger's own when not given)."""
    released = values if values is not None else {c.id: c.released for c in ledger}
    masked = masked_parts(ledger)
    targets_total, recoveries = 0, []
    for members, relations in _components(ledger):
        cells = sorted(members, key=lambda c: (c.table, c.row, c.column))
        index = {c: i for i, c in enumerate(cells)}
        bounds = [_known(_bounds(ledger.cells[c], released.get(c), c in masked), ledger.known.get(c)) for c in cells]
        targets: list[tuple[Target, int]] = [
            (Target(c), index[c])
            for c in cells
            if (ledger.cells[c].implicit or released.get(c) is None) and _sensitive(ledger.cells[c])
        ]
        equalities: list[tuple[dict[int, float], float]] = []
        inequalities: list[dict[int, float]] = []
        for relation in relations:
            total = ledger.cells[relation.total]
            parts = [ledger.cells[p] for p in relation.parts]
            remainder = total.true - sum(p.true for p in parts)
            if abs(remainder) <= 1e-9 * max(1.0, abs(total.true)):
                remainder = 0.0
            row = {index[relation.total]: 1.0}
            for p in relation.parts:
                row[index[p]] = row.get(index[p], 0.0) - 1.0
            if relation.distinct:
                # A person counted in several parts: each part is at most the total.
                inequalities += [{index[p]: 1.0, index[relation.total]: -1.0} for p in relation.parts]
            if remainder < -1e-6:
                if not relation.distinct:
                    raise PublicationError(f"relation '{relation.kind}' of {relation.total.table} does not hold")
                inequalities.append(row)  # total <= sum(parts)
                continue
            if abs(remainder) <= 1e-9:
                equalities.append((row, 0.0))  # the attacker is granted that the parts are complete
                continue
            bounds.append(_count_box(round(remainder)) if total.kind == "count" else (0.0, math.inf))
            row[len(bounds) - 1] = -1.0
            equalities.append((row, 0.0))
            if total.kind == "count" and not relation.distinct and remainder < MIN_CELL:
                targets.append((Target(relation.total, relation), len(bounds) - 1))
        targets_total += len(targets)
        if not targets:
            continue
        kinds = tuple(r.kind for r in relations)
        integer = [t[0].relation is not None or ledger.cells[t[0].cell].kind == "count" for t in targets]
        width = _widths(bounds, equalities, inequalities, [t[1] for t in targets], integer, kinds)
        recoveries += [Recovery(t, w, kinds) for (t, _), w in zip(targets, width, strict=True) if w < PROTECTION_WIDTH]
    return targets_total, recoveries


def _sensitive(cell: Cell) -> bool:
    """A count of 1 to 10, or any sum (person-years, hours) of a hidden row."""
    return 0 < cell.true < MIN_CELL if cell.kind == "count" else cell.true > 0


def _widths(
    bounds: list[tuple[float, float]],
    equalities: list[tuple[dict[int, float], float]],
    inequalities: list[dict[int, float]],
    targets: list[int],
    integer: list[bool],
    kinds: tuple[str, ...],
) -> list[float]:
    """How many values each target can take, given every constraint: its least and greatest value, two
    linear programmes, all solved on one HiGHS model of the group whose objective alone changes between
    solves, so that each starts from the previous one's basis. ``scipy.optimize.linprog`` (which calls the
    same solver) checked its options and rebuilt the model twice per target: most of the audit's time
    went there, not into solving (docs/benchmarks-notes.md). The widths are the same
    (``tests/test_audit_widths.py`` checks them against ``linprog`` as an oracle)."""
    model = _model(bounds, [row for row, _ in equalities], inequalities)
    widths = []
    for target, whole in zip(targets, integer, strict=True):
        ends = []
        for sign in (1.0, -1.0):
            model.changeColCost(target, sign)
            model.run()
            status = model.getModelStatus()
            if status == highspy.HighsModelStatus.kUnbounded:
                ends.append(math.inf if sign < 0 else -math.inf)
                continue
            if status != highspy.HighsModelStatus.kOptimal:
                raise PublicationError(
                    f"the released values contradict their relations ({', '.join(sorted(set(kinds))) or 'none'})"
                )
            ends.append(sign * model.getInfo().objective_function_value)
        model.changeColCost(target, 0.0)
        low, high = (math.ceil(ends[0] - 1e-6), math.floor(ends[1] + 1e-6)) if whole else (ends[0], ends[1])
        widths.append(high - low)
    return widths


def _model(
    bounds: list[tuple[float, float]], equalities: list[dict[int, float]], inequalities: list[dict[int, float]]
) -> Any:
    """A HiGHS model of the cells ``bounds`` bound, each equality row equal to 0 and each inequality row at
    most 0, with no objective yet and no output.

    ``highspy._Highs`` is the package's solver class itself; its subclass ``highspy.Highs`` adds Python
    callbacks (interrupts, solve in a thread) that the audit does not use, and prints HiGHS's banner on
    the process's standard output when the first one is made, before any option can turn it off."""
    rows = [*equalities, *inequalities]
    matrix = csc_array(
        (
            np.array([v for row in rows for v in row.values()], dtype=float),
            (
                np.array([i for i, row in enumerate(rows) for _ in row], dtype=np.int64),
                np.array([j for row in rows for j in row], dtype=np.int64),
            ),
        ),
        shape=(len(rows), len(bounds)),
    )
    infinite = highspy.kHighsInf
    model = highspy._Highs()  # type: ignore[attr-defined]  # exported by highspy/__init__.py, not by its stub
    model.setOptionValue("output_flag", False)
    model.passModel(
        len(bounds),
        len(rows),
        int(matrix.nnz),
        int(highspy.MatrixFormat.kColwise),
        int(highspy.ObjSense.kMinimize),
        0.0,
        np.zeros(len(bounds)),
        np.array([low for low, _ in bounds], dtype=float),
        np.array([infinite if math.isinf(high) else high for _, high in bounds], dtype=float),
        np.array([0.0] * len(equalities) + [-infinite] * len(inequalities)),
        np.zeros(len(rows)),
        matrix.indptr.astype(np.int32),
        matrix.indices.astype(np.int32),
        matrix.data,
        np.zeros(len(bounds), dtype=np.int32),
    )
    return model


# --- reading the release back, and the rules -------------------------------------------------------


def _path(document: Mapping[str, Any], path: str) -> Any:
    value: Any = document
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def released_values(ledger: Ledger, tables: Mapping[str, pl.DataFrame], schemas: Mapping[str, TableSchema]) -> tuple[
    dict[CellId, float | None], list[str]
]:  # fmt: skip
    """Each ledger cell's value as found in the released tables, and the cells that are not where expected."""
    problems: list[str] = []
    indexes: dict[str, dict[tuple[str, ...], dict[str, Any]]] = {}
    for name, frame in tables.items():
        if name in schemas:
            indexes[name] = {schemas[name].row_labels(r): r for r in frame.iter_rows(named=True)}
    values: dict[CellId, float | None] = {}
    for cell in ledger:
        if cell.implicit:
            continue
        row = indexes.get(cell.id.table, {}).get(cell.id.row)
        if row is None:
            problems.append(f"{cell.id.table}: a protected {cell.kind} is missing from the released table")
            continue
        column, _, path = cell.id.column.partition(".")
        value = _path(json.loads(row[column] or "{}"), path) if path else row[column]
        values[cell.id] = None if value is None else float(value)
    return values, problems


def rule_problems(
    ledger: Ledger,
    tables: Mapping[str, pl.DataFrame],
    schemas: Mapping[str, TableSchema],
    values: Mapping[CellId, float | None],
) -> list[str]:
    """Column classification, the threshold, derived and guarded values, on the released tables."""
    problems = []
    cells_by_place = {(c.id.table, c.id.row, c.id.column) for c in ledger if not c.implicit}
    for name, frame in tables.items():
        schema = schemas.get(name)
        if schema is None:
            problems.append(f"{name}: a released table no schema describes")
            continue
        unclassified = [c for c in frame.columns if c not in schema.columns]
        if unclassified:
            problems.append(f"{name}: columns not classified for release: {', '.join(unclassified)}")
        for row in frame.iter_rows(named=True):
            labels = schema.row_labels(row)
            for column in (*schema.counts, *schema.magnitudes):
                if row.get(column) is not None and (name, labels, column) not in cells_by_place:
                    problems.append(f"{name}.{column}: a released value that was not protected")
                if column in schema.counts and row.get(column) is not None and 0 < row[column] < MIN_CELL:
                    problems.append(f"{name}.{column}: a released count under {MIN_CELL}")
            for column, derive in schema.derived.items():
                if not same(row.get(column), round_to(derive(row), unit_of(name, column))):
                    problems.append(f"{name}.{column}: not computed from released values only")
            for column, guards in schema.guarded.items():
                if row.get(column) is not None and any(row.get(g) is None for g in guards):
                    problems.append(f"{name}.{column}: an estimate shown beside a hidden count it rests on")
            for column, keys in schema.json.items():
                places = {p for t, r, p in cells_by_place if t == name and r == labels and p.startswith(f"{column}.")}
                problems += _json_problems(name, column, row, keys, places)
            for column, rule in schema.structured.items():
                problems += [f"{name}.{column}: {p}" for p in rule(row)]
        problems += precision_problems(name, frame, schema)
        problems += tally_problems(name, frame)
    return sorted(set(problems))


def _json_problems(
    table: str,
    column: str,
    row: Mapping[str, Any],
    keys: Mapping[str, Any],
    protected: set[str] | None = None,
) -> list[str]:
    """Problems of one JSON column of a row; ``protected``: its paths recorded as ledger cells (``column.path``)."""
    document = json.loads(row.get(column) or "{}")
    return _json_level(f"{table}.{column}", row, document, document, keys, "", protected, column)


def _json_level(
    where: str,
    row: Mapping[str, Any],
    document: Any,
    level: Mapping[str, Any],
    keys: Mapping[str, Any],
    prefix: str,
    protected: set[str] | None,
    column: str,
) -> list[str]:
    """The keys of one level of a JSON document: each classified by its dotted path, or its parent's."""
    problems = []
    for key, value in level.items():
        path = f"{prefix}{key}"
        spec = keys.get(path)
        if spec is None:
            nested = any(k.startswith(f"{path}.") for k in keys)
            if nested and value is None:
                continue
            if nested and isinstance(value, Mapping):
                problems += _json_level(where, row, document, value, keys, f"{path}.", protected, column)
            else:
                problems.append(f"{where}.{path}: not classified for release")
            continue
        if spec.kind == "count" and value is not None and 0 < value < MIN_CELL:
            problems.append(f"{where}.{path}: a released count under {MIN_CELL}")
        if spec.kind == "count" and value is not None and protected is not None and f"{column}.{path}" not in protected:
            problems.append(f"{where}.{path}: a released value that was not protected")
        if spec.kind == "derived" and spec.derive is not None and not same(value, spec.derive(row, document)):
            problems.append(f"{where}.{path}: not computed from released values only")
        if spec.kind == "guarded" and value is not None and any(row.get(g) is None for g in spec.guards):
            problems.append(f"{where}.{path}: an estimate shown beside a hidden count it rests on")
    return problems


def audit(
    audience: str,
    ledger: Ledger,
    tables: Mapping[str, pl.DataFrame],
    schemas: Mapping[str, TableSchema],
    extra_problems: Iterable[str] = (),
) -> AuditReport:
    """Attack the tables an audience is released (as read back from its file) with the ledger's relations."""
    values, problems = released_values(ledger, tables, schemas)
    problems += rule_problems(ledger, tables, schemas, values)
    for cell in ledger:
        if not cell.implicit and cell.id in values and values[cell.id] != cell.released:
            problems.append(f"{cell.id.table}.{cell.id.column}: the released value is not the protected one")
    targets, recovered = attack(ledger, values)
    explicit = [c for c in ledger if not c.implicit]
    shown = [c for c in explicit if values.get(c.id) is not None]
    return AuditReport(
        audience=audience,
        cells=len(explicit),
        released=len(shown),
        perturbed=sum(1 for c in shown if c.noise > 0),
        hidden=len(explicit) - len(shown),
        targets=targets,
        recovered=recovered,
        problems=sorted(set(problems)) + list(extra_problems),
    )
