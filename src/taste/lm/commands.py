"""`taste continue AUDIO ["prompt text"] -o out.wav`: one spoken prompt continued by one system of stage taslm."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from taste.lm.continuation import SYSTEMS


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "continue", help="continue a spoken prompt (TASLM or a baseline) into a WAV file",
        description="Continue a spoken prompt. The random seed of the continuation (LM sampling, unit decoding, "
                    "vocoder noise) is derived from (--seed, --prompt-id) by the same stable hash the study uses "
                    "(taste.lm.continuation.prompt_seed), so the study's prompt audio saved as <prompt_id>.wav "
                    "continues here exactly as in the study.")
    p.add_argument("audio", help="audio file of the prompt (any format, sample rate and channel count)")
    p.add_argument("text", nargs="?", default=None, help="the prompt's transcript (default: the study's ASR)")
    p.add_argument("-o", "--output", required=True, help="output WAV (the continuation only)")
    p.add_argument("--system", choices=SYSTEMS, default="taslm_embed")
    p.add_argument("--words", type=int, default=None, help="words to add (default: lm.continuation.target_words)")
    p.add_argument("--seed", type=int, default=None,
                   help="the study seed the prompt's seed is derived from (default: shared.seed of params.yaml)")
    p.add_argument("--prompt-id", default=None,
                   help="the prompt id the seed is derived from (default: the audio file name without its "
                        "extension, e.g. p003_u42 for p003_u42.wav; the study's ids are in its prompts.jsonl)")
    p.set_defaults(func=_continue)


def _continue(args: argparse.Namespace) -> int:
    from taste.config import load_params, set_threads
    from taste.data.audio_io import write_audio
    from taste.data.prepare import validation_config
    from taste.data.validate import read_speech
    from taste.data.text_norm import normalise
    from taste.data.speaker_embed import conditioning_encoder
    from taste.lm.continuation import (Prompt, continue_prompt, load_systems, prepare_audio, prompt_unit_encoder,
                                       sampling_from_params)

    params = load_params(args.params)
    set_threads(params["shared"]["threads"])
    wav = read_speech(args.audio, args.text, cfg=validation_config(params))  # checked before the models load
    systems = load_systems(params, [args.system])
    # the S3-unit LM's prompt units come from the configured unit backend (trained tokenizer or CosyVoice's S3)
    unit_model = (prompt_unit_encoder(params["units"], params["shared"]["paths"]["models"],
                                      systems.mel_cfg.sample_rate) if args.system == "s3_lm" else None)
    text = normalise(args.text) if args.text else None
    seed = int(params["shared"]["seed"]) if args.seed is None else args.seed
    prompt_id = args.prompt_id or Path(args.audio).stem
    prompt = Prompt(prompt_id, Path(args.audio).stem, args.audio, None, "unknown",
                    len(wav) / systems.mel_cfg.sample_rate, text or "", text or "")
    prepared = prepare_audio(prompt, wav, systems, conditioning_encoder(params).embed, unit_model, text)
    cont = params["lm"]["continuation"]
    target = args.words or cont["target_words"]
    max_units = int(target * 3 * systems.unit_rate_hz)  # generous: 3 s per word
    record, out_wav = continue_prompt(args.system, prepared, systems, sampling_from_params(params), target, max_units,
                                      seed)
    write_audio(args.output, out_wav, systems.mel_cfg.sample_rate)
    print(json.dumps({k: v for k, v in record.items() if k not in ("units", "codes")}, indent=2))
    return 0

