"""The follow adapter: a shared LoRA that makes the local model apply stated preferences.

:mod:`.phrases` splits atom types into training and held-out sets and words them;
:mod:`.data` generates the examples; :mod:`.train` trains (``persona train follow``);
:mod:`.evaluate` measures it (``persona bench follow``).
"""
