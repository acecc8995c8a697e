"""Publication: the tables each role may see, disclosure-controlled, audited by an attacker, then released.

The flow (``release.py``): the marts are read once; a builder per released table keeps only
the columns its role may see, protects every count with the cell-key method (``cell_key.py``),
hides counts under 11 and whatever would let one be recomputed, and records every protected
cell and the linear relations between cells in a ``Ledger`` (``ledger.py``). The auditor
(``audit.py``) then attacks what was written, all the tables of a role together, and the
release is swapped in only when no count of 1 to 10 can be recovered. ``docs/disclosure.md``
says why this method and what it costs.
"""
