import itertools
import json

import numpy as np
import pytest
import torch

from taste.data.records import PhoneAlignment
from taste.units.metrics import codebook_usage, ctc_greedy_decode, edit_distance, phone_error_rate, purity_pnmi
from taste.units.phones import PhoneInventoryError, PhoneVocab, load_phone_vocab, unit_phone_labels


def _slow_purity_pnmi(units, labels):
    pairs = [(u, l) for u, l in zip(units, labels) if u >= 0 and l >= 0]
    n = len(pairs)
    codes, phones = sorted({u for u, _ in pairs}), sorted({l for _, l in pairs})
    p = {(u, l): sum(1 for x in pairs if x == (u, l)) / n for u in codes for l in phones}
    pu = {u: sum(p[u, l] for l in phones) for u in codes}
    pl = {l: sum(p[u, l] for u in codes) for l in phones}
    purity = sum(max(p[u, l] for l in phones) for u in codes)
    mi = sum(v * np.log(v / (pu[u] * pl[l])) for (u, l), v in p.items() if v > 0)
    h = -sum(v * np.log(v) for v in pl.values())
    return purity, mi / h


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_purity_pnmi_match_slow_reference(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(-1, 5, size=300)
    units = np.where(rng.random(300) < 0.7, labels * 2 + 1, rng.integers(0, 12, size=300))
    units[labels < 0] = rng.integers(0, 12, size=(labels < 0).sum())
    got = purity_pnmi(units, labels, codebook_size=12, n_labels=5)
    purity, pnmi = _slow_purity_pnmi(units.tolist(), labels.tolist())
    assert got["phone_purity"] == pytest.approx(purity)
    assert got["pnmi"] == pytest.approx(pnmi)
    assert 0 < got["pnmi"] < 1


def test_perfect_units_have_purity_and_pnmi_one():
    labels = np.array([0, 0, 1, 2, 2, 1, -1])
    got = purity_pnmi(labels + 3, labels, codebook_size=8, n_labels=3)
    assert got["phone_purity"] == pytest.approx(1.0) and got["pnmi"] == pytest.approx(1.0)


def test_codebook_usage():
    got = codebook_usage([np.array([0, 1, 1, -1]), np.array([2, 3])], codebook_size=8)
    assert got["usage_share"] == 0.5 and got["codes_used"] == 4
    p = np.array([1, 2, 1, 1]) / 5
    assert got["perplexity"] == pytest.approx(np.exp(-(p * np.log(p)).sum()))


@pytest.mark.parametrize("ref,hyp,dist", [([], [1, 2], 2), ([1, 2, 3], [1, 2, 3], 0), ([1, 2, 3], [2, 3], 1),
                                          ([1, 2, 3], [1, 4, 3, 5], 2), ([1, 1], [], 2)])
def test_edit_distance(ref, hyp, dist):
    assert edit_distance(ref, hyp) == dist


def test_phone_error_rate_and_errors():
    assert phone_error_rate([[1, 2], [3, 4]], [[1, 2], [3]]) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="2 references but 1"):
        phone_error_rate([[1], [2]], [[1]])


def test_ctc_greedy_decode_merges_repeats_and_drops_blanks():
    path = [0, 3, 3, 0, 3, 2, 2, 0, 1]
    logits = torch.nn.functional.one_hot(torch.tensor([path, path]), 5).float()
    assert ctc_greedy_decode(logits, torch.tensor([9, 5])) == [[3, 3, 2, 1], [3, 3]]
    reference = [k for k, _ in itertools.groupby(path) if k != 0]
    assert ctc_greedy_decode(logits[:1], torch.tensor([9]))[0] == reference


def test_phone_inventory_formats_and_errors(tmp_path):
    for payload in (["a", "_", "b"], {"phones": ["a", "b"]}, {"a": 0, "b": 1}, ["'a", "a", ",b", "_:"]):
        (tmp_path / "p.json").write_text(json.dumps(payload))
        assert load_phone_vocab(tmp_path / "p.json").phones == ("a", "b")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(PhoneInventoryError, match="bad.json"):
        load_phone_vocab(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_phone_vocab(tmp_path / "missing.json")
    with pytest.raises(PhoneInventoryError, match="'z'"):
        PhoneVocab(("a",)).ctc_targets([PhoneAlignment("z", 0.0, 0.1)])


def test_ctc_targets_and_unit_labels():
    vocab = PhoneVocab(("a", "b"))
    phones = [PhoneAlignment("_", 0.0, 0.1), PhoneAlignment("'a", 0.1, 0.1), PhoneAlignment("b", 0.2, 0.05)]
    assert vocab.ctc_targets(phones) == [1, 2]
    # units at 25 Hz: centres 0.02, 0.06, 0.10, ..., 0.26
    assert unit_phone_labels(phones, 7, 25, vocab).tolist() == [-1, -1, 0, 0, 0, 1, -1]
