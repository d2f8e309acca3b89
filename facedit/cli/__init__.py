"""The ``facedit`` command (Typer); ``app`` is the console script (``facedit.cli:app``).

Where things are:

- ``app.py``: the root command; every command and group is registered there and nowhere else.
- One module per command group: ``run.py`` (run, edit, attributes), ``demo.py``,
  ``weights.py``, ``data.py`` (data blend-pairs), ``train.py``, ``evaluate.py`` (eval),
  ``service.py`` (api, worker, submit, status, and the API client), ``keys.py``, ``db.py``.
- ``options.py``: what several commands share: the Typer app factory (no Rich markup in
  help), option declarations and help texts (the job options' from
  :mod:`shared.core.contracts`), and checking option values (exit 2 when wrong).
- ``loaders.py``: the model bundle, the edit pipeline, the job store and storage that commands
  run with.

What the commands build on stays beside this package: :mod:`facedit.embedded` (the in-process
runtime), :mod:`facedit.outputs`, :mod:`facedit.jobs_log`, :mod:`facedit.progress`,
:mod:`facedit.gallery`, :mod:`facedit.demo`. Every message goes through
:mod:`facedit.console`, which never parses markup.

Imports: at module level, except what would slow down ``facedit --help`` and the light
commands: torch and whatever imports it (``shared.editing.bundle``, ``.pipeline``,
``.latents``, ``shared.models``, ``shared.train``), numpy and Pillow (``facedit.gallery``,
``facedit.demo``), SQLAlchemy (``shared.jobs``) and the ``service`` extra (uvicorn, Celery and
``workers``, httpx), which the service commands import when they run so that a missing extra
is one line naming it. Those are imported inside the function that needs them;
``tests/unit/cli/test_app.py`` checks that ``import facedit.cli`` loads none of them.
"""

from facedit.cli.app import app

__all__ = ["app"]
