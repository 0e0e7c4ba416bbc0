"""The packages of src/taste layer one way (issue 14, section 1): an import never goes up a layer or closes a cycle.

Layers, bottom to top (docs/architecture.md draws the same picture):
  config, pin, data  <  metrics  <  training  <  model stages (units, vocoder, asr, tokenizer, lm, swap)
  <  evaluation (the study level: probes, report, reviewer)  <  stages, cli.
Within the model-stage layer a package may use another, as long as no chain of such imports leads back to it (no
cycle, of two packages or more).

No import breaks this today, so KNOWN_DEBT is empty; a break accepted for a while would be listed there with the files
that make it. The test fails on any new break, and on a listed break that no longer exists (so the list can only
shrink as the debt is paid and cannot hide a new import behind an old entry). Imports inside functions count, as in
test_dvc_deps.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from test_dvc_deps import SRC, imported_taste_modules

LAYERS = (
    ("config", "pin", "data"),
    ("metrics",),
    ("training",),
    ("units", "vocoder", "asr", "tokenizer", "lm", "swap"),
    ("evaluation",),
    ("stages", "cli"),
)
LAYER_OF = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}

# (importer, imported): the files of the importer that make the edge, for an import that breaks the layering and is
# accepted for now. Empty: the metrics that model stages use (WER, bootstrap statistics, durations, prosody, quality,
# speaker similarity, the blind recogniser) live in `metrics`, `taste vocode` lives in `vocoder`, and the generic
# helpers the vocoder took from `units` (train_config, model_config, prepared_paths, load_pitch, MelSource,
# MEL_PAD_VALUE) live in `training` and `data`. The vocoder still uses `units` (its unit streams, the S3 unit rate,
# the padding mask and positions of its Transformer), one way only, which the model-stage layer allows.
KNOWN_DEBT: dict[tuple[str, str], set[str]] = {}


def package_of(path: Path) -> str:
    rel = path.relative_to(SRC).parts
    return rel[0][:-3] if len(rel) == 1 else rel[0]


def package_edges() -> dict[tuple[str, str], set[str]]:
    """(importer package, imported package) -> the importer's files (relative to src/taste) that make the edge."""
    edges: dict[tuple[str, str], set[str]] = defaultdict(set)
    for path in sorted(SRC.rglob("*.py")):
        src = package_of(path)
        for module in imported_taste_modules(path):
            parts = module.split(".")
            if len(parts) < 2:
                continue
            dst = parts[1]
            if dst != src:
                edges[(src, dst)].add(str(path.relative_to(SRC)))
    return dict(edges)


def reaches(edges: dict[tuple[str, str], set[str]], start: str, goal: str) -> bool:
    """Whether a chain of edges leads from start to goal."""
    seen, todo = {start}, [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        for src, dst in edges:
            if src == node and dst not in seen:
                seen.add(dst)
                todo.append(dst)
    return False


def breaks(edges: dict[tuple[str, str], set[str]]) -> dict[tuple[str, str], set[str]]:
    """The edges that go up a layer, or that lie on a cycle of packages of one layer (a cycle across layers always
    holds an upward edge)."""
    out = {}
    for (src, dst), files in edges.items():
        if src not in LAYER_OF or dst not in LAYER_OF:
            out[(src, dst)] = files  # a package no layer names: place it in LAYERS first
        elif LAYER_OF[dst] > LAYER_OF[src]:
            out[(src, dst)] = files
        elif LAYER_OF[dst] == LAYER_OF[src] and reaches(edges, dst, src):
            out[(src, dst)] = files
    return out


def test_every_package_has_a_layer():
    packages = {package_of(p) for p in SRC.rglob("*.py")} - {"__init__"}
    assert packages <= set(LAYER_OF), f"packages without a layer: {sorted(packages - set(LAYER_OF))}"


def test_no_new_import_goes_up_a_layer_or_closes_a_cycle():
    found = breaks(package_edges())
    new = {e: sorted(f) for e, f in found.items() if e not in KNOWN_DEBT}
    assert not new, f"imports that go up a layer or close a cycle (see LAYERS): {new}"
    grown = {e: sorted(f - KNOWN_DEBT[e]) for e, f in found.items() if e in KNOWN_DEBT and f - KNOWN_DEBT[e]}
    assert not grown, f"files that add to a known layering debt (move the code down instead): {grown}"


def test_known_debt_is_current():
    found = breaks(package_edges())
    paid = {e: sorted(f - found.get(e, set())) for e, f in KNOWN_DEBT.items() if f - found.get(e, set())}
    assert not paid, f"KNOWN_DEBT lists imports that are gone; remove them from the list: {paid}"


def test_breaks_detects_an_upward_import_and_a_cycle():
    edges = {("data", "training"): {"data/x.py"}, ("units", "vocoder"): {"units/a.py"},
             ("vocoder", "units"): {"vocoder/b.py"}, ("lm", "asr"): {"lm/c.py"}, ("cli", "lm"): {"cli.py"}}
    assert set(breaks(edges)) == {("data", "training"), ("units", "vocoder"), ("vocoder", "units")}


def test_breaks_detects_a_longer_cycle_within_a_layer():
    """units -> vocoder -> asr -> units: no two packages import each other, yet the three form a cycle; the edge
    lm -> asr hangs off it and is no break."""
    edges = {("units", "vocoder"): {"units/a.py"}, ("vocoder", "asr"): {"vocoder/b.py"},
             ("asr", "units"): {"asr/c.py"}, ("lm", "asr"): {"lm/d.py"}}
    assert set(breaks(edges)) == {("units", "vocoder"), ("vocoder", "asr"), ("asr", "units")}
    del edges[("asr", "units")]
    assert breaks(edges) == {}
