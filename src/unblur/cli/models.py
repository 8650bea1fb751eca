"""`unblur models`: a table of the networks (parameters, blind or not, blur kinds, weight tags with their measured
scores) and the classical methods."""
from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "models",
        help="list networks, weight tags and classical methods",
        description="List the registered networks: parameters, whether they are blind, the blur kinds of their "
        "weights and each weight set NAME.TAG with its measured scores (usable with `unblur restore --model "
        "NAME[.TAG]`; * = the default tag), then the classical methods (`unblur restore --method`).",
    )
    p.set_defaults(func=run)


def _params(name: str) -> str:
    import torch

    from ..models import create

    with torch.device("meta"):  # no memory, no initialisation cost
        model = create(name)
    n = sum(p.numel() for p in model.parameters())
    return f"{n / 1e6:.2f}M"


def network_rows() -> list[tuple[str, str, str, str, str]]:
    """``(name, params, blind, blur kinds, weights)`` rows: one per size, then one more per extra weight tag."""
    from ..models import list_models, model_class, weight_specs

    rows = []
    for name in list_models():
        specs = list(weight_specs(name).values())
        blind = "yes" if getattr(model_class(name), "blind", True) else "no (needs the kernel)"
        kinds = sorted({k for s in specs for k in s.blur})
        cells = []
        for i, s in enumerate(specs):
            state = "" if s.path.is_file() else " (file not installed)"
            cells.append(f"{s.name}{'*' if i == 0 else ''}{state}: {s.scores or 'no score measured'}")
        rows.append((name, _params(name), blind, ", ".join(kinds) or "-", cells[0] if cells else "-"))
        rows += [("", "", "", "", c) for c in cells[1:]]
    return rows


def run(args) -> int:
    from ..classical import METHODS

    header = ("name", "params", "blind", "blur", "weights (NAME.TAG: measured scores; * = default)")
    rows = network_rows()
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    print("networks (--model NAME or NAME.TAG):")
    for r in [header, *rows]:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    print("classical methods (--method):")
    width = max((len(n) for n in METHODS), default=0)
    for name, info in METHODS.items():
        kind = "blind" if getattr(info, "blind", False) else "non-blind, needs --kernel"
        desc = getattr(info, "description", "")
        print(f"  {name:<{width}}  [{kind}]  {desc}")
    return 0
