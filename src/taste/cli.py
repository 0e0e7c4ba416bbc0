"""`taste` command line: study plumbing (materialise, stage, profile) plus each stage's own commands."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from pathlib import Path

# Stage folders that contribute subcommands through `commands.register(subparsers)`.
COMMAND_MODULES = ("taste.units.commands", "taste.vocoder.commands", "taste.asr.commands", "taste.tokenizer.commands",
                   "taste.swap.commands", "taste.lm.commands", "taste.evaluation.commands", "taste.data.commands")


def _materialise(args: argparse.Namespace) -> int:
    from taste.config import REPO_ROOT, load_params
    from taste.data.materialise import materialise
    from taste.pin import materialise_pinned

    params = load_params(args.params)
    pin = REPO_ROOT / "data.dvc"
    if args.repin and pin.exists():
        pin.unlink()
    materialise_pinned(REPO_ROOT, params, lambda out: materialise(params, out))
    return 0


def _stage(args: argparse.Namespace) -> int:
    from taste.stages import run_stage

    run_stage(args.name, params_path=args.params)
    return 0


def _profile(args: argparse.Namespace) -> int:
    from taste.config import apply_profile

    profile = Path("profiles") / f"{args.name}.yaml"
    if not profile.exists():
        raise SystemExit(f"{profile}: no such profile (see profiles/)")
    merged = apply_profile(args.params, profile)
    print(f"applied {profile} to {args.params} (profile: {merged.get('profile')})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taste", description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("materialise", help="generate data/raw from its seed and check it against data.dvc")
    p.add_argument("--repin", action="store_true", help="accept the regenerated corpus as the new pin")
    p.set_defaults(func=_materialise)
    p = sub.add_parser("stage", help="run one study stage's notebook (what dvc.yaml calls)")
    p.add_argument("name")
    p.set_defaults(func=_stage)
    p = sub.add_parser("profile", help="merge profiles/NAME.yaml into params.yaml")
    p.add_argument("action", choices=["apply"])
    p.add_argument("name")
    p.set_defaults(func=_profile)
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue
        module.register(sub)
    return parser


# Errors a user can cause (bad audio or transcript, a missing file, a codes file from another tokenizer, a run folder
# of another configuration, ...): each becomes one line on stderr and exit status 2. Everything else is a bug and
# keeps its traceback. User errors are
# - OSError (a missing or unreadable file, a full disk: FileNotFoundError, CheckpointMissingError, ...);
# - the project's own ValueError subclasses (the validation errors of taste.data.validate / audio_io, CodesFileError,
#   SwapError, ParamsError, ...: any ValueError subclass defined in a taste module). A bare ValueError, or one of
#   numpy's, torch's or json's, is a bug that reached the top and keeps its traceback;
# - the RuntimeError / ImportError subclasses below (a run folder of another configuration, a corpus pin, a
#   download, the LLM judge, text the synthesiser cannot say, the optional S3 tokenizer package missing).
USER_ERRORS = (OSError,)
USER_RUNTIME_ERRORS = (("taste.training.loop", "ResumeMismatchError"), ("taste.pin", "CorpusMismatchError"),
                       ("taste.data.download", "DownloadError"), ("taste.evaluation.llm_judge", "JudgeError"),
                       ("taste.data.synth", "SynthesisError"), ("taste.units.s3_pretrained", "S3TokenizerUnavailable"))


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception classes beyond the project's ValueError subclasses that `main` reports as one line. A module is
    looked up only once loaded (a command that raised its error has imported it), so the CLI's start-up stays free
    of torch. A loaded module without its listed class is a bug in USER_RUNTIME_ERRORS and raises AttributeError."""
    extra = tuple(getattr(sys.modules[mod], name) for mod, name in USER_RUNTIME_ERRORS if mod in sys.modules)
    return USER_ERRORS + extra


def is_user_error(err: BaseException) -> bool:
    """Whether `main` reports `err` as one line (see USER_ERRORS) rather than with its traceback."""
    if isinstance(err, user_errors()):
        return True
    return isinstance(err, ValueError) and any(
        issubclass(cls, ValueError) and cls is not ValueError and cls.__module__.split(".")[0] == "taste"
        for cls in type(err).__mro__)


def error_line(command: str, err: BaseException) -> str:
    """`taste <command>: error: <message>` on one line."""
    message = " ".join(str(err).split()) or type(err).__name__
    return f"taste {command}: error: {message}"


# Commands whose work runs in child processes that must see the environment as the user gave it (`taste stage`
# executes a notebook in a papermill kernel): no environment defaults are applied around them.
OWN_ENVIRONMENT_COMMANDS = ("stage",)
# Defaults for the duration of any other command. Its output is its result and, on failure, one line: no
# weight-loading progress bars on stderr (set HF_HUB_DISABLE_PROGRESS_BARS=0 to see them).
COMMAND_ENV_DEFAULTS = {"HF_HUB_DISABLE_PROGRESS_BARS": "1"}


@contextlib.contextmanager
def command_environment(command: str):
    """COMMAND_ENV_DEFAULTS (where the user has not set them) in os.environ for the duration of one command, then
    os.environ as it was: nothing leaks into the environment of the process that called `main` or of a later
    command's child processes.

    huggingface_hub reads HF_HUB_DISABLE_PROGRESS_BARS once, into a constant, when it is first imported. So in a
    `taste` process (one command) the setting holds for that command; but where several commands run in one process
    (tests, a notebook calling `main`), whichever setting was in effect when huggingface_hub was first imported
    stays for all later commands in that process, whatever os.environ says then."""
    added = {} if command in OWN_ENVIRONMENT_COMMANDS else {
        k: v for k, v in COMMAND_ENV_DEFAULTS.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key, value in added.items():
            if os.environ.get(key) == value:
                del os.environ[key]


def main(argv: list[str] | None = None) -> int:
    """Run one command. A user error prints `taste <cmd>: error: <message>` on stderr and returns 2; the global
    --debug flag re-raises it with its traceback instead."""
    args = build_parser().parse_args(argv)
    try:
        with command_environment(args.command):
            return int(args.func(args) or 0)
    except Exception as err:
        if args.debug or not is_user_error(err):
            raise
        print(error_line(args.command, err), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
