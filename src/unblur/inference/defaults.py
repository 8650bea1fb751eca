"""What ``unblur restore`` runs when neither a method nor a model is named (no torch import: the CLI's help
reads it). README.md ("The default") gives the measurements behind the choice."""

# A classical method or a shipped weight set (``name.tag``: a network).
DEFAULT_METHOD = "blind-l0"
NON_BLIND_DEFAULT = "hqs-hl"  # ... when a kernel is given
