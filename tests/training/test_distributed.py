"""The shared training loop scales out: two CPU processes (gloo) train a debug unit tokenizer and end identical."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SCRIPT = textwrap.dedent('''
    import sys
    from pathlib import Path

    import torch
    from accelerate import PartialState

    state = PartialState(cpu=True)   # the process group must exist before the VQ is built (it syncs codebooks)
    torch.set_num_threads(1)
    sys.path.insert(0, sys.argv[2])
    from unit_fakes import VOCAB, fake_corpus

    from taste.training import TrainConfig, train
    from taste.training.checkpoint import save_safetensors_atomic
    from taste.units.data import MelPhoneDataset, collate_mel_phones, unit_tokenizer_loss
    from taste.units.model import build_debug_unit_tokenizer

    out = Path(sys.argv[1])
    torch.manual_seed(0)             # same initial weights on every rank
    model = build_debug_unit_tokenizer(n_phones=VOCAB.n_phones, codebook_size=16, dropout=0.1)
    utts, feats = fake_corpus(16)
    cfg = TrainConfig(steps=6, batch_size=2, lr=3e-3, warmup_steps=1, checkpoint_every=100, log_every=2)
    torch.manual_seed(1000 + state.process_index)   # dropout / dead-code sampling differ per rank on purpose
    train(model, MelPhoneDataset(utts, feats, VOCAB), collate_mel_phones, unit_tokenizer_loss, cfg, out / "run",
          progress=False)
    save_safetensors_atomic(model.state_dict(), out / f"rank{state.process_index}.safetensors")
    (out / f"rank{state.process_index}.world").write_text(f"{state.num_processes} {state.distributed_type}")
''')


@pytest.mark.slow
def test_two_process_training_keeps_replicas_identical(tmp_path):
    accelerate = Path(sys.executable).with_name("accelerate")
    if not accelerate.exists():
        accelerate = shutil.which("accelerate")
    if accelerate is None:
        pytest.skip("accelerate CLI not installed")
    (tmp_path / "script.py").write_text(SCRIPT)
    helpers = Path(__file__).resolve().parents[1] / "units"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # accelerate 1.x: `launch --cpu --num_processes 2` starts ONE process unless mpirun is set up; the torchrun
    # launcher (--multi_gpu) starts two, and PartialState(cpu=True) in the script puts them on CPU with gloo.
    proc = subprocess.run(
        [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", str(tmp_path / "script.py"), str(tmp_path), str(helpers)],
        capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # each rank reports the group it joined (gloo's own log lines interleave across processes: not parseable)
    worlds = [(tmp_path / f"rank{r}.world").read_text().split() for r in (0, 1)]
    assert worlds == [["2", "DistributedType.MULTI_CPU"]] * 2, f"expected a two-process CPU (gloo) group: {worlds}"
    rank0, rank1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"replicas differ in {name}"
    # training moved the weights (a loop that did nothing would also give identical replicas)
    sys.path.insert(0, str(helpers))
    from taste.units.model import build_debug_unit_tokenizer
    from unit_fakes import VOCAB

    torch.manual_seed(0)
    fresh = build_debug_unit_tokenizer(n_phones=VOCAB.n_phones, codebook_size=16, dropout=0.1).state_dict()
    assert not torch.equal(fresh["ctc_proj.weight"], rank0["ctc_proj.weight"])
