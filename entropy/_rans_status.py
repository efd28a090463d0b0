"""Status codes of the rANS decoders (shared by the plain-Python and the Numba decoder).

Kept in a module of their own, without numba, so that ``fxlic.entropy.rans`` can report decoder errors
when Numba is not installed or switched off (the pure-NumPy path, docs/determinism.md).
"""

OK = 0
ERR_TRUNCATED = 1  # needed a byte past the end of the stream
ERR_BAD_ESCAPE = 2  # escaped value lies inside the table's direct range (never produced by ENT-E2)
ERR_FINAL_STATE = 3  # final state != RANS_L
ERR_TRAILING = 4  # bytes left over after the last symbol
ERR_INITIAL_STATE = 5  # initial state outside [RANS_L, STATE_END)
