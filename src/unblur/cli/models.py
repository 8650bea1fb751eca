"""`unblur models`: list the networks (and which have shipped weights) and the classical methods."""
from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "models",
        help="list networks, shipped weights and classical methods",
        description="List the registered networks (marking those with shipped weights, usable with "
        "`unblur restore --model`) and the classical methods (`unblur restore --method`).",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from ..classical import METHODS
    from ..models import list_models

    names = list_models()
    shipped = set(list_models(pretrained=True))
    print("networks (--model; * = shipped weights):")
    if not names:
        print("  (none registered)")
    for name in names:
        print(f"  {'*' if name in shipped else ' '} {name}")
    print(f"shipped weights: {', '.join(sorted(shipped)) if shipped else 'none yet'}")
    print("classical methods (--method):")
    width = max((len(n) for n in METHODS), default=0)
    for name, info in METHODS.items():
        kind = "blind" if getattr(info, "blind", False) else "non-blind, needs --kernel"
        desc = getattr(info, "description", "")
        print(f"  {name:<{width}}  [{kind}]  {desc}")
    return 0
