"""A stand-in of vai_q_pytorch (``pytorch_nndct``) for tests, NOT Vitis AI: ``apis.py``, README.md."""
