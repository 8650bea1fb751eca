"""`unblur train CONFIG.yaml [key=value ...]` (placeholder until the training stack lands)."""


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a model from a YAML config")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.set_defaults(func=run)


def run(args) -> int:
    raise SystemExit("unblur: error: training is not available yet")
