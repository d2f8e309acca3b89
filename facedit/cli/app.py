"""The root ``facedit`` command: every command and command group is registered here."""

from __future__ import annotations

from facedit.cli import data, db, demo, evaluate, gc, keys, run, service, train, weights
from facedit.cli.options import typer_app

app = typer_app("Batch face-attribute editing without blending artifacts.", add_completion=False)

# editing on this machine (run.py, demo.py)
app.command("run")(run.run)
app.command("edit")(run.edit)
app.command("attributes")(run.attributes)
app.command("demo")(demo.demo)

# weights, training data, training, evaluation
app.add_typer(weights.app, name="weights")
app.add_typer(data.app, name="data")
app.add_typer(train.app, name="train")
app.command("eval")(evaluate.eval_command)

# the job service (service.py, keys.py, db.py); retention for it and the embedded store (gc.py)
app.command("api")(service.api)
app.command("worker")(service.worker)
app.command("submit")(service.submit)
app.command("status")(service.status)
app.add_typer(keys.app, name="keys")
app.add_typer(db.app, name="db")
app.command("gc")(gc.gc)
