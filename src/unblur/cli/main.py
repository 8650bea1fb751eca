"""`unblur` command line: argparse with one module per subcommand (each exposes ``register(subparsers)``).

Exit codes: 0 success, 1 when some file of a batch failed, 2 on usage or configuration errors.
Errors are printed as one line ``unblur: error: <message>``, never as a traceback.
"""
from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import ConfigError, InputError, UnblurError

PROG = "unblur"


def error(message: str, file=None) -> None:
    """Print ``unblur: error: <message>`` as one line on stderr (or through tqdm when a bar is shown)."""
    line = f"{PROG}: error: {' '.join(str(message).split())}"
    try:
        from tqdm import tqdm

        tqdm.write(line, file=file or sys.stderr)  # clears and redraws an active progress bar
    except ImportError:  # pragma: no cover
        print(line, file=file or sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    from . import blur, eval as eval_cmd, models, restore, serve, train

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Single-image deblurring: classical methods and networks, blur synthesis and evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    restore.register(subparsers)
    blur.register(subparsers)
    eval_cmd.register(subparsers)
    train.register(subparsers)
    register_export = getattr(train, "register_export", None)
    if register_export is not None:
        register_export(subparsers)
    models.register(subparsers)
    serve.register(subparsers)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [UnblurError, InputError, ConfigError, FileNotFoundError,
                                         NotADirectoryError, IsADirectoryError, PermissionError]
    try:
        from PIL import UnidentifiedImageError

        errors.append(UnidentifiedImageError)
    except ImportError:  # pragma: no cover
        pass
    try:
        import yaml

        errors.append(yaml.YAMLError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help / --version -> 0, usage error -> 2
        return int(exit_.code) if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    except _user_errors() as err:
        error(_message(err))
        return 2
    except SystemExit as exit_:  # a subcommand that exits with a message
        if isinstance(exit_.code, str):
            print(exit_.code, file=sys.stderr)
            return 2
        return int(exit_.code or 0)
    return int(code or 0)


def _message(err: BaseException) -> str:
    if isinstance(err, OSError) and getattr(err, "filename", None) and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return str(err) or type(err).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
