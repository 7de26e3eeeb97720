"""reverie: give a local language model a sleep cycle.

wake (read documents, chat) -> dream (diverse synthetic text) -> sleep (LoRA adapter, verified)
-> meter (diversity and collapse, measured everywhere).

The Python API lives in the cycle's folders; `reverie.app.Reverie` ties them together and is
what the CLI (`reverie.cli`) calls.
"""

__version__ = "0.1.0"
