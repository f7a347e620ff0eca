"""Entry point the Functions host loads: builds the app from the blueprints, nothing else."""

import azure.functions as func

from functions.api import BLUEPRINTS as API
from functions.console import bp as console
from functions.delivery import bp as delivery
from functions.intake import bp as intake
from functions.renewal import bp as renewal
from functions.sweep import bp as sweep
from functions.warmup import bp as warmup
from functions.worker import bp as worker

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in (intake, worker, delivery, renewal, sweep, warmup, *API, console):
    app.register_functions(blueprint)
