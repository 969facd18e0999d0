"""Background work: a queue of jobs in the store, run one at a time by a worker process.

- ``queue``: submit, launch, cancel, resume; the worker loop (``launch``, ``run_worker``)
- ``registry``: job kinds by name; ``kinds``: what each kind does
- ``chain``: jobs that wait for others; ``prerequisites``: what a run needs built first
- ``sweeps``: an unlearning grid, here or as Ray tasks; ``sweep_tasks``: one grid point as a
  pure task

The top of the engine below the CLI; never imports streamlit.
"""
