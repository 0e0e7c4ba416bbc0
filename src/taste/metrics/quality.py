"""Reference-free speech quality: DNSMOS / P.808 (speechmos's bundled ONNX models) and UTMOS from a local checkpoint."""
from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
_dnsmos = None


class CheckpointMissingError(FileNotFoundError):
    """A model that needs local weights was asked for without them."""


def _dnsmos_model(threads: int = 1):
    """speechmos's DNSMOS with ONNX sessions limited to `threads` (its default grabs every core)."""
    global _dnsmos
    if _dnsmos is None:
        import onnxruntime as ort
        from speechmos import dnsmos as sm

        root = Path(sm.__file__).parent / "dnsmos_models"
        model = sm.DNSMOS(str(root / "sig_bak_ovr.onnx"), str(root / "model_v8.onnx"))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        model.onnx_sess = ort.InferenceSession(str(root / "sig_bak_ovr.onnx"), opts)
        model.p808_onnx_sess = ort.InferenceSession(str(root / "model_v8.onnx"), opts)
        _dnsmos = model
    return _dnsmos


def dnsmos(wav16k: np.ndarray) -> dict[str, float]:
    """DNSMOS of 16 kHz mono float audio `wav16k: [T]` -> {"ovrl", "sig", "bak", "p808"} (MOS scale 1-5).

    Clips shorter than DNSMOS's 9 s window are tiled by speechmos, as in the reference implementation.
    """
    wav = np.asarray(wav16k, dtype=np.float32)
    if wav.ndim != 1 or wav.size < SAMPLE_RATE // 10:
        raise ValueError(f"dnsmos needs mono audio of at least 0.1 s, got shape {wav.shape}")
    out = _dnsmos_model()(np.clip(wav, -1.0, 1.0), SAMPLE_RATE, False)
    return {"ovrl": float(out["ovrl_mos"]), "sig": float(out["sig_mos"]), "bak": float(out["bak_mos"]),
            "p808": float(out["p808_mos"])}


def utmos(wav16k: np.ndarray, checkpoint: str | Path | None) -> float:
    """UTMOS needs a local TorchScript checkpoint (its packages download weights, impossible offline).

    With `checkpoint` = a local `.pt` TorchScript file taking (wav [1, T], sr) -> score, returns its score.
    """
    if checkpoint is None:
        raise CheckpointMissingError("UTMOS needs a local checkpoint (evaluation.utmos_checkpoint); none is set, "
                                     "and its weights cannot be downloaded offline")
    path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointMissingError(f"UTMOS checkpoint not found: {path}")
    import torch

    model = torch.jit.load(str(path), map_location="cpu").eval()  # TorchScript: no pickle code execution
    wav = torch.as_tensor(np.asarray(wav16k, dtype=np.float32))[None]
    with torch.no_grad():
        return float(model(wav, SAMPLE_RATE).reshape(-1)[0])
