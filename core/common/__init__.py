"""Foundation, below every other package: what every layer may use, and nothing of the lab.

- ``errors``: the errors a user sees (``LabError`` and its kinds, ``Diverged``)
- ``config``: checks of user values (``check_int``, ``check_float``, …)
- ``device``: ``cuda`` → ``mps`` → ``cpu``, overridable (``resolve_device``)
- ``threads``: CPU threads for a step (``LAB_THREADS``)
- ``sgd``: SGD with momentum, ``torch.optim.SGD``'s update bit for bit, without its import cost
- ``npy_check``: a ``.npy`` header checked against its file's size before NumPy reads it
- ``processes``: which process a worker is (pid and start time)
- ``jsonable``: values made strict-JSON (``plain``)

Imports nothing of ``core`` but itself; never imports streamlit.
"""
